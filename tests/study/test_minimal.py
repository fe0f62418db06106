"""The smallest study (one model, one method, one engine, no controls) still yields a report."""
from prunebench.study.runner import run_study
from prunebench.study.spec import validate


def test_minimal_study_and_report(tmp_path):
    spec = validate({"models": ["digits-lenet300"], "methods": ["magnitude"],
                     "sparsities": [0.9], "formats": ["dense", "csr"],
                     "engines": ["torch-dense"],
                     "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0, "max_time": 0.1}},
                    source="minimal")
    summary = run_study(spec, tmp_path, progress=False)
    # prune x2 (dense, 90%), size x4 (2 formats x 2 configs), latency x4 of which only the
    # unpruned model's dense run applies (torch-dense runs no csr; a masked model's dense
    # latency is the unpruned one's)
    assert (summary["jobs"], summary["done"], summary["failed"]) == (10, 7, 0)
    assert summary["by_kind"]["latency"] == {"ok": 1, "failed": 0, "skipped": 3, "pending": 0}
    html = (tmp_path / "report.html").read_text()
    assert "<img " in html and "Table 3: latency crossover: no rows" in html
    md = (tmp_path / "report.md").read_text()
    assert "digits-lenet300: with fp32 values and magnitude pruning, the model file is smaller" \
        " than the dense fp32 file for csr from 90%" in md
