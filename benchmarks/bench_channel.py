"""Channel pruning really shrinks a model: dense latency of mnist1d-cnn before and after 50%
of its channels are physically removed, measured side by side in one process.

    python benchmarks/bench_channel.py [--model mnist1d-cnn] [--sparsity 0.5] [--batch 1]
"""
from __future__ import annotations

import argparse
import json

import torch

from prunebench import zoo
from prunebench.measure import Timer
from prunebench.pruning import prune
from prunebench.train import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist1d-cnn")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    model, data = zoo.load(args.model)
    res = prune(model, "channel", args.sparsity, finetune=data,
                finetune_steps=args.finetune_steps)
    pruned = res.model
    torch.set_num_threads(args.threads)
    x = data.x_test[:args.batch]
    rows = []
    # interleave the two models' timing rounds so drift hits both alike
    times = {"dense": [], "channel-pruned": []}
    for _ in range(5):
        for label, net in (("dense", model), ("channel-pruned", pruned)):
            with torch.inference_mode():
                m = Timer(lambda: net(x), warmup=20, min_runs=200, min_time=0.2).run()
            times[label].extend(m.samples)
    from prunebench.measure.timer import Measurement

    for label, net in (("dense", model), ("channel-pruned", pruned)):
        m = Measurement(tuple(times[label]), batch=args.batch)
        rows.append({"model": label, "params": zoo.count_params(net),
                     "p50_us": m.median * 1e6, "p90_us": m.p90 * 1e6,
                     "accuracy": evaluate(net, data)})
    speedup = rows[0]["p50_us"] / rows[1]["p50_us"]
    doc = {"model": args.model, "sparsity": args.sparsity, "batch": args.batch,
           "threads": args.threads, "rows": rows, "speedup": speedup}
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    for r in rows:
        print(f"{r['model']:>15}: {r['params']:>6,} params  p50 {r['p50_us']:8.1f} us  "
              f"p90 {r['p90_us']:8.1f} us  accuracy {r['accuracy']:.2%}")
    print(f"channel-pruned / dense latency: {1 / speedup:.2f} (speedup {speedup:.2f}x)")


if __name__ == "__main__":
    main()
