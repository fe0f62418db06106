"""Interrupting a study (Ctrl-C, then SIGKILL) and running it again ends with exactly the rows
of an uninterrupted run: no duplicate, no lost row, no partial row."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..reliability.helpers import count_rows
from ..study_helpers import job_table

HERE = Path(__file__).parent


def _start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "tests.study.run_study", "smoke", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=HERE.parents[1])


def _wait_rows(proc: subprocess.Popen, db: Path, n: int, timeout: float = 120) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        have = count_rows(db)
        if have >= n:
            return have
        assert proc.poll() is None, f"study ended early: {proc.communicate()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"fewer than {n} rows after {timeout} s")


def _complete_rows(db: Path) -> None:
    """Every stored row is whole: ok rows carry their figures, failed rows their reason."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for kind, status, reason, p50, samples, acc, fbytes in c.execute(
                "SELECT kind, status, reason, p50_ms, samples, accuracy, file_bytes "
                "FROM results"):
            if status == "failed":
                assert reason
            elif kind == "latency":
                assert p50 > 0 and samples
            elif kind == "size":
                assert fbytes > 0
            elif kind == "prune":
                assert acc is None or 0 <= acc <= 1
    finally:
        c.close()


@pytest.mark.slow
def test_interrupt_then_kill_then_resume(smoke_run, tmp_path):
    full_out, _ = smoke_run
    expected = job_table(full_out / "results.sqlite")
    out = tmp_path / "resumed"
    db = out / "results.sqlite"

    # Ctrl-C: a clean message, exit 130, only whole rows
    proc = _start(out)
    _wait_rows(proc, db, 15)
    proc.send_signal(signal.SIGINT)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (err, out_text[-500:])
    assert "study interrupted" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    first = count_rows(db)
    assert 15 <= first < len(expected)
    _complete_rows(db)

    # resume, then SIGKILL mid-run (no chance to clean up)
    proc = _start(out)
    _wait_rows(proc, db, first + 25)
    proc.kill()
    proc.communicate(timeout=60)
    second = count_rows(db)
    assert first < second < len(expected)
    _complete_rows(db)
    assert not (out / "report.html").exists()

    # resume to the end
    proc = _start(out)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    got = job_table(db)
    assert got == expected      # same jobs, same outcome, each exactly once
    _complete_rows(db)
    assert (out / "report.html").exists()
    # pruned models were cached, not pruned again on resume (one file per pruned model)
    cached = {p.stem for p in (out / "models").glob("*.pbm")}
    assert cached and cached <= set(expected)
