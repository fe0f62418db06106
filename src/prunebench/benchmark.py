"""Dense baseline benchmark of one zoo model: latency, memory, accuracy, machine."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import nn

from . import zoo
from .errors import BadInputError
from .measure import Timer, fingerprint, param_bytes, peak_rss_child, state_file_bytes
from .recipe import FINETUNE_STEPS
from .train import evaluate

NOT_APPLICABLE = "n/a"


def check_threads(threads: object) -> int:
    import os

    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BadInputError(f"--threads: got {threads!r}, expected an integer >= 1")
    if threads > cores:
        raise BadInputError(f"--threads: got {threads}, this machine has {cores} cores")
    return threads


def check_batch(batch: object) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BadInputError(f"--batch: got {batch!r}, expected an integer >= 1")
    return batch


def batch_too_big(model: str, batch: int) -> str | None:
    """Why ``batch`` inputs of ``model`` cannot fit in this machine's memory, or None: what
    ``bench --batch`` and a study spec's ``batches`` refuse before any model is loaded."""
    import math
    import os

    shape = zoo.get_spec(model).input_shape
    need = batch * math.prod(shape) * 4  # float32 inputs (spec.example_input, test splits)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not POSIX: leave it to the MemoryError safety net
        return None
    if need <= have:
        return None
    return (f"{batch} inputs of {model} (shape {'x'.join(map(str, shape))}) take "
            f"{need / 1e9:,.1f} GB, more than this machine's {have / 1e9:,.1f} GB of memory")


def job_hash(spec: dict[str, Any]) -> str:
    """The first 20 hex digits of the SHA-256 of ``spec`` as sorted-key JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def bench_dense(name: str, *, batch: int = 1, threads: int = 1, seed: int = 0,
                warmup: int = 3, min_runs: int = 20, min_time: float = 1.0,
                max_time: float = 30.0, rss: bool = True, progress: bool = False) -> dict:
    """Measure ``name`` as is (dense PyTorch). Returns a result dict whose ``row`` is ready for
    :meth:`prunebench.study.store.Store.add` and whose ``report`` is the ``bench --json`` body.

    Latency is measured on real test inputs when the model has a dataset, else on seeded
    random inputs of the model's shape; latency-only models report accuracy ``"n/a"``."""
    spec = zoo.get_spec(name)
    check_batch(batch)
    check_threads(threads)
    model, data = zoo.load(name, trained=spec.trained, seed=seed, progress=progress)
    torch.set_num_threads(threads)
    if data is not None:
        x = data.x_test[:batch]
        if len(x) < batch:  # batch larger than the test split: repeat it
            x = data.x_test.repeat((batch + len(data.x_test) - 1) // len(data.x_test), 1)[:batch]
    else:
        x = spec.example_input(batch, seed)

    @torch.inference_mode()
    def call() -> Any:
        return model(x)

    m = Timer(call, warmup=warmup, min_runs=min_runs, min_time=min_time,
              max_time=max(max_time, min_time)).run(batch=batch, threads=threads, label=name)
    accuracy = evaluate(model, data) if data is not None else None
    fp = fingerprint()
    pbytes, fbytes = param_bytes(model), state_file_bytes(model)
    rss_bytes = peak_rss_child(name, batch, threads, seed) if rss else None
    run_spec = {"model": name, "method": "dense", "sparsity": 0.0, "format": "dense",
                "engine": "torch-dense", "batch": batch, "threads": threads, "seed": seed,
                "input": "test-split" if data is not None else "random",
                "timer": {"warmup": warmup, "min_runs": min_runs, "min_time": min_time},
                "code_version": fp["git_commit"]}
    lat = m.latency_ms()
    report = {
        "model": name, "trained": spec.trained, "batch": batch, "threads": threads,
        "seed": seed, "engine": "torch-dense", "format": "dense",
        "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99", "mean")},
        "iqr_ms": lat["iqr"], "runs": m.n, "noisy": m.noisy,
        "throughput": m.throughput, "param_bytes": pbytes, "file_bytes": fbytes,
        "peak_rss_bytes": rss_bytes,
        "accuracy": accuracy if accuracy is not None else NOT_APPLICABLE,
        "profile": fp["profile"], "machine": fp,
    }
    row = {
        "kind": "bench", "status": "ok", "model": name, "method": "dense", "sparsity": 0.0,
        "format": "dense", "engine": "torch-dense", "batch": batch, "threads": threads,
        "seed": seed, "code_version": fp["git_commit"], "spec": run_spec,
        "samples": list(m.samples), "p50_ms": lat["p50"], "p90_ms": lat["p90"],
        "p99_ms": lat["p99"], "mean_ms": lat["mean"], "iqr_ms": lat["iqr"],
        "throughput": m.throughput, "param_bytes": pbytes, "file_bytes": fbytes,
        "peak_rss_bytes": rss_bytes, "accuracy": accuracy,
        "extra": {"trained": spec.trained, "noisy": m.noisy},
    }
    return {"report": report, "row": row, "machine": fp, "measurement": m, "model": model}


