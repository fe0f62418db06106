"""The work of each job kind: prune, size, verify + time, profile, quantize. Each function
returns a result row for :meth:`~prunebench.study.store.Store.add` (the runner stores it);
none of them writes to the database."""
from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .jobs import Job

MASK_GRID = 48          # masks are stored downsampled to at most this many cells a side
CACHE_LIMIT_BYTES = 64 * 2**20  # larger pruned models are re-pruned, not cached on disk


class Skip(Exception):
    """A job that turns out not to apply (e.g. a method that fits none of a model's layers)."""


class VerifyFailed(Exception):
    """Outputs differ from the dense fp32 reference by more than the tolerance."""

    def __init__(self, message: str, numbers: dict):
        super().__init__(message)
        self.numbers = numbers


# ------------------------------------------------------------------------------ inputs


def inputs(model_name: str, data, n: int, seed: int = 1234) -> torch.Tensor:
    """``n`` test inputs (repeated when the test split is smaller), or seeded random inputs of
    the model's shape for latency-only models."""
    from .. import zoo

    if data is None:
        return zoo.get_spec(model_name).example_input(n, seed)
    x = data.x_test
    if len(x) < n:
        x = x.repeat((n + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))
    return x[:n]


# ------------------------------------------------------------------------------ prune


def _layers_arg(net: nn.Module, layers: str, method: str) -> list[str] | None:
    if layers == "default":
        return None
    from ..pruning import prunable_layers

    names = prunable_layers(net)
    return names[:-1] if method == "channel" else names


