"""The prune stage: prune (and fine-tune) a dense model as a prune job says, and keep the
pruned model in the study's cache."""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..jobs import Job
from ..rows import JobStatus, ResultRow
from .common import Skip

if TYPE_CHECKING:
    from ...zoo.datasets import Dataset

MASK_GRID = 48          # masks are stored downsampled to at most this many cells a side
CACHE_LIMIT_BYTES = 64 * 2**20  # larger pruned models are re-pruned, not cached on disk


def _layers_arg(net: nn.Module, layers: str, method: str) -> list[str] | None:
    if layers == "default":
        return None
    from ...pruning import prunable_layers

    names = prunable_layers(net)
    return names[:-1] if method == "channel" else names


def prune_job(job: Job, dense: nn.Module, data: Dataset | None,
              init_state: dict[str, Any] | None) -> tuple[nn.Module, ResultRow]:
    """Prune ``dense`` as ``job`` says. Returns (pruned model, row)."""
    from ... import zoo
    from ...errors import BadInputError
    from ...pruning import prune, sparsity_report
    from ...pruning.validate import ROUND_SCHEDULES
    from ...train import evaluate

    spec = zoo.get_spec(job.model)
    example = spec.example_input(1, job.seed) if data is None else data.x_train[:1]
    t0 = time.perf_counter()
    m = job.method
    if m is None:
        model = copy.deepcopy(dense).eval()
        acc = evaluate(model, data) if data is not None else None
        rep: dict[str, Any] = {"accuracy_dense": acc, "accuracy_pruned_before_finetune": acc,
               "accuracy_pruned": acc, "sparsity_achieved": 0.0, "history": [],
               **sparsity_report(model, example)}
        for lay in rep["layers"]:
            lay["pruned"] = False
    else:
        try:
            result = prune(dense, m.name, job.sparsity,
                           scope=m.scope, schedule=m.schedule, finetune=data,
                           finetune_steps=job.key["finetune_steps"],
                           rounds=m.rounds if m.schedule in ROUND_SCHEDULES else None,
                           **_finetune_args(job.key.get("finetune")),
                           block=m.block, n=m.n, m=m.m, norm=m.norm,
                           layers=_layers_arg(dense, job.key["layers"], m.name), seed=job.seed,
                           rewind_state=init_state if m.schedule == "rewind" else None,
                           example_input=example)
        except BadInputError as e:
            raise Skip(str(e)) from None
        model, rep = result.model.eval(), result.report()
    elapsed = time.perf_counter() - t0
    first = job.seed == job.plan.seeds[0]
    from ...measure import param_bytes

    # models judged by a task rather than by accuracy (MiniLM: Lee correlations, polarity
    # probe, fidelity to the dense embeddings; the char-LSTM: bits per character)
    metrics = zoo.task_metrics(job.model, model, dense if m is not None else None)

    extra: dict[str, Any] = {
        "method_label": job.method_label, "latency_only": data is None,
        "accuracy_dense": rep["accuracy_dense"],
        "accuracy_before_finetune": rep["accuracy_pruned_before_finetune"],
        "sparsity_achieved": rep["sparsity_achieved"],
        "finetune_steps": job.key["finetune_steps"], "layers_setting": job.key["layers"],
        "totals": rep["totals"],
        "layers": [{k: lay.get(k) for k in ("name", "module", "kind", "shape", "params",
                                            "nonzero", "sparsity", "macs", "macs_nonzero",
                                            "pruned", "dead_out", "outputs", "dead_in",
                                            "inputs")} for lay in rep["layers"]],
        "masks": mask_pictures(model, rep["layers"]) if first else None,
        "schedule": m.schedule if m else None, "elapsed_s": elapsed,
        "control_of": job.plan.control_of,
    }
    if metrics is not None:
        extra["metrics"] = metrics
    ft = rep.get("finetune") or {}
    if ft:
        extra["finetune"] = {k: ft.get(k) for k in ("steps_run", "best_step", "recipe")}
        # why ``converged`` is 0: a plateau at chance, not a budget that ran out
        extra["at_chance"] = ft.get("at_chance")
    row = ResultRow.of(
        job, JobStatus.OK, train_accuracy=ft.get("train_accuracy"),
        val_accuracy=ft.get("val_accuracy"),
        converged=None if ft.get("converged") is None else int(ft["converged"]),
        accuracy=rep["accuracy_pruned"], param_bytes=param_bytes(model), extra=extra)
    return model, row


def _finetune_args(key: dict[str, Any] | None) -> dict[str, Any]:
    """``prune()``'s fine-tuning arguments from a prune job's ``finetune`` key."""
    if not key:
        return {}
    return {"finetune_lr": key["lr"], "finetune_batch": key["batch_size"],
            "finetune_epochs": key["epochs"], "finetune_schedule": key["lr_schedule"],
            "early_stop": key["early_stop"], "validation": key["validation"]}


def mask_pictures(model: nn.Module, layers: list[dict[str, Any]],
                  grid: int = MASK_GRID) -> list[dict[str, Any]]:
    """Each pruned layer's nonzero pattern as its [rows, fan-in] matrix downsampled to at most
    ``grid`` x ``grid`` cells, each cell the fraction of nonzeros it covers (hex, 0-255)."""
    out = []
    for lay in layers:
        if not lay.get("pruned"):
            continue
        try:
            w = model.get_parameter(lay["name"]).detach()
        except AttributeError:
            continue
        nz = (w.reshape(w.shape[0], -1) != 0).numpy()
        dens = downsample(nz, grid)
        out.append({"name": lay["name"], "shape": list(nz.shape), "grid": list(dens.shape),
                    "density": (np.rint(dens * 255).astype(np.uint8)).tobytes().hex()})
    return out


def downsample(nz: np.ndarray, grid: int) -> np.ndarray:
    """Mean of ``nz`` over a grid of at most ``grid`` x ``grid`` near-equal blocks."""
    rows, cols = nz.shape
    gr, gc = min(rows, grid), min(cols, grid)
    r_edges = np.linspace(0, rows, gr + 1).astype(int)
    c_edges = np.linspace(0, cols, gc + 1).astype(int)
    s = np.add.reduceat(np.add.reduceat(nz.astype(np.float64), r_edges[:-1], axis=0),
                        c_edges[:-1], axis=1)
    area = np.outer(np.diff(r_edges), np.diff(c_edges))
    return s / area


def cache_pruned(path: Path, model: nn.Module, job: Job) -> bool:
    """Save the pruned model (dense fp32 model file, atomically); False when it is too big to
    be worth caching (it is then re-pruned when needed)."""
    from ...measure import param_bytes
    from ...runtime import save_model

    if param_bytes(model) > CACHE_LIMIT_BYTES:
        return False
    save_model(path, model, zoo_name=job.model, seed=job.seed, format="dense",
               keep_smaller=False, info={"prune_job": job.hash, "key": job.key})
    return True


def load_pruned(path: Path) -> nn.Module | None:
    """The pruned model cached at ``path``; None when there is none or it is damaged."""
    from ...errors import PrunebenchError
    from ...runtime import load_model

    if not path.is_file():
        return None
    try:
        return load_model(path)[0]
    except PrunebenchError:  # a damaged cache entry: re-prune
        return None
