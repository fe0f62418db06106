"""Which weight matrices a job encodes: the layers a study prunes, and the per-layer
planner's choice for format ``auto``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from ..jobs import Job
from .common import inputs

if TYPE_CHECKING:
    from ...planner import Plan
    from ...zoo.datasets import Dataset


def selected_modules(model: nn.Module, layers: str) -> list[str]:
    """The modules a study's pruning methods prune: the default selection (every Linear/Conv/
    RNN but the first and the last) or all of them. Formats are applied to these; the other
    layers stay dense, as they would in a deployed pruned model."""
    from ...pruning import prunable_layers, select_layers

    return select_layers(model, None) if layers == "default" else prunable_layers(model)


def matrix_plan(model: nn.Module, modules: list[str], fmt: str) -> dict[str, str]:
    """{weight matrix: fmt} for the matrices of ``modules``, named as the model file names
    them (``layers.1.weight``; one matrix per RNN gate: ``rnn.weight_hh_l0[2]``)."""
    from ...pruning.targets import prunable_weights

    out: dict[str, str] = {}
    for w in prunable_weights(model, modules):
        for g in range(w.gates):
            out[w.name if w.gates == 1 else f"{w.name}[{g}]"] = fmt
    return out


_AUTO_PLANS: dict[tuple[Any, ...], Plan] = {}


def auto_plan(job: Job, model: nn.Module, data: Dataset | None, *, engine: str = "native",
              batch: int = 1, threads: int = 1, values: str | None = None,
              options: dict[str, Any] | None = None) -> Plan:
    """The planner's latency plan (:func:`prunebench.planner.plan`) of the pruned ``model``
    for one engine, batch and thread count, restricted to the job's pruned layers; planned
    once per process and pruned model (the planner also caches its timings per machine)."""
    from ...planner import plan
    from ...runtime.encoding import runtime_option_keys

    values = values or job.encoding()[1]
    opts: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()
            if k in runtime_option_keys()}
    key = (id(model), job.prune or job.hash, engine, batch, threads, values,
           tuple(sorted(opts.items())))
    if key not in _AUTO_PLANS:
        _AUTO_PLANS.clear()  # one pruned model at a time: keep only its plans
    hit = _AUTO_PLANS.get(key)
    if hit is None:
        x = inputs(job.model, data, batch)
        hit = plan(model, x, batch=batch, threads=threads, engine=engine, values=values, **opts)
        selected = set(selected_modules(model, job.plan.layers))
        hit.formats = {m: f for m, f in hit.formats.items() if m in selected}
        kept = set(matrix_plan(model, sorted(selected), "dense"))  # their weight matrices
        hit.matrix_formats = {n: f for n, f in hit.matrix_formats.items() if n in kept}
        _AUTO_PLANS[key] = hit
    return hit


def auto_summary(p: Plan) -> dict[str, Any]:
    """What a row keeps of an auto plan: formats per layer and the whole-model figures."""
    return {"formats": p.formats, "chosen_from": p.chosen_from, "batch": p.batch,
            "threads": p.threads,
            "model_ms": {k: round(v, 5) for k, v in p.model_ms.items()},
            "layers": {lay["name"]: {"format": lay["format"],
                                     "times_ms": {f: round(t, 5)
                                                  for f, t in lay["times_ms"].items()}}
                       for lay in p.layers if lay["times_ms"]}}
