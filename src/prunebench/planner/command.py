"""``prunebench plan``: prune a zoo model (or load a model file), plan a format per layer by
measuring on this machine, verify, report, and optionally write the planned model file."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from ..runtime.encoding import runtime_option_keys
from .search import check_args, plan


def plan_command(model: str, *, prune: Callable[[], Any] | None, objective: str,
                 budget_ms: float | None, batch: int, threads: int, engine: str, values: str,
                 output: str | None, cache: bool, seed: int, progress: bool,
                 format_opts: dict, hosts: tuple = ()) -> dict:
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
        if spec.trained:
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


def render(doc: dict, out) -> None:
    """The human-readable table of a plan document."""
    from rich.table import Table

    t = Table(title=f"{doc['model']}: {doc['objective']} plan, batch {doc['batch']}, "
                    f"{doc['threads']} thread(s), engine {doc['engine']}, {doc['values']}")
    cands = []
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
