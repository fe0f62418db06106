#!/usr/bin/env python
"""End to end: a pruned model on every engine side by side, batch 1, in one process.

    python benchmarks/bench_engines.py [--models mlp-4096,mobilenetv2] [--threads 2]
        [--rounds 5] [--runs 6] [--sparsity 0.9] [--json]

* ``mlp-4096``: all three 4096x4096 layers pruned to 90% (magnitude; ``--layers all``: with
  the default layers only the middle one would be pruned and the two dense ones would bound
  the speedup at 1.5x).
* ``mobilenetv2``: its 1x1 (pointwise) convolutions pruned to 90%; depthwise and the stem
  stay dense.

Every candidate is verified against the dense fp32 model first (a candidate that fails is
reported and not timed), then all are timed in rounds (every candidate ``--runs`` calls per
round) so a burst of load from other processes hits them alike. Reports the median latency,
the speedup over torch-dense, and where each engine falls short, why.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from prunebench import engines, zoo
from prunebench.errors import PrunebenchError
from prunebench.measure import Timer
from prunebench.measure.kernel_bench import OtherLoad
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import verify

CANDIDATES = {
    "mlp-4096": [("torch-dense", "dense"), ("native", "csr"), ("native", "ell"),
                 ("native", "bitmap"), ("torch-sparse", "csr"), ("scipy", "csr"),
                 ("onnxruntime", "dense")],
    "mobilenetv2": [("torch-dense", "dense"), ("native", "csr"), ("native", "bitmap"),
                    ("torch-sparse", "csr"), ("scipy", "csr"), ("onnxruntime", "dense")],
}


def pruned_model(name: str, sparsity: float) -> nn.Module:
    net = zoo.build(name, seed=0)
    if name == "mobilenetv2":
        layers = [n for n, m in net.named_modules()
                  if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
    else:
        layers = prunable_layers(net)
    ex = zoo.get_spec(name).example_input(1)
    return prune(net, "magnitude", sparsity, layers=layers, example_input=ex).model.eval()


def bench_model(name: str, sparsity: float, threads: int, rounds: int, runs: int) -> dict:
    net = pruned_model(name, sparsity)
    x = zoo.get_spec(name).example_input(1, seed=1)
    x_ver = zoo.get_spec(name).example_input(2, seed=2)
    cands, failed = {}, {}
    for engine, fmt in CANDIDATES[name]:
        key = f"{engine}:{fmt}"
        try:
            run = engines.compile(net, engine, fmt, threads=threads, example_input=x)
            v = verify(run, net, x_ver, values="fp32", batch_size=1, raise_on_fail=False)
        except PrunebenchError as e:
            failed[key] = str(e)
            continue
        if not v.ok:
            failed[key] = f"verification failed: {v.reason}"
            continue
        cands[key] = run
    samples = {k: [] for k in cands}
    load = OtherLoad()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            for key, run in cands.items():
                m = Timer(lambda run=run: run(x), warmup=1, min_runs=runs, max_runs=runs,
                          min_time=0.0).run()
                samples[key].extend(m.samples)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    dense = med["torch-dense:dense"]
    rows = [{"candidate": k, "median_ms": med[k] * 1e3, "min_ms": min(samples[k]) * 1e3,
             "iqr_ms": float(np.subtract(*np.percentile(samples[k], [75, 25]))) * 1e3,
             "runs": len(samples[k]), "speedup_vs_dense": dense / med[k]} for k in cands]
    return {"model": name, "sparsity": sparsity, "threads": threads, "batch": 1,
            "rows": rows, "failed": failed, "other_load_cores": load.cores()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp-4096,mobilenetv2")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=6, help="timed calls per candidate per round")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    docs = []
    for name in args.models.split(","):
        if name not in CANDIDATES:
            ap.error(f"--models: {name!r}; allowed: {', '.join(CANDIDATES)}")
        doc = bench_model(name, args.sparsity, args.threads, args.rounds, args.runs)
        docs.append(doc)
        if not args.json:
            print(f"{name}, {args.sparsity:.0%} pruned, batch 1, {args.threads} thread(s):")
            for r in doc["rows"]:
                print(f"  {r['candidate']:<22} median {r['median_ms']:9.3f} ms  min "
                      f"{r['min_ms']:9.3f} ms  IQR {r['iqr_ms']:7.3f}  vs torch-dense "
                      f"{r['speedup_vs_dense']:5.2f}x")
            for k, why in doc["failed"].items():
                print(f"  {k:<22} not timed: {why}")
            if (doc["other_load_cores"] or 0) > 0.1:
                print(f"  warning: other processes kept {doc['other_load_cores']:.2f} cores busy "
                      "meanwhile; repeat on a quiet machine")
    if args.json:
        json.dump(docs, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
