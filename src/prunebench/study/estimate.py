"""How long a study will take: per-job cost constants, replaced by stored timings.

The constants are deliberately simple (measured once on the 2-core development machine): a
training step per model, one dense forward call per model, a few fixed overheads. As soon as a
database holds rows of a (kind, model), the median ``elapsed_s`` of those rows replaces the
constant, so the estimate of a re-run (or of a larger study on the same machine) learns from
what was measured.
"""
from __future__ import annotations

from typing import Protocol

from .jobs import Job
from .spec import Spec

# seconds per training / fine-tuning step (batch 100-128, one thread)
STEP_S = {"mnist1d-mlp": 0.0012, "mnist1d-cnn": 0.0022, "mnist1d-gru": 0.014,
          "mnist1d-lstm": 0.010, "digits-lenet300": 0.0011, "digits-lenet5": 0.0015}
# seconds of one dense forward call at batch 1, one thread
CALL_S = {"mlp-4096": 0.015, "mobilenetv2": 0.022, "resnet18": 0.06, "mnist1d-gru": 0.0012,
          "mnist1d-lstm": 0.0009}
OVERHEAD_S = {"prune": 0.1, "size": 0.012, "latency": 0.025, "profile": 0.05, "quant": 0.05,
              "quant-latency": 0.05}
ROW_S = 0.01  # storing one row (its own transaction) and the progress display


def _base(model: str) -> str:
    from .controls import control_base

    return control_base(model) or model


def _params(model: str) -> int:
    from .. import zoo

    return zoo.count_params(zoo.get_spec(model).build())


class JobCosts(Protocol):
    """What a running executor asks of an estimate: seconds to train a dense model that is
    not cached, and seconds per job (the progress display counts them as done)."""

    def train_s(self, model: str, seed: int) -> float: ...

    def job_s(self, job: Job) -> float: ...


class Estimator:
    """Seconds per job, from stored ``timings`` {(kind, model): median s} or the constants."""

    def __init__(self, spec: Spec, timings: dict[tuple[str, str], float] | None = None):
        self.spec = spec
        self.timings = timings or {}
        self._params: dict[str | tuple[str, str], int] = {}

    def params(self, model: str) -> int:
        """Parameters of zoo model ``model`` (built once)."""
        if model not in self._params:
            self._params[model] = _params(model)
        return self._params[model]

    def pruned_params(self, model: str, layers: str) -> int:
        """Weights of the layers a method scores (the default selection or all)."""
        key = (model, layers)
        if key not in self._params:
            from .. import zoo
            from ..pruning import prunable_layers, select_layers
            from ..pruning.targets import prunable_weights

            net = zoo.get_spec(model).build()
            names = select_layers(net, None) if layers == "default" else prunable_layers(net)
            self._params[key] = sum(w.tensor(net).numel()
                                    for w in prunable_weights(net, names))
        return self._params[key]

    def step_s(self, model: str) -> float:
        return STEP_S.get(_base(model), 2e-7 * self.params(model) + 1e-3)

    def call_s(self, model: str, batch: int) -> float:
        one = CALL_S.get(_base(model), 2e-9 * self.params(model) + 5e-5)
        return one * (0.3 + 0.7 * batch)

    def train_s(self, model: str, seed: int) -> float:
        """Training time when the checkpoint is not cached, else 0."""
        from .. import zoo

        spec = zoo.get_spec(model)
        if spec.train is None or not spec.trained \
                or zoo.models.checkpoint_paths(spec, seed)[0].exists():
            return 0.0
        return spec.train.steps * self.step_s(model) + 1.0

    def job_s(self, job: Job) -> float:
        stored = self.timings.get((job.kind, job.model))
        if stored is not None:
            return stored
        m, kind = self.spec.measure, job.kind
        base = OVERHEAD_S[kind]
        if kind == "prune":
            steps = job.key.get("finetune_steps", 0)
            sort = 0.0
            if job.method is not None:  # a stable sort of every selected weight's score
                n = self.pruned_params(job.model, job.key.get("layers", "default"))
                sort = 3e-7 * n / (16 if job.method.name in ("block", "channel") else 1)
            return base + steps * self.step_s(job.model) + sort
        if kind == "size":
            return base + 1.5e-8 * self.params(job.model)
        if kind in ("latency", "profile", "quant-latency"):
            call = self.call_s(job.model, job.batch or 1)
            # latency jobs time the dense baseline beside their own callable
            pair = call * (2 if kind in ("latency", "quant-latency") else 1)
            timed = min(max(m["min_time"], (m["warmup"] + m["min_runs"]) * pair),
                        m["max_time"] + m["warmup"] * call)
            verify = 2 * call if kind == "latency" else 0.0
            return base + 1e-8 * self.params(job.model) + verify + 0.4 * timed
        return base

    def total_s(self, jobs: list[Job]) -> float:
        seen, total = set(), 0.0
        for j in jobs:
            total += self.job_s(j) + ROW_S
            if j.kind == "prune" and (j.model, j.seed) not in seen:
                seen.add((j.model, j.seed))
                total += self.train_s(j.model, j.seed)
        return total
