"""``prunebench plan``: prune a zoo model (or load a model file), plan a format per layer by
measuring on this machine, verify, report, and optionally write the planned model file. (The
command's options and its table are in :mod:`prunebench.cli.plan`.)"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from ..runtime.encoding import runtime_option_keys
from .search import check_args, plan


def plan_command(model: str, *, prune: Callable[[], Any] | None, objective: str,
                 budget_ms: float | None, batch: int, threads: int, engine: str, values: str,
                 output: str | None, cache: bool, seed: int, progress: bool,
                 format_opts: dict[str, Any],
                 hosts: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """Run the planner and return the JSON document of ``plan --json``.

    ``model`` is a zoo name (then ``prune()`` returns (dense net, data, PruneResult)) or a
    model file written by ``prune -o`` / ``pack`` (``prune`` is None)."""
    from .. import zoo
    from ..runtime import load_model, save_model
    from ..runtime.modelfile import zoo_dense_file_bytes

    check_args(objective, budget_ms, batch, threads, engine, values)
    say = _printer(progress)
    if prune is None:
        pruned, manifest = load_model(model)
        zoo_name, data = manifest["model"], None
        spec = zoo.get_spec(zoo_name)
        if spec.trained and spec.dataset is not None:
            data = zoo.load_dataset(spec.dataset)
        source = {"file": str(model)}
    else:
        _, data, result = prune()
        pruned, zoo_name = result.model, model
        spec = zoo.get_spec(zoo_name)
        rep = result.report()
        source = {k: rep.get(k) for k in ("method", "scope", "schedule", "sparsity_requested",
                                          "sparsity_achieved", "accuracy_pruned")}
    from ..study.stages import inputs

    # timed on the first `batch` inputs; verified on at least 64 test inputs when there is data
    n = max(batch, 64) if data is not None else batch
    x = inputs(zoo_name, data, n, seed=1234)
    y = data.y_test[:n] if data is not None and len(data.y_test) >= n else None
    p = plan(pruned, x, objective=objective, budget_ms=budget_ms, batch=batch,
             threads=threads, engine=engine, values=values, cache=cache, progress=say,
             verify_labels=y, hosts=hosts, **format_opts)
    doc = p.to_json()
    doc.update(model=zoo_name, source=source, latency_only=not spec.trained)
    if output is None:
        with tempfile.TemporaryDirectory() as tmp:
            doc["planned_file_bytes"] = _write(Path(tmp) / "planned.pbm", pruned, zoo_name,
                                               seed, p, values, save_model)
    else:
        doc["planned_file_bytes"] = _write(Path(output), pruned, zoo_name, seed, p, values,
                                           save_model)
        doc["output"] = output
    doc["dense_file_bytes"] = zoo_dense_file_bytes(zoo_name)  # what pack compares with
    return doc


def _write(path: Path, pruned, zoo_name: str, seed: int, p, values: str, save_model) -> int:
    """Write the planned model file (atomically: a temporary name renamed at the end)."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        save_model(tmp, pruned, zoo_name=zoo_name, seed=seed, format=p.matrix_formats or "dense",
                   values=values, keep_smaller=False, planner=p.manifest(),
                   **{k: v for k, v in p.format_options.items()
                      if k in runtime_option_keys()})
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size


def _printer(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda _msg: None
    from rich.console import Console

    err = Console(stderr=True)
    return lambda msg: err.print(f"[dim]plan:[/dim] {msg}")
