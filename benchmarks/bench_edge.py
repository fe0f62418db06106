"""MobileNetV2 on the edge runtime (LiteRT + XNNPACK), dense and with TFLite's sparse tensors,
beside prunebench's best and ONNX Runtime dense, timed side by side in one process (issue 17).

For each sparsity the 1x1 convolutions are pruned (magnitude, unstructured, as in the default
study; 0 = the dense model) and four kinds are built, each verified against the pruned PyTorch
model (``pb.verify``):

``litert-dense``   the .tflite file, dense weights, XNNPACK (the reference of the pairing)
``litert-sparse``  the .tflite file with the pruned filters in TFLite's sparse format (DENSIFY)
``ours-best``      ``--ours``: ``auto`` = the planner with its engine choice
                   (``pb.plan(..., hosts=True)``), or one ENGINE/FORMAT such as openvino/csr
``ort-dense``      ONNX Runtime, dense

Every kind other than litert-dense is timed beside litert-dense in alternating blocks
(``Timer.run_beside``); litert-dense's ``ms`` is the median of all its samples in those
pairings, and each row's ``litert_dense_ms`` is the reference median of its own pairing, so
``vs_litert_dense`` is a ratio from one run. ``file_bytes`` is the deployment file: the .tflite
file, the .onnx file, or for ours-best the prunebench model file (``file_format`` says which).

    python benchmarks/bench_edge.py --json
    python benchmarks/bench_edge.py --sparsity 0.9 --min-time 0.2 --ours openvino/csr --json

Batch 1, fp32, ``--threads`` (default 1). ``--profile edge`` runs the whole comparison again in
a child process in the edge profile (1 thread, 128-bit SIMD code; see
``prunebench.measure.profile``); every row's ``profile`` says which profile timed it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn

import prunebench as pb
from prunebench.measure import Timer, state_file_bytes
from prunebench.measure.profile import PROFILES, current_profile, in_profile, profile_env

KINDS = ("litert-dense", "litert-sparse", "ours-best", "ort-dense")


def one_by_one_convs(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]


def prunebench_file_bytes(model: nn.Module, format: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.pbz")
        pb.save(path, model, zoo_name="mobilenetv2", format=format)
        return os.path.getsize(path)


def build(pruned: nn.Module, x: torch.Tensor, threads: int, ours: str) -> dict:
    """{kind: (callable, file_bytes, file_format, chosen)}."""
    out = {}
    for kind, fmt in (("litert-dense", "dense"), ("litert-sparse", "tflite-sparse")):
        run = pb.compile(pruned, fmt, engine="litert", threads=threads, example_input=x)
        out[kind] = (run, run.file_bytes, "tflite" if fmt == "dense" else "tflite-sparse",
                     f"litert/{fmt}")
    if ours == "auto":
        p = pb.plan(pruned, x, threads=threads, hosts=True)
        run = p.compile(pruned)
        chosen = (f"{p.engine}/planned" if p.host["format"] == "planned"
                  else f"{p.host['engine']}/{p.host['format']}")
    else:
        engine, fmt = ours.split("/")
        run = pb.compile(pruned, fmt, engine=engine, threads=threads, fallback="dense",
                         example_input=x)
        chosen = ours
    sparse = not chosen.endswith("/dense")
    fbytes = prunebench_file_bytes(pruned, "csr") if sparse else state_file_bytes(pruned)
    out["ours-best"] = (run, fbytes, "prunebench csr" if sparse else "state dict", chosen)
    run = pb.compile(pruned, "dense", engine="onnxruntime", threads=threads, example_input=x)
    out["ort-dense"] = (run, run.file_bytes, "onnx", "onnxruntime/dense")
    return out


def bench(sparsities, threads: int, ours: str, min_time: float, progress) -> list[dict]:
    model, _ = pb.zoo.load("mobilenetv2", trained=False)
    spec = pb.zoo.get_spec("mobilenetv2")
    x, xs = spec.example_input(1), spec.example_input(4, seed=1)
    torch.set_num_threads(threads)
    rows = []
    for s in sparsities:
        pruned = (pb.prune(model, "magnitude", s, layers=one_by_one_convs(model)).model
                  if s > 0 else model.eval())
        built = build(pruned, x, threads, ours)
        verified = {}
        for kind, (run, *_rest) in built.items():
            try:
                pb.verify(run, pruned, xs)
                verified[kind] = True
            except pb.errors.PrunebenchError as e:   # noqa: PERF203
                progress(f"  {s:.0%} {kind} failed verification: {e}")
                verified[kind] = False
        ref = built["litert-dense"][0]
        ref_samples, timed = [], {}
        for kind in KINDS[1:]:
            run = built[kind][0]
            t = Timer(lambda: run(x), warmup=3, min_runs=10, min_time=min_time)
            mine, theirs = t.run_beside(lambda: ref(x), block_s=0.1, settle_s=0.05)
            ref_samples += list(theirs.samples)
            timed[kind] = (mine.median * 1e3, theirs.median * 1e3)
        timed["litert-dense"] = (float(np.median(ref_samples)) * 1e3,
                                 float(np.median(ref_samples)) * 1e3)
        for kind in KINDS:
            _run, fbytes, ffmt, chosen = built[kind]
            ms, ref_ms = timed[kind]
            rows.append({"model": "mobilenetv2", "sparsity": s, "kind": kind,
                         "profile": current_profile(), "ms": round(ms, 4), "file_bytes": int(fbytes),
                         "verified": verified[kind], "file_format": ffmt, "chosen": chosen,
                         "litert_dense_ms": round(ref_ms, 4),
                         "vs_litert_dense": round(ref_ms / ms, 3), "threads": threads,
                         "batch": 1})
            progress(f"  {s:.0%} {kind:13s} {chosen:22s} {ms:9.3f} ms  {fbytes:>10,} B  "
                     f"{ref_ms / ms:5.2f}x litert-dense{'' if verified[kind] else ' NOT verified'}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", nargs="*", type=float, default=[0.0, 0.7, 0.9])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ours", default="auto",
                    help="auto (planner with hosts) or ENGINE/FORMAT, e.g. openvino/csr")
    ap.add_argument("--min-time", type=float, default=1.5,
                    help="seconds each pairing runs at least")
    ap.add_argument("--profile", choices=PROFILES, default="default",
                    help="default, or edge: 1 thread and 128-bit SIMD code (a child process)")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    args = ap.parse_args(argv)
    if args.profile == "edge" and args.threads != 1:
        print(f"bench_edge: --threads: got {args.threads} with --profile edge; the edge profile "
              "runs on 1 thread", file=sys.stderr)
        return 2
    if args.profile != current_profile() or (args.profile == "edge" and not in_profile("edge")):
        # numba and torch read the profile's variables when they load: run again in a child
        rest = sys.argv[1:] if argv is None else list(argv)
        return subprocess.run([sys.executable, os.path.abspath(__file__), *rest],
                              env=profile_env(args.profile)).returncode
    warnings.simplefilter("ignore")
    from prunebench.engines.litert_engine import missing_packages, INSTALL

    if missing_packages():
        print(f"bench_edge: {INSTALL}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows = bench(args.sparsity, args.threads, args.ours, args.min_time,
                 lambda m: print(m, file=sys.stderr, flush=True))
    print(f"bench_edge: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['sparsity']:.2f} {r['kind']:13s} {r['ms']:9.3f} ms {r['file_bytes']:>10,} B "
                  f"verified={r['verified']} ({r['chosen']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
