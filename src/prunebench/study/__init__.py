"""Studies: a YAML spec expanded into jobs (prune, size, latency, profile, controls), run one at
a time with every result in its own transaction of the SQLite store, resumable at any point.

Examples
--------
>>> from prunebench.study import load_spec, run_study          # doctest: +SKIP
>>> summary = run_study(load_spec("smoke"), "runs/smoke")       # doctest: +SKIP
>>> summary["done"], summary["report"]                          # doctest: +SKIP
"""
from pathlib import Path
from typing import Any

from .spec import BUILTIN, Spec, load_spec


def run_study(spec: Spec, out: str | Path = "runs", **kwargs: Any) -> dict[str, Any]:
    """See :func:`prunebench.study.runner.run_study` (imported lazily: it pulls in torch)."""
    from .runner import run_study as _run

    return _run(spec, out, **kwargs)


__all__ = ["BUILTIN", "Spec", "load_spec", "run_study"]
