"""Pruned models against the fastest dense engine, end to end (issue: sparse kernels inside a
compiled graph).

For each model: the unpruned model is timed on every dense engine (torch-dense, onnxruntime,
openvino fp32) and the fastest is the reference. Then for each sparsity the pruned model runs on
each candidate engine/format (``auto``: the planner with its engine choice,
``hosts=True``; the row's ``chosen`` says what it picked); every candidate is verified against the pruned PyTorch model
(``pb.verify``) and timed side by side with the fastest dense engine in alternating blocks
(``Timer.run_beside``), so ``speedup_vs_fastest_dense`` is a ratio from one run.

    python benchmarks/bench_end_to_end.py --json            # every model below
    python benchmarks/bench_end_to_end.py --models mlp-4096 --sparsity 0.9

Batch 1, fp32, ``--threads`` (default 2). Pruned layers (magnitude, unstructured) as in the
default study: mobilenetv2 its 1x1 convolutions, minilm / mlp-4096 every Linear, lee-charlstm
every LSTM gate matrix and the output layer, the small models their default layers.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch
from torch import nn

import prunebench as pb
from prunebench.measure import Timer
from prunebench.zoo.models import get_spec

DENSE = (("torch-dense", "dense"), ("onnxruntime", "dense"), ("openvino", "dense"))
SPARSE = (("native", "csr"), ("openvino", "csr"))
SMALL = ("mnist1d-mlp", "mnist1d-cnn", "mnist1d-lstm", "digits-lenet300")
MODELS = {"mobilenetv2": [0.9], "minilm": [0.7, 0.9], "mlp-4096": [0.9], "lee-charlstm": [0.9],
          **{m: [0.5, 0.9] for m in SMALL}}


def layers_of(name: str, model: nn.Module):
    if name == "mobilenetv2":
        return [n for n, m in model.named_modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
    if name in ("minilm", "mlp-4096", "lee-charlstm"):
        from prunebench.pruning.targets import prunable_layers
        return list(prunable_layers(model))         # every one (the CLI's --layers all)
    return None


def inputs(name: str, data, n: int):
    if data is not None:
        return data.x_test[:1], data.x_test[:n], data.y_test[:n]
    spec = get_spec(name)
    return spec.example_input(1), spec.example_input(n, seed=1), None


def timed(run, x, reference=None, min_time=1.5):
    t = Timer(lambda: run(x), warmup=5, min_runs=20, min_time=min_time)
    if reference is None:
        end = time.perf_counter() + 0.05       # settle: the previous engine's spinning threads
        while time.perf_counter() < end:
            run(x)
        return t.run().median * 1e3, None
    # 0.1 s blocks, each after 0.05 s untimed: ONNX Runtime's threads spin about 35 ms after
    # its last call and doubled the time of the OpenVINO calls that followed
    mine, ref = t.run_beside(lambda: reference(x), block_s=0.1, settle_s=0.05)
    return mine.median * 1e3, ref.median * 1e3


def bench_model(name: str, sparsities, threads: int, progress) -> list[dict]:
    model, data = pb.zoo.load(name, trained=True)
    x, xs, ys = inputs(name, data, 8)
    torch.set_num_threads(threads)
    dense = {}
    for engine, fmt in DENSE:
        run = pb.compile(model, fmt, engine=engine, threads=threads, example_input=x)
        dense[engine] = (run, timed(run, x)[0])
        progress(f"{name} dense {engine}: {dense[engine][1]:.3f} ms")
    best = min(dense, key=lambda e: dense[e][1])
    rows = []
    for s in sparsities:
        layers = layers_of(name, model)
        kw = {"layers": layers} if layers else {}
        pruned = pb.prune(model, "magnitude", s, **kw).model
        cands = list(SPARSE) + [("auto", "auto")]
        for engine, fmt in cands:
            chosen = f"{engine}/{fmt}"
            if fmt == "auto":   # per-layer plan, then the engine choice (prunebench.hosts)
                p = pb.plan(pruned, x, threads=threads, hosts=True)
                run = p.compile(pruned)
                chosen = (f"{p.engine}/planned" if p.host["format"] == "planned"
                          else f"{p.host['engine']}/{p.host['format']}")
            else:
                try:
                    run = pb.compile(pruned, fmt, engine=engine, threads=threads,
                                     fallback="dense", example_input=x)
                except pb.errors.PrunebenchError as e:   # a row that says why, not a crash
                    progress(f"  {name} {s} {engine}/{fmt} cannot compile: {e}")
                    rows.append({"model": name, "sparsity": s, "engine": engine, "format": fmt,
                                 "values": "fp32", "ms": None, "fastest_dense_engine": best,
                                 "fastest_dense_ms": None, "speedup_vs_fastest_dense": None,
                                 "verified": False, "threads": threads, "batch": 1,
                                 "chosen": chosen, "error": str(e)})
                    continue
            try:
                pb.verify(run, pruned, xs, ys)
                verified = True
            except pb.errors.PrunebenchError as e:   # noqa: PERF203
                progress(f"  {name} {s} {engine}/{fmt} failed verification: {e}")
                verified = False
            ms, ref_ms = timed(run, x, dense[best][0])
            rows.append({"model": name, "sparsity": s, "engine": engine, "format": fmt,
                         "values": "fp32", "ms": round(ms, 4), "fastest_dense_engine": best,
                         "fastest_dense_ms": round(ref_ms, 4),
                         "speedup_vs_fastest_dense": round(ref_ms / ms, 3), "verified": verified,
                         "threads": threads, "batch": 1, "chosen": chosen})
            progress(f"  {name} {s:.0%} {chosen}: {ms:.3f} ms vs {best} {ref_ms:.3f} ms "
                     f"-> {ref_ms / ms:.2f}x{'' if verified else ' (NOT verified)'}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--sparsity", nargs="*", type=float, default=None,
                    help="sparsities (default: per model, see MODELS)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = []
    for name in args.models:
        rows += bench_model(name, args.sparsity or MODELS[name], args.threads,
                            lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            if r["ms"] is None:
                print(f"{r['model']:16s} {r['sparsity']:.2f} {r['engine']:9s} {r['format']:5s} "
                      f"error: {r['error']}")
                continue
            print(f"{r['model']:16s} {r['sparsity']:.2f} {r['engine']:9s} {r['format']:5s} "
                  f"{r['ms']:9.3f} ms  {r['fastest_dense_engine']:12s} {r['fastest_dense_ms']:9.3f} "
                  f"ms  {r['speedup_vs_fastest_dense']:5.2f}x  verified={r['verified']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
