"""Shared helpers of the reliability tests: a tiny study spec, the real CLI as a child
process, and read-only checks of a results database."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

# One model, one method, three sparsities, three formats, two engines: 25 result rows and 15
# skip records in about 2 s of work (plus ~5 s of imports per process).
TINY_SPEC = """\
name: tiny-reliability
description: reliability tests
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


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    p.write_text(TINY_SPEC)
    return p


@pytest.fixture(scope="session")
def tiny_reference_db(tiny_spec, tmp_path_factory) -> Path:
    """The database of an uninterrupted run of the tiny study (in-process, no report)."""
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    out = tmp_path_factory.mktemp("reference")
    run_study(load_spec(str(tiny_spec)), out, progress=False, report=False)
    return out / "results.sqlite"


@pytest.fixture(scope="session")
def tiny_reference(tiny_reference_db) -> dict[str, str]:
    """{job_hash: status} of an uninterrupted run of the tiny study."""
    table = job_table(tiny_reference_db)
    assert len(table) == 40
    return table


def cli(*args: str, **kw) -> subprocess.Popen:
    """``python -m prunebench ARGS`` as a child process (stdout/stderr piped)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "prunebench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def connect(db: Path) -> sqlite3.Connection:
    """A read-write connection (like the next run's): a hot journal left by a killed writer is
    rolled back on first read, as SQLite does for the next process."""
    return sqlite3.connect(str(db), timeout=30)


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            c.close()
    except sqlite3.OperationalError:  # schema not created yet / hot journal
        return 0


def check_db(db: Path) -> dict[str, str]:
    """Integrity, no duplicate job per machine, every row whole; returns {job_hash: status}."""
    c = connect(db)
    try:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:  # killed before the schema transaction committed: an empty database
            return {}
        assert {"meta", "machines", "results", "skipped"} <= tables, tables
        dup = c.execute("SELECT job_hash, machine_id, COUNT(*) FROM results WHERE job_hash IS "
                        "NOT NULL GROUP BY job_hash, machine_id HAVING COUNT(*) > 1").fetchall()
        assert dup == [], f"duplicate rows: {dup}"
        for kind, status, reason, p50, samples, fbytes, spec in c.execute(
                "SELECT kind, status, reason, p50_ms, samples, file_bytes, spec FROM results"):
            assert spec
            if status == "failed":
                assert reason
            elif kind == "latency":
                assert p50 > 0 and samples
            elif kind == "size":
                assert fbytes > 0
    finally:
        c.close()
    return job_table(db)


def job_table(db: Path) -> dict[str, str]:
    """{job_hash: status} of results and skip records of a database."""
    c = connect(db)
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


def result_hashes(db: Path) -> set[str]:
    c = connect(db)
    try:
        if not c.execute("SELECT name FROM sqlite_master WHERE name='results'").fetchall():
            return set()
        return {h for (h,) in c.execute("SELECT job_hash FROM results")}
    finally:
        c.close()
