"""Reports from a database with hand-chosen numbers: tables, findings, the page, bad input."""
import os
import sqlite3

import pytest

from .synthetic import make_db

from prunebench.errors import BadInputError, StoreError  # noqa: E402
from prunebench.report import data as D  # noqa: E402
from prunebench.report import load, write_report  # noqa: E402
from prunebench.report.findings import compute  # noqa: E402
from prunebench.cli.results import report_command  # noqa: E402


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "results.sqlite"
    make_db(path)
    return path


def _finding(findings, start):
    hits = [f for f in findings if f.text.startswith(start)]
    assert len(hits) == 1, [f.text for f in findings]
    return hits[0]


def test_tables_hold_the_stored_numbers(db):
    d = load(db)
    assert d.latency_only("mlp-4096") and not d.latency_only("digits-lenet300")
    assert d.accuracy_models == ["digits-lenet300"]
    acc = D.accuracy_table(d)
    r = acc[(acc.method_label == "magnitude") & (acc.sparsity == 0.9)].iloc[0]
    assert r.acc_mean == pytest.approx(0.96) and r.acc_std == pytest.approx(0.01)
    assert r.before_mean == pytest.approx(0.86) and r.n == 3
    lat = D.latency_table(d)
    csr = lat[(lat.pair == "native / csr")].set_index("sparsity").speedup
    assert csr[0.9] == pytest.approx(1.25) and csr[0.5] == pytest.approx(0.5)
    x = D.crossover_table(d).iloc[0]
    assert (x.crossover, x.best_speedup, x.best_at) == (0.9, pytest.approx(2.0), 0.95)
    assert (x.best_dense, x.best_dense_ms, x.crossover_torch) == ("torch-dense", 10.0, 0.9)
    size = D.size_crossover_table(d).iloc[0]
    # CSR file = 80,000 + 6 * nnz + 404 < 200,000 from nnz < 19,933, i.e. sparsity > 33.6%
    assert size.crossover == 0.5
    # interpolated between 0% (260,404 B = 1.30202x) and 50% (170,404 B = 0.85202x)
    assert size.break_even == pytest.approx(0.5 * 0.30202 / 0.45)
    lay = D.layer_size_crossover(d).iloc[0]
    assert lay["shape"] == "100x300" and lay.agrees and lay.break_even_model == pytest.approx(1 / 3)
    ctl = D.controls_table(d).iloc[0]
    assert ctl.difference == pytest.approx(0.01) and ctl.control_params == 23739
    front = D.pareto_front([(1.0, 0.5, "a"), (2.0, 0.4, "b"), (3.0, 0.9, "c"), (0.5, 0.1, "d")])
    assert [p[2] for p in front] == ["d", "a", "c"]


def test_findings_are_computed_from_rows(db):
    f = _finding(compute(load(db)), "On this machine, mlp-4096 (latency-only) at batch 1")
    assert f.table == "crossover"
    assert ("native / csr beats the fastest dense run (torch-dense, 10 ms) only from 90% "
            "sparsity (1.25x there, best 2.00x at 95%, where the MAC count promises 20.0x)"
            ) in f.text
    acc = _finding(compute(load(db)), "digits-lenet300: after fine-tuning")
    assert "magnitude keeps top-1 accuracy within 1 point of dense (97.6%) up to 80%" in acc.text
    assert "at 90% the best method is magnitude (96.0% ± 1.0, n=3)" in acc.text
    assert "the worst random (82.0% ± 2.0)" in acc.text
    ctl = _finding(compute(load(db)), "digits-lenet300 pruned to 90%")
    assert "23,610 nonzero" in ctl.text and "(digits-lenet300-matched90, 23,739 params)" in ctl.text
    assert "pruning beats training the smaller model by 1.0 points" in ctl.text

    # a faster CSR at 80% moves the crossover, and the sentence with it
    c = sqlite3.connect(db)
    c.execute("UPDATE results SET p50_ms = 8.0 WHERE kind='latency' AND engine='native' "
              "AND sparsity = 0.8")
    c.commit()
    c.close()
    f2 = _finding(compute(load(db)), "On this machine, mlp-4096 (latency-only) at batch 1")
    assert "only from 80% sparsity (1.25x there, best 2.00x at 95%" in f2.text
    assert f2.text != f.text


