"""Idle kernel threads wait passively (issue 18, item 10: threads under load).

GNU OpenMP's default lets the kernels' idle thread spin for milliseconds after every parallel
call; on a machine without a free core that spin is taken from the thread it waits for. These
tests measure what the idle threads do after a call (CPU time the process burns while its main
thread sleeps), which does not depend on how busy the machine is; the timing under load itself
is `benchmarks/bench_threads_under_load.py`'s job.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench import _openmp
from prunebench import kernels as K

ROOT = Path(__file__).resolve().parents[2]

#: run a 2-thread kernel call five times, each followed by a 50 ms sleep; print the policy, the
#: environment's OMP_WAIT_POLICY and the CPU milliseconds the process burnt while sleeping
PROBE = """
import json, os, time
import numpy as np
import prunebench.kernels as K
n, k = 1024, 102                      # every row: k values in columns 0, 10, 20, ...
rng = np.random.default_rng(0)
cols = np.arange(0, 10 * k, 10, dtype=np.int32)
indptr = (np.arange(n + 1) * k).astype(np.int32)
indices = np.tile(cols, n)
data = rng.standard_normal(n * k, dtype=np.float32)
x = rng.standard_normal(n, dtype=np.float32)
K.set_threads(2)
y = K.csr_matvec(indptr, indices, data, x, shape=(n, n))
ref = data.reshape(n, k).astype(np.float64) @ x[cols].astype(np.float64)
assert np.abs(y - ref).max() < 1e-3 * np.abs(ref).max()
burnt = []
for _ in range(5):
    K.csr_matvec(indptr, indices, data, x, shape=(n, n))
    c0 = time.process_time()
    time.sleep(0.05)
    burnt.append((time.process_time() - c0) * 1e3)
print(json.dumps({"policy": K.wait_policy(), "env": os.environ.get("OMP_WAIT_POLICY"),
                  "burnt_ms": burnt}))
"""


#: the probe's environments: prunebench's default, and GNU OpenMP's default spin count set
#: by the user
PROBE_ENVS = {"default": {}, "user spin": {"GOMP_SPINCOUNT": "300000"}}

needs_two = pytest.mark.skipif(K.max_threads() < 2 or (os.cpu_count() or 1) < 2,
                               reason="needs 2 cores")


@pytest.fixture(scope="module")
def probes() -> dict:
    """The probe's output in each of PROBE_ENVS (the child processes run side by side)."""
    base = {k: v for k, v in os.environ.items() if k not in _openmp.USER_WAIT_VARS}
    procs = {name: subprocess.Popen([sys.executable, "-c", PROBE],
                                    env={**base, **extra, "PYTHONPATH": str(ROOT / "src")},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, extra in PROBE_ENVS.items()}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr[-2000:]
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


@needs_two
def test_idle_kernel_threads_sleep_and_the_environment_is_restored(probes):
    """After a 2-thread call the pool burns (almost) no CPU: ~3.5 ms per call before (the
    spinning peer), 0.03-0.05 ms now (the sleep itself)."""
    got = probes["default"]
    assert got["policy"] == "passive"
    assert got["env"] is None                 # not left for child processes
    assert sum(got["burnt_ms"]) < 2.5, got


@needs_two
def test_a_user_choice_is_left_alone(probes):
    """GOMP_SPINCOUNT set by the user (here GNU's default count) is kept: the pool spins
    after each call again, which is also what the test above would see without the fix."""
    got = probes["user spin"]
    assert got["policy"] == "set by the user: GOMP_SPINCOUNT=300000"
    assert sum(got["burnt_ms"]) > 5.0, got


def test_decide_respects_the_user_and_the_import_order():
    assert _openmp.decide({}, torch_loaded=False) is None
    assert _openmp.decide({"OMP_WAIT_POLICY": "ACTIVE"}, torch_loaded=False) == \
        "set by the user: OMP_WAIT_POLICY=ACTIVE"
    assert _openmp.decide({"KMP_BLOCKTIME": "0"}, torch_loaded=True) == \
        "set by the user: KMP_BLOCKTIME=0"
    assert "torch was imported before prunebench" in _openmp.decide({}, torch_loaded=True)


def test_wait_policy_names_a_layer_that_is_not_openmp(monkeypatch):
    assert K.wait_policy() == _openmp.WAIT_POLICY       # the omp layer here
    monkeypatch.setattr("numba.threading_layer", lambda: "tbb")
    assert K.wait_policy() == "tbb's own (the kernels do not run on OpenMP)"


def _bench_module():
    path = ROOT / "benchmarks" / "bench_threads_under_load.py"
    spec = importlib.util.spec_from_file_location("bench_threads_under_load", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv, says", [
    (["--threads", "0"], "--threads: got 0"),
    (["--threads", "999"], "--threads: got 999"),
    (["--rounds", "0"], "--rounds: got 0"),
    (["--block-s", "nan"], "--block-s: got nan"),
    (["--threads", "two"], "invalid int value"),
])
def test_benchmark_bad_input_is_one_line_exit_2(argv, says, capsys):
    assert _bench_module().main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err


@needs_two
def test_benchmark_runs_and_stops_its_busy_child(monkeypatch):
    """One short round: every call checked against dense math (inside ``cases``), both
    conditions timed, the busy child gone afterwards."""
    mod = _bench_module()
    monkeypatch.setattr(mod, "SETTLE_S", 0.0)
    monkeypatch.setattr(mod, "SIZES", (1024, 256))
    doc = mod.measure(threads=2, rounds=1, block_s=0.002)
    names = [r["call"] for r in doc["rows"]]
    assert names[0] == "native csr 1024x1024 90% b1" and names[-1] == "torch dense 1024x1024 b1"
    for r in doc["rows"]:
        assert r["quiet"]["n"] >= 1 and r["busy"]["n"] >= 1
        assert r["busy_p90_over_quiet_median"] == pytest.approx(
            r["busy"]["p90_ms"] / r["quiet"]["p50_ms"])
    used = {r["call"]: r["threads_effective"] for r in doc["rows"]}
    # 105k stored values: two threads only where the peers spin (the runtime's grain)
    assert used["native csr 1024x1024 90% b1"] == (1 if K.wait_policy() == "passive" else 2)
    assert used["native csr 1024x1024 90% b1, 1 thread"] == 1
    assert used["native csr 256x256 90% b1"] == 1          # below the runtime's grain
    assert used["native csr 256x256 90% b1, forced"] == 2
    assert not Path(f"/proc/{doc['meta']['busy_child_pid']}").exists()
