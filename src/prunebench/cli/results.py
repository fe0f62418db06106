"""``prunebench results``, ``report`` and ``merge``: what a results database holds, the
report written from it, and databases from several machines combined into one. The plain
functions :func:`report_command` and :func:`merge_command` print their summary and return the
JSON document they printed."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer
from rich.table import Table

from ..errors import BadInputError
from .options import DEFAULT_DB, JsonSummary
from .output import emit_json, out


def results(db: Annotated[str, typer.Argument(help="results database")] = DEFAULT_DB,
            csv: Annotated[Optional[str], typer.Option("--csv",
                                                       help="export all rows to CSV")] = None,
            parquet: Annotated[Optional[str], typer.Option(
                "--parquet", help="export all rows to Parquet")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="print rows as JSON")] = False
            ) -> None:
    """Print the stored results as a table, or export them."""
    from ..study.store import Store, export_rows

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
        emit_json([{k: v for k, v in r.items() if k != "samples"} for r in rows])
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


def merge(output: Annotated[str, typer.Argument(help="database to write (a new file)")],
          inputs: Annotated[List[str], typer.Argument(help="results databases to combine")],
          as_json: JsonSummary = False) -> None:
    """Combine results databases made on different machines into a new one (rows
    deduplicated by job hash and machine)."""
    merge_command(output, inputs, as_json=as_json)  # prints its own summary


def merge_command(out: str, inputs: list[str], as_json: bool = False) -> dict[str, Any]:
    """``prunebench merge OUT IN1 [IN2 ...] [--json]``."""
    from ..study.merge import merge_databases

    summary = merge_databases(out, list(inputs))
    if as_json:
        emit_json(summary)
    else:
        parts = ", ".join(f"{Path(i['path']).name} +{i['results_added']}"
                          for i in summary["inputs"])
        print(f"merged {len(inputs)} database(s) into {summary['out']}: {summary['results']} "
              f"results, {summary['skipped']} skip records, {summary['machines']} machine(s) "
              f"({parts})")
    return summary


def report(db: Annotated[str, typer.Argument(help="results database")] = DEFAULT_DB,
           output: Annotated[Optional[str], typer.Option(
               "-o", "--output", help="HTML file (default: next to the DB)")] = None,
           figures: Annotated[Optional[str], typer.Option(
               "--figures", help="folder: every figure as PDF + SVG, every table as "
                                 "CSV + LaTeX (booktabs)")] = None,
           as_json: JsonSummary = False) -> None:
    """Write the report (one self-contained HTML file + a Markdown summary) from a database."""
    report_command(db, output=output, as_json=as_json, figures=figures)  # prints its summary


def report_command(db: str = DEFAULT_DB, output: str | None = None, as_json: bool = False,
                   figures: str | None = None) -> dict[str, Any]:
    """``prunebench report [DB] [-o FILE.html] [--figures DIR] [--json]``: write the HTML
    report (and a Markdown summary beside it, same name with .md) from a results database.
    The default output is ``report.html`` next to the database. ``--figures DIR`` also writes
    every figure as PDF and SVG and every table as CSV and LaTeX into DIR."""
    from ..report import write_report

    dbp = Path(db)
    if not dbp.exists():
        raise BadInputError(f"database: {db!r} does not exist")
    target = Path(output) if output else dbp.with_name("report.html")
    paths = write_report(dbp, target, figures=figures)
    doc = {"database": str(dbp), "report": str(paths["html"]),
           "markdown": str(paths["markdown"]), "conclusions": paths["conclusions"],
           "findings": paths["findings"]}
    if "exported" in paths:
        doc["exported"] = {k: [str(p) for p in v] for k, v in paths["exported"].items()}
    if as_json:
        emit_json(doc)
    else:
        print(f"report: {paths['html']} (summary {paths['markdown']})")
        if "exported" in paths:
            ex = paths["exported"]
            print(f"figures: {len(ex['figures']) // 2} (PDF + SVG), tables: "
                  f"{len(ex['tables']) // 2} (CSV + LaTeX) in {figures}")
        for c in paths["conclusions"]:
            print(f"* {c}")
        for f in paths["findings"]:
            print(f"- {f}")
    return doc