# ---------------------------------------------------------------- pruned models on an engine

#: verification inputs: at most this many test inputs (random inputs for latency-only models)
VERIFY_INPUTS = 256
VERIFY_RANDOM_INPUTS = 4


def default_engine(format: str | None) -> str:
    """``torch-dense`` for the dense format (or none given), else ``native``."""
    return "torch-dense" if format in (None, "dense") else "native"


def default_format(engine: str) -> str:
    """The format an engine runs when none is asked for: ``dense`` for torch-dense and
    onnxruntime, ``csr`` for the sparse engines."""
    return "dense" if engine in ("torch-dense", "onnxruntime", "litert") else "csr"


def check_engine_format(engine: str, format: str, values: str) -> Any:
    """Look the engine up and check it runs ``format`` with ``values`` (before any work)."""
    from .engines import ENGINES
    from .formats import FORMATS

    eng = ENGINES.get(engine)
    if format != "dense" and format not in eng.own_formats:
        FORMATS.get(format)
    if not eng.supports(format):
        raise BadInputError(f"--format: engine {engine} cannot run format {format!r}; it runs: "
                            + ", ".join(eng.formats))
    if values not in eng.values:
        raise BadInputError(f"--values: engine {engine} runs {', '.join(eng.values)}; got "
                            f"{values!r}")
    eng.check_available()
    return eng


def _inputs(spec: Any, data: Any, n: int, seed: int) -> torch.Tensor:
    if data is None:
        return spec.example_input(n, seed)
    x = data.x_test
    if len(x) < n:
        x = x.repeat((n + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))
    return x[:n]


def _load_target(target: str, seed: int,
                 progress: bool) -> tuple[str, nn.Module, Any, dict | None]:
    """(zoo name, model, data, manifest or None) for a zoo name or a packed model file."""
    import os

    from .runtime import load_model
    from .zoo import load_dataset

    if target in zoo.MODELS:
        spec = zoo.get_spec(target)
        model, data = zoo.load(target, trained=spec.trained, seed=seed, progress=progress)
        return target, model, data, None
    if os.path.isfile(target):
        model, manifest = load_model(target)
        spec = zoo.get_spec(manifest["model"])
        data = (load_dataset(spec.dataset) if spec.trained and spec.dataset is not None
                else None)
        return manifest["model"], model, data, manifest
    zoo.get_spec(target)   # unknown name: the registry's message lists the valid ones
    raise BadInputError(f"model: {target!r} is neither a zoo model nor a file")


