"""Interrupting a study (Ctrl-C, then SIGKILL) and running it again ends with exactly the rows
of an uninterrupted run: no duplicate, no lost row, no partial row.

The study is the smoke study's stages on one small model (train or load, prune + fine-tune,
encode, verify, a verification that fails, time, the per-layer planner, controls, profile,
report): 31 result rows and 25 skip records in about 8 s of work, where the smoke study itself
took a minute and a half per uninterrupted run."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import fake_engines
from ..reliability.helpers import count_rows, default_sigint
from ..study_helpers import job_table, run_reference, write_spec

HERE = Path(__file__).parent

SPEC = """\
name: resume
description: the smoke study's stages on one small model, for the resume test
models: [digits-lenet300]
methods:
  - {name: random, time: false}
  - magnitude
sparsities: [0.9]
seeds: [0]
finetune_steps: 5
formats: [dense, csr, auto]
values: [fp32]
timed_values: [fp32]
engines: [torch-dense, native, test-decode, test-broken]
batches: [1]
threads: [1]
measure: {warmup: 1, min_runs: 3, min_time: 0.005, max_time: 0.05}
verify: {inputs: 16}
controls: {matched: [digits-lenet300], quantized: [digits-lenet300]}
profile: {method: magnitude, sparsity: 0.9, batch: 1}
"""


@pytest.fixture(scope="module")
def resume_reference(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The spec file and {job_hash: status} of an uninterrupted in-process run of it."""
    fake_engines.register()
    spec = write_spec(tmp_path_factory.mktemp("resume-spec"), SPEC)
    return spec, job_table(run_reference(spec, tmp_path_factory.mktemp("resume-reference")))


def _start(spec: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "tests.study.run_study", str(spec), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=HERE.parents[1], preexec_fn=default_sigint)


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
def test_interrupt_then_kill_then_resume(resume_reference, tmp_path):
    spec, expected = resume_reference
    statuses = sorted(set(expected.values()))
    assert statuses == ["failed", "ok", "skipped"], statuses  # every outcome is resumed
    rows = sum(1 for s in expected.values() if s != "skipped")
    assert rows >= 30, rows
    out = tmp_path / "resumed"
    db = out / "results.sqlite"

    # Ctrl-C: a clean message, exit 130, only whole rows
    proc = _start(spec, out)
    _wait_rows(proc, db, 8)
    proc.send_signal(signal.SIGINT)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (err, out_text[-500:])
    assert "study interrupted" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    first = count_rows(db)
    assert 8 <= first < rows
    _complete_rows(db)

    # resume, then SIGKILL mid-run (no chance to clean up)
    proc = _start(spec, out)
    _wait_rows(proc, db, first + 8)
    proc.kill()
    proc.communicate(timeout=60)
    second = count_rows(db)
    assert first < second < rows
    _complete_rows(db)
    assert not (out / "report.html").exists()

    # resume to the end
    proc = _start(spec, out)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    got = job_table(db)
    # same jobs, same outcome, each exactly once
    assert got == expected, {h: (got.get(h), expected.get(h)) for h in set(got) | set(expected)
                             if got.get(h) != expected.get(h)}
    _complete_rows(db)
    assert (out / "report.html").exists()
    # pruned models were cached, not pruned again on resume (one file per pruned model)
    cached = {p.stem for p in (out / "models").glob("*.pbm")}
    assert cached and cached <= set(expected)