@pytest.mark.slow
def test_report_files_and_page(db, tmp_path):
    from prunebench.report.browser import check_page, find_chromium

    out = tmp_path / "r" / "report.html"
    out.parent.mkdir()
    paths = write_report(db, out)
    html = out.read_text()
    md = out.with_suffix(".md").read_text()
    assert paths["figures"] == html.count("<img ") >= 6
    for anchor in ("table-crossover", "table-accuracy", "table-size", "table-controls",
                   "table-quant", "table-failures", "table-layer-size"):
        assert f"id='{anchor}'" in html
    assert "mlp-4096 <span class='lo'>(latency-only" in html
    assert "native / csr beats the fastest dense run (torch-dense, 10 ms) only from 90%" in md
    assert "(Table 3: latency crossover)" in md
    assert "verification: max error 0.01" in html
    assert [p.name for p in out.parent.iterdir()] == ["report.html", "report.md"] or \
        sorted(p.name for p in out.parent.iterdir()) == ["report.html", "report.md"]
    if find_chromium() is None and not os.environ.get("PRUNEBENCH_REQUIRE_BROWSER"):
        pytest.skip("chromium is not installed (`make test` installs it)")
    res = check_page(out)
    assert res == {**res, "images": paths["figures"], "broken": 0, "errors": 0,
                   "img_tags": paths["figures"]}