def _file_bytes(run: Any, model: nn.Module, name: str, engine: str, format: str, values: str,
                seed: int, opts: dict[str, Any]) -> int:
    """Bytes of the model file this configuration stores: the ONNX file for onnxruntime,
    the .tflite file for litert, the dense state dict for torch-dense, else a prunebench
    model file in ``format``."""
    import os
    import tempfile

    from .runtime import save_model
    from .runtime.encoding import runtime_option_keys

    if engine in ("onnxruntime", "litert"):
        return int(run.file_bytes)
    if format == "dense":
        return state_file_bytes(model)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.pbz")
        save_model(path, model, zoo_name=name, seed=seed, format=format, values=values,
                   **{k: v for k, v in opts.items() if k in runtime_option_keys()})
        return os.path.getsize(path)


def rss_child_main(argv: list[str]) -> None:
    """Child process of :func:`peak_rss_pruned`: load a model file, compile, run one batch."""
    from .measure.memory import peak_rss

    path, engine, format, values, batch_arg, threads_arg, opts = argv
    batch, threads = int(batch_arg), int(threads_arg)
    torch.set_num_threads(threads)
    from . import engines
    from .runtime import load_model

    model, manifest = load_model(path)
    x = zoo.get_spec(manifest["model"]).example_input(batch)
    run = engines.compile(model, engine, format, values=values, threads=threads,
                          example_input=x[:1], **json.loads(opts))
    del model
    run(x)
    print(json.dumps({"peak_rss_bytes": peak_rss()}))


def peak_rss_pruned(model: nn.Module, name: str, engine: str, format: str, values: str,
                    batch: int, threads: int, seed: int, opts: dict[str, Any],
                    timeout: float = 600) -> int | None:
    """Peak RSS of a fresh process that loads the pruned model (saved dense to a temporary
    model file), compiles it for ``engine`` and runs one batch. The dense model the runtime
    compiles from is part of the figure; None for an ONNX graph (no PyTorch state to save)."""
    import os
    import tempfile

    from .measure.memory import run_rss_child
    from .runtime import save_model

    if getattr(model, "prunebench_graph", False):  # an ONNX graph: no PyTorch state to save
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.pbz")
        # a zoo-kind file even for a user model: the child registers it from the environment
        save_model(path, model, zoo_name=name, seed=seed, format="dense", graph=False)
        code = ("import sys; from prunebench.benchmark import rss_child_main; "
                "rss_child_main(sys.argv[1:])")
        return run_rss_child(["-c", code, path, engine, format, values, str(batch),
                              str(threads), json.dumps(opts)], f"{name} on {engine}", timeout)


