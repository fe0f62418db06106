"""The ``prunebench`` command: thin Typer + Rich wrappers over the public API.

Every error prunebench raises on purpose (and every usage error) becomes one line on stderr
and exit status 2; Ctrl-C exits 130."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer depends on click
    from click import exceptions as cx
from rich.console import Console
from rich.table import Table

from .dtypes import VALUE_ENCODINGS
from .errors import BadInputError, PrunebenchError
from .recipe import FINETUNE_STEPS, VALIDATION_FRACTION

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Measure which storage format makes a pruned network smaller and faster.")
# Rich assumes 80 columns when not on a terminal; tables of figures need more.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULT_DB = "runs/results.sqlite"


def _emit_json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


# fine-tuning options shared by prune, pack, plan and bench (prunebench.train.Finetune)
_FT_STEPS_HELP = (f"most fine-tuning steps (default {FINETUNE_STEPS}; early stopping may use "
                  "fewer; 0: none)")
_ROUNDS = typer.Option(None, "--rounds", help="rounds of iterative / rewind (default 3)")
_FT_LR = typer.Option(None, "--finetune-lr",
                      help="fine-tuning learning rate (default: the model's training recipe)")
_FT_BATCH = typer.Option(None, "--finetune-batch",
                         help="fine-tuning batch size (default: the model's training recipe)")
_FT_EPOCHS = typer.Option(None, "--finetune-epochs",
                          help="budget in passes over the fine-tuning data (replaces "
                               "--finetune-steps)")
_FT_SCHEDULE = typer.Option(None, "--finetune-schedule",
                            help="constant | cosine (default constant; cosine with --distill)")
_FT_NO_EARLY_STOP = typer.Option(False, "--no-early-stop",
                                 help="train the whole budget (convergence is still judged)")
_FT_VALIDATION = typer.Option(VALIDATION_FRACTION, "--validation",
                              help="fraction of the training split held out to judge "
                                   "convergence (0: none)")
# the user's own model: usermodel.rewrite_argv reads these four before Typer parses (it
# registers the model and passes its name as MODEL); declared here for --help


def _read_before_typer(param: typer.CallbackParam, value):
    if value is not None:  # only when app() is called directly, bypassing main()
        raise BadInputError(f"{param.opts[0]}: is read by prunebench.cli.main, which registers "
                            "the model; call main(), not app()")
    return value


_USER_MODEL = typer.Option(None, "--model", callback=_read_before_typer,
                           metavar="MODULE:FACTORY",
                           help="your own model instead of the model argument: "
                                "package.module:factory, a function returning an nn.Module")
_INPUT_SHAPE = typer.Option(None, "--input-shape", callback=_read_before_typer, metavar="1,N",
                            help="input shape for --model (or an .onnx file with open dims), "
                                 "batch 1 first, e.g. 1,40 or 1,3,32,32")
_EXAMPLE_INPUT = typer.Option(None, "--example-input", callback=_read_before_typer,
                              metavar="FILE.npy", help="an example input for --model instead "
                                                       "of --input-shape")
_DATA = typer.Option(None, "--data", callback=_read_before_typer, metavar="FILE.npz",
                     help="x_test, y_test for accuracy (x_train, y_train for fine-tuning); "
                          "without it: fidelity to the dense model")
_FT_FLAGS = {"finetune_lr": "--finetune-lr", "finetune_batch": "--finetune-batch",
             "finetune_epochs": "--finetune-epochs", "finetune_schedule": "--finetune-schedule",
             "early_stop": "--no-early-stop", "validation": "--validation"}


def _finetune_args(lr, batch, epochs, schedule, no_early_stop, validation) -> dict:
    """``prune()``'s fine-tuning keywords from the CLI options, checked (one line naming the
    flag on bad input)."""
    from .train import Finetune

    try:
        Finetune(lr=lr, batch_size=batch, epochs=epochs, lr_schedule=schedule,
                 early_stop=not no_early_stop, validation=validation).checked()
    except BadInputError as e:
        name, rest = str(e).split(":", 1)
        raise BadInputError(f"{_FT_FLAGS.get(name, name)}:{rest}") from None
    return {"finetune_lr": lr, "finetune_batch": batch, "finetune_epochs": epochs,
            "finetune_schedule": schedule, "early_stop": not no_early_stop,
            "validation": validation}


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the zoo: parameters, dataset, and whether a model is trained or latency-only."""
    from . import zoo

    rows = []
    for name in zoo.MODELS:
        spec = zoo.get_spec(name)
        rows.append({"name": name, "params": zoo.count_params(spec.build()),
                     "dataset": spec.dataset, "input_shape": list(spec.input_shape),
                     "kind": ("trained" if spec.trained else "pretrained" if spec.pretrained
                              else "latency-only (random weights)"),
                     "description": spec.description})
    if as_json:
        _emit_json(rows)
        return
    t = Table(title="prunebench model zoo")
    for c in ("name", "params", "dataset", "input", "kind", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], f"{r['params']:,}", r["dataset"] or "-",
                  "x".join(map(str, r["input_shape"])), r["kind"], r["description"])
    out.print(t)


