"""Winning tickets on MNIST-1D: iterative magnitude pruning with rewinding to initialisation
(Frankle & Carbin 2019) against random pruning with the same rewinding, on the notebook-width
MLP (``mnist1d-mlp500``, 40-500-500-10), every layer pruned, mean of the seeds.

    python benchmarks/bench_lottery.py [--json] [--seeds 0 1 2] [--sparsities 0.5 0.8 0.9]
        [--per-round 0.2] [--steps 1000] [--lr 2e-2] [--model mnist1d-mlp500]

Each (method, sparsity, seed) is one run of ``prune(..., schedule="rewind")``: rounds of
``--per-round`` of the remaining weights each (geometric, ``ceil(log(1 - s) / log(1 -
per_round))`` rounds), the survivors reset to the initial weights and retrained for at most
``--steps`` steps at ``--lr`` (the notebook's retraining rate, 2e-2), batch 100, with early
stopping on the validation split. ``--json`` prints one object: ``dense`` and, keyed by
sparsity, ``magnitude_rewind`` and ``random_rewind``, each ``{"mean", "std", "per_seed"}``
(test accuracy as a fraction), plus ``settings``. Long: 3 seeds x 3 sparsities x 2 methods.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys

import torch

from prunebench import zoo
from prunebench.pruning import prunable_layers, prune
from prunebench.train import evaluate


def stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


def rounds_for(sparsity: float, per_round: float) -> int:
    return max(1, math.ceil(math.log(1 - sparsity) / math.log(1 - per_round)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist1d-mlp500")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8, 0.9])
    ap.add_argument("--per-round", type=float, default=0.2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    checks = [("--per-round", args.per_round, 0 < args.per_round < 1, "a fraction in (0, 1)"),
              ("--steps", args.steps, args.steps >= 1, "an integer >= 1"),
              ("--batch", args.batch, args.batch >= 1, "an integer >= 1"),
              ("--lr", args.lr, 0 < args.lr <= 1, "a number in (0, 1]")]
    checks += [("--sparsities", s, 0 < s < 1, "fractions in (0, 1)") for s in args.sparsities]
    checks += [("--seeds", s, 0 <= s < 2**32, "integers in [0, 2**32)") for s in args.seeds]
    for name, value, ok, allowed in checks:
        if not ok:
            print(f"bench_lottery: {name}: got {value}; allowed: {allowed}", file=sys.stderr)
            raise SystemExit(2)
    if args.model not in zoo.MODELS or not zoo.get_spec(args.model).trained:
        print(f"bench_lottery: --model: got {args.model!r}; allowed: a zoo model trained on a "
              "dataset (prunebench models)", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(1)

    dense: list[float] = []
    runs: dict[str, dict[str, list[float]]] = {
        str(s): {"magnitude_rewind": [], "random_rewind": []} for s in args.sparsities}
    for seed in args.seeds:
        model, data, init = zoo.load(args.model, seed=seed, return_init=True)
        dense.append(evaluate(model, data))
        for s in args.sparsities:
            for method in ("magnitude", "random"):
                r = prune(model, method, s, schedule="rewind", rounds=rounds_for(s, args.per_round),
                          layers=prunable_layers(model), finetune=data,
                          finetune_steps=args.steps, finetune_lr=args.lr,
                          finetune_batch=args.batch, rewind_state=init, seed=seed).report()
                runs[str(s)][f"{method}_rewind"].append(r["accuracy_pruned"])
                if not args.json:
                    print(f"seed {seed} {method:9s} {s:.0%}: {r['accuracy_pruned']:.4f} "
                          f"(dense {dense[-1]:.4f}, {r['rounds']} rounds)", file=sys.stderr)
    doc = {"dense": stats(dense),
           **{s: {k: stats(v) for k, v in d.items()} for s, d in runs.items()},
           "settings": {"model": args.model, "seeds": args.seeds, "per_round": args.per_round,
                        "steps": args.steps, "lr": args.lr, "batch": args.batch,
                        "layers": "all", "scope": "layer"}}
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
