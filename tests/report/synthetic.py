"""A small results database written row by row, with numbers chosen so that every table and
finding of the report can be checked by hand."""
from __future__ import annotations

import numpy as np

from prunebench.measure import fingerprint
from prunebench.study.store import Store

SPARSITIES = (0.5, 0.8, 0.9, 0.95)
# mlp-4096 (latency-only), batch 1: dense PyTorch takes 10 ms; native CSR's median per sparsity
CSR_MS = {0.0: 40.0, 0.5: 20.0, 0.8: 11.0, 0.9: 8.0, 0.95: 5.0}
# digits-lenet300 accuracy after fine-tuning, per method, sparsity and seed
ACC = {("magnitude", 0.5): (0.97, 0.975, 0.98), ("magnitude", 0.8): (0.965, 0.97, 0.975),
       ("magnitude", 0.9): (0.95, 0.96, 0.97), ("magnitude", 0.95): (0.90, 0.92, 0.94),
       ("random", 0.5): (0.96, 0.965, 0.97), ("random", 0.8): (0.90, 0.91, 0.92),
       ("random", 0.9): (0.80, 0.82, 0.84), ("random", 0.95): (0.60, 0.65, 0.70)}
DENSE_ACC = (0.975, 0.976, 0.977)
MATCHED_ACC = (0.94, 0.95, 0.96)


def _hash(*parts) -> str:
    import hashlib

    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def _prune_row(model, label, sparsity, seed, acc, *, latency_only=False, control_of=None):
    method = label.split("-")[0]
    dens = np.full((4, 6), int(255 * (1 - sparsity)), np.uint8)
    return {"job_hash": _hash("prune", model, label, sparsity, seed), "kind": "prune",
            "status": "ok", "model": model, "method": method, "sparsity": sparsity,
            "seed": seed, "spec": {"model": model}, "accuracy": acc,
            "extra": {"method_label": label, "latency_only": latency_only,
                      "accuracy_dense": None if latency_only else DENSE_ACC[seed],
                      "accuracy_before_finetune": None if acc is None else acc - 0.1,
                      "sparsity_achieved": sparsity, "control_of": control_of,
                      "totals": {"params": 23739 if control_of else 50610,
                                 "nonzero": round(50610 - 30000 * sparsity),
                                 "theoretical_speedup": 1 / (1 - sparsity) if sparsity else 1.0},
                      "layers": [{"name": "layers.1.weight", "shape": [100, 300],
                                  "params": 30000, "sparsity": sparsity, "pruned": True,
                                  "nonzero": round(30000 * (1 - sparsity))}],
                      "masks": [{"name": "layers.1.weight", "shape": [100, 300],
                                 "grid": [4, 6], "density": dens.tobytes().hex()}]
                      if seed == 0 and sparsity else None}}


def _latency_row(model, label, sparsity, engine, fmt, batch, ms):
    samples = [ms / 1e3] * 5
    return {"job_hash": _hash("latency", model, label, sparsity, engine, fmt, batch),
            "kind": "latency", "status": "ok", "model": model, "method": label,
            "sparsity": sparsity, "seed": 0, "format": fmt, "engine": engine,
            "value_encoding": "fp32", "batch": batch, "threads": 1, "spec": {},
            "samples": samples, "p50_ms": ms, "p90_ms": ms, "p99_ms": ms, "mean_ms": ms,
            "iqr_ms": 0.0, "throughput": batch / ms * 1e3,
            "extra": {"method_label": label, "latency_only": model == "mlp-4096",
                      "noisy": False, "verify": {"ok": True, "rel_max": 1e-7}}}


def _size_row(model, label, sparsity, fmt, nbytes, acc):
    return {"job_hash": _hash("size", model, label, sparsity, fmt), "kind": "size",
            "status": "ok", "model": model, "method": label, "sparsity": sparsity, "seed": 0,
            "format": fmt, "value_encoding": "fp32", "spec": {}, "file_bytes": nbytes,
            "accuracy": acc,
            "extra": {"method_label": label, "latency_only": acc is None, "layers": [
                {"name": "layers.1.weight", "shape": [100, 300], "format": fmt,
                 "bytes": nbytes - 80000, "dense_fp32_bytes": 120000, "sparsity": sparsity,
                 "break_even_model": 1 / 3 if fmt == "csr" else None}]}}