@app.command()
def train(model: str = typer.Argument(..., help="zoo model name (see `prunebench models`)"),
          seed: int = typer.Option(0, "--seed", help="initialisation and training seed"),
          as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Train a zoo model (or load its cached checkpoint) and report test accuracy."""
    import time

    from . import zoo
    from .train import evaluate

    spec = zoo.get_spec(model)
    zoo.check_seed(seed)
    if not spec.trained:
        raise BadInputError(f"model: {model!r} is latency-only (no dataset); trainable: "
                            + ", ".join(n for n in zoo.MODELS if zoo.get_spec(n).trained))
    t0 = time.perf_counter()
    net, data = zoo.load(model, trained=True, seed=seed, progress=not as_json)
    doc = {"model": model, "seed": seed, "dataset": spec.dataset,
           "accuracy": evaluate(net, data), "params": zoo.count_params(net),
           "seconds": time.perf_counter() - t0, "train": vars(spec.train)}
    if as_json:
        _emit_json(doc)
    else:
        out.print(f"{model} seed {seed}: test accuracy {doc['accuracy']:.2%} "
                  f"({doc['params']:,} params, {doc['seconds']:.1f} s)")


@app.command()
def bench(model: str = typer.Argument(..., help="zoo model name, a model file written by "
                                                "pack / prune -o, or an .onnx file; omit "
                                                "with --model"),
          user_model: Optional[str] = _USER_MODEL,
          input_shape: Optional[str] = _INPUT_SHAPE,
          example_input: Optional[str] = _EXAMPLE_INPUT,
          data: Optional[str] = _DATA,
          batch: int = typer.Option(1, "--batch", help="inputs per call (>= 1)"),
          threads: int = typer.Option(1, "--threads", help="intra-op threads (1..cores)"),
          seed: int = typer.Option(0, "--seed", help="model seed"),
          warmup: int = typer.Option(3, "--warmup", help="untimed calls first"),
          min_runs: int = typer.Option(20, "--min-runs", help="timed calls at least"),
          min_time: float = typer.Option(1.0, "--min-time", help="seconds of timed calls at least"),
          method: Optional[str] = typer.Option(None, "--method",
                                               help="prune first: random | magnitude | gradient | "
                                                    "taylor | block | nm | channel"),
          sparsity: Optional[float] = typer.Option(None, "--sparsity",
                                                   help="fraction removed, in [0, 1) (with "
                                                        "--method; default 0.9)"),
          scope: str = typer.Option("layer", "--scope", help="layer | global"),
          finetune_steps: int = typer.Option(FINETUNE_STEPS, "--finetune-steps",
                                             help=_FT_STEPS_HELP),
          finetune_lr: Optional[float] = _FT_LR,
          finetune_batch: Optional[int] = _FT_BATCH,
          finetune_epochs: Optional[float] = _FT_EPOCHS,
          finetune_schedule: Optional[str] = _FT_SCHEDULE,
          no_early_stop: bool = _FT_NO_EARLY_STOP,
          validation: float = _FT_VALIDATION,
          layers: Optional[str] = typer.Option(None, "--layers",
                                               help="comma-separated modules, 'all' or 'default'"),
          block: str = typer.Option("4x4", "--block", help="block shape (method and bsr)"),
          n: int = typer.Option(2, "--n", help="N of N:M"),
          m: int = typer.Option(4, "--m", help="M of N:M"),
          format: Optional[str] = typer.Option(None, "--format",
                                               help="format of the pruned layers (default: dense "
                                                    "for torch-dense/onnxruntime, else csr)"),
          values: str = typer.Option("fp32", "--values", help="fp32 | fp16 | int8"),
          engine: Optional[str] = typer.Option(None, "--engine",
                                               help="torch-dense | torch-sparse | scipy | "
                                                    "onnxruntime | native | openvino | litert "
                                                    "(default: "
                                                    "torch-dense "
                                                    "for dense, else native)"),
          fallback: str = typer.Option("error", "--fallback",
                                       help="error | dense: a pruned layer the format cannot "
                                            "serve fails, or stays dense"),
          db: str = typer.Option(DEFAULT_DB, "--db", help="results database (SQLite)"),
          no_rss: bool = typer.Option(False, "--no-rss", help="skip the peak-RSS child process"),
          profile: str = typer.Option("default", "--profile",
                                      help="default | edge (1 thread, 128-bit SIMD code: a proxy "
                                           "for a Cortex-A board; runs in a child process)"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Benchmark a model: as is (dense PyTorch), or pruned (--method) / packed (a model file)
    and compiled for an engine and format (--engine, --format, --values), verified against
    dense first; latency, memory, accuracy; store the row."""
    import os

    from . import zoo
    from .benchmark import (bench_dense, bench_pruned, check_batch, check_engine_format,
                            check_threads, default_engine, default_format)
    from .errors import VerificationError
    from .study.store import Store, check_database

    # every option is checked before a model is loaded (or trained on a cold cache)
    is_file = model not in zoo.MODELS and os.path.isfile(model)
    if not is_file:
        if model not in zoo.MODELS and (os.sep in model or os.path.exists(model)
                                        or model.endswith((".pbz", ".pbm", ".safetensors"))):
            what = "is a directory" if os.path.isdir(model) else "does not exist"
            raise BadInputError(f"MODEL: model file {model!r} {what}; give a model file or a "
                                f"zoo model ({', '.join(zoo.MODELS)})")
        zoo.get_spec(model)
    if sparsity is not None and method is None:  # it would be ignored, and the row stored
        raise BadInputError(f"--sparsity: got {sparsity:g} without --method; "
                            + ("a model file is already pruned: drop --sparsity" if is_file
                               else "give --method M to prune, or drop --sparsity"))
    sparsity = 0.9 if sparsity is None else sparsity
    check_batch(batch)
    check_threads(threads)
    _check_profile_threads(profile, threads)
    zoo.check_seed(seed)
    _check_timing_options(warmup, min_runs, min_time)
    dense_only = (not is_file and method is None and format in (None, "dense")
                  and engine in (None, "torch-dense") and values == "fp32")
    if not dense_only:
        eng_name = engine or default_engine(format)
        check_engine_format(eng_name, format or default_format(eng_name), values)
        blk = _parse_block(block)
        if method is not None:
            _check_prune_options(None if is_file else model, method, sparsity, scope=scope,
                                 finetune_steps=finetune_steps, block=block, n=n, m=m,
                                 layers=layers, seed=seed)
    ft = _finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                        no_early_stop, validation)
    zoo_name = model
    if is_file:  # read (and refused when damaged or a pickle) before the database is touched
        from .runtime import load_model

        zoo_name = load_model(model)[1]["model"]
    _check_batch_fits(zoo_name, batch)
    # validated now, but opened (created) only to store the row: bad input writes nothing
    check_database(db)
    _run_in_profile(profile)
    if dense_only:
        res = bench_dense(model, batch=batch, threads=threads, seed=seed, warmup=warmup,
                          min_runs=min_runs, min_time=min_time, rss=not no_rss,
                          progress=not as_json)
        res["ok"] = True
    else:
        res = bench_pruned(model, method=method, sparsity=sparsity, scope=scope,
                           finetune_steps=finetune_steps, finetune=ft, block=blk, n=n,
                           m=m, layers=_parse_layers(layers), format=format, values=values,
                           engine=engine, fallback=fallback, batch=batch, threads=threads,
                           seed=seed, warmup=warmup, min_runs=min_runs, min_time=min_time,
                           rss=not no_rss, progress=not as_json)
    _add_task_metrics(res, dense_only)
    with Store(db) as store:
        row_id = store.add(res["row"], res["machine"])
    rep = dict(res["report"], database=db, row_id=row_id)
    if not res["ok"]:
        v = rep["verification"]
        if as_json:
            _emit_json(rep)
        raise VerificationError(
            f"{rep['model']} on {rep['engine']} ({rep['format']}, {rep['values']}): "
            f"{rep['reason']} (max error {v['max_abs']:.3g}, {v['rel_max']:.3g} of the output "
            f"scale; top-1 agreement {v['top1_agreement']:.2%} on {v['n']} inputs); not timed, "
            f"stored as failed row {row_id} in {db}")
    if as_json:
        _emit_json(rep)
        return
    lat = rep["latency_ms"]
    acc = rep["accuracy"]
    what = (f"{rep['engine']}, {rep['format']} {rep.get('values', 'fp32')}"
            + (f", {rep['method']} {rep['sparsity']:.2%}" if rep.get("method", "dense") != "dense"
               else ""))
    out.print(f"[bold]{rep['model']}[/] ({what}) batch {batch}, threads {threads}: p50 "
              f"{lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, p99 {lat['p99']:.3f} ms over "
              f"{rep['runs']} runs; {rep['throughput']:.1f} inputs/s")
    out.print(f"params {rep['param_bytes']:,} B, file {rep['file_bytes']:,} B, peak RSS "
              f"{rep['peak_rss_bytes'] or 0:,} B; accuracy "
              + (f"{acc:.2%}" if isinstance(acc, float) else f"{acc} (latency-only model)"))
    if "verification" in rep:
        v = rep["verification"]
        out.print(f"verified against dense fp32 on {v['n']} {v['inputs']} inputs: max error "
                  f"{v['max_abs']:.3g} ({v['rel_max']:.3g} of the output scale, tolerance "
                  f"{v['tolerance']:g}), top-1 agreement {v['top1_agreement']:.2%}")
        if rep.get("threads_effective", threads) != threads:
            out.print(f"{rep['engine']} computes its sparse products on "
                      f"{rep['threads_effective']} thread(s)")
        for layer, why in rep.get("dense_layers", {}).items():
            out.print(f"  {layer}: {why}")
        if rep.get("note"):
            out.print(f"note: {rep['note']}")
    if rep["noisy"]:
        err.print("[yellow]warning: IQR above 10% of the median; the machine may be busy[/]")
    out.print(f"stored as row {row_id} in {db}")


