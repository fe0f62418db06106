"""A pruned model's weight matrices are encoded once per format for all of its jobs: the
engines built on the runtime and the planner's plans at each batch size share the encodings."""
from collections import Counter

from prunebench.study.runner import run_study
from prunebench.study.spec import validate


def test_each_matrix_encoded_once_per_format_across_engines_and_plans(tmp_path, monkeypatch):
    import importlib

    rc = importlib.import_module("prunebench.runtime.compile")  # the module, not the function

    calls: Counter[tuple[tuple[int, ...], str]] = Counter()
    real = rc.encode

    def counting(W, fmt, **kw):
        calls[(W.shape, fmt)] += 1
        return real(W, fmt, **kw)

    monkeypatch.setattr(rc, "encode", counting)
    spec = validate({"models": [{"name": "digits-lenet300", "finetune_steps": 0}],
                     "methods": ["magnitude"], "sparsities": [0.9],
                     "formats": ["dense", "csr", "auto"], "values": ["fp32"],
                     "engines": ["torch-dense", "scipy", "native"], "batches": [1, 8],
                     "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0, "max_time": 0.05}},
                    source="reuse")
    summary = run_study(spec, tmp_path, progress=False, report=False)
    assert summary["failed"] == 0
    # auto planned at batch 1 and 8, csr compiled on scipy and native (each at both batches):
    # without the shared encodings the one pruned matrix (fc2, 100 x 300) was encoded in csr
    # by each engine and by each plan
    assert summary["by_kind"]["latency"]["ok"] >= 6
    pruned = {k: n for k, n in calls.items() if k[0] == (100, 300)}
    assert pruned[((100, 300), "csr")] == 1, pruned
    assert set(pruned.values()) == {1}, pruned
