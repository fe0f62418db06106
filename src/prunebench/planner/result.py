"""What :func:`prunebench.planner.plan` returns: the chosen formats and every timing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class Plan:
    """What :func:`~prunebench.planner.plan` decided and measured.

    ``formats`` is {module: format} for :func:`prunebench.compile` (modules absent run
    dense); ``matrix_formats`` the same per weight matrix, for :func:`prunebench.save`;
    ``layers`` one dict per prunable layer: name, shape, sparsity, format (chosen), reason,
    ``times_ms`` {candidate: ms}, ``bytes`` {candidate: bytes}, ``unavailable``
    {format: why}. Whole-model times are in ``model_ms`` {dense, <format>, planned}."""

    objective: str
    engine: str
    values: str
    batch: int
    threads: int
    budget_ms: float | None
    formats: dict[str, str]
    matrix_formats: dict[str, str]
    layers: list[dict]
    model_ms: dict[str, float]
    model_bytes: dict[str, int]
    chosen_from: str
    per_layer_formats: dict[str, str]
    cache_hits: int = 0
    measured_s: float = 0.0
    format_options: dict = field(default_factory=dict)
    verify: dict | None = None
    #: the engine that runs the model, when :func:`plan` compared hosts (:mod:`prunebench.hosts`)
    host: dict | None = None

    @property
    def planned_ms(self) -> float:
        return self.model_ms["planned"]

    @property
    def dense_ms(self) -> float:
        return self.model_ms["dense"]

    @property
    def best_single_format(self) -> str | None:
        singles = {f: t for f, t in self.model_ms.items() if f not in ("dense", "planned",
                                                                       "per-layer")}
        return min(singles, key=singles.__getitem__) if singles else None

    @property
    def best_single_ms(self) -> float | None:
        f = self.best_single_format
        return None if f is None else self.model_ms[f]

    def to_json(self) -> dict:
        return {
            "objective": self.objective, "engine": self.engine, "values": self.values,
            "batch": self.batch, "threads": self.threads, "budget_ms": self.budget_ms,
            "planned_ms": self.planned_ms, "dense_ms": self.dense_ms,
            "best_single_ms": self.best_single_ms,
            "best_single_format": self.best_single_format,
            "speedup_vs_dense": self.dense_ms / self.planned_ms,
            "planned_bytes": self.model_bytes["planned"],
            "dense_bytes": self.model_bytes["dense"],
            "model_ms": self.model_ms, "model_bytes": self.model_bytes,
            "chosen_from": self.chosen_from, "formats": self.formats,
            "per_layer_formats": self.per_layer_formats,
            "format_options": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in self.format_options.items()},
            "cache_hits": self.cache_hits, "measured_s": self.measured_s,
            "verify": self.verify, "layers": self.layers, "host": self.host,
        }

    def compile(self, model: nn.Module) -> Any:
        """``model`` (the pruned model planned for) compiled with this plan."""
        from .. import engines

        if self.host and self.host["format"] != "planned":   # a whole-graph engine won
            return engines.compile(model, self.host["engine"], self.host["format"],
                                   threads=self.threads, fallback="dense")
        if not self.formats:  # every layer dense: exactly what dense PyTorch runs
            return engines.compile(model, "torch-dense", "dense", threads=self.threads)
        return engines.compile(model, self.engine, self.formats, values=self.values,
                               threads=self.threads, keep_smaller=False, fallback="error",
                               **self.format_options)

    def manifest(self) -> dict:
        """The part kept in a model file's manifest: per layer the chosen format and the
        measured time of each candidate (so ``inspect`` can say why)."""
        return {"objective": self.objective, "engine": self.engine, "batch": self.batch,
                "threads": self.threads, "budget_ms": self.budget_ms,
                "chosen_from": self.chosen_from,
                "model_ms": {k: round(v, 4) for k, v in self.model_ms.items()},
                "layers": {lay["name"]: {"format": lay["format"], "reason": lay["reason"],
                                         "times_ms": {f: round(t, 4) for f, t
                                                      in lay["times_ms"].items()},
                                         "bytes": lay["bytes"]}
                           for lay in self.layers}}