def make_db(path) -> None:
    fp = fingerprint()
    with Store(path) as s:
        add = lambda row: s.add(row, fp)  # noqa: E731
        for seed in range(3):
            add(_prune_row("digits-lenet300", "dense", 0.0, seed, DENSE_ACC[seed]))
            add(_prune_row("digits-lenet300-matched90", "dense", 0.0, seed, MATCHED_ACC[seed],
                           control_of="digits-lenet300"))
            for (label, sp), accs in ACC.items():
                add(_prune_row("digits-lenet300", label, sp, seed, accs[seed]))
        add(_prune_row("mlp-4096", "dense", 0.0, 0, None, latency_only=True))
        for sp in SPARSITIES:
            add(_prune_row("mlp-4096", "magnitude", sp, 0, None, latency_only=True))
        for sp, ms in CSR_MS.items():
            label = "dense" if sp == 0 else "magnitude"
            add(_latency_row("mlp-4096", label, sp, "torch-dense", "dense", 1, 10.0))
            add(_latency_row("mlp-4096", label, sp, "native", "csr", 1, ms))
        # size: dense file 200,000 B; CSR file = 80,000 B of other tensors + the layer
        for sp in (0.0, *SPARSITIES):
            label = "dense" if sp == 0 else "magnitude"
            acc = None if sp == 0 else float(np.mean(ACC[("magnitude", sp)]))
            acc = float(np.mean(DENSE_ACC)) if sp == 0 else acc
            add(_size_row("digits-lenet300", label, sp, "dense", 200000, acc))
            nnz = round(30000 * (1 - sp))
            add(_size_row("digits-lenet300", label, sp, "csr",
                          80000 + nnz * 6 + 101 * 4, acc))
        s.add({"job_hash": _hash("q"), "kind": "quant", "status": "ok",
               "model": "digits-lenet300", "method": "dense", "sparsity": 0.0, "seed": 0,
               "format": "dense", "value_encoding": "int8", "engine": "torch-quant",
               "spec": {}, "file_bytes": 56000, "accuracy": 0.97,
               "extra": {"accuracy_dense": 0.976, "dense_state_bytes": 205000,
                         "verify": {"top1_agreement": 0.99}}}, fp)
        s.add({"job_hash": _hash("f"), "kind": "latency", "status": "failed",
               "reason": "verification: max error 0.01 is 0.01 of the output scale",
               "model": "mlp-4096", "method": "magnitude", "sparsity": 0.9, "seed": 0,
               "format": "csr", "engine": "broken", "batch": 1, "spec": {},
               "extra": {"method_label": "magnitude"}}, fp)


# ------------------------------------------------------------------ conclusions (issue 16.5)
# digits-lenet300 at batch 1, timed beside dense PyTorch (2 ms) and the fastest dense engine,
# ONNX Runtime (1 ms): (native csr ms, scipy csr ms) per sparsity
LENET_CSR_MS = {0.5: (1.6, 2.0), 0.8: (1.1, 1.0), 0.9: (0.8, 1.0), 0.95: (0.5, 1.0)}
MINILM_METRICS = {0.0: {"lee_spearman": 0.5, "polarity_accuracy": 0.8, "n_lee_pairs": 1225},
                  0.9: {"lee_spearman": 0.4, "polarity_accuracy": 0.7, "n_lee_pairs": 1225}}


def _beside(row, torch_ms, fastest=None):
    row["extra"]["reference"] = {"engine": "torch-dense", "model": "unpruned",
                                 "p50_ms": torch_ms, "iqr_ms": 0.0, "runs": 5, "noisy": False}
    if fastest:
        row["extra"]["fastest_dense"] = {"engine": fastest[0], "model": "unpruned",
                                         "p50_ms": fastest[1], "iqr_ms": 0.0, "runs": 5,
                                         "noisy": False}
    return row


def add_conclusion_rows(path) -> None:
    """Latency rows for digits-lenet300 (native and scipy CSR beside ONNX Runtime), MiniLM
    (task metrics, OpenVINO CSR) and one fine-tune that did not converge (digits-lenet300,
    magnitude 95%, seed 2), on top of :func:`make_db`."""
    import sqlite3

    fp = fingerprint()
    with Store(path) as s:
        add = lambda row: s.add(row, fp)  # noqa: E731
        add(_beside(_latency_row("digits-lenet300", "dense", 0.0, "torch-dense", "dense", 1,
                                 2.0), 2.0))
        add(_beside(_latency_row("digits-lenet300", "dense", 0.0, "onnxruntime", "dense", 1,
                                 1.0), 2.0))
        for sp, (native, scipy) in LENET_CSR_MS.items():
            for engine, ms in (("native", native), ("scipy", scipy)):
                add(_beside(_latency_row("digits-lenet300", "magnitude", sp, engine, "csr", 1,
                                         ms), 2.0, ("onnxruntime", 1.0)))
        for sp, met in MINILM_METRICS.items():
            row = _prune_row("minilm", "dense" if sp == 0 else "magnitude", sp, 0, None,
                             latency_only=True)
            row["extra"]["metrics"] = met
            add(row)
        add(_beside(_latency_row("minilm", "dense", 0.0, "torch-dense", "dense", 1, 20.0),
                    20.0))
        add(_beside(_latency_row("minilm", "magnitude", 0.9, "openvino", "csr", 1, 8.0), 20.0,
                    ("onnxruntime", 12.0)))
    c = sqlite3.connect(path)
    c.execute("UPDATE results SET converged = 0 WHERE kind = 'prune' AND model = "
              "'digits-lenet300' AND method = 'magnitude' AND sparsity = 0.95 AND seed = 2")
    c.commit()
    c.close()
