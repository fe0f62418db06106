"""Dense baseline benchmark of one zoo model: latency, memory, accuracy, machine."""
from __future__ import annotations

import hashlib
import json

import torch

from . import zoo
from .errors import BadInputError
from .measure import Timer, fingerprint, param_bytes, peak_rss_child, state_file_bytes
from .train import evaluate

NOT_APPLICABLE = "n/a"


def check_threads(threads) -> int:
    import os

    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BadInputError(f"--threads: got {threads!r}, expected an integer >= 1")
    if threads > cores:
        raise BadInputError(f"--threads: got {threads}, this machine has {cores} cores")
    return threads


def check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BadInputError(f"--batch: got {batch!r}, expected an integer >= 1")
    return batch


def job_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def bench_dense(name: str, *, batch: int = 1, threads: int = 1, seed: int = 0,
                warmup: int = 3, min_runs: int = 20, min_time: float = 1.0,
                max_time: float = 30.0, rss: bool = True, progress: bool = False) -> dict:
    """Measure ``name`` as is (dense PyTorch). Returns a result dict whose ``row`` is ready for
    :meth:`prunebench.study.store.Store.add` and whose ``report`` is the ``bench --json`` body.

    Latency is measured on real test inputs when the model has a dataset, else on seeded
    random inputs of the model's shape; latency-only models report accuracy ``"n/a"``."""
    spec = zoo.get_spec(name)
    check_batch(batch)
    check_threads(threads)
    model, data = zoo.load(name, trained=spec.trained, seed=seed, progress=progress)
    torch.set_num_threads(threads)
    if data is not None:
        x = data.x_test[:batch]
        if len(x) < batch:  # batch larger than the test split: repeat it
            x = data.x_test.repeat((batch + len(data.x_test) - 1) // len(data.x_test), 1)[:batch]
    else:
        x = spec.example_input(batch, seed)

    @torch.inference_mode()
    def call():
        return model(x)

    m = Timer(call, warmup=warmup, min_runs=min_runs, min_time=min_time,
              max_time=max(max_time, min_time)).run(batch=batch, threads=threads, label=name)
    accuracy = evaluate(model, data) if data is not None else None
    fp = fingerprint()
    pbytes, fbytes = param_bytes(model), state_file_bytes(model)
    rss_bytes = peak_rss_child(name, batch, threads, seed) if rss else None
    run_spec = {"model": name, "method": "dense", "sparsity": 0.0, "format": "dense",
                "engine": "torch-dense", "batch": batch, "threads": threads, "seed": seed,
                "input": "test-split" if data is not None else "random",
                "timer": {"warmup": warmup, "min_runs": min_runs, "min_time": min_time},
                "code_version": fp["git_commit"]}
    lat = m.latency_ms()
    report = {
        "model": name, "trained": spec.trained, "batch": batch, "threads": threads,
        "seed": seed, "engine": "torch-dense", "format": "dense",
        "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99", "mean")},
        "iqr_ms": lat["iqr"], "runs": m.n, "noisy": m.noisy,
        "throughput": m.throughput, "param_bytes": pbytes, "file_bytes": fbytes,
        "peak_rss_bytes": rss_bytes,
        "accuracy": accuracy if accuracy is not None else NOT_APPLICABLE,
        "machine": fp,
    }
    row = {
        "kind": "bench", "status": "ok", "model": name, "method": "dense", "sparsity": 0.0,
        "format": "dense", "engine": "torch-dense", "batch": batch, "threads": threads,
        "seed": seed, "code_version": fp["git_commit"], "spec": run_spec,
        "samples": list(m.samples), "p50_ms": lat["p50"], "p90_ms": lat["p90"],
        "p99_ms": lat["p99"], "mean_ms": lat["mean"], "iqr_ms": lat["iqr"],
        "throughput": m.throughput, "param_bytes": pbytes, "file_bytes": fbytes,
        "peak_rss_bytes": rss_bytes, "accuracy": accuracy,
        "extra": {"trained": spec.trained, "noisy": m.noisy},
    }
    return {"report": report, "row": row, "machine": fp, "measurement": m}
