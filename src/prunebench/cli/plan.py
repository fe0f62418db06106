"""``prunebench plan``: a storage format per pruned layer, chosen by measuring each candidate
on this machine (the planning is :func:`prunebench.planner.command.plan_command`; this module
checks the options and renders the table)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..recipe import FINETUNE_STEPS
from .options import (VALIDATION_DEFAULT, DataFile, ExampleInput, FinetuneBatch,
                      FinetuneEpochs, FinetuneLr, FinetuneSchedule, FinetuneSteps, InputShape,
                      JsonDoc, Layers, Method, NoEarlyStop, Norm, Rounds, Schedule, Scope, Seed,
                      UserModel, Validation, Values, check_output, check_prune_options,
                      finetune_args, parse_block)
from .output import emit_json, out
from .prune import run_prune


def plan_cmd(
        model: Annotated[str, typer.Argument(help="zoo model name, or a model file (prune -o, "
                                                  "pack); omit with --model")],
        user_model: UserModel = None,
        input_shape: InputShape = None,
        example_input: ExampleInput = None,
        data: DataFile = None,
        method: Method = "magnitude",
        sparsity: Annotated[float, typer.Option("--sparsity",
                                                help="fraction removed, in [0, 1)")] = 0.9,
        objective: Annotated[str, typer.Option(
            "--objective", help="latency (fastest per layer) | size (smallest file within "
                                "--budget-ms)")] = "latency",
        budget_ms: Annotated[Optional[float], typer.Option(
            "--budget-ms", help="whole-model latency budget for --objective size (default: the "
                                "dense model's measured latency)")] = None,
        batch: Annotated[int, typer.Option("--batch", help="batch size to plan for")] = 1,
        threads: Annotated[int, typer.Option("--threads",
                                             help="threads (PyTorch and kernels)")] = 1,
        engine: Annotated[str, typer.Option(
            "--engine", help="native | torch-sparse | scipy (engines that take a per-layer "
                             "plan)")] = "native",
        values: Values = "fp32",
        scope: Scope = "layer",
        schedule: Schedule = "oneshot",
        finetune_steps: FinetuneSteps = FINETUNE_STEPS,
        finetune_lr: FinetuneLr = None,
        finetune_batch: FinetuneBatch = None,
        finetune_epochs: FinetuneEpochs = None,
        finetune_schedule: FinetuneSchedule = None,
        no_early_stop: NoEarlyStop = False,
        validation: Validation = VALIDATION_DEFAULT,
        rounds: Rounds = None,
        block: Annotated[str, typer.Option(
            "--block", help="block shape (block pruning and the bsr candidate)")] = "4x4",
        n: Annotated[int, typer.Option("--n", help="N of N:M (pruning and the nm "
                                                   "candidate)")] = 2,
        m: Annotated[int, typer.Option("--m", help="M of N:M")] = 4,
        norm: Norm = "l1",
        layers: Layers = None,
        seed: Seed = 0,
        no_cache: Annotated[bool, typer.Option(
            "--no-cache", help="measure again instead of reusing this machine's cached layer "
                               "timings")] = False,
        output: Annotated[Optional[str], typer.Option(
            "-o", "--output", help="write the planned model file (the plan and its timings go "
                                   "in its manifest)")] = None,
        hosts: Annotated[Optional[str], typer.Option(
            "--hosts", help="'all' or ENGINE/FORMAT,...: also time the planned model beside "
                            "these whole-graph engines and keep the fastest (all: "
                            "onnxruntime/dense, openvino/dense, openvino/csr)")] = None,
        as_json: JsonDoc = False) -> None:
    """Choose a storage format per pruned layer by measuring each candidate on this machine,
    then verify and time the planned model against dense and every single-format model."""
    from .. import zoo
    from ..hosts import parse_hosts
    from ..planner import check_args
    from ..planner.command import plan_command

    check_args(objective, budget_ms, batch, threads, engine, values)
    host_list = parse_hosts(True if hosts == "all" else hosts)
    zoo.check_seed(seed)
    is_file = Path(model).is_file()
    if not is_file:
        zoo.get_spec(model)
        check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                            finetune_steps=finetune_steps, rounds=rounds, block=block, n=n,
                            m=m, norm=norm, layers=layers, seed=seed)
    ft = finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                       no_early_stop, validation)
    if output:
        check_output(output)

    def run() -> Any:
        return run_prune(model, method, sparsity, scope, schedule, finetune_steps, rounds,
                         block, n, m, norm, layers, seed, not as_json, finetune=ft)

    doc = plan_command(model, prune=None if is_file else run, objective=objective,
                       budget_ms=budget_ms, batch=batch, threads=threads, engine=engine,
                       values=values, output=output, cache=not no_cache, seed=seed,
                       progress=not as_json,
                       format_opts={"block": parse_block(block), "n": n, "m": m},
                       hosts=host_list)
    if as_json:
        emit_json(doc)
        return
    render(doc, out)


def render(doc: dict[str, Any], out: Console) -> None:
    """The human-readable table of a plan document."""
    t = Table(title=f"{doc['model']}: {doc['objective']} plan, batch {doc['batch']}, "
                    f"{doc['threads']} thread(s), engine {doc['engine']}, {doc['values']}")
    cands: list[str] = []
    for lay in doc["layers"]:
        for f in lay["times_ms"]:
            if f not in cands:
                cands.append(f)
    for c in ["layer", "shape", "sparsity", "chosen"] + [f"{f} ms" for f in cands] + ["why"]:
        t.add_column(c)
    for lay in doc["layers"]:
        times = lay["times_ms"]
        t.add_row(lay["name"], "x".join(map(str, lay["shape"])), f"{lay['sparsity']:.1%}",
                  lay["format"],
                  *[(f"{times[f]:.4g}" if f in times else "-") for f in cands],
                  lay["reason"])
    out.print(t)
    best = doc["best_single_format"]
    out.print(f"planned {doc['planned_ms']:.4g} ms (from {doc['chosen_from']}), dense "
              f"{doc['dense_ms']:.4g} ms, best single format "
              + (f"{best} {doc['best_single_ms']:.4g} ms" if best else "none")
              + f"; speedup over dense {doc['speedup_vs_dense']:.2f}x")
    out.print(f"file {doc['planned_file_bytes']:,} B vs dense fp32 {doc['dense_file_bytes']:,} B"
              + (f" -> {doc['output']}" if doc.get("output") else "")
              + (f"; {doc['cache_hits']} timings from this machine's cache"
                 if doc["cache_hits"] else ""))
    host = doc.get("host")
    if host:
        runs = ", ".join(f"{k} {v:.4g} ms" for k, v in host["times_ms"].items())
        out.print(f"engine: {host['engine']} ({host['format']}), the fastest of {runs}"
                  + "".join(f"; {k} unavailable: {why}" for k, why in host["unavailable"].items()))
    if doc["objective"] == "size" and doc["planned_ms"] > doc["budget_ms"]:
        out.print(f"[yellow]no plan meets the budget {doc['budget_ms']:.4g} ms; this is the "
                  "fastest one measured[/yellow]")
