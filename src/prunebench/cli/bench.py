"""``prunebench bench`` (one model, dense or pruned on an engine) and ``prunebench demo`` (the
dense baseline of every zoo model).

``bench`` is four steps, each its own function: :func:`check_bench` judges every option
before a model is loaded, :func:`run_bench` measures, :func:`store_bench` writes the row and
:func:`render_bench` prints it."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..errors import BadInputError, VerificationError
from ..recipe import FINETUNE_STEPS
from .options import (DEFAULT_DB, VALIDATION_DEFAULT, DataFile, ExampleInput, FinetuneBatch,
                      FinetuneEpochs, FinetuneLr, FinetuneSchedule, FinetuneSteps, InputShape,
                      JsonDoc, M, N, NoEarlyStop, UserModel, Validation, check_batch_fits,
                      check_prune_options, check_profile_threads, check_timing_options,
                      finetune_args, parse_block, parse_layers, run_in_profile)
from .output import emit_json, err, out


@dataclasses.dataclass(frozen=True)
class BenchRequest:
    """One ``bench`` invocation, checked: what :func:`run_bench` measures."""

    model: str                 # the MODEL argument: a zoo name or a model file
    zoo_name: str              # the zoo model (read from the file's manifest for a file)
    dense_only: bool           # the dense PyTorch baseline, nothing pruned or compiled
    method: Optional[str]
    sparsity: float
    scope: str
    finetune_steps: int
    finetune: dict[str, Any]
    block: tuple[int, int]
    n: int
    m: int
    layers: Optional[str]
    format: Optional[str]
    values: str
    engine: Optional[str]
    fallback: str
    batch: int
    threads: int
    seed: int
    warmup: int
    min_runs: int
    min_time: float
    rss: bool
    progress: bool


def check_bench(model: str, *, method: Optional[str], sparsity: Optional[float], scope: str,
                finetune_steps: int, ft_options: dict[str, Any], layers: Optional[str],
                block: str, n: int, m: int, format: Optional[str], values: str,
                engine: Optional[str], fallback: str, batch: int, threads: int, seed: int,
                warmup: int, min_runs: int, min_time: float, rss: bool, db: str,
                profile: str, progress: bool) -> BenchRequest:
    """Every option of ``bench``, checked before a model is loaded (or trained on a cold
    cache) and before the database is created: bad input writes nothing. ``ft_options`` are
    :func:`~prunebench.cli.options.finetune_args`'s arguments."""
    import os

    from .. import zoo
    from ..benchmark import (check_batch, check_engine_format, check_threads, default_engine,
                             default_format)
    from ..study.store import check_database

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
    check_profile_threads(profile, threads)
    zoo.check_seed(seed)
    check_timing_options(warmup, min_runs, min_time)
    dense_only = (not is_file and method is None and format in (None, "dense")
                  and engine in (None, "torch-dense") and values == "fp32")
    blk = (4, 4)  # not read by the dense baseline
    if not dense_only:
        eng_name = engine or default_engine(format)
        check_engine_format(eng_name, format or default_format(eng_name), values)
        blk = parse_block(block)
        if method is not None:
            check_prune_options(None if is_file else model, method, sparsity, scope=scope,
                                finetune_steps=finetune_steps, block=block, n=n, m=m,
                                layers=layers, seed=seed)
    ft = finetune_args(**ft_options)
    zoo_name = model
    if is_file:  # read (and refused when damaged or a pickle) before the database is touched
        from ..runtime import load_model

        zoo_name = load_model(model)[1]["model"]
    check_batch_fits(zoo_name, batch)
    # validated now, but opened (created) only to store the row: bad input writes nothing
    check_database(db)
    return BenchRequest(model=model, zoo_name=zoo_name, dense_only=dense_only, method=method,
                        sparsity=sparsity, scope=scope, finetune_steps=finetune_steps,
                        finetune=ft, block=blk, n=n, m=m, layers=layers, format=format,
                        values=values, engine=engine, fallback=fallback, batch=batch,
                        threads=threads, seed=seed, warmup=warmup, min_runs=min_runs,
                        min_time=min_time, rss=rss, progress=progress)


def run_bench(req: BenchRequest) -> dict[str, Any]:
    """Measure what ``req`` asks: the result dict of :func:`~prunebench.benchmark.bench_dense`
    or :func:`~prunebench.benchmark.bench_pruned`, with the task metrics of models judged by
    more than accuracy."""
    from ..benchmark import add_task_metrics, bench_dense, bench_pruned

    if req.dense_only:
        res = bench_dense(req.model, batch=req.batch, threads=req.threads, seed=req.seed,
                          warmup=req.warmup, min_runs=req.min_runs, min_time=req.min_time,
                          rss=req.rss, progress=req.progress)
        res["ok"] = True
    else:
        res = bench_pruned(req.model, method=req.method, sparsity=req.sparsity,
                           scope=req.scope, finetune_steps=req.finetune_steps,
                           finetune=req.finetune, block=req.block, n=req.n, m=req.m,
                           layers=parse_layers(req.layers), format=req.format,
                           values=req.values, engine=req.engine, fallback=req.fallback,
                           batch=req.batch, threads=req.threads, seed=req.seed,
                           warmup=req.warmup, min_runs=req.min_runs, min_time=req.min_time,
                           rss=req.rss, progress=req.progress)
    add_task_metrics(res, req.dense_only)
    return res


def store_bench(res: dict[str, Any], db: str) -> dict[str, Any]:
    """Store the result's row in ``db``; the report with ``database`` and ``row_id`` added."""
    from ..study.store import Store

    with Store(db) as store:
        row_id = store.add(res["row"], res["machine"])
    return dict(res["report"], database=db, row_id=row_id)


