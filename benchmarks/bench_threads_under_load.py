#!/usr/bin/env python
"""Kernel calls on 2 threads while another process keeps one core busy (issue 18, item 10).

A busy-loop child process (``python -c "while True: pass"``) is started once and switched on
(SIGCONT) and off (SIGSTOP) in turn: each round times every call for ``--block-s`` seconds
with the child stopped ("quiet"), then with it spinning ("busy"), in alternating order, so
both conditions see the same machine state. The calls, all at ``--threads``:

* native csr 4096x4096 at 90%, batch 1 (1.7M stored values: runs on every thread), and the
  same call on one thread, to tell a slow machine from a slow threading;
* native csr 1024x1024 at 90%, batch 1 (about 0.05 ms: the size of the issue's call);
* native csr 256x256 at 90%, batch 1, as a compiled model runs it (below the runtime's
  one-thread grain: it runs on the calling thread) and forced onto every thread;
* torch dense ``F.linear`` 4096x4096, batch 1, for comparison.

Per call and condition: median, p90, p99, and the acceptance ratio ``busy p90 / quiet
median`` (goal <= 3). ``others_cores`` is the CPU that processes other than this one and its
busy child used meanwhile, in cores: on a shared machine "quiet" is only as quiet as that.

``--compare`` runs the benchmark in child processes, alternately with prunebench's passive
OpenMP wait policy and with OpenMP's default spin (``GOMP_SPINCOUNT=300000``, what the
kernels did before), ``--repeat`` times each, and prints one table per run.

    python benchmarks/bench_threads_under_load.py
    python benchmarks/bench_threads_under_load.py --compare --json
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numba
import numpy as np

import prunebench.kernels as K  # first: prunebench sets OpenMP's wait policy before torch loads
import torch
from prunebench.formats import encode
from prunebench.runtime.layers import GRAIN, KernelOp

GOAL = 3.0        # busy p90 <= GOAL x quiet median
SIZES = (4096, 1024, 256)   # the native csr matrices (n x n at 90%); torch dense is SIZES[0]
SETTLE_S = 0.02   # after switching the busy child on or off
#: the environment of a --compare child running OpenMP's default spin (GNU's default count)
SPIN_ENV = {"GOMP_SPINCOUNT": "300000"}


class BadArgs(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as the prunebench command does
        raise BadArgs(message)


def check_args(args) -> None:
    limit = min(os.cpu_count() or 1, K.max_threads())
    if not 1 <= args.threads <= limit:
        raise BadArgs(f"--threads: got {args.threads}; this machine runs 1..{limit}")
    if args.rounds < 1:
        raise BadArgs(f"--rounds: got {args.rounds}; allowed: an integer >= 1")
    if not 0.001 <= args.block_s <= 10:
        raise BadArgs(f"--block-s: got {args.block_s}; allowed: 0.001 to 10 seconds")
    if args.repeat < 1:
        raise BadArgs(f"--repeat: got {args.repeat}; allowed: an integer >= 1")


def matrix(rng, rows: int, cols: int, sparsity: float) -> np.ndarray:
    W = rng.standard_normal((rows, cols), dtype=np.float32)
    W[rng.random((rows, cols)) < sparsity] = 0
    return W


def one_thread(fn, X, threads: int):
    K.set_threads(1)
    try:
        return fn(X)
    finally:
        K.set_threads(threads)


def cases(threads: int) -> list[dict]:
    """[{name, threads_effective, call}]; each call is checked against dense math once."""
    rng = np.random.default_rng(0)
    out = []
    for n in SIZES:
        W = matrix(rng, n, n, 0.9)
        x = rng.standard_normal(n, dtype=np.float32)
        op = KernelOp(encode(W, "csr"), None, threads)
        X = torch.from_numpy(x[None])
        eff = 1 if op.stored < GRAIN else threads
        out.append({"name": f"native csr {n}x{n} 90% b1", "threads_effective": eff,
                    "call": lambda op=op, X=X: op.linear(X), "ref": W @ x})
        if n == SIZES[0] and threads > 1:   # what one thread gets in the same conditions
            out.append({"name": f"native csr {n}x{n} 90% b1, 1 thread", "threads_effective": 1,
                        "call": lambda op=op, X=X: one_thread(op.linear, X, threads),
                        "ref": W @ x})
        if eff < threads:
            A = encode(W, "csr").arrays()
            out.append({"name": f"native csr {n}x{n} 90% b1, forced", "threads_effective": threads,
                        "call": lambda A=A, x=x, n=n: torch.from_numpy(K.csr_matvec(
                            A["indptr"], A["indices"], A["data"], x, shape=(n, n)))[None],
                        "ref": W @ x})
    n = SIZES[0]
    Wd = torch.from_numpy(matrix(rng, n, n, 0.0))
    xd = torch.from_numpy(rng.standard_normal((1, n), dtype=np.float32))
    out.append({"name": f"torch dense {n}x{n} b1", "threads_effective": threads,
                "call": lambda: torch.nn.functional.linear(xd, Wd),
                "ref": (Wd @ xd[0]).numpy()})
    for c in out:
        got = c["call"]().numpy().reshape(-1)
        err = float(np.abs(got - c["ref"]).max() / (np.abs(c["ref"]).max() or 1.0))
        if not err < 1e-4:
            raise RuntimeError(f"{c['name']}: relative error {err:.3g} against dense math")
    return out


def busy_seconds() -> float:
    """CPU seconds every process of the machine has run (Linux: /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def child_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def percentiles(samples: list[float]) -> dict:
    a = np.asarray(samples) * 1e3
    return {"n": int(a.size), "p50_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "min_ms": float(a.min())}


def measure(threads: int, rounds: int, block_s: float) -> dict:
    K.set_threads(threads)
    torch.set_num_threads(threads)
    calls = cases(threads)
    for c in calls:                       # warm-up: compilation, first touch
        for _ in range(20):
            c["call"]()
    samples = {c["name"]: {"quiet": [], "busy": []} for c in calls}
    # per condition: seconds of wall time, of every process's CPU, of ours, of the busy child's
    cpu = {"quiet": np.zeros(4), "busy": np.zeros(4)}
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        for r in range(rounds):
            for cond in (("quiet", "busy") if r % 2 == 0 else ("busy", "quiet")):
                os.kill(child.pid, signal.SIGCONT if cond == "busy" else signal.SIGSTOP)
                time.sleep(SETTLE_S)
                snap = np.array([time.perf_counter(), busy_seconds(), own_seconds(),
                                 child_seconds(child.pid)])
                for c in calls:
                    kept, call = samples[c["name"]][cond], c["call"]
                    end = time.perf_counter() + block_s
                    while True:
                        t0 = time.perf_counter()
                        call()
                        t1 = time.perf_counter()
                        kept.append(t1 - t0)
                        if t1 >= end:
                            break
                cpu[cond] += np.array([time.perf_counter(), busy_seconds(), own_seconds(),
                                       child_seconds(child.pid)]) - snap
    finally:
        child.kill()
        child.wait()
    rows = []
    for c in calls:
        q, b = percentiles(samples[c["name"]]["quiet"]), percentiles(samples[c["name"]]["busy"])
        ratio = b["p90_ms"] / q["p50_ms"]
        rows.append({"call": c["name"], "threads_effective": c["threads_effective"],
                     "quiet": q, "busy": b, "busy_p90_over_quiet_median": ratio,
                     "within_goal": bool(ratio <= GOAL)})
    load = {}
    for cond, (wall, every, own, spinner) in cpu.items():
        load[cond] = {"others_cores": max(0.0, (every - own - spinner) / wall),
                      "busy_child_cores": spinner / wall}
    return {"meta": {"threads": threads, "rounds": rounds, "block_s": block_s, "goal": GOAL,
                     "cpu_count": os.cpu_count(), "threading_layer": numba.threading_layer(),
                     "wait_policy": K.wait_policy(), "one_thread_grain": GRAIN,
                     "load": load, "busy_child_pid": child.pid},
            "rows": rows}


def compare(args) -> dict:
    """Child runs alternating prunebench's wait policy ("passive") and OpenMP's default spin."""
    argv = [sys.executable, os.path.abspath(__file__), "--json", "--threads", str(args.threads),
            "--rounds", str(args.rounds), "--block-s", str(args.block_s)]
    runs = []
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                             "KMP_BLOCKTIME")}
    for i in range(args.repeat):
        for label, extra in (("passive", {}), ("openmp-default-spin", SPIN_ENV)):
            r = subprocess.run(argv, env={**base, **extra}, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"child ({label}) exited {r.returncode}: {r.stderr.strip()[-500:]}")
            runs.append({"policy": label, "repeat": i, **json.loads(r.stdout)})
    return {"runs": runs}


