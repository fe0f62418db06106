"""The tiny study several test folders run, and the job table of a results database.

The tiny study: one model, one method, three sparsities, three formats, two engines (25
result rows and 15 skip records in about 2 s of work, plus ~5 s of imports per process).
``tests/conftest.py`` runs it once per session for the fixtures ``tiny_spec``,
``tiny_reference_db`` and ``tiny_reference``; the distributed tests add controls, a profile
and ``hosts: all`` to it.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

#: the tiny study's grid, under its ``name`` (and ``description``) lines
TINY_GRID = """\
models: [digits-lenet300]
methods: [magnitude]
sparsities: [0.5, 0.8, 0.9]
seeds: [0]
finetune_steps: 0
formats: [dense, csr, bitmap]
values: [fp32]
timed_values: [fp32]
engines: [torch-dense, native]
batches: [1]
threads: [1]
measure: {warmup: 1, min_runs: 3, min_time: 0.02, max_time: 0.1}
verify: {inputs: 16}
"""


def tiny_spec_text(name: str, description: str | None = None, extra: str = "") -> str:
    """The tiny study's YAML named ``name``, with ``extra`` lines after the grid."""
    head = f"name: {name}\n" + (f"description: {description}\n" if description else "")
    return head + TINY_GRID + extra


def write_spec(folder: Path, text: str) -> Path:
    """``text`` written to ``folder/tiny.yaml``."""
    path = folder / "tiny.yaml"
    path.write_text(text)
    return path


def run_reference(spec: Path, out: Path) -> Path:
    """The database of an uninterrupted run of ``spec`` into ``out`` (in-process, no report)."""
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    run_study(load_spec(str(spec)), out, progress=False, report=False)
    return out / "results.sqlite"


def job_table(db: Path) -> dict[str, str]:
    """{job_hash: status} of results and skip records of a database ({} before its schema);
    asserts that no job has two rows. A read-write connection, like the next run's: a hot
    journal left by a killed writer is rolled back on first read, as SQLite does for the next
    process."""
    c = sqlite3.connect(str(db), timeout=30)
    try:
        if not c.execute("SELECT name FROM sqlite_master WHERE name='results'").fetchall():
            return {}
        out = {h: "skipped" for (h,) in c.execute("SELECT job_hash FROM skipped")}
        out.update(c.execute("SELECT job_hash, status FROM results"))
        n = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        distinct = c.execute("SELECT COUNT(DISTINCT job_hash) FROM results").fetchone()[0]
        assert n == distinct, f"{n - distinct} duplicate rows"
    finally:
        c.close()
    return out
