"""Reports: tables, figures and findings computed from a results database, written as one
self-contained HTML page (figures embedded, opens offline) and a Markdown summary.

Examples
--------
>>> from prunebench.report import write_report          # doctest: +SKIP
>>> write_report("runs/results.sqlite", "runs/report.html")["findings"][0]  # doctest: +SKIP
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from . import conclusions, data, findings
from .data import StudyData, load
from .findings import Finding, compute

__all__ = ["write_report", "load", "compute", "StudyData", "Finding", "data", "findings",
           "conclusions"]


def write_report(db: str | os.PathLike[str], output: str | os.PathLike[str],
                 figures: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``output`` (HTML) and the Markdown summary beside it (same stem, ``.md``); both
    open with the Conclusions (:mod:`~prunebench.report.conclusions`).

    Both are written to temporary files in the target folder and renamed into place only when
    complete, so a report is never partial. Returns ``{"html", "markdown", "findings",
    "conclusions", "figures"}``, and ``"exported"`` (paths) when ``figures`` names a folder
    to write every figure (PDF, SVG) and table (CSV, LaTeX) into (see :mod:`.export`).
    BadInputError for a missing database, one without study rows, or an output that is a
    directory or in a folder that does not exist."""
    from .export import check_dir, export
    from .page import build_html, build_markdown

    out = Path(output)
    if out.exists() and out.is_dir():
        raise BadInputError(f"--output: {str(out)!r} is a directory, expected an .html file")
    if not out.parent.exists():
        raise BadInputError(f"--output: folder {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise BadInputError(f"--output: folder {str(out.parent)!r} is not writable")
    if figures is not None:
        check_dir(figures)
    d = load(db)
    found = compute(d)
    concl = conclusions.compute(d)
    title = "prunebench report: " + ", ".join(_studies(d)) if _studies(d) else "prunebench report"
    page, nfig = build_html(d, found, title, concl)
    md_path = out.with_suffix(".md")
    md = build_markdown(d, found, title, out.name, concl)
    _atomic_write(md_path, md)
    _atomic_write(out, page)
    res: dict[str, Any] = {"html": out, "markdown": md_path, "findings": [f.text for f in found],
                           "conclusions": [c.text for c in concl], "figures": nfig}
    if figures is not None:
        res["exported"] = export(d, figures)
    return res


def _studies(d: StudyData) -> list[str]:
    models = d.models
    return [f"{len(models)} model(s)"] if models else []


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes it 0600; a report is for reading
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