def failure(rep: dict[str, Any]) -> VerificationError:
    """The error of a configuration that failed verification (stored, never timed)."""
    v = rep["verification"]
    return VerificationError(
        f"{rep['model']} on {rep['engine']} ({rep['format']}, {rep['values']}): "
        f"{rep['reason']} (max error {v['max_abs']:.3g}, {v['rel_max']:.3g} of the output "
        f"scale; top-1 agreement {v['top1_agreement']:.2%} on {v['n']} inputs); not timed, "
        f"stored as failed row {rep['row_id']} in {rep['database']}")


def render_bench(rep: dict[str, Any], batch: int, threads: int) -> None:
    """The human-readable lines of a stored ``bench`` report."""
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
    out.print(f"stored as row {rep['row_id']} in {rep['database']}")


def bench(model: Annotated[str, typer.Argument(
              help="zoo model name, a model file written by pack / prune -o, or an .onnx file; "
                   "omit with --model")],
          user_model: UserModel = None,
          input_shape: InputShape = None,
          example_input: ExampleInput = None,
          data: DataFile = None,
          batch: Annotated[int, typer.Option("--batch", help="inputs per call (>= 1)")] = 1,
          threads: Annotated[int, typer.Option("--threads",
                                               help="intra-op threads (1..cores)")] = 1,
          seed: Annotated[int, typer.Option("--seed", help="model seed")] = 0,
          warmup: Annotated[int, typer.Option("--warmup", help="untimed calls first")] = 3,
          min_runs: Annotated[int, typer.Option("--min-runs", help="timed calls at least")] = 20,
          min_time: Annotated[float, typer.Option("--min-time",
                                                  help="seconds of timed calls at least")] = 1.0,
          method: Annotated[Optional[str], typer.Option(
              "--method", help="prune first: random | magnitude | gradient | taylor | block | "
                               "nm | channel")] = None,
          sparsity: Annotated[Optional[float], typer.Option(
              "--sparsity", help="fraction removed, in [0, 1) (with --method; default "
                                 "0.9)")] = None,
          scope: Annotated[str, typer.Option("--scope", help="layer | global")] = "layer",
          finetune_steps: FinetuneSteps = FINETUNE_STEPS,
          finetune_lr: FinetuneLr = None,
          finetune_batch: FinetuneBatch = None,
          finetune_epochs: FinetuneEpochs = None,
          finetune_schedule: FinetuneSchedule = None,
          no_early_stop: NoEarlyStop = False,
          validation: Validation = VALIDATION_DEFAULT,
          layers: Annotated[Optional[str], typer.Option(
              "--layers", help="comma-separated modules, 'all' or 'default'")] = None,
          block: Annotated[str, typer.Option("--block",
                                             help="block shape (method and bsr)")] = "4x4",
          n: N = 2,
          m: M = 4,
          format: Annotated[Optional[str], typer.Option(
              "--format", help="format of the pruned layers (default: dense for "
                               "torch-dense/onnxruntime, else csr)")] = None,
          values: Annotated[str, typer.Option("--values", help="fp32 | fp16 | int8")] = "fp32",
          engine: Annotated[Optional[str], typer.Option(
              "--engine", help="torch-dense | torch-sparse | scipy | onnxruntime | native | "
                               "openvino | litert (default: torch-dense for dense, else "
                               "native)")] = None,
          fallback: Annotated[str, typer.Option(
              "--fallback", help="error | dense: a pruned layer the format cannot serve fails, "
                                 "or stays dense")] = "error",
          db: Annotated[str, typer.Option("--db", help="results database (SQLite)")] = DEFAULT_DB,
          no_rss: Annotated[bool, typer.Option("--no-rss",
                                               help="skip the peak-RSS child process")] = False,
          profile: Annotated[str, typer.Option(
              "--profile", help="default | edge (1 thread, 128-bit SIMD code: a proxy for a "
                                "Cortex-A board; runs in a child process)")] = "default",
          as_json: JsonDoc = False) -> None:
    """Benchmark a model: as is (dense PyTorch), or pruned (--method) / packed (a model file)
    and compiled for an engine and format (--engine, --format, --values), verified against
    dense first; latency, memory, accuracy; store the row."""
    req = check_bench(model, method=method, sparsity=sparsity, scope=scope,
                      finetune_steps=finetune_steps,
                      ft_options={"lr": finetune_lr, "batch": finetune_batch,
                                  "epochs": finetune_epochs, "schedule": finetune_schedule,
                                  "no_early_stop": no_early_stop, "validation": validation},
                      layers=layers, block=block, n=n, m=m, format=format, values=values,
                      engine=engine, fallback=fallback, batch=batch, threads=threads,
                      seed=seed, warmup=warmup, min_runs=min_runs, min_time=min_time,
                      rss=not no_rss, db=db, profile=profile, progress=not as_json)
    run_in_profile(profile)
    res = run_bench(req)
    rep = store_bench(res, db)
    if not res["ok"]:
        if as_json:
            emit_json(rep)
        raise failure(rep)
    if as_json:
        emit_json(rep)
        return
    render_bench(rep, batch, threads)


def demo(db: Annotated[str, typer.Option("--db", help="results database (SQLite)")] = DEFAULT_DB,
         threads: Annotated[int, typer.Option("--threads",
                                              help="intra-op threads for timing")] = 1,
         as_json: JsonDoc = False) -> None:
    """The main job: train the zoo's dense models (cached) and benchmark every model at
    batch 1; rows go to the database and a table is printed."""
    from .. import zoo
    from ..benchmark import bench_dense, check_threads
    from ..study.store import Store, check_writable

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
        emit_json({"database": db, "results": reports})
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
