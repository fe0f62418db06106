"""Huge study grids (issue 18, item 7): ``--dry-run`` counts the jobs of a 1e8-job grid by
arithmetic in seconds and bounded memory (it used to expand them: 9 GB and 150 s, printing
nothing), warns above ``--max-hours`` (default 24 h); the real run refuses above it without
``--yes``, before writing anything; spec values are refused like the CLI's options
(``batches: [1e12]`` like ``bench --batch``, ``min_time: .inf`` like ``bench --min-time``)."""
from __future__ import annotations

import json

import pytest

from .peak_rss import run_with_peak

from prunebench.cli import main


@pytest.mark.parametrize("name", ["smoke", "default", "full", "tiny"])
def test_count_jobs_is_what_expand_yields(name, tiny_spec):
    from collections import Counter

    from prunebench.study.jobs import count_jobs, expand
    from prunebench.study.spec import load_spec

    spec = load_spec(str(tiny_spec) if name == "tiny" else name)
    counted = {k: v for k, v in count_jobs(spec).items() if v}
    assert counted == dict(Counter(j.kind for j in expand(spec)))


def _huge_spec(path) -> int:
    sparsities = ", ".join(str(i / 10000) for i in range(1, 10000))
    seeds = ", ".join(map(str, range(400)))
    path.write_text("name: huge\nmodels: [digits-lenet300, digits-lenet5, mnist1d-mlp]\n"
                    "methods: [magnitude, random, gradient, taylor]\n"
                    f"sparsities: [{sparsities}]\nseeds: [{seeds}]\n"
                    "formats: [dense, csr, coo, bitmap]\nvalues: [fp32, int8]\n"
                    "batches: [1, 2, 4, 8, 16, 32]\nthreads: [1]\n")
    from prunebench.study.jobs import count_jobs
    from prunebench.study.spec import load_spec

    return sum(count_jobs(load_spec(str(path))).values())


@pytest.mark.slow
def test_dry_run_of_a_1e8_job_grid_counts_in_seconds(tmp_path):
    spec = tmp_path / "huge.yaml"
    n = _huge_spec(spec)
    assert n > 10**8
    base, rc, _, _, _ = run_with_peak(["prunebench", "models"], 120)
    assert rc == 0
    peak, rc, out, err, seconds = run_with_peak(
        ["prunebench", "study", str(spec), "--dry-run", "--out", str(tmp_path / "runs"),
         "--json"], 60)  # expanding took minutes (and 9 GB) for 1e8 jobs
    assert rc == 0, err[-2000:]
    doc = json.loads(out)
    assert doc["jobs"] == n and doc["pending"] is None
    assert doc["estimated_s"] > 24 * 3600
    assert err.strip().splitlines() == [line for line in err.strip().splitlines()
                                        if line.startswith("prunebench: warning:")]
    assert "above --max-hours 24" in err and "--yes" in err
    assert peak - base < 100 * 2**20, f"{(peak - base) / 2**20:.0f} MiB above the baseline"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_real_run_above_max_hours_needs_yes(tiny_spec, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["study", str(tiny_spec), "--out", str(out), "--max-hours", "1e-6"])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and "above --max-hours 1e-06" in lines[0] and "--yes" in lines[0]
    assert not out.exists()
    # the dry run warns (exit 0) at the same limit
    assert main(["study", str(tiny_spec), "--out", str(out), "--max-hours", "1e-6",
                 "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("prunebench: warning:") and "above --max-hours 1e-06" in err
    # with --yes it runs
    assert main(["study", str(tiny_spec), "--out", str(out), "--max-hours", "1e-6", "--yes",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 25


@pytest.mark.parametrize("line, key", [
    ("batches: [1000000000000]", "batches"),
    ("measure: {min_time: .inf, max_time: .inf}", "measure.min_time"),
    ("measure: {max_time: .nan}", "measure.max_time"),
    ("measure: {min_time: 7200, max_time: 7200}", "measure.min_time"),
    ("seeds: [-1]", "seeds[0]"),
])
def test_spec_values_refused_like_the_cli(line, key, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [digits-lenet300]\nmethods: [magnitude]\nsparsities: [0.5]\n"
                    f"formats: [dense]\nengines: [torch-dense]\n{line}\n")
    for extra in (["--dry-run"], []):
        code = main(["study", str(spec), "--out", str(tmp_path / "runs"), *extra])
        cap = capsys.readouterr()
        lines = cap.err.strip().splitlines()
        assert code == 2, cap
        assert len(lines) == 1 and f": {key}: got" in lines[0], lines
        assert not (tmp_path / "runs").exists()
