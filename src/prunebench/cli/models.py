"""``prunebench models`` and ``prunebench train``: the zoo and its trained checkpoints."""
from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import BadInputError
from .output import emit_json, out


def models(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the zoo: parameters, dataset, and whether a model is trained or latency-only."""
    from .. import zoo

    rows: list[dict[str, Any]] = []
    for name in zoo.MODELS:
        spec = zoo.get_spec(name)
        rows.append({"name": name, "params": zoo.count_params(spec.build()),
                     "dataset": spec.dataset, "input_shape": list(spec.input_shape),
                     "kind": ("trained" if spec.trained else "pretrained" if spec.pretrained
                              else "latency-only (random weights)"),
                     "description": spec.description})
    if as_json:
        emit_json(rows)
        return
    t = Table(title="prunebench model zoo")
    for c in ("name", "params", "dataset", "input", "kind", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], f"{r['params']:,}", r["dataset"] or "-",
                  "x".join(map(str, r["input_shape"])), r["kind"], r["description"])
    out.print(t)


def train(model: Annotated[str, typer.Argument(help="zoo model name (see `prunebench models`)")],
          seed: Annotated[int, typer.Option("--seed", help="initialisation and training seed")] = 0,
          as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Train a zoo model (or load its cached checkpoint) and report test accuracy."""
    import time

    from .. import zoo
    from ..train import evaluate

    spec = zoo.get_spec(model)
    zoo.check_seed(seed)
    if not spec.trained:
        raise BadInputError(f"model: {model!r} is latency-only (no dataset); trainable: "
                            + ", ".join(n for n in zoo.MODELS if zoo.get_spec(n).trained))
    t0 = time.perf_counter()
    net, data = zoo.load(model, trained=True, seed=seed, progress=not as_json)
    if data is None:  # a trained model's spec names its dataset: zoo.load returned none
        raise BadInputError(f"model: {model!r} came without its dataset {spec.dataset!r}")
    doc = {"model": model, "seed": seed, "dataset": spec.dataset,
           "accuracy": evaluate(net, data), "params": zoo.count_params(net),
           "seconds": time.perf_counter() - t0, "train": vars(spec.train)}
    if as_json:
        emit_json(doc)
    else:
        out.print(f"{model} seed {seed}: test accuracy {doc['accuracy']:.2%} "
                  f"({doc['params']:,} params, {doc['seconds']:.1f} s)")
