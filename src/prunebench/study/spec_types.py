"""The validated study spec: what :func:`.spec.load_spec` returns and the rest of ``study/``
reads (plain frozen dataclasses; the checks that build them are in :mod:`.spec_models`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MEASURE_DEFAULTS = {"warmup": 2, "min_runs": 5, "min_time": 0.1, "max_time": 2.0}


@dataclass(frozen=True)
class Method:
    """One pruning method of a study, with the settings that change its result."""

    name: str
    scope: str = "layer"
    schedule: str = "oneshot"
    block: tuple[int, int] = (4, 4)
    n: int = 2
    m: int = 4
    rounds: int = 3
    norm: str = "l1"
    time: bool = True
    formats: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Short unique name: ``magnitude``, ``magnitude-global``, ``block4x4``, ``nm2:4``."""
        base = {"block": f"block{self.block[0]}x{self.block[1]}",
                "nm": f"nm{self.n}:{self.m}"}.get(self.name, self.name)
        if self.scope != "layer":
            base += f"-{self.scope}"
        if self.schedule != "oneshot":
            base += f"-{self.schedule}"
        return base

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity an N:M pattern fixes (``1 - n/m``); None for other methods."""
        return 1.0 - self.n / self.m if self.name == "nm" else None

    def key(self) -> dict[str, Any]:
        """What determines the pruned weights (hashed into job keys)."""
        k: dict[str, Any] = {"name": self.name, "scope": self.scope, "schedule": self.schedule}
        if self.name == "block":
            k["block"] = list(self.block)
        if self.name == "nm":
            k.update(n=self.n, m=self.m)
        if self.name in ("block", "channel"):
            k["norm"] = self.norm
        if self.schedule in ("iterative", "iterative-linear", "rewind"):
            k["rounds"] = self.rounds
        return k


@dataclass(frozen=True)
class ModelPlan:
    """The grid of one model after per-model overrides."""

    name: str
    methods: tuple[Method, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    formats: tuple[str, ...]
    values: tuple[str, ...]
    timed_values: tuple[str, ...]
    engines: tuple[str, ...]
    batches: tuple[int, ...]
    threads: tuple[int, ...]
    layers: str
    finetune_steps: int
    control_of: str | None = None
    #: the spec's ``finetune`` settings as sorted (key, value) pairs (see :meth:`.Checker.finetune`)
    finetune: tuple = ()


@dataclass(frozen=True)
class Spec:
    """A whole validated study: its model plans and the settings shared by every job."""

    name: str
    description: str
    source: str
    models: tuple[ModelPlan, ...]
    format_options: dict = field(default_factory=dict)
    measure: dict = field(default_factory=lambda: dict(MEASURE_DEFAULTS))
    verify: dict = field(default_factory=dict)
    quantized: tuple[str, ...] = ()
    profile: dict | None = None
    raw: dict = field(default_factory=dict, repr=False)
    hosts: str = "one"
    run_profile: str = "default"