def bench_pruned(target: str, *, method: str | None = None, sparsity: float = 0.9,
                 scope: str = "layer", finetune_steps: int = FINETUNE_STEPS,
                 finetune: dict | None = None, block: tuple[int, int] = (4, 4),
                 n: int = 2, m: int = 4, layers: str | list[str] | None = None,
                 format: str | None = None,
                 values: str = "fp32", engine: str | None = None, fallback: str = "error",
                 batch: int = 1, threads: int = 1, seed: int = 0, warmup: int = 3,
                 min_runs: int = 20, min_time: float = 1.0, max_time: float = 30.0,
                 rss: bool = True, progress: bool = False) -> dict:
    """Measure one pruned configuration: ``target`` (a zoo name, pruned here with ``method``
    unless None, or a packed model file) compiled for ``engine`` with its pruned layers in
    ``format``/``values``.

    The compiled model is first verified against the dense fp32 pruned model (test inputs, or
    random inputs for latency-only models), called at the timed batch size. A failed
    verification is never timed: the result has ``ok`` False and a ``row`` with status
    ``failed`` and the reason. Returns {"ok", "report" (the ``bench --json`` body), "row"
    (for :meth:`Store.add`), "machine", "measurement" (None when not timed)}.

    ``layers`` is None (the pruning default), "all" or a list of module names; ``finetune``
    holds ``prune()``'s other fine-tuning keywords (``finetune_lr``, ...).
    """
    from . import engines
    from .pruning import prunable_layers, prune
    from .pruning.validate import check_sparsity
    from .runtime import verify
    from .runtime.compile import FALLBACKS

    check_batch(batch)
    check_threads(threads)
    engine = engine or default_engine(format)
    format = format or default_format(engine)
    eng = check_engine_format(engine, format, values)
    if fallback not in FALLBACKS:
        raise BadInputError(f"--fallback: got {fallback!r}; allowed: {', '.join(FALLBACKS)}")
    if target not in zoo.MODELS and method is not None:
        import os

        if os.path.isfile(target):
            raise BadInputError(f"--method: {target!r} is a model file, already pruned; drop "
                                "--method (and --sparsity)")
    if method is not None:
        from .pruning import METHODS

        METHODS.get(method)
        check_sparsity(sparsity)

    name, model, data, manifest = _load_target(target, seed, progress)
    spec = zoo.get_spec(name)
    prune_info: dict = {"method": "dense", "sparsity": 0.0, "scope": None}
    if manifest is not None:
        info = manifest.get("info", {}).get("prune", {})
        prune_info = {"method": info.get("method", "packed"),
                      "sparsity": info.get("sparsity_achieved", 0.0), "scope": info.get("scope"),
                      "file": target}
    elif method is not None:
        chosen = prunable_layers(model) if layers == "all" else layers
        example = spec.example_input(1, seed) if data is None else None
        result = prune(model, method, sparsity, scope=scope, finetune=data,
                       finetune_steps=finetune_steps if data is not None else 0, block=block,
                       n=n, m=m, layers=chosen, seed=seed, example_input=example,
                       progress=progress, **(finetune or {}))
        rep = result.report()
        model = result.model
        prune_info = {"method": method, "sparsity": rep["sparsity_achieved"], "scope": scope,
                      "sparsity_requested": rep["sparsity_requested"],
                      "finetune_steps": rep["finetune_steps"], "finetune": rep["finetune"]}
    model.eval()
    torch.set_num_threads(threads)

    x = _inputs(spec, data, batch, seed)
    n_ver = min(VERIFY_INPUTS, len(data.x_test)) if data is not None else VERIFY_RANDOM_INPUTS
    x_ver = _inputs(spec, data, max(n_ver, batch), seed + 1 if data is None else seed)
    y_ver = data.y_test[:len(x_ver)] if data is not None and len(data.y_test) >= len(x_ver) else None
    from .runtime.compile import FORMAT_OPTIONS

    given = {"block": block, "n": n, "m": m, "slice_height": 32}
    opts = {k: v for k, v in given.items() if k in FORMAT_OPTIONS.get(format, {})}
    run_opts = (dict(opts, fallback=fallback)
                if engine not in ("torch-dense", "onnxruntime", "litert") else {})
    run = engines.compile(model, engine, format, values=values, threads=threads,
                          example_input=x[:1], **run_opts)
    v = verify(run, model, x_ver, y_ver, values=values, batch_size=batch, raise_on_fail=False)
    verification = dict(v.as_dict(), batch=batch,
                        inputs="test-split" if data is not None else "random")

    fp = fingerprint()
    run_spec = {"model": name, "method": prune_info["method"], "sparsity": prune_info["sparsity"],
                "scope": prune_info["scope"], "format": format, "values": values,
                "engine": engine, "batch": batch, "threads": threads, "seed": seed,
                "fallback": fallback, "format_options": {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in opts.items()},
                "input": "test-split" if data is not None else "random",
                "prune": prune_info,
                "timer": {"warmup": warmup, "min_runs": min_runs, "min_time": min_time},
                "code_version": fp["git_commit"]}
    summary = run.summary() if hasattr(run, "summary") else {}
    threads_eff = getattr(run, "threads_effective", eng.threads_effective(threads))
    base_row = {
        "kind": "bench", "model": name, "method": prune_info["method"],
        "sparsity": prune_info["sparsity"], "format": format, "engine": engine,
        "value_encoding": values, "scope": prune_info["scope"], "batch": batch,
        "threads": threads, "seed": seed, "code_version": fp["git_commit"], "spec": run_spec,
    }
    report = {"model": name, "trained": spec.trained, "batch": batch, "threads": threads,
              "threads_effective": threads_eff, "seed": seed, "engine": engine,
              "format": format, "values": values, "method": prune_info["method"],
              "sparsity": prune_info["sparsity"], "verification": verification,
              "profile": fp["profile"], "machine": fp}
    if manifest is not None:
        report["file"] = target
    if getattr(run, "note", ""):
        report["note"] = run.note
    if summary:
        report["dense_layers"] = summary["dense_reasons"]
        report["matrices_by_format"] = summary["matrices"]
    if not v.ok:
        reason = f"verification failed: {v.reason}"
        row = dict(base_row, status="failed", reason=reason,
                   extra={"verification": verification, "trained": spec.trained})
        report.update(status="failed", reason=reason)
        return {"ok": False, "report": report, "row": row, "machine": fp, "measurement": None,
                "model": model}

    meas = Timer(lambda: run(x), warmup=warmup, min_runs=min_runs, min_time=min_time,
                 max_time=max(max_time, min_time)).run(batch=batch, threads=threads,
                                                       label=f"{name} {engine} {format}")
    accuracy = None
    if data is not None:
        with torch.inference_mode():
            logits = torch.cat([torch.as_tensor(run(data.x_test[i:i + 256])) for i in
                                range(0, len(data.x_test), 256)])
        accuracy = float((logits.argmax(1) == data.y_test).float().mean())
    if hasattr(run, "nbytes"):
        pbytes = run.nbytes()["total"]
    else:
        pbytes = param_bytes(model)
    fbytes = _file_bytes(run, model, name, engine, format, values, seed, opts)
    rss_bytes = (peak_rss_pruned(model, name, engine, format, values, batch, threads, seed,
                                 run_opts) if rss else None)
    lat = meas.latency_ms()
    report.update({
        "status": "ok",
        "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99", "mean")},
        "iqr_ms": lat["iqr"], "runs": meas.n, "noisy": meas.noisy,
        "throughput": meas.throughput, "param_bytes": pbytes, "file_bytes": fbytes,
        "peak_rss_bytes": rss_bytes,
        "accuracy": accuracy if accuracy is not None else NOT_APPLICABLE,
    })
    row = dict(base_row, status="ok", samples=list(meas.samples), p50_ms=lat["p50"],
               p90_ms=lat["p90"], p99_ms=lat["p99"], mean_ms=lat["mean"], iqr_ms=lat["iqr"],
               throughput=meas.throughput, param_bytes=pbytes, file_bytes=fbytes,
               peak_rss_bytes=rss_bytes, accuracy=accuracy,
               extra={"trained": spec.trained, "noisy": meas.noisy,
                      "verification": verification, "threads_effective": threads_eff,
                      "dense_layers": report.get("dense_layers", {}),
                      "note": report.get("note", "")})
    return {"ok": True, "report": report, "row": row, "machine": fp, "measurement": meas,
            "model": model}


def add_task_metrics(res: dict[str, Any], dense: bool) -> None:
    """Put the task metrics of a zoo model judged by more than accuracy (minilm: Lee
    correlations, polarity probe, fidelity; lee-charlstm: bits per character) under
    ``metrics`` in the report and the stored row of ``res`` (a :func:`bench_dense` or
    :func:`bench_pruned` result; ``dense`` says which)."""
    name, net = res["report"]["model"], res.get("model")
    if net is None or name not in zoo.TASK_METRICS or not res["ok"]:
        return
    reference = None if dense else zoo.load(name, seed=res["report"]["seed"])[0]
    metrics = zoo.task_metrics(name, net, dense_model=reference)
    res["report"]["metrics"] = metrics
    res["row"].setdefault("extra", {})["metrics"] = metrics
