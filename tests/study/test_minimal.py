"""The smallest study (one model, one method, one engine, no controls) still yields a report."""
import pytest

from prunebench.study.runner import run_study
from prunebench.study.spec import validate


def test_minimal_study_and_report(tmp_path):
    spec = validate({"models": ["digits-lenet300"], "methods": ["magnitude"],
                     "sparsities": [0.9], "formats": ["dense", "csr"],
                     "engines": ["torch-dense"],
                     "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0, "max_time": 0.1}},
                    source="minimal")
    summary = run_study(spec, tmp_path, progress=False)
    # prune x2 (dense, 90%), size x4 (2 formats x 2 configs), latency x4 of which only the
    # unpruned model's dense run applies (torch-dense runs no csr; a masked model's dense
    # latency is the unpruned one's)
    assert (summary["jobs"], summary["done"], summary["failed"]) == (10, 7, 0)
    assert summary["by_kind"]["latency"] == {"ok": 1, "failed": 0, "skipped": 3, "pending": 0}
    html = (tmp_path / "report.html").read_text()
    assert "<img " in html and "Table 3: latency crossover: no rows" in html
    import sqlite3

    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        (tr, va, conv), = db.execute("select train_accuracy, val_accuracy, converged from "
                                     "results where kind='prune' and sparsity > 0")
    assert 0 < va <= 1 and 0 < tr <= 1 and conv in (0, 1)   # the fine-tune was judged
    md = (tmp_path / "report.md").read_text()
    assert "digits-lenet300: with fp32 values and magnitude pruning, the model file is smaller" \
        " than the dense fp32 file for csr from 90%" in md


@pytest.mark.slow
def test_local_timing_waits_for_another_process_holding_the_machine_lock(tmp_path):
    """Two studies on one machine never time at once: while another process holds this
    machine's timing lock, the local study's latency job waits for it (and records the wait)."""
    import json
    import sqlite3
    import subprocess
    import sys
    import time

    from prunebench.measure import fingerprint

    machine = fingerprint()["id"]
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from prunebench.study.locks import timing_lock\n"
         f"with timing_lock({machine!r}):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(2.0)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.time()
        spec = validate({"models": ["digits-lenet300"], "methods": ["magnitude"],
                         "sparsities": [0.9], "formats": ["dense"],
                         "engines": ["torch-dense"],
                         "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0,
                                     "max_time": 0.1}}, source="locked")
        assert run_study(spec, tmp_path, progress=False, report=False)["failed"] == 0
    finally:
        holder.wait(timeout=30)
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        extras = [json.loads(e) for (e,) in
                  db.execute("select extra from results where kind='latency' and status='ok'")]
    assert len(extras) == 1
    lock = extras[0]["timing_lock"]
    assert lock["acquired"] >= t0 and lock["released"] >= lock["acquired"]
    assert lock["waited_s"] > 0.5          # it waited for the other holder's 2 s
