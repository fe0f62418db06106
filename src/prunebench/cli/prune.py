"""``prunebench prune``, ``pack`` and ``inspect``: prune a zoo model (and fine-tune it), save
it with its matrices in a storage format, and read a model file's byte breakdown."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from torch import nn

from ..errors import BadInputError
from ..recipe import FINETUNE_STEPS
from .options import (VALIDATION_DEFAULT, DataFile, ExampleInput, FinetuneBatch,
                      FinetuneEpochs, FinetuneLr, FinetuneSchedule, FinetuneSteps, InputShape,
                      JsonDoc, Layers, M, Method, N, NoEarlyStop, Norm, Rounds, Schedule, Scope,
                      Seed, Sparsity, UserModel, Validation, check_format_options, check_output,
                      check_prune_options, finetune_args, parse_block, parse_layers)
from .output import emit_json, out


def run_prune(model: str, method: str, sparsity: float, scope: str, schedule: str,
              finetune_steps: int, rounds: Optional[int], block: str, n: int, m: int, norm: str,
              layers: Optional[str], seed: int, progress: bool, distill: bool = False,
              finetune: Optional[dict[str, Any]] = None) -> tuple[nn.Module, Any, Any]:
    """Load (train if needed) a zoo model and prune it: (dense model, data or None,
    PruneResult). Shared by prune, pack and plan."""
    from .. import zoo
    from ..pruning import prune

    spec = zoo.get_spec(model)
    net, data, init = zoo.load(model, trained=spec.trained, seed=seed, progress=progress,
                               return_init=True)
    chosen = parse_layers(layers)
    example = spec.example_input(1, seed) if data is None else None
    result = prune(net, method, sparsity, scope=scope, schedule=schedule, finetune=data,
                   finetune_steps=finetune_steps if data is not None else 0, rounds=rounds,
                   block=parse_block(block), n=n, m=m, norm=norm, layers=chosen, seed=seed,
                   rewind_state=init if schedule == "rewind" else None,
                   example_input=example, progress=progress, distill=distill,
                   **(finetune or {}))
    return net, data, result


def prune_cmd(
        model: Annotated[str, typer.Argument(help="zoo model name; omit with --model")],
        user_model: UserModel = None,
        input_shape: InputShape = None,
        example_input: ExampleInput = None,
        data: DataFile = None,
        method: Method = "magnitude",
        sparsity: Sparsity = 0.9,
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
        block: Annotated[str, typer.Option("--block",
                                           help="block shape for --method block")] = "4x4",
        n: N = 2,
        m: M = 4,
        norm: Norm = "l1",
        layers: Layers = None,
        seed: Seed = 0,
        distill: Annotated[bool, typer.Option(
            "--distill", help="fine-tune by distillation from the dense model (soft outputs, "
                              "T=4, on each batch plus a mixup and a noisy copy of it; recovers "
                              "far more on small data; give it --finetune-steps 3000)")] = False,
        output: Annotated[Optional[str], typer.Option(
            "-o", "--output", help="write the pruned model (dense) to FILE")] = None,
        as_json: JsonDoc = False) -> None:
    """Prune a zoo model, fine-tune it, and account for sparsity, MACs and accuracy."""
    from .. import zoo
    from ..runtime import save_model

    # every option is checked before the model is loaded (or trained on a cold cache)
    zoo.get_spec(model)
    check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                        finetune_steps=finetune_steps, rounds=rounds, block=block, n=n, m=m,
                        norm=norm, layers=layers, seed=seed)
    ft = finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                       no_early_stop, validation)
    if output:
        check_output(output)
    net, _, result = run_prune(model, method, sparsity, scope, schedule, finetune_steps,
                               rounds, block, n, m, norm, layers, seed, not as_json,
                               distill=distill, finetune=ft)
    rep = dict(result.report(), model=model, seed=seed)
    metrics = zoo.task_metrics(model, result.model, dense_model=net)
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
        emit_json(rep)
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
    acc: dict[str, Any] = {k: rep.get(k) for k in ("accuracy_dense", "accuracy_pruned_before_finetune",
                                   "accuracy_pruned")}
    if acc["accuracy_dense"] is not None:
        out.print("accuracy: dense {accuracy_dense:.2%}, pruned before fine-tuning "
                  "{accuracy_pruned_before_finetune:.2%}, after {accuracy_pruned:.2%}".format(**acc))
    tot = rep.get("totals", {})
    if tot.get("theoretical_speedup"):
        out.print(f"theoretical speedup (MACs dense / nonzero): {tot['theoretical_speedup']:.2f}x")


def pack(model: Annotated[str, typer.Argument(help="zoo model name; omit with --model")],
         user_model: UserModel = None,
         input_shape: InputShape = None,
         example_input: ExampleInput = None,
         data: DataFile = None,
         method: Method = "magnitude",
         sparsity: Sparsity = 0.9,
         format: Annotated[str, typer.Option("--format",
                                             help="storage format for pruned layers")] = "csr",
         values: Annotated[str, typer.Option("--values",
                                             help="fp32 | fp16 | int8 (lossy)")] = "fp32",
         bits: Annotated[int, typer.Option("--bits", help="rcsr delta width: 4 or 8")] = 4,
         rank: Annotated[Optional[int], typer.Option(
             "--rank", help="lowrank: rank of every layer")] = None,
         energy: Annotated[Optional[float], typer.Option(
             "--energy", help="lowrank: fraction of sum(s**2) to keep")] = None,
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
         block: Annotated[str, typer.Option("--block",
                                            help="block shape (method and bsr)")] = "4x4",
         n: N = 2,
         m: M = 4,
         layers: Layers = None,
         seed: Seed = 0,
         output: str = typer.Option(..., "-o", "--output", help="model file to write"),
         as_json: JsonDoc = False) -> None:
    """Prune a zoo model and save it with its weight matrices in a storage format; report the
    file size against the dense fp32 file and the accuracy of the model loaded back."""
    import os

    import torch

    from .. import zoo
    from ..errors import VerificationError
    from ..formats import inspect_container
    from ..measure import state_file_bytes
    from ..runtime import load_model, save_model
    from ..runtime.graphfile import GraphModel, graph_weights
    from ..train import evaluate, predict

    # everything checkable is checked before minutes of loading, pruning and fine-tuning
    check_format_options(format, values, bits=bits, block=block, n=n, m=m, rank=rank,
                         energy=energy)
    zoo.get_spec(model)
    check_prune_options(model, method, sparsity, scope=scope, schedule=schedule,
                        finetune_steps=finetune_steps, rounds=rounds, block=block, n=n, m=m,
                        layers=layers, seed=seed)
    ft = finetune_args(finetune_lr, finetune_batch, finetune_epochs, finetune_schedule,
                       no_early_stop, validation)
    check_output(output)
    net, dataset, result = run_prune(model, method, sparsity, scope, schedule, finetune_steps,
                                     rounds, block, n, m, "l1", layers, seed, not as_json,
                                     finetune=ft)
    rep = result.report()
    info = {k: rep[k] for k in ("method", "scope", "schedule")}
    info.update({k: round(rep[k], 6) for k in ("sparsity_requested", "sparsity_achieved")})
    plan = save_model(output, result.model, zoo_name=model, seed=seed, format=format,
                      values=values, bits=bits, block=parse_block(block), n=n, m=m, rank=rank,
                      energy=energy, info={"prune": info})
    loaded, _ = load_model(output)
    # what the file gives back, measured against the pruned model in memory
    before, after = result.model.state_dict(), loaded.state_dict()
    reference = result.model
    if isinstance(loaded, GraphModel):  # a user model's graph file: its initializers
        before, after, reference = graph_weights(result.model, loaded)
    bit_identical = all(before[k].dtype == after[k].dtype and before[k].shape == after[k].shape
                        and torch.equal(before[k].view(-1).view(torch.uint8),
                                        after[k].view(-1).view(torch.uint8)) for k in before)
    weight_error = max(float((before[k].double() - after[k].double()).abs().max())
                       if before[k].numel() else 0.0 for k in before)
    x = dataset.x_test if dataset is not None else zoo.get_spec(model).example_input(4, seed)
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
           "accuracy_packed": evaluate(loaded, dataset) if dataset is not None else "n/a",
           "lossless": lossless, "bit_identical": bit_identical,
           "max_abs_weight_error": weight_error, "max_abs_output_error": output_error,
           "plan": plan}
    doc["compression_ratio"] = doc["dense_file_bytes"] / doc["file_bytes"]
    if as_json:
        emit_json(doc)
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
    if dataset is not None:
        out.print(f"accuracy: dense {doc['accuracy_dense']:.2%}, pruned "
                  f"{doc['accuracy_pruned']:.2%}, loaded back from the file "
                  f"{doc['accuracy_packed']:.2%}")


def inspect(path: Annotated[str, typer.Argument(help="model file written by pack or prune -o")],
            as_json: JsonDoc = False) -> None:
    """Per-layer format (and why), byte breakdown, and the file's bytes against dense fp32."""
    from ..runtime.modelfile import inspect_model

    if not Path(path).is_file():
        raise BadInputError(f"path: {path!r} is not a file")
    info = inspect_model(path)
    if as_json:
        emit_json(info)
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
