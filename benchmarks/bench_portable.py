#!/usr/bin/env python
"""How much slower the kernels are when numba compiles them for a portable x86-64 target.

Runs ``bench_kernels.py --json`` once per target, each in its own child process (numba fixes its
target CPU when it is imported), and prints the medians side by side with the slowdown against
the native build:

``native``     numba's default: this CPU's name and features (AVX-512 on the development machine)
``x86-64-v2``  SSE4.2, 128-bit vectors, no FMA, no F16C: the code the edge profile runs
``generic``    ``NUMBA_CPU_NAME=generic``: baseline x86-64 (SSE2), what the portable-path test
               compiles for

``torch-dense`` and ``scipy-csr`` are not numba code: their ratios show the run-to-run noise of
the machine, not a slowdown. Compilation is not timed; non-native children compile into a
temporary numba cache. Arguments other than ``--targets`` and ``--json`` go to
``bench_kernels.py`` (default here: ``--shape 1024x1024 --sparsity 0.9 --threads 1
--cache warm --repeats 15``).

    python benchmarks/bench_portable.py
    python benchmarks/bench_portable.py --targets native generic --shape 256x256 --repeats 5 --json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {
    "native": {},
    "x86-64-v2": {"NUMBA_CPU_NAME": "x86-64-v2", "NUMBA_CPU_FEATURES": ""},
    "generic": {"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""},
}
DEFAULTS = ["--shape", "1024x1024", "--sparsity", "0.9", "--threads", "1", "--cache", "warm",
            "--repeats", "15"]


def run_target(target: str, kernel_args: list[str], cache_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env.update(TARGETS[target])
    if TARGETS[target]:
        env["NUMBA_CACHE_DIR"] = str(Path(cache_dir) / target)
    r = subprocess.run([sys.executable, str(HERE / "bench_kernels.py"), "--json", *kernel_args],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench_kernels.py for target {target} exited {r.returncode}: "
                           f"{r.stderr.strip().splitlines()[-1:] or r.stdout[-500:]}")
    return json.loads(r.stdout)


def side_by_side(docs: dict[str, dict]) -> list[dict]:
    """One row per (sparsity, kernel): each target's median and min, and median / native's."""
    by_key: dict[tuple, dict] = {}
    for target, doc in docs.items():
        for r in doc["results"]:
            if r["kernel"] == "stream-read":
                continue
            row = by_key.setdefault((r["sparsity"], r["kernel"], r["cache"]),
                                    {"sparsity": r["sparsity"], "kernel": r["kernel"],
                                     "cache": r["cache"], "numba": not r["kernel"].startswith(("torch", "scipy"))})
            row[f"{target}_ms"] = round(r["median_ms"], 5)
            row[f"{target}_min_ms"] = round(r["min_ms"], 5)
    for row in by_key.values():
        if "native_ms" in row:
            for target in docs:
                if target != "native" and f"{target}_ms" in row:
                    row[f"{target}_slowdown"] = round(row[f"{target}_ms"] / row["native_ms"], 3)
    return list(by_key.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args, rest = ap.parse_known_args(argv)
    if "native" not in args.targets:
        print("bench_portable: --targets: got "
              f"{' '.join(args.targets)}; include native (the slowdowns are relative to it)",
              file=sys.stderr)
        return 2
    kernel_args = DEFAULTS + rest  # later options win in argparse
    docs = {}
    with tempfile.TemporaryDirectory(prefix="prunebench-portable-") as cache_dir:
        for target in args.targets:
            print(f"# {target}", file=sys.stderr, flush=True)
            try:
                docs[target] = run_target(target, kernel_args, cache_dir)
            except RuntimeError as e:
                print(f"bench_portable: {e}", file=sys.stderr)
                return 2
    rows = side_by_side(docs)
    meta = dict(docs["native"]["meta"], targets={t: TARGETS[t] for t in args.targets})
    if args.json:
        json.dump({"meta": meta, "results": rows}, sys.stdout, indent=1)
        print()
        return 0
    others = [t for t in args.targets if t != "native"]
    print(f"{'spars':>5} {'kernel':<24} {'native ms':>10} "
          + " ".join(f"{t + ' ms':>13} {'slower':>7}" for t in others))
    for r in rows:
        cells = " ".join(f"{r.get(f'{t}_ms', float('nan')):>13.4f} "
                         f"{r.get(f'{t}_slowdown', float('nan')):>6.2f}x" for t in others)
        print(f"{r['sparsity']:>5.2f} {r['kernel'] + ('' if r['numba'] else ' (ref)'):<24} "
              f"{r['native_ms']:>10.4f} {cells}")
    print(f"# medians of {meta['repeats']} round-robin repeats, shape {meta['shape']}, batch "
          f"{meta['batch']}, {meta['threads']} thread(s); (ref) = not numba code: its ratio is noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
