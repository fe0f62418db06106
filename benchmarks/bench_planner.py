#!/usr/bin/env python
"""The per-layer planner against dense and against the best single-format model.

    python benchmarks/bench_planner.py [--models mlp-4096,mobilenetv2,mnist1d-mlp,...]
        [--sparsities 0.5,0.7,0.9,0.95] [--threads 1] [--rounds 15] [--json FILE]

For every model and sparsity (magnitude pruning; mlp-4096 prunes all three layers, the others
their default layers): ``prunebench.planner.plan`` (latency objective, batch 1, measured
afresh: ``cache=False``), then an **independent** side-by-side re-measurement of the planned
model, the dense model and the best single-format model the planner found, in ``--rounds``
interleaved rounds (the planner's own figures are the minimum of noisy measurements and
would flatter it). Reports planned/dense and planned/best-single from the re-measurement;
the issue's goal is both <= 1.05.

Then the size objective for each model at 0.9 with the dense latency as the budget: the
planned file is checked against every single-format model within the same budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

import prunebench as pb
from prunebench import zoo
from prunebench.planner import interleaved_ms, plan
from prunebench.pruning import prunable_layers

DEFAULT_MODELS = "mlp-4096,mobilenetv2,mnist1d-mlp,mnist1d-cnn,digits-lenet300,mnist1d-lstm"


def pruned(name: str, sparsity: float):
    spec = zoo.get_spec(name)
    net, data = zoo.load(name, trained=spec.trained, progress=False)
    layers = prunable_layers(net) if name == "mlp-4096" else None
    model = pb.prune(net, "magnitude", sparsity, layers=layers, finetune=None).model
    x = spec.example_input(1, 0) if data is None else data.x_test[:1]
    return model, x


def remeasure(model, p, x, threads: int, rounds: int) -> dict[str, float]:
    from prunebench.runtime.compile import compile as runtime_compile

    torch.set_num_threads(threads)
    runs = {"dense": runtime_compile(model, "dense", threads=threads),
            "planned": p.compile(model)}
    best = p.best_single_format
    if best is not None:
        runs[f"single:{best}"] = pb.compile(model, {lay["name"]: best for lay in p.layers
                                                    if best in lay["times_ms"]},
                                            engine=p.engine, threads=threads,
                                            keep_smaller=False, fallback="dense",
                                            **p.format_options)
    return interleaved_ms({k: (lambda f=f: f(x)) for k, f in runs.items()}, rounds=rounds,
                          sample_s=0.02)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--sparsities", default="0.5,0.7,0.9,0.95")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", dest="json_out", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})",
          flush=True)
    rows, sizes = [], []
    for name in a.models.split(","):
        for sp in [float(s) for s in a.sparsities.split(",")]:
            model, x = pruned(name, sp)
            t0 = time.perf_counter()
            p = plan(model, x, threads=a.threads, cache=False)
            plan_s = time.perf_counter() - t0
            m = remeasure(model, p, x, a.threads, a.rounds)
            single = next((k for k in m if k.startswith("single:")), None)
            row = {"model": name, "sparsity": sp, "plan_s": round(plan_s, 1),
                   "formats": p.formats, "chosen_from": p.chosen_from,
                   "dense_ms": m["dense"], "planned_ms": m["planned"],
                   "best_single": single and single.split(":")[1],
                   "best_single_ms": m.get(single) if single else None,
                   "planned_vs_dense": m["planned"] / m["dense"],
                   "planned_vs_best_single": (m["planned"] / m[single]) if single else None,
                   "planner_own": {k: round(v, 4) for k, v in p.model_ms.items()}}
            row["ok"] = row["planned_vs_dense"] <= 1.05 and (
                row["planned_vs_best_single"] is None or row["planned_vs_best_single"] <= 1.05)
            rows.append(row)
            counts: dict[str, int] = {}
            for f in p.formats.values():
                counts[f] = counts.get(f, 0) + 1
            print(f"{name:16s} {sp:4.2f}  dense {m['dense']:8.4f} ms  planned "
                  f"{m['planned']:8.4f} ms ({row['planned_vs_dense']:.2f}x of dense"
                  + (f", {row['planned_vs_best_single']:.2f}x of {row['best_single']}"
                     if single else "")
                  + f")  from {p.chosen_from}  layers {counts or 'all dense'}  "
                  f"plan {plan_s:.1f} s  {'OK' if row['ok'] else 'MISS'}", flush=True)
        # size objective at 0.9, budget = dense latency
        model, x = pruned(name, 0.9)
        p = plan(model, x, threads=a.threads, objective="size", cache=False)
        within = {f: p.model_bytes[f] for f, ms in p.model_ms.items()
                  if f in p.model_bytes and f not in ("planned", "per-layer-size")
                  and ms <= p.budget_ms}
        ok = p.planned_ms <= p.budget_ms and all(p.model_bytes["planned"] <= b
                                                 for b in within.values())
        sizes.append({"model": name, "budget_ms": p.budget_ms, "planned_ms": p.planned_ms,
                      "planned_bytes": p.model_bytes["planned"], "within_budget": within,
                      "chosen_from": p.chosen_from, "ok": ok})
        print(f"{name:16s} size  budget {p.budget_ms:.4f} ms  planned {p.planned_ms:.4f} ms  "
              f"{p.model_bytes['planned']:,} B (dense {p.model_bytes['dense']:,} B; singles "
              f"within budget: {within})  {'OK' if ok else 'MISS'}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    misses = [r for r in rows if not r["ok"]] + [s for s in sizes if not s["ok"]]
    print(f"{len(rows)} latency plans, {len(sizes)} size plans, {len(misses)} missed the goal")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"threads": a.threads, "rounds": a.rounds, "latency": rows,
                       "size": sizes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