def test_report_of_empty_database_writes_nothing(tmp_path):
    from prunebench.study.store import Store

    db = tmp_path / "empty.sqlite"
    Store(db).close()
    with pytest.raises(BadInputError, match="has no study results"):
        report_command(str(db), str(tmp_path / "report.html"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


def test_report_bad_inputs(tmp_path, db):
    with pytest.raises(BadInputError, match="does not exist"):
        report_command(str(tmp_path / "missing.sqlite"))
    foreign = tmp_path / "other.sqlite"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="another program"):
        report_command(str(foreign), str(tmp_path / "x.html"))
    with pytest.raises(BadInputError, match="does not exist"):
        report_command(str(db), str(tmp_path / "no" / "such" / "report.html"))
    with pytest.raises(BadInputError, match="is a directory"):
        report_command(str(db), str(tmp_path))
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.md"))


def test_report_command_json(db, tmp_path, capsys):
    import json

    doc = report_command(str(db), as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed["report"] == str(db.with_name("report.html")) == doc["report"]
    assert any("beats the fastest dense run" in f for f in printed["findings"])


def test_speedups_are_side_by_side_ratios_when_rows_carry_their_reference(tmp_path):
    """Rows timed beside the dense baseline: the speedup is the ratio of that one run, not the
    ratio to the dense job's time taken at another moment (here the machine was 25% faster
    during the csr job: 4 ms beside a baseline of 8 ms is 2x, not 10/4 = 2.5x)."""
    from .synthetic import _beside, _latency_row
    from prunebench.measure import fingerprint
    from prunebench.study.store import Store

    def row(label, sp, engine, fmt, ms, ref_ms):
        return _beside(_latency_row("mlp-4096", label, sp, engine, fmt, 1, ms), ref_ms)

    path = tmp_path / "beside.sqlite"
    fp = fingerprint()
    with Store(path) as s:
        s.add(row("dense", 0.0, "torch-dense", "dense", 10.0, 10.0), fp)
        # 2x dense PyTorch beside it, though its 11 ms are more than the torch-dense job took
        s.add(row("dense", 0.0, "onnxruntime", "dense", 11.0, 22.0), fp)
        s.add(row("magnitude", 0.9, "native", "csr", 4.0, 8.0), fp)
        # OpenVINO's lossy bf16 default, 4x dense PyTorch: never the fp32 rows' reference
        bf16 = row("dense", 0.0, "openvino", "dense", 2.5, 10.0)
        bf16.update(value_encoding="bf16", job_hash=bf16["job_hash"] + "-bf16")
        s.add(bf16, fp)
        s.add(_latency_row("mlp-4096", "magnitude", 0.9, "scipy", "csr", 1, 5.0), fp)  # old row
    lat = D.latency_table(load(path)).set_index("pair")
    assert lat.loc["native / csr", "speedup"] == pytest.approx(2.0)
    assert lat.loc["native / csr", "side_by_side"]
    assert lat.loc["native / csr", "reference_ms"] == pytest.approx(8.0)
    # the fastest dense engine is chosen by its own side-by-side speedup (2x), not by ms
    assert lat.loc["native / csr", "best_dense"] == "onnxruntime"
    assert lat.loc["native / csr", "speedup_best"] == pytest.approx(1.0)
    # a row without a reference (an older database) falls back to the dense job's time
    assert not lat.loc["scipy / csr", "side_by_side"]
    assert lat.loc["scipy / csr", "speedup"] == pytest.approx(10.0 / 5.0)
    assert lat.loc["scipy / csr", "speedup_best"] == pytest.approx(1.0)


def test_headline_speedup_is_the_ratio_to_the_fastest_dense_engine_timed_in_the_job(tmp_path):
    """A row timed beside the fastest dense engine (``extra.fastest_dense``) takes its speedup
    over it from that one run: 3 ms beside ONNX Runtime's 4.5 ms is 1.5x, whatever the
    ONNX Runtime dense job measured at another moment (5.5 ms there) or chained ratios say."""
    from .synthetic import _beside, _latency_row
    from prunebench.measure import fingerprint
    from prunebench.study.store import Store

    def row(label, sp, engine, fmt, ms, ref_ms, fastest=None):
        return _beside(_latency_row("mlp-4096", label, sp, engine, fmt, 1, ms), ref_ms, fastest)

    path = tmp_path / "fastest.sqlite"
    fp = fingerprint()
    with Store(path) as s:
        s.add(row("dense", 0.0, "torch-dense", "dense", 10.0, 10.0), fp)
        s.add(row("dense", 0.0, "onnxruntime", "dense", 5.5, 10.0), fp)
        s.add(row("magnitude", 0.9, "openvino", "csr", 3.0, 9.0, ("onnxruntime", 4.5)), fp)
        s.add(row("magnitude", 0.9, "native", "csr", 4.0, 8.0), fp)  # no fastest beside it
    lat = D.latency_table(load(path)).set_index("pair")
    ov = lat.loc["openvino / csr"]
    assert ov.fastest_beside and ov.best_dense == "onnxruntime"
    assert ov.best_dense_ms == pytest.approx(4.5)
    assert ov.speedup_best == pytest.approx(1.5)
    assert ov.speedup == pytest.approx(3.0)
    nat = lat.loc["native / csr"]  # chained: 2x torch over ORT's 10/5.5 x torch
    assert not nat.fastest_beside
    assert nat.speedup_best == pytest.approx(2.0 / (10.0 / 5.5))


@pytest.mark.slow
def test_profiles_of_one_machine_are_compared(tmp_path):
    """Issue 17: the same latency grid in the default and the edge profile of one machine (two
    machine ids, one host_id) gives one row per configuration with edge / default; the edge
    rows are another machine to the crossover tables, so each profile has its own baseline."""
    from .synthetic import _latency_row

    from prunebench.measure import fingerprint
    from prunebench.study.store import Store

    here = fingerprint()
    edge = dict(here, id="e" * 16, profile="edge")
    path = tmp_path / "results.sqlite"
    make_db(path)  # default-profile rows of mlp-4096 (torch-dense 10 ms, native/csr per CSR_MS)
    with Store(path) as s:
        for sp, ms in ((0.0, 40.0), (0.9, 8.0)):
            label = "dense" if sp == 0 else "magnitude"
            s.add(_latency_row("mlp-4096", label, sp, "torch-dense", "dense", 1, 25.0), edge)
            s.add(_latency_row("mlp-4096", label, sp, "native", "csr", 1, ms * 3), edge)
        two = dict(_latency_row("mlp-4096", "magnitude", 0.9, "native", "csr", 1, 4.0),
                   threads=2, job_hash="t2")
        s.add(two, here)  # 2 threads in the default profile only: no pair
    d = load(path)
    pt = D.run_profile_table(d)
    assert len(pt) == 4 and set(pt.threads) == {1}
    csr90 = pt[(pt.engine == "native") & (pt.sparsity == 0.9)].iloc[0]
    assert (csr90.default_ms, csr90.edge_ms, csr90.edge_vs_default) == (8.0, 24.0, 3.0)
    dense = pt[pt.engine == "torch-dense"]
    assert list(dense.edge_vs_default) == [2.5, 2.5]
    assert set(pt.hostname) == {here["hostname"]}
    mt = D.machine_table(d)
    assert f"{here['hostname']} (edge profile)" in set(mt.hostname)
    out = tmp_path / "report.html"
    write_report(path, out)
    html = out.read_text()
    assert "Run profiles compared on one machine" in html and "3x" in html
    assert f"(edge profile of {here['host_id']})" in html


def test_no_profile_table_from_one_profile(db):
    assert D.run_profile_table(load(db)).empty
