"""Crash safety of `prunebench study`: SIGKILL at seven points (before the first row,
after N rows for several N, the instant the row count changes, and while SQLite's rollback
journal shows a write transaction in progress) and Ctrl-C (SIGINT), each followed by a re-run
of the same command. After every interruption the database passes ``PRAGMA integrity_check``,
holds each completed job exactly once per machine with whole rows, never loses a row it had,
and the final resume ends with exactly the job set of an uninterrupted run.

(tests/study/test_resume.py covers one SIGINT + one SIGKILL through a helper script; this test
drives the real CLI, ``python -m prunebench study``, at many more points.)"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .helpers import check_db, cli, count_rows, result_hashes

TIMEOUT = 60


def _wait(proc, cond, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        if cond():
            return
        assert proc.poll() is None, f"study ended before {what}: {proc.communicate()}"
        time.sleep(0.001)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _kill_when(spec: Path, out: Path, cond, what: str, sig=signal.SIGKILL):
    proc = cli("study", str(spec), "--out", str(out), "--json")
    _wait(proc, cond, what)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, stdout, stderr


@pytest.mark.slow
def test_sigkill_and_sigint_at_many_points_then_resume(tiny_spec, tiny_reference, tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    journal = out / "results.sqlite-journal"
    total = sum(1 for s in tiny_reference.values() if s != "skipped")
    before: set[str] = set()
    points = []

    def after_kill(label: str):
        nonlocal before
        assert db.exists(), label
        table = check_db(db)
        assert set(table) <= set(tiny_reference), label
        for h, s in table.items():           # a stored outcome is the uninterrupted one
            assert s == tiny_reference[h], (label, h)
        now = result_hashes(db)
        assert before <= now, f"{label}: rows lost"
        before = now
        points.append((label, len(now)))
        assert not (out / "report.html").exists()

    # 1. before any result row: the database file exists (schema being written or just done)
    rc, _, _ = _kill_when(tiny_spec, out, db.exists, "the database file")
    assert rc == -signal.SIGKILL
    after_kill("database file created")

    # 2-3. after N rows, for two values of N
    for n in (3, 9):
        rc, _, _ = _kill_when(tiny_spec, out, lambda n=n: count_rows(db) >= n, f"{n} rows")
        assert rc == -signal.SIGKILL
        after_kill(f">= {n} rows")

    # 4. during a database write: SQLite's rollback journal exists only while a write
    #    transaction is open, so killing the moment it appears kills mid-transaction
    #    (4a: the first write of the run, the skip records; 4b: a write after this run has
    #    stored a result row, i.e. while a result row is being written)
    rc, _, _ = _kill_when(tiny_spec, out, journal.exists, "a write transaction")
    assert rc == -signal.SIGKILL
    after_kill("rollback journal present (first transaction)")
    start = len(before)
    rc, _, _ = _kill_when(tiny_spec, out, lambda: journal.exists() and count_rows(db) > start,
                          "a write transaction after a new row")
    assert rc == -signal.SIGKILL
    after_kill("rollback journal present (result-row transaction)")

    # 5. the instant the row count changes (right after a COMMIT)
    start = len(before)
    rc, _, _ = _kill_when(tiny_spec, out, lambda: count_rows(db) > start + 2,
                          "a row count change")
    assert rc == -signal.SIGKILL
    after_kill("right after the row count changed")

    # 6. SIGINT (Ctrl-C) the instant the row count changes: clean message, exit 130
    start = len(before)
    rc, stdout, stderr = _kill_when(tiny_spec, out, lambda: count_rows(db) > start,
                                    "a row count change", sig=signal.SIGINT)
    assert rc == 130, stderr
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("prunebench:") for ln in lines), stderr
    assert "interrupted" in stderr
    after_kill("SIGINT after a row count change")

    assert len(before) < total, f"the study finished before the last interruption: {points}"

    # resume to the end: exactly the uninterrupted run's jobs and outcomes, each once
    proc = cli("study", str(tiny_spec), "--out", str(out), "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert check_db(db) == tiny_reference
    assert (out / "report.html").exists()
    assert not journal.exists()