def print_table(doc: dict, head: str = "") -> None:
    m = doc["meta"]
    load = m["load"]
    print(f"{head}threads {m['threads']}, wait policy: {m['wait_policy']}, layer {m['threading_layer']}; "
          f"other processes used {load['quiet']['others_cores']:.2f} cores while quiet, "
          f"{load['busy']['others_cores']:.2f} while busy (busy child: "
          f"{load['busy']['busy_child_cores']:.2f} cores)")
    print(f"{'call':38s} {'thr':>3s} {'quiet p50':>10s} {'p90':>8s} {'busy p50':>9s} {'p90':>8s} "
          f"{'p99':>8s} {'busy p90/quiet p50':>19s}")
    for r in doc["rows"]:
        q, b = r["quiet"], r["busy"]
        print(f"{r['call']:38s} {r['threads_effective']:3d} {q['p50_ms']:10.3f} {q['p90_ms']:8.3f} "
              f"{b['p50_ms']:9.3f} {b['p90_ms']:8.3f} {b['p99_ms']:8.3f} "
              f"{r['busy_p90_over_quiet_median']:17.1f}{' ' if r['within_goal'] else ' !'}")


def main(argv=None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10, help="quiet/busy block pairs (default 10)")
    ap.add_argument("--block-s", type=float, default=0.2, help="seconds per call and block")
    ap.add_argument("--compare", action="store_true",
                    help="passive wait vs OpenMP's default spin, in alternating child processes")
    ap.add_argument("--repeat", type=int, default=2, help="child runs per policy with --compare")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    try:
        args = ap.parse_args(argv)
        check_args(args)
    except BadArgs as e:
        print(f"bench_threads_under_load.py: error: {e}", file=sys.stderr)
        return 2
    doc = compare(args) if args.compare else measure(args.threads, args.rounds, args.block_s)
    if args.json:
        print(json.dumps(doc, indent=1))
    elif args.compare:
        for run in doc["runs"]:
            print_table(run, f"[{run['policy']}, run {run['repeat'] + 1}] ")
            print()
    else:
        print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