@app.command()
def kernels(shape: Optional[str] = typer.Option(None, "--shape",
                                                help="ROWSxCOLS (out x in) of W, comma-separated "
                                                     "for several; @B fixes a batch (4096x4096, "
                                                     "144x24@3136). Default: real layer shapes"),
            sparsity: str = typer.Option(",".join(str(s) for s in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
                                                                   0.99)),
                                         "--sparsity", help="comma-separated sparsities in [0, 1)"),
            pattern: str = typer.Option("unstructured", "--pattern",
                                        help="unstructured | block | nm"),
            batch: str = typer.Option("1,32", "--batch", help="comma-separated batch sizes"),
            threads: Optional[int] = typer.Option(None, "--threads",
                                                  help="threads (default: every core)"),
            cache: str = typer.Option("cold", "--cache", help="warm | cold | both"),
            values: str = typer.Option("fp32", "--values",
                                       help="native value encodings, comma-separated: fp32, "
                                            "fp16, int8"),
            block: str = typer.Option("4x4", "--block", help="block shape (pattern block, bsr)"),
            from_model: Optional[str] = typer.Option(None, "--from-model",
                                                     help="benchmark a zoo model's pruned "
                                                          "weight matrices instead"),
            method: Optional[str] = typer.Option(None, "--method",
                                                 help="pruning method for --from-model"),
            all_shapes: bool = typer.Option(False, "--all-shapes",
                                            help="add BERT FFN up, MiniLM FFN and LSTM shapes"),
            repeats: int = typer.Option(15, "--repeats", help="timed calls per candidate"),
            seed: int = typer.Option(0, "--seed", help="random matrices and inputs"),
            as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Time one weight matrix's product on every engine and format side by side: speedup vs
    torch-dense, bytes moved, GB/s and the fraction of the measured memory bandwidth, and the
    crossover sparsity per shape."""
    from .measure import kernel_bench as kb

    def floats(text, arg):
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise BadInputError(f"{arg}: got {text!r}, expected comma-separated numbers") from None

    def ints(text, arg):
        try:
            return [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise BadInputError(f"{arg}: got {text!r}, expected comma-separated integers") from None

    from .zoo import check_seed

    check_seed(seed)
    if pattern not in kb.PATTERNS:
        raise BadInputError(f"--pattern: got {pattern!r}; allowed: {', '.join(kb.PATTERNS)}")
    if cache not in kb.CACHES:
        raise BadInputError(f"--cache: got {cache!r}; allowed: {', '.join(kb.CACHES)}")
    sparsities = kb.check_sparsities(floats(sparsity, "--sparsity"))
    batches = ints(batch, "--batch")
    if not batches or any(b < 1 for b in batches):
        raise BadInputError(f"--batch: got {batch!r}; every batch must be an integer >= 1")
    if threads is not None:
        kb.check_kernel_threads(threads)
    if repeats < 1:
        raise BadInputError(f"--repeats: got {repeats}; expected an integer >= 1")
    vals = tuple(v.strip() for v in values.split(",") if v.strip())
    for v in vals or ("",):
        if v not in VALUE_ENCODINGS:
            raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
    blk = _parse_block(block)
    if (method is None) != (from_model is None):
        raise BadInputError("--from-model and --method go together: --from-model MODEL "
                            "--method M")
    matrices = None
    shapes = [kb.parse_shape(t) for t in shape.split(",")] if shape else None
    if from_model is not None:
        from . import zoo
        from .pruning import METHODS

        zoo.get_spec(from_model)
        METHODS.get(method)
        if shape:
            raise BadInputError("--shape: not with --from-model (the model's matrices are used)")
        matrices = kb.model_matrices(from_model, method, sparsities, seed, progress=not as_json)
    elif shapes is None:
        shapes = list(kb.DEFAULT_SHAPES) + (list(kb.EXTRA_SHAPES) if all_shapes else [])
    progress = None if as_json else (lambda msg: err.print(f"[dim]{msg}[/]"))
    res = kb.run(shapes, sparsities, batches, pattern, threads, cache, vals, repeats=repeats,
                 rounds=3 if repeats >= 3 else 1, block=blk, seed=seed, matrices=matrices,
                 progress=progress)
    if as_json:
        _emit_json(res)
        return
    meta = res["meta"]
    groups: dict = {}
    for r in res["rows"]:
        key = (tuple(r["shape"]), r.get("layer") or r["label"], r["batch"], r["cache"])
        groups.setdefault(key, []).append(r)
    for (shp, label, b, mode), rs in groups.items():
        load = rs[0].get("other_load_cores")
        t = Table(title=f"W {shp[0]}x{shp[1]} {label} — batch {b}, {mode} cache, "
                        f"{meta['threads']} thread(s)"
                        + (f" — other processes busy {load:.2f} cores" if load else ""))
        for c in ("sparsity", "engine", "format", "values", "ms", "vs dense", "vs torch csr",
                  "MB moved", "GB/s", "% bandwidth"):
            t.add_column(c, justify="right")
        for r in rs:
            vs_ts = r["speedup_vs_torch_sparse_csr"]
            t.add_row(f"{r['sparsity']:.2f}", r["engine"] + (f" ({r['variant']})" if r.get("variant") else ""),
                      r["format"], r["values"],
                      f"{r['ms']:.3f}{'~' if r['noisy'] else ''}",
                      f"{r['speedup_vs_dense']:.2f}x", "" if vs_ts is None else f"{vs_ts:.2f}x",
                      f"{r['bytes'] / 1e6:.1f}", f"{r['gbps']:.1f}",
                      f"{100 * r['bandwidth_fraction']:.0f}%")
        out.print(t)
    t = Table(title="crossover: lowest sparsity where a sparse format beats torch-dense")
    for c in ("shape", "batch", "cache", "crossover", "by", "speedup", "native crossover"):
        t.add_column(c)
    for c in res["crossover"]:
        t.add_row(f"{c['shape'][0]}x{c['shape'][1]}" + (f" {c['layer']}" if c.get("layer") else ""),
                  str(c["batch"]), c["cache"],
                  "none" if c["sparsity"] is None else f"{c['sparsity']:.2f}",
                  "" if c["engine"] is None else f"{c['engine']} {c['format']}"
                  + (f" ({c['variant']})" if c.get("variant") else ""),
                  "" if c["speedup_vs_dense"] is None else f"{c['speedup_vs_dense']:.2f}x",
                  "none" if c["native_sparsity"] is None
                  else f"{c['native_sparsity']:.2f} ({c['native_format']})")
    out.print(t)
    out.print(f"streaming-read bandwidth {meta['stream_gbps']:.1f} GB/s ({meta['threads']} "
              f"threads); cold = {meta['flush_mib']} MiB streamed before every call (not timed); "
              f"'~' = IQR above 10% of the median; {meta['seconds']:.0f} s")
    other = meta.get("other_load_cores")
    if other is not None and other > 0.1:
        err.print(f"[yellow]warning: other processes kept {other:.2f} cores busy during this "
                  "run; parallel timings stall when a core is taken: repeat on a quiet machine[/]")


@app.command()
def demo(db: str = typer.Option(DEFAULT_DB, "--db", help="results database (SQLite)"),
         threads: int = typer.Option(1, "--threads", help="intra-op threads for timing"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """The main job: train the zoo's dense models (cached) and benchmark every model at
    batch 1; rows go to the database and a table is printed."""
    from . import zoo
    from .benchmark import bench_dense, check_threads
    from .study.store import Store, check_writable

    check_threads(threads)
    check_writable(db)
    reports = []
    with Store(db) as store:
        for name in zoo.MODELS:
            if not as_json:
                err.print(f"[bold]{name}[/]: train (cached) and benchmark")
            res = bench_dense(name, batch=1, threads=threads, min_runs=20, min_time=0.5,
                              progress=not as_json)
            store.add(res["row"], res["machine"])
            reports.append(res["report"])
    if as_json:
        _emit_json({"database": db, "results": reports})
        return
    t = Table(title=f"dense baseline, batch 1, {threads} thread(s) — stored in {db}")
    for c in ("model", "p50 ms", "p90 ms", "p99 ms", "params MB", "file MB", "peak RSS MB",
              "accuracy"):
        t.add_column(c)
    for r in reports:
        lat, acc = r["latency_ms"], r["accuracy"]
        t.add_row(r["model"], f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                  f"{r['param_bytes'] / 1e6:.2f}", f"{r['file_bytes'] / 1e6:.2f}",
                  f"{(r['peak_rss_bytes'] or 0) / 1e6:.0f}",
                  f"{acc:.2%}" if isinstance(acc, float) else "n/a (latency-only)")
    out.print(t)


def _parse_block(block: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in block.lower().split("x"))
    except ValueError:
        r = c = 0
    if r < 1 or c < 1:
        raise BadInputError(f"--block: got {block!r}, expected ROWSxCOLS of integers >= 1 such "
                            "as 4x4")
    return r, c


def _parse_layers(layers: Optional[str]):
    if layers is None or layers == "default":
        return None
    if layers == "all":
        return "all"
    return [v for v in layers.split(",") if v]


#: ``bench --min-time`` above this many seconds is a typo, not a measurement plan
MAX_MIN_TIME = 3600.0  # = measure.timer.MAX_TIMED_S (the spec's bound), kept import-free


def _check_timing_options(warmup: int, min_runs: int, min_time: float) -> None:
    """``--warmup``, ``--min-runs``, ``--min-time``: the Timer's own checks (NaN and inf
    refused), made before a model is loaded, and at most an hour of timed calls."""
    from .measure.timer import check_timing

    check_timing(warmup, min_runs, min_time)
    if min_time > MAX_MIN_TIME:
        raise BadInputError(f"--min-time: got {min_time:g}; allowed: seconds in "
                            f"[0, {MAX_MIN_TIME:g}]")


def _check_batch_fits(model: str, batch: int) -> None:
    """``--batch``: the inputs of one call alone must fit in this machine's memory (a huge
    batch is refused here, not by a MemoryError after the model is loaded)."""
    from .benchmark import batch_too_big

    too_big = batch_too_big(model, batch)
    if too_big:
        raise BadInputError(f"--batch: got {batch}; {too_big}")


def _check_prune_options(model: Optional[str], method: str, sparsity: float, *,
                         scope: str = "layer", schedule: str = "oneshot",
                         finetune_steps: int = 0, rounds: Optional[int] = None, block: str = "4x4",
                         n: int = 2, m: int = 4, norm: str = "l1",
                         layers: Optional[str] = None, seed: int = 0) -> None:
    """The pruning options of prune, pack and bench --method, judged by the validators
    ``pruning.prune`` uses, before the zoo ``model`` is loaded (and trained on a cold cache).
    ``--layers`` names are looked up in the untrained architecture (the same module names);
    ``model`` None (a model file) skips that."""
    from . import zoo
    from .pruning import METHODS, SCHEDULES, SCOPES, select_layers
    from .pruning.validate import (check_int, check_nm, check_norm, check_schedule_options,
                                   check_sparsity)

    spec = METHODS.get(method)
    SCOPES.get(scope)
    SCHEDULES.get(schedule)
    check_sparsity(sparsity)
    check_int("finetune_steps", finetune_steps, 0)
    check_schedule_options(schedule, rounds, None)
    zoo.check_seed(seed)
    _parse_block(block)  # parsed for every method, as _run_prune does
    if spec.granularity in ("block", "channel"):  # what the granularity reads
        check_norm(norm)
    elif spec.granularity == "nm":
        check_nm(n, m)
    chosen = _parse_layers(layers)
    if model is not None and chosen != "all":
        select_layers(zoo.get_spec(model).build(), chosen)


def _check_format_options(format: str, values: str, *, bits: int, block: str, n: int, m: int,
                          rank: Optional[int], energy: Optional[float]) -> None:
    """pack's ``--format`` and the options it takes, judged by the format itself before any
    pruning (as study specs are). A model-wide ``--rank`` is capped at each matrix's
    min(rows, cols) when encoding, so any rank >= 1 is allowed."""
    from .formats import FORMATS
    from .formats.base import check_int_option

    if format not in FORMATS:
        raise BadInputError(f"--format: unknown format {format!r}; valid: {', '.join(sorted(FORMATS))}")
    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
    cls = FORMATS.get(format)
    raw = {"bits": bits, "n": n, "m": m, "rank": rank, "energy": energy}
    for k, allowed in cls.option_choices.items():
        if raw[k] not in allowed:
            raise BadInputError(f"--{k}: got {raw[k]}; allowed: {', '.join(map(str, allowed))}")
    if cls.one_of_options and sum(raw[k] is not None for k in cls.one_of_options) != 1:
        raise BadInputError(f"--format {format}: pass exactly one of " + " or ".join(
            f"--{k} ({what})" for k, what in cls.one_of_options.items()))
    given = {"bits": bits, "block": _parse_block(block), "n": n, "m": m, "rank": rank,
             "energy": energy}
    opts = {k: given[k] for k in cls.option_defaults if given.get(k) is not None}
    side = 16
    if "rank" in opts:
        side = check_int_option(format, "rank", rank, 1)
    cls._check_options((side, side), **{**cls.option_defaults, **opts})


def _add_task_metrics(res: dict, dense: bool) -> None:
    """Put the task metrics of a zoo model judged by more than accuracy (minilm: Lee
    correlations, polarity probe, fidelity; lee-charlstm: bits per character) under
    ``metrics`` in the report and the stored row."""
    from . import zoo

    name, net = res["report"]["model"], res.get("model")
    if net is None or name not in zoo.TASK_METRICS or not res["ok"]:
        return
    reference = None if dense else zoo.load(name, seed=res["report"]["seed"])[0]
    metrics = zoo.task_metrics(name, net, dense_model=reference)
    res["report"]["metrics"] = metrics
    res["row"].setdefault("extra", {})["metrics"] = metrics


def _run_prune(model: str, method: str, sparsity: float, scope: str, schedule: str,
               finetune_steps: int, rounds: Optional[int], block: str, n: int, m: int, norm: str,
               layers: Optional[str], seed: int, progress: bool, distill: bool = False,
               finetune: Optional[dict] = None):
    """Load (train if needed) a zoo model and prune it; shared by prune, pack and bench."""
    from . import zoo
    from .pruning import prune

    spec = zoo.get_spec(model)
    net, data, init = zoo.load(model, trained=spec.trained, seed=seed, progress=progress,
                               return_init=True)
    chosen = _parse_layers(layers)
    example = spec.example_input(1, seed) if data is None else None
    result = prune(net, method, sparsity, scope=scope, schedule=schedule, finetune=data,
                   finetune_steps=finetune_steps if data is not None else 0, rounds=rounds,
                   block=_parse_block(block), n=n, m=m, norm=norm, layers=chosen, seed=seed,
                   rewind_state=init if schedule == "rewind" else None,
                   example_input=example, progress=progress, distill=distill,
                   **(finetune or {}))
    return net, data, result


_PRUNE_HELP = {
    "method": "random | magnitude | gradient | taylor | block | nm | channel",
    "scope": "layer (same sparsity per layer) | global (one threshold)",
    "schedule": "oneshot | iterative | iterative-linear | gradual | rewind",
    "layers": ("comma-separated module names, 'all', or 'default' = every Linear/Conv/RNN "
               "except the first and the last"),
}


@app.command(name="prune")
def prune_cmd(
        model: str = typer.Argument(..., help="zoo model name; omit with --model"),
        user_model: Optional[str] = _USER_MODEL,
        input_shape: Optional[str] = _INPUT_SHAPE,
        example_input: Optional[str] = _EXAMPLE_INPUT,
        data: Optional[str] = _DATA,
        method: str = typer.Option("magnitude", "--method", help=_PRUNE_HELP["method"]),
        sparsity: float = typer.Option(0.9, "--sparsity", help="fraction removed, in [0, 1)"),
        scope: str = typer.Option("layer", "--scope", help=_PRUNE_HELP["scope"]),
        schedule: str = typer.Option("oneshot", "--schedule", help=_PRUNE_HELP["schedule"]),
        finetune_steps: int = typer.Option(FINETUNE_STEPS, "--finetune-steps",
                                           help=_FT_STEPS_HELP),
        finetune_lr: Optional[float] = _FT_LR,
        finetune_batch: Optional[int] = _FT_BATCH,
        finetune_epochs: Optional[float] = _FT_EPOCHS,
        finetune_schedule: Optional[str] = _FT_SCHEDULE,
        no_early_stop: bool = _FT_NO_EARLY_STOP,
        validation: float = _FT_VALIDATION,
        rounds: Optional[int] = _ROUNDS,
        block: str = typer.Option("4x4", "--block", help="block shape for --method block"),
        n: int = typer.Option(2, "--n", help="N of N:M"),
        m: int = typer.Option(4, "--m", help="M of N:M"),
        norm: str = typer.Option("l1", "--norm", help="l1 | l2 (block and channel ranking)"),
        layers: Optional[str] = typer.Option(None, "--layers", help=_PRUNE_HELP["layers"]),
        seed: int = typer.Option(0, "--seed", help="model, scoring and fine-tuning seed"),
        distill: bool = typer.Option(False, "--distill",
                                     help="fine-tune by distillation from the dense model "
                                          "(soft outputs, T=4, on each batch plus a mixup and a "
                                          "noisy copy of it; recovers far more on small data; "
                                          "give it --finetune-steps 3000)"),
        output: Optional[str] = typer.Option(None, "-o", "--output",
                                             help="write the pruned model (dense) to FILE"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Prune a zoo model, fine-tune it, and account for sparsity, MACs and accuracy."""
    from . import zoo
    from .runtime import save_model

    # every option is checked before the model is loaded (or trained on a cold cache)
    zoo.get_spec(model)
    _check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                         finetune_steps=finetune_steps, rounds=rounds, block=block, n=n, m=m,
                         norm=norm, layers=layers, seed=seed)
    ft = _finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                        no_early_stop, validation)
    if output:
        _check_output(output)
    net, _, result = _run_prune(model, method, sparsity, scope, schedule, finetune_steps,
                              rounds, block, n, m, norm, layers, seed, not as_json, distill=distill,
                              finetune=ft)
    rep = dict(result.report(), model=model, seed=seed)
    from .zoo import task_metrics

    metrics = task_metrics(model, result.model, dense_model=net)
    if metrics is not None:
        rep["metrics"] = metrics
    if output:
        # provenance only: short, rounded (the file's bytes are what pack measures)
        info = {k: rep[k] for k in ("method", "scope", "schedule")}
        info.update({k: round(rep[k], 6) for k in ("sparsity_requested", "sparsity_achieved")})
        save_model(output, result.model, zoo_name=model, seed=seed, format="dense",
                   info={"prune": info})
        rep["output"] = output
    if as_json:
        _emit_json(rep)
        return
    t = Table(title=f"{model}: {rep['method']} ({rep['scope']}, {rep['schedule']}), requested "
                    f"{rep['sparsity_requested']:.2%}, achieved {rep['sparsity_achieved']:.2%}")
    for c in ("layer", "shape", "sparsity", "params", "nonzero", "MACs", "MACs nonzero"):
        t.add_column(c)
    for lay in rep["layers"]:
        t.add_row(lay["name"], "x".join(map(str, lay["shape"])), f"{lay['sparsity']:.2%}",
                  f"{lay['params']:,}", f"{lay['nonzero']:,}",
                  "" if lay.get("macs") is None else f"{lay['macs']:,}",
                  "" if lay.get("macs_nonzero") is None else f"{lay['macs_nonzero']:,}")
    out.print(t)
    acc = {k: rep.get(k) for k in ("accuracy_dense", "accuracy_pruned_before_finetune",
                                   "accuracy_pruned")}
    if acc["accuracy_dense"] is not None:
        out.print("accuracy: dense {accuracy_dense:.2%}, pruned before fine-tuning "
                  "{accuracy_pruned_before_finetune:.2%}, after {accuracy_pruned:.2%}".format(**acc))
    tot = rep.get("totals", {})
    if tot.get("theoretical_speedup"):
        out.print(f"theoretical speedup (MACs dense / nonzero): {tot['theoretical_speedup']:.2f}x")


