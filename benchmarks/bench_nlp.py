"""The NLP zoo entries: MiniLM quality under pruning, char-LSTM per-character latency.

    python benchmarks/bench_nlp.py minilm [--sparsity 0.5 0.6 0.7 0.8 0.9] [--distill-steps N]
    python benchmarks/bench_nlp.py charlstm [--sparsity 0.9] [--threads 2] [--repeats 7]
        [--recover-steps N]

``minilm``: dense Lee Spearman / Pearson, polarity probe accuracy, then unstructured magnitude
pruning of all 36 attention and FFN projections (one-shot, same sparsity per layer) at each
sparsity, with and (when ``--distill-steps`` > 0) after distillation to the dense embeddings on
``lee_background.cor``; prints one JSON line per point.

``charlstm``: the zoo's trained model (from the checkpoint cache, trained first when missing),
its bits per character against the unigram baseline, then per-character generation latency at
batch 1 of the dense model (PyTorch) and of the 90% magnitude-pruned model compiled for the
``native`` engine (csr, bitmap), timed side by side in this process: every repeat times each
candidate in turn, medians over repeats. Requires ``pip install 'prunebench[nlp]'``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def minilm(args) -> None:
    from prunebench import zoo
    from prunebench.pruning import prunable_layers, prune
    from prunebench.zoo import minilm as M

    torch.set_num_threads(args.threads)
    dense, _ = zoo.load("minilm")
    texts = M.eval_texts()
    dense_emb = M.encode(dense, texts)
    base = M.task_metrics(dense)
    print(json.dumps({"model": "minilm", "sparsity": 0.0, **base}), flush=True)
    for s in args.sparsity:
        r = prune(dense, "magnitude", s, layers=prunable_layers(dense))
        m = M.task_metrics(r.model, dense_embeddings=dense_emb)
        print(json.dumps({"model": "minilm", "sparsity": s, "distill_steps": 0, **m,
                          "spearman_kept": m["lee_spearman"] / base["lee_spearman"]}), flush=True)
        if args.distill_steps:
            t0 = time.perf_counter()
            losses = M.distill(r.model, dense, r.masks, steps=args.distill_steps, seed=0)
            m = M.task_metrics(r.model, dense_embeddings=dense_emb)
            print(json.dumps({"model": "minilm", "sparsity": s,
                              "distill_steps": args.distill_steps,
                              "distill_seconds": time.perf_counter() - t0,
                              "distill_loss_first_last": [losses[0], float(np.mean(losses[-10:]))],
                              **m, "spearman_kept": m["lee_spearman"] / base["lee_spearman"]}),
                  flush=True)


def charlstm(args) -> None:
    import prunebench as pb
    from prunebench import zoo
    from prunebench.pruning import prune
    from prunebench.zoo import charlstm as C

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    dense, _ = zoo.load("lee-charlstm", progress=True)
    load_s = time.perf_counter() - t0
    metrics = C.task_metrics(dense)
    print(json.dumps({"model": "lee-charlstm", "load_or_train_seconds": load_s, **metrics}),
          flush=True)
    H = dense.hidden
    x = C.example_input(1, 0, H)
    for s in args.sparsity:
        r = prune(dense, "magnitude", s, example_input=x)
        pruned = r.model
        if args.recover_steps:   # latency does not depend on it; bits per character do
            from dataclasses import replace

            t0 = time.perf_counter()
            C.train(pruned, C.corpus()[0], replace(C.ZOO_CONFIG, steps=args.recover_steps,
                                                   lr=1e-3), masks=r.masks)
            print(json.dumps({"model": "lee-charlstm", "sparsity": s,
                              "recover_steps": args.recover_steps,
                              "recover_seconds": time.perf_counter() - t0}), flush=True)
        cands = {"torch-dense (dense model)": dense}
        for fmt in ("csr", "bitmap"):
            cands[f"native {fmt}"] = pb.compile(pruned, fmt, engine="native",
                                                threads=args.threads, example_input=x)
        cands["torch-dense (pruned model)"] = pruned
        med: dict[str, list[float]] = {k: [] for k in cands}
        load0 = os.getloadavg()[0]
        for _ in range(args.repeats):
            for k, run in cands.items():
                med[k].append(float(np.median(C.step_latency(run, H, steps=args.steps,
                                                             warmup=10))))
        dense_ms = 1e3 * float(np.median(med["torch-dense (dense model)"]))
        pm = C.task_metrics(pruned)
        for k, v in med.items():
            ms = 1e3 * float(np.median(v))
            # other processes on a shared machine only ever add time: the best repeat is the
            # figure least disturbed by them
            best = 1e3 * float(np.min(v))
            print(json.dumps({"model": "lee-charlstm", "sparsity": s, "candidate": k,
                              "threads": args.threads, "ms_per_char": ms,
                              "ms_per_char_best_repeat": best,
                              "speedup_vs_dense_best_repeat":
                                  1e3 * float(np.min(med["torch-dense (dense model)"])) / best,
                              "ms_per_char_repeats": [1e3 * t for t in v],
                              "speedup_vs_dense": dense_ms / ms,
                              "bits_per_char_pruned": pm["bits_per_char"],
                              "recover_steps": args.recover_steps,
                              "loadavg_1min_before": load0,
                              "loadavg_1min_after": os.getloadavg()[0]}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what")
    a = sub.add_parser("minilm")
    a.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    a.add_argument("--distill-steps", type=int, default=0)
    a.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("charlstm")
    b.add_argument("--sparsity", type=float, nargs="+", default=[0.9])
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--steps", type=int, default=100)
    b.add_argument("--recover-steps", type=int, default=0,
                   help="masked retraining of the pruned model before its bits per character")
    args = p.parse_args()
    if args.what == "minilm":
        minilm(args)
    elif args.what == "charlstm":
        charlstm(args)
    else:   # `make bench`: both, short
        minilm(p.parse_args(["minilm", "--sparsity", "0.5", "0.9"]))
        charlstm(p.parse_args(["charlstm"]))


if __name__ == "__main__":
    main()