def prune_job(job: Job, dense: nn.Module, data, init_state: dict | None) -> tuple[nn.Module, dict]:
    """Prune ``dense`` as ``job`` says. Returns (pruned model, row)."""
    from .. import zoo
    from ..errors import BadInputError
    from ..pruning import prune, sparsity_report
    from ..pruning.validate import ROUND_SCHEDULES
    from ..train import evaluate

    spec = zoo.get_spec(job.model)
    example = spec.example_input(1, job.seed) if data is None else data.x_train[:1]
    t0 = time.perf_counter()
    m = job.method
    if m is None:
        model = copy.deepcopy(dense).eval()
        acc = evaluate(model, data) if data is not None else None
        rep = {"accuracy_dense": acc, "accuracy_pruned_before_finetune": acc,
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
    from ..measure import param_bytes

    # models judged by a task rather than by accuracy (MiniLM: Lee correlations, polarity
    # probe, fidelity to the dense embeddings; the char-LSTM: bits per character)
    metrics = zoo.task_metrics(job.model, model, dense if m is not None else None)

    extra = {
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
    row = {"job_hash": job.hash, "kind": "prune", "status": "ok", "model": job.model,
           "train_accuracy": ft.get("train_accuracy"), "val_accuracy": ft.get("val_accuracy"),
           "converged": None if ft.get("converged") is None else int(ft["converged"]),
           "method": m.name if m else "dense", "scope": m.scope if m else None,
           "sparsity": job.sparsity, "seed": job.seed, "spec": job.key,
           "accuracy": rep["accuracy_pruned"], "param_bytes": param_bytes(model),
           "extra": extra}
    return model, row


def _finetune_args(key: dict | None) -> dict:
    """``prune()``'s fine-tuning arguments from a prune job's ``finetune`` key."""
    if not key:
        return {}
    return {"finetune_lr": key["lr"], "finetune_batch": key["batch_size"],
            "finetune_epochs": key["epochs"], "finetune_schedule": key["lr_schedule"],
            "early_stop": key["early_stop"], "validation": key["validation"]}


def mask_pictures(model: nn.Module, layers: list[dict], grid: int = MASK_GRID) -> list[dict]:
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
    from ..measure import param_bytes
    from ..runtime import save_model

    if param_bytes(model) > CACHE_LIMIT_BYTES:
        return False
    save_model(path, model, zoo_name=job.model, seed=job.seed, format="dense",
               keep_smaller=False, info={"prune_job": job.hash, "key": job.key})
    return True


def load_pruned(path: Path) -> nn.Module | None:
    from ..errors import PrunebenchError
    from ..runtime import load_model

    if not path.is_file():
        return None
    try:
        return load_model(path)[0]
    except PrunebenchError:  # a damaged cache entry: re-prune
        return None


# ------------------------------------------------------------------------------ plans


def selected_modules(model: nn.Module, layers: str) -> list[str]:
    """The modules a study's pruning methods prune: the default selection (every Linear/Conv/
    RNN but the first and the last) or all of them. Formats are applied to these; the other
    layers stay dense, as they would in a deployed pruned model."""
    from ..pruning import prunable_layers, select_layers

    return select_layers(model, None) if layers == "default" else prunable_layers(model)


def matrix_plan(model: nn.Module, modules: list[str], fmt: str) -> dict[str, str]:
    """{weight matrix: fmt} for the matrices of ``modules``, named as the model file names
    them (``layers.1.weight``; one matrix per RNN gate: ``rnn.weight_hh_l0[2]``)."""
    from ..pruning.targets import prunable_weights

    out = {}
    for w in prunable_weights(model, modules):
        for g in range(w.gates):
            out[w.name if w.gates == 1 else f"{w.name}[{g}]"] = fmt
    return out


_AUTO_PLANS: dict = {}


def auto_plan(job: Job, model: nn.Module, data, *, engine: str = "native", batch: int = 1,
              threads: int = 1, values: str | None = None, options: dict | None = None):
    """The planner's latency plan (:func:`prunebench.planner.plan`) of the pruned ``model``
    for one engine, batch and thread count, restricted to the job's pruned layers; planned
    once per process and pruned model (the planner also caches its timings per machine)."""
    from ..planner import plan
    from ..runtime.encoding import runtime_option_keys

    values = values or job.values
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()
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


def auto_summary(p) -> dict:
    """What a row keeps of an auto plan: formats per layer and the whole-model figures."""
    return {"formats": p.formats, "chosen_from": p.chosen_from, "batch": p.batch,
            "threads": p.threads,
            "model_ms": {k: round(v, 5) for k, v in p.model_ms.items()},
            "layers": {lay["name"]: {"format": lay["format"],
                                     "times_ms": {f: round(t, 5)
                                                  for f, t in lay["times_ms"].items()}}
                       for lay in p.layers if lay["times_ms"]}}


# ------------------------------------------------------------------------------ size


def size_job(job: Job, model: nn.Module, data, workdir: Path, options: dict,
             accuracy_cache: dict) -> dict:
    """Write the compressed model file (the pruned layers' matrices in the job's format, every
    one of them even where dense would be smaller; the other layers dense); its bytes,
    per-layer bytes, and the accuracy of the model loaded back from it."""
    from ..errors import BadInputError
    from ..formats import FORMATS, approximating_formats, break_even_sparsity
    from ..runtime import load_model, save_model
    from ..train import evaluate

    t0 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=workdir, suffix=".pbm")
    os.close(fd)
    try:
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        auto = None
        if job.format == "auto":
            # the plan of the deployment default (batch 1, one thread, our kernels, fp32
            # timings), whatever the file's value encoding: one plan per pruned model
            auto = auto_plan(job, model, data, options=opts, values="fp32")
            fmt = auto.matrix_formats or "dense"
        else:
            fmt = job.format if job.format == "dense" else matrix_plan(
                model, selected_modules(model, job.plan.layers), job.format)
        try:
            plan = save_model(tmp, model, zoo_name=job.model, seed=job.seed, format=fmt,
                              values=job.values, keep_smaller=False, **opts)
        except BadInputError as e:
            raise Skip(f"format {job.format} cannot encode this model: {e}") from None
        file_bytes = os.path.getsize(tmp)
        lossless_layout = job.format == "auto" or FORMATS.get(job.format).lossless
        accuracy = rel = None
        if data is not None:
            ck = job.values
            if lossless_layout and ck in accuracy_cache:
                accuracy, rel = accuracy_cache[ck]
            else:
                loaded, _ = load_model(tmp)
                x = data.x_test
                with torch.inference_mode():
                    ref, out = model(x), loaded(x)
                rel = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
                accuracy = evaluate(loaded, data)
                if lossless_layout:
                    accuracy_cache[ck] = (accuracy, rel)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    layers = []
    for name, p in plan.items():
        shape = tuple(p["shape"])
        be = None
        if job.values == "fp32" and job.format != "auto" \
                and job.format not in approximating_formats():
            try:
                be = break_even_sparsity(job.format, shape, **_estimate_opts(job.format, opts))
            except BadInputError:
                be = None
        layers.append({"name": name, "shape": list(shape), "format": p["format"],
                       "bytes": p["bytes"], "dense_fp32_bytes": 4 * shape[0] * shape[1],
                       "sparsity": p["sparsity"], "break_even_model": be})
    extra = {"method_label": job.method_label, "latency_only": data is None,
             "layers": layers, "output_rel_error": rel, "format_options": options,
             "elapsed_s": time.perf_counter() - t0}
    if auto is not None:
        extra["auto_plan"] = auto_summary(auto)
    return {"job_hash": job.hash, "kind": "size", "status": "ok", "model": job.model,
            "method": job.method.name if job.method else "dense",
            "scope": job.method.scope if job.method else None, "sparsity": job.sparsity,
            "seed": job.seed, "format": job.format, "value_encoding": job.values,
            "spec": job.key, "file_bytes": file_bytes, "accuracy": accuracy, "extra": extra}


def _estimate_opts(fmt: str, opts: dict) -> dict:
    keep = {"bsr": ("block",), "nm": ("n", "m"), "rcsr": ("bits",), "ell": ("slice_height",)}
    return {k: opts[k] for k in keep.get(fmt, ()) if k in opts}


# ------------------------------------------------------------------------------ verify + time


def verify(fn: Callable, reference: nn.Module, x: torch.Tensor, y: torch.Tensor | None,
           values: str, batch: int) -> dict:
    """:func:`prunebench.runtime.verify` of ``fn`` against the dense fp32 ``reference`` on
    ``x``, called in chunks of the timed ``batch`` (engines may take another code path per
    batch size). Returns the numbers; raises :class:`VerifyFailed` with them on failure."""
    from ..runtime.verify import verify as _verify

    v = _verify(fn, reference, x, y, values=values, batch_size=batch, raise_on_fail=False)
    numbers = dict(v.as_dict(), batch=batch)
    if not v.ok:
        raise VerifyFailed(f"{v.reason} ({v.n} inputs at batch {batch})", numbers)
    return numbers


def time_call(fn: Callable, reference: Callable, x: torch.Tensor, batch: int, threads: int,
              measure: dict, label: str, fastest: Callable | None = None):
    """(fn's, reference's, fastest's) :class:`~prunebench.measure.Measurement` of ``fn(x)``,
    ``reference(x)`` (the unpruned model on dense PyTorch) and ``fastest(x)`` (the unpruned
    model on the fastest dense engine, when it is not dense PyTorch; else None), timed side by
    side (:meth:`~prunebench.measure.Timer.run_among`), so that the speedups the report
    derives are ratios of one run. Blocks settle for :data:`SETTLE_S` when another runtime
    takes part (its thread pool spins after its calls). The noisy-IQR warning is kept as the
    measurement's ``noisy`` flag instead of printed mid-progress."""
    from ..measure import Timer

    torch.set_num_threads(threads)
    refs = [reference] if fastest is None else [reference, fastest]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            # one thread: no pool that spins (ONNX Runtime's intra-op pool has no workers)
            settle = 0.0 if fastest is None or threads <= 1 else SETTLE_S
            # settling is not measuring: it does not eat the measurement's time budget
            max_time = (max(measure["max_time"], measure["min_time"])
                        + settle * len(refs + [fn]) * measure["min_runs"])
            timer = Timer(lambda: fn(x), warmup=measure["warmup"], min_runs=measure["min_runs"],
                          min_time=measure["min_time"], max_time=max_time)
            m, ms = timer.run_among([(lambda r=r: r(x)) for r in refs], batch=batch,
                                    threads=threads, label=label, settle_s=settle)
    return m, ms[0], (ms[1] if fastest is not None else None)


#: untimed seconds before each block when another runtime's thread pool takes part
SETTLE_S = 0.04


def _timing(engine: str, m) -> dict:
    """The stored record of a side-by-side timing of the unpruned model on ``engine``."""
    lat = m.latency_ms()
    return {"engine": engine, "model": "unpruned", "p50_ms": lat["p50"], "iqr_ms": lat["iqr"],
            "runs": m.n, "noisy": m.noisy}


def beside(extra: dict, ref, fastest=None, fastest_engine: str | None = None) -> dict:
    """``extra`` with the side-by-side reference timing ``ref`` (a Measurement: the unpruned
    model on dense PyTorch) and ``fastest_dense`` (the unpruned model on the fastest dense
    engine, ``fastest``; the reference itself when that is dense PyTorch) added."""
    extra["reference"] = _timing("torch-dense", ref)
    if fastest is not None:
        extra["fastest_dense"] = _timing(fastest_engine, fastest)
    elif fastest_engine == "torch-dense":
        extra["fastest_dense"] = dict(extra["reference"])
    return extra


def plan_summary(fn: Callable, fmt: str) -> dict | None:
    """How many weight matrices a compiled model runs in ``fmt`` and how many dense (with the
    first reason), from the ``plan`` a runtime-built engine exposes; None otherwise."""
    plan = getattr(fn, "plan", None)
    auto = getattr(fn, "auto_plan", None)
    if isinstance(auto, dict):  # format auto: matrices the planner put on a sparse format
        rows = [r for r in (plan or {}).values() if isinstance(r, dict)]
        return {"in_format": sum(r.get("format") != "dense" for r in rows), "fell_back": 0,
                "reason": None, "auto": auto}
    if not isinstance(plan, dict):
        return None
    rows = [r for r in plan.values() if isinstance(r, dict)]
    in_fmt = [r for r in rows if r.get("format") == fmt]
    dense = [r for r in rows if r.get("format") != fmt and r.get("requested") == fmt]
    return {"in_format": len(in_fmt), "fell_back": len(dense),
            "reason": dense[0].get("reason") if dense else None}


def latency_row(job: Job, m, numbers: dict, extra: dict) -> dict:
    lat = m.latency_ms()
    return {"job_hash": job.hash, "kind": job.kind, "status": "ok", "model": job.model,
            "method": job.method.name if job.method else "dense",
            "scope": job.method.scope if job.method else None, "sparsity": job.sparsity,
            "seed": job.seed, "format": job.format, "value_encoding": job.values,
            "engine": job.engine, "batch": job.batch, "threads": job.threads, "spec": job.key,
            "samples": list(m.samples), "p50_ms": lat["p50"], "p90_ms": lat["p90"],
            "p99_ms": lat["p99"], "mean_ms": lat["mean"], "iqr_ms": lat["iqr"],
            "throughput": m.throughput,
            "extra": {"method_label": job.method_label, "verify": numbers, "noisy": m.noisy,
                      "runs": m.n, **extra}}


def failed_row(job: Job, reason: str, extra: dict | None = None) -> dict:
    return {"job_hash": job.hash, "kind": job.kind, "status": "failed", "reason": reason,
            "model": job.model, "method": job.method.name if job.method else "dense",
            "scope": job.method.scope if job.method else None, "sparsity": job.sparsity,
            "seed": job.seed, "format": job.format, "value_encoding": job.values,
            "engine": job.engine, "batch": job.batch, "threads": job.threads, "spec": job.key,
            "extra": {"method_label": job.method_label, **(extra or {})}}


# ------------------------------------------------------------------------------ profile


def find_module(fn: Callable, depth: int = 3) -> nn.Module | None:
    """The torch module behind a compiled callable, if one can be found: the callable itself,
    an attribute ``module`` / ``model``, or a module its closure holds (through decorators'
    ``__wrapped__`` and closed-over functions, ``depth`` levels deep)."""
    if isinstance(fn, nn.Module):
        return fn
    if depth < 0:
        return None
    for attr in ("module", "model", "net"):
        m = getattr(fn, attr, None)
        if isinstance(m, nn.Module):
            return m
    inner = [getattr(fn, "__wrapped__", None), getattr(fn, "__self__", None)]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            inner.append(cell.cell_contents)
        except ValueError:
            continue
    for v in inner:
        if isinstance(v, nn.Module):
            return v
    for v in inner:
        if v is not None and v is not fn and callable(v):
            found = find_module(v, depth - 1)
            if found is not None:
                return found
    return None


def profile_layers(fn: Callable, x: torch.Tensor, threads: int, measure: dict) -> dict:
    """Per-layer time of ``fn(x)`` with forward pre/post hooks on the leaf modules of the
    module behind ``fn``; ``other`` is what the layers do not account for (Python glue,
    activations outside modules, the engine's own work)."""
    module = find_module(fn)
    if module is None:
        raise Skip("the engine's compiled callable exposes no torch module to hook")
    leaves = [(n, m) for n, m in module.named_modules()
              if n and not any(True for _ in m.children())]
    if not leaves:
        raise Skip("the compiled module has no sub-modules to time")
    spent: dict[str, float] = {n: 0.0 for n, _ in leaves}
    starts: dict[str, float] = {}
    handles = []
    for name, mod in leaves:
        handles.append(mod.register_forward_pre_hook(
            lambda *_a, n=name: starts.__setitem__(n, time.perf_counter())))
        handles.append(mod.register_forward_hook(
            lambda *_a, n=name: spent.__setitem__(n, spent[n] + time.perf_counter()
                                                  - starts.pop(n, time.perf_counter()))))
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(max(1, measure["warmup"])):
                fn(x)
            for n in spent:
                spent[n] = 0.0
            calls, t0 = 0, time.perf_counter()
            while calls < measure["min_runs"] or time.perf_counter() - t0 < measure["min_time"]:
                fn(x)
                calls += 1
                if time.perf_counter() - t0 > measure["max_time"]:
                    break
            total = (time.perf_counter() - t0) / calls
    finally:
        for h in handles:
            h.remove()
    # a compiled wrapper holds the rewritten model as ``.model``: report the model's own names
    strip = "model." if all(n.startswith("model.") for n, _ in leaves) else ""
    layers = [{"name": n[len(strip):], "type": type(m).__name__, "ms": spent[n] / calls * 1e3}
              for n, m in leaves if spent[n] > 0]
    other = max(0.0, total * 1e3 - sum(lay["ms"] for lay in layers))
    return {"layers": layers, "other_ms": other, "total_ms": total * 1e3, "calls": calls,
            "module": type(module).__name__}


# ------------------------------------------------------------------------------ quantized


def quant_job(job: Job, dense: nn.Module, data) -> tuple[nn.Module, dict]:
    """Accuracy, file bytes and output error of the int8 dynamic-quantization control.

    Its outputs are compared with the dense fp32 model under the int8 tolerance, but a miss is
    recorded (``verify.ok`` False), not a failure: the control is a different model whose
    accuracy is the measurement (activations are quantized too, which an LSTM feels most);
    only non-finite outputs fail it."""
    from . import controls

    from ..errors import VerificationError
    from ..runtime.verify import verify as _verify

    t0 = time.perf_counter()
    q = controls.quantize_int8(dense)
    try:
        v = _verify(q, dense, data.x_test, data.y_test, values="int8", raise_on_fail=False)
    except VerificationError as e:  # e.g. an output shape mismatch
        raise VerifyFailed(str(e), {}) from None
    numbers = v.as_dict()
    extra = {"method_label": "int8-dynamic", "verify": numbers,
             "accuracy_dense": v.accuracy_reference,
             "dense_state_bytes": controls.state_bytes(dense),
             "quantized_layers": controls.quantized_layers(q),
             "elapsed_s": time.perf_counter() - t0}
    if not np.isfinite(v.max_abs):
        raise VerifyFailed(v.reason, numbers)
    row = {"job_hash": job.hash, "kind": "quant", "status": "ok", "model": job.model,
           "method": "dense", "sparsity": 0.0, "seed": job.seed, "format": "dense",
           "value_encoding": "int8", "engine": "torch-quant", "spec": job.key,
           "file_bytes": controls.state_bytes(q), "accuracy": v.accuracy,
           "extra": extra}
    return q, row