def _check_output(output: str) -> None:
    p = Path(output)
    if p.is_dir():
        raise BadInputError(f"-o: {output!r} is a directory, expected a file path")
    if not p.parent.exists():
        raise BadInputError(f"-o: folder {str(p.parent)!r} does not exist")
    if not p.parent.is_dir():
        raise BadInputError(f"-o: {str(p.parent)!r} is a file, not a folder")
    import os

    if not os.access(p.parent, os.W_OK):
        raise BadInputError(f"-o: folder {str(p.parent)!r} is not writable")


@app.command()
def pack(model: str = typer.Argument(..., help="zoo model name; omit with --model"),
         user_model: Optional[str] = _USER_MODEL,
         input_shape: Optional[str] = _INPUT_SHAPE,
         example_input: Optional[str] = _EXAMPLE_INPUT,
         data: Optional[str] = _DATA,
         method: str = typer.Option("magnitude", "--method", help=_PRUNE_HELP["method"]),
         sparsity: float = typer.Option(0.9, "--sparsity", help="fraction removed, in [0, 1)"),
         format: str = typer.Option("csr", "--format", help="storage format for pruned layers"),
         values: str = typer.Option("fp32", "--values", help="fp32 | fp16 | int8 (lossy)"),
         bits: int = typer.Option(4, "--bits", help="rcsr delta width: 4 or 8"),
         rank: Optional[int] = typer.Option(None, "--rank", help="lowrank: rank of every layer"),
         energy: Optional[float] = typer.Option(None, "--energy",
                                                help="lowrank: fraction of sum(s**2) to keep"),
         scope: str = typer.Option("layer", "--scope", help=_PRUNE_HELP["scope"]),
         schedule: str = typer.Option("oneshot", "--schedule", help=_PRUNE_HELP["schedule"]),
         finetune_steps: int = typer.Option(FINETUNE_STEPS, "--finetune-steps",
                                            help=_FT_STEPS_HELP),
         finetune_lr: Optional[float] = _FT_LR,
         finetune_batch: Optional[int] = _FT_BATCH,
         finetune_epochs: Optional[float] = _FT_EPOCHS,
         finetune_schedule: Optional[str] = _FT_SCHEDULE,
         no_early_stop: bool = _FT_NO_EARLY_STOP,
         validation: float = _FT_VALIDATION,
         rounds: Optional[int] = _ROUNDS,
         block: str = typer.Option("4x4", "--block", help="block shape (method and bsr)"),
         n: int = typer.Option(2, "--n", help="N of N:M"),
         m: int = typer.Option(4, "--m", help="M of N:M"),
         layers: Optional[str] = typer.Option(None, "--layers", help=_PRUNE_HELP["layers"]),
         seed: int = typer.Option(0, "--seed", help="model, scoring and fine-tuning seed"),
         output: str = typer.Option(..., "-o", "--output", help="model file to write"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Prune a zoo model and save it with its weight matrices in a storage format; report the
    file size against the dense fp32 file and the accuracy of the model loaded back."""
    import os

    import torch

    from . import zoo
    from .errors import VerificationError
    from .formats import inspect_container
    from .measure import state_file_bytes
    from .runtime import load_model, save_model
    from .train import evaluate, predict

    # everything checkable is checked before minutes of loading, pruning and fine-tuning
    _check_format_options(format, values, bits=bits, block=block, n=n, m=m, rank=rank,
                          energy=energy)
    zoo.get_spec(model)
    _check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                         finetune_steps=finetune_steps, rounds=rounds, block=block, n=n, m=m,
                         layers=layers, seed=seed)
    ft = _finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                        no_early_stop, validation)
    _check_output(output)
    net, data, result = _run_prune(model, method, sparsity, scope, schedule, finetune_steps,
                                   rounds, block, n, m, "l1", layers, seed, not as_json,
                                   finetune=ft)
    rep = result.report()
    info = {k: rep[k] for k in ("method", "scope", "schedule")}
    info.update({k: round(rep[k], 6) for k in ("sparsity_requested", "sparsity_achieved")})
    plan = save_model(output, result.model, zoo_name=model, seed=seed, format=format,
                      values=values, bits=bits, block=_parse_block(block), n=n, m=m, rank=rank,
                      energy=energy, info={"prune": info})
    loaded, _ = load_model(output)
    # what the file gives back, measured against the pruned model in memory
    before, after = result.model.state_dict(), loaded.state_dict()
    reference = result.model
    if getattr(loaded, "prunebench_graph", False):  # a user model's graph file: its initializers
        from .runtime.graphfile import graph_weights

        before, after, reference = graph_weights(result.model, loaded)
    bit_identical = all(before[k].dtype == after[k].dtype and before[k].shape == after[k].shape
                        and torch.equal(before[k].view(-1).view(torch.uint8),
                                        after[k].view(-1).view(torch.uint8)) for k in before)
    weight_error = max(float((before[k].double() - after[k].double()).abs().max())
                       if before[k].numel() else 0.0 for k in before)
    x = data.x_test if data is not None else zoo.get_spec(model).example_input(4, seed)
    output_error = float((predict(reference, x) - predict(loaded, x)).abs().max())
    lossless = values == "fp32" and all(p["lossless"] for p in plan.values())
    # lossless layouts may turn -0.0 into 0.0, so the check is on values, not bit patterns
    if lossless and not (weight_error == 0 and output_error == 0):
        raise VerificationError(f"{output}: a lossless file did not give the pruned model back "
                                f"(max weight difference {weight_error:g}, output {output_error:g})")
    box = inspect_container(output)
    doc = {"model": model, "method": method, "format": format, "values": values,
           "sparsity_requested": rep["sparsity_requested"],
           "sparsity_achieved": rep["sparsity_achieved"],
           "file": output, "file_bytes": os.path.getsize(output),
           "dense_file_bytes": state_file_bytes(net),
           "bytes": {"layers": box["nbytes"], "extra": box["extra_bytes"],
                     "container": box["container_overhead"]},
           "accuracy_dense": rep["accuracy_dense"],
           "accuracy_pruned": rep["accuracy_pruned"],
           "accuracy_packed": evaluate(loaded, data) if data is not None else "n/a",
           "lossless": lossless, "bit_identical": bit_identical,
           "max_abs_weight_error": weight_error, "max_abs_output_error": output_error,
           "plan": plan}
    doc["compression_ratio"] = doc["dense_file_bytes"] / doc["file_bytes"]
    if as_json:
        _emit_json(doc)
        return
    out.print(f"{output}: {doc['file_bytes']:,} B vs dense fp32 {doc['dense_file_bytes']:,} B "
              f"= {doc['compression_ratio']:.1f}x smaller (layers {box['nbytes']:,} B, other "
              f"tensors {box['extra_bytes']:,} B, header {box['container_overhead']:,} B)")
    for name, p in plan.items():
        if p["reason"] != "requested":
            out.print(f"  {name}: {p['reason']}")
    out.print("lossless: the file gives the pruned model back bit for bit" if lossless else
              f"lossy ({values}): max weight error {weight_error:.3g}, max output error "
              f"{output_error:.3g}")
    if data is not None:
        out.print(f"accuracy: dense {doc['accuracy_dense']:.2%}, pruned "
                  f"{doc['accuracy_pruned']:.2%}, loaded back from the file "
                  f"{doc['accuracy_packed']:.2%}")


@app.command()
def inspect(path: str = typer.Argument(..., help="model file written by pack or prune -o"),
            as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Per-layer format (and why), byte breakdown, and the file's bytes against dense fp32."""
    from .runtime.modelfile import inspect_model

    if not Path(path).is_file():
        raise BadInputError(f"path: {path!r} is not a file")
    info = inspect_model(path)
    if as_json:
        _emit_json(info)
        return
    t = Table(title=f"{path}: {info['file_bytes']:,} B ({info['model']}, values "
                    f"{info['values']}, {'lossless' if info['lossless'] else 'lossy'})")
    for c in ("layer", "format", "shape", "sparsity", "values B", "indices B", "pointers B",
              "metadata B", "total B", "dense fp32 B", "why"):
        t.add_column(c)
    for name, lay in info["layers"].items():
        nb = lay["nbytes"]
        t.add_row(name, lay["format"], "x".join(map(str, lay["shape"])), f"{lay['sparsity']:.2%}",
                  f"{nb['values']:,}", f"{nb['indices']:,}", f"{nb['pointers']:,}",
                  f"{nb['metadata']:,}", f"{nb['total']:,}", f"{lay['dense_fp32_bytes']:,}",
                  lay["why"])
    out.print(t)
    out.print(f"layers {info['nbytes']:,} B + other tensors {info['extra_bytes']:,} B + header "
              f"{info['container_overhead']:,} B = {info['file_bytes']:,} B; dense fp32 file: "
              f"{info['dense_file_bytes']:,} B ({info['compression_ratio']:.1f}x)")


@app.command()
def results(db: str = typer.Argument(DEFAULT_DB, help="results database"),
            csv: Optional[str] = typer.Option(None, "--csv", help="export all rows to CSV"),
            parquet: Optional[str] = typer.Option(None, "--parquet",
                                                  help="export all rows to Parquet"),
            as_json: bool = typer.Option(False, "--json", help="print rows as JSON")) -> None:
    """Print the stored results as a table, or export them."""
    from .study.store import Store, export_rows

    if not Path(db).exists():
        raise BadInputError(f"database: {db!r} does not exist")
    if Path(db).is_file() and Path(db).stat().st_size == 0:  # Store would write a schema
        raise BadInputError(f"database: {db!r} is empty (0 bytes), not a results database")
    with Store(db) as store:
        rows = store.rows()
    if csv:
        export_rows(rows, csv, "csv")
    if parquet:
        export_rows(rows, parquet, "parquet")
    if as_json:
        _emit_json([{k: v for k, v in r.items() if k != "samples"} for r in rows])
        return
    if csv or parquet:
        out.print(f"exported {len(rows)} rows" + (f" to {csv}" if csv else "")
                  + (f" to {parquet}" if parquet else ""))
        return
    t = Table(title=f"{db}: {len(rows)} results")
    for c in ("id", "model", "method", "sparsity", "format", "engine", "batch", "threads",
              "p50 ms", "p90 ms", "accuracy", "status"):
        t.add_column(c)
    for r in rows:
        acc = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        t.add_row(str(r["id"]), r["model"], r["method"] or "", f"{r['sparsity'] or 0:.2f}",
                  r["format"] or "", r["engine"] or "", str(r["batch"]), str(r["threads"]),
                  "" if r["p50_ms"] is None else f"{r['p50_ms']:.3f}",
                  "" if r["p90_ms"] is None else f"{r['p90_ms']:.3f}", acc, r["status"])
    out.print(t)


@app.command()
def study(spec: Optional[str] = typer.Argument(None, help="YAML path or built-in: default, "
                                                         "smoke, full (default: default)"),
          out_dir: str = typer.Option("runs", "--out", help="folder for the database and report"),
          dry_run: bool = typer.Option(False, "--dry-run", help="print job count and estimate"),
          retry_failed: bool = typer.Option(False, "--retry-failed",
                                            help="run again jobs stored as failed"),
          workers: Optional[int] = typer.Option(None, "--workers",
                                                help="run on a local Dask cluster of N worker "
                                                     "processes"),
          cluster: Optional[str] = typer.Option(None, "--cluster",
                                                help="run on the workers of a Dask scheduler "
                                                     "(tcp://host:8786)"),
          yes: bool = typer.Option(False, "--yes", help="run even when estimated above "
                                                         "--max-hours"),
          max_hours: float = typer.Option(24.0, "--max-hours",
                                          help="estimate above which --dry-run warns and the "
                                               "run asks for --yes"),
          as_json: bool = typer.Option(False, "--json", help="print a JSON summary")) -> None:
    """Run a study: train, prune, encode, verify and measure a grid; store every row and
    write the report. Re-running skips what is stored."""
    from .study.cli_commands import study_command
    from .study.spec import load_spec

    run_profile = load_spec(spec).run_profile
    if run_profile != "default" and cluster is not None:
        raise BadInputError(f"--cluster: got {cluster!r} with run_profile {run_profile}; the "
                            "profile is set in processes prunebench starts: run it locally "
                            "(with or without --workers)")
    _run_in_profile(run_profile)
    # study_command prints its own summary (JSON with --json)
    study_command(spec, out=out_dir, dry_run=dry_run, as_json=as_json, retry_failed=retry_failed,
                  workers=workers, cluster=cluster, yes=yes, max_hours=max_hours)


@app.command()
def merge(output: str = typer.Argument(..., help="database to write (a new file)"),
          inputs: List[str] = typer.Argument(..., help="results databases to combine"),
          as_json: bool = typer.Option(False, "--json", help="print a JSON summary")) -> None:
    """Combine results databases made on different machines into a new one (rows
    deduplicated by job hash and machine)."""
    from .study.merge import merge_command

    merge_command(output, inputs, as_json=as_json)  # prints its own summary


@app.command()
def report(db: str = typer.Argument(DEFAULT_DB, help="results database"),
           output: Optional[str] = typer.Option(None, "-o", "--output",
                                                help="HTML file (default: next to the DB)"),
           figures: Optional[str] = typer.Option(
               None, "--figures", help="folder: every figure as PDF + SVG, every table as "
                                       "CSV + LaTeX (booktabs)"),
           as_json: bool = typer.Option(False, "--json", help="print a JSON summary")) -> None:
    """Write the report (one self-contained HTML file + a Markdown summary) from a database."""
    from .study.cli_commands import report_command

    report_command(db, output=output, as_json=as_json, figures=figures)  # prints its summary


@app.command(name="plan")
def plan_cmd(
        model: str = typer.Argument(..., help="zoo model name, or a model file (prune -o, "
                                              "pack); omit with --model"),
        user_model: Optional[str] = _USER_MODEL,
        input_shape: Optional[str] = _INPUT_SHAPE,
        example_input: Optional[str] = _EXAMPLE_INPUT,
        data: Optional[str] = _DATA,
        method: str = typer.Option("magnitude", "--method", help=_PRUNE_HELP["method"]),
        sparsity: float = typer.Option(0.9, "--sparsity", help="fraction removed, in [0, 1)"),
        objective: str = typer.Option("latency", "--objective",
                                      help="latency (fastest per layer) | size (smallest file "
                                           "within --budget-ms)"),
        budget_ms: Optional[float] = typer.Option(
            None, "--budget-ms", help="whole-model latency budget for --objective size "
                                      "(default: the dense model's measured latency)"),
        batch: int = typer.Option(1, "--batch", help="batch size to plan for"),
        threads: int = typer.Option(1, "--threads", help="threads (PyTorch and kernels)"),
        engine: str = typer.Option("native", "--engine",
                                   help="native | torch-sparse | scipy (engines that take a "
                                        "per-layer plan)"),
        values: str = typer.Option("fp32", "--values", help="fp32 | fp16 | int8"),
        scope: str = typer.Option("layer", "--scope", help=_PRUNE_HELP["scope"]),
        schedule: str = typer.Option("oneshot", "--schedule", help=_PRUNE_HELP["schedule"]),
        finetune_steps: int = typer.Option(FINETUNE_STEPS, "--finetune-steps",
                                           help=_FT_STEPS_HELP),
        finetune_lr: Optional[float] = _FT_LR,
        finetune_batch: Optional[int] = _FT_BATCH,
        finetune_epochs: Optional[float] = _FT_EPOCHS,
        finetune_schedule: Optional[str] = _FT_SCHEDULE,
        no_early_stop: bool = _FT_NO_EARLY_STOP,
        validation: float = _FT_VALIDATION,
        rounds: Optional[int] = _ROUNDS,
        block: str = typer.Option("4x4", "--block",
                                  help="block shape (block pruning and the bsr candidate)"),
        n: int = typer.Option(2, "--n", help="N of N:M (pruning and the nm candidate)"),
        m: int = typer.Option(4, "--m", help="M of N:M"),
        norm: str = typer.Option("l1", "--norm", help="l1 | l2 (block and channel ranking)"),
        layers: Optional[str] = typer.Option(None, "--layers", help=_PRUNE_HELP["layers"]),
        seed: int = typer.Option(0, "--seed", help="model, scoring and fine-tuning seed"),
        no_cache: bool = typer.Option(False, "--no-cache",
                                      help="measure again instead of reusing this machine's "
                                           "cached layer timings"),
        output: Optional[str] = typer.Option(None, "-o", "--output",
                                             help="write the planned model file (the plan and "
                                                  "its timings go in its manifest)"),
        hosts: Optional[str] = typer.Option(None, "--hosts",
                                            help="'all' or ENGINE/FORMAT,...: also time the "
                                                 "planned model beside these whole-graph "
                                                 "engines and keep the fastest (all: "
                                                 "onnxruntime/dense, openvino/dense, "
                                                 "openvino/csr)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Choose a storage format per pruned layer by measuring each candidate on this machine,
    then verify and time the planned model against dense and every single-format model."""
    from . import zoo
    from .planner import check_args
    from .planner.command import plan_command, render

    check_args(objective, budget_ms, batch, threads, engine, values)
    from .hosts import parse_hosts

    host_list = parse_hosts(True if hosts == "all" else hosts)
    zoo.check_seed(seed)
    is_file = Path(model).is_file()
    if not is_file:
        zoo.get_spec(model)
        _check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                             finetune_steps=finetune_steps, rounds=rounds, block=block, n=n,
                             m=m, norm=norm, layers=layers, seed=seed)
    ft = _finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                        no_early_stop, validation)
    if output:
        _check_output(output)
    run = None if is_file else (lambda: _run_prune(model, method, sparsity, scope, schedule,
                                                   finetune_steps, rounds, block, n, m, norm,
                                                   layers, seed, not as_json, finetune=ft))
    doc = plan_command(model, prune=run, objective=objective, budget_ms=budget_ms, batch=batch,
                       threads=threads, engine=engine, values=values, output=output,
                       cache=not no_cache, seed=seed, progress=not as_json,
                       format_opts={"block": _parse_block(block), "n": n, "m": m},
                       hosts=host_list)
    if as_json:
        _emit_json(doc)
        return
    render(doc, out)


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"prunebench: warning: {message}\n"


def _check_profile_threads(profile: str, threads: int) -> None:
    from .measure.profile import PROFILES

    if profile not in PROFILES:
        raise BadInputError(f"--profile: got {profile!r}; allowed: {', '.join(PROFILES)}")
    if profile == "edge" and threads != 1:
        raise BadInputError(f"--threads: got {threads} with --profile edge; the edge profile "
                            "runs on 1 thread")


def _run_in_profile(profile: str) -> None:
    """Run this command again in a child process in ``profile`` unless this process already
    runs in it (numba and torch read the profile's variables when they load); exit with the
    child's status."""
    from .measure.profile import run_in_profile

    rc = run_in_profile(profile, _ARGV)
    if rc is not None:
        raise typer.Exit(rc)


_ARGV: list[str] = []  # this invocation's arguments (main sets them), for _run_in_profile


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning expected errors into one line and exit 2."""
    import warnings

    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)

    warnings.formatwarning = _one_line_warning
    try:
        from .usermodel import rewrite_argv   # --model module:factory, .onnx / graph files

        argv = rewrite_argv(sys.argv[1:] if argv is None else argv)
        rv = app(args=argv, prog_name="prunebench", standalone_mode=False)
        # typer >= 0.2x turns Ctrl-C into Exit(130) itself and, outside standalone mode,
        # *returns* 130 instead of raising: without this the interrupted command exited 0
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            if rv == 130:
                print("prunebench: interrupted", file=sys.stderr)
            return rv
    except cx.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx is not None else e.format_message())
        return 0
    except cx.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        print(f"prunebench: error: {msg}", file=sys.stderr)
        return 2
    except PrunebenchError as e:
        print(f"prunebench: error: {e}", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("prunebench: interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:  # a size far beyond the machine: one line, not a traceback
        msg = (str(e) or "allocation failed").replace("\n", " ")
        print(f"prunebench: error: not enough memory: {msg}; use smaller sizes", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except OSError as e:  # disk full, unwritable or odd path reached past the checks: one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"prunebench: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except cx.ClickException as e:
        print(f"prunebench: error: {e.format_message()}", file=sys.stderr)
        return 2
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
