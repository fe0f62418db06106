"""Shared helpers of the reliability tests: the real CLI as a child process, and read-only
checks of a results database (the tiny study they run: :mod:`tests.study_helpers`)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from ..study_helpers import job_table


def default_sigint() -> None:
    """In a child before exec: Ctrl-C back to its default. A test run started as a background
    job (``make test &``) inherits SIGINT ignored, and Python then leaves it ignored, so the
    tests' SIGINT would do nothing and the child would run to the end (seen: exit 0 where the
    interrupted study exits 130)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str, **kw) -> subprocess.Popen:
    """``python -m prunebench ARGS`` as a child process (stdout/stderr piped; Ctrl-C as in a
    terminal, :func:`default_sigint`)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "prunebench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint, **kw)


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


def result_hashes(db: Path) -> set[str]:
    c = connect(db)
    try:
        if not c.execute("SELECT name FROM sqlite_master WHERE name='results'").fetchall():
            return set()
        return {h for (h,) in c.execute("SELECT job_hash FROM results")}
    finally:
        c.close()
