"""`prunebench bench` on pruned and packed models: one configuration measured and verified
from the command line, the row stored; a failed verification stops the measurement (exit 2,
failed row, never timed); bad input is one line and exit 2."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest
import torch

from prunebench import zoo
from prunebench.cli import main
from prunebench.engines import ENGINES, Engine
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import save_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FAST = ["--min-runs", "3", "--min-time", "0", "--warmup", "1", "--no-rss", "--json"]
KEYS = {"model", "batch", "threads", "latency_ms", "throughput", "param_bytes", "file_bytes",
        "peak_rss_bytes", "accuracy", "machine", "engine", "format", "verification",
        "database", "row_id"}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def rows(db):
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    return [dict(r) for r in c.execute("SELECT * FROM results ORDER BY id")]


@pytest.mark.slow
def test_pruned_model_on_native(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "digits-lenet300", "--method", "magnitude", "--sparsity", "0.9",
                          "--layers", "all", "--engine", "native", "--format", "bitmap",
                          "--values", "int8", "--threads", "1", "--db", db, *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert KEYS <= set(doc)
    assert (doc["engine"], doc["format"], doc["values"], doc["method"]) == \
        ("native", "bitmap", "int8", "magnitude")
    assert doc["sparsity"] == pytest.approx(0.9, abs=1e-3)
    v = doc["verification"]
    assert v["ok"] and v["values"] == "int8" and v["n"] == 256 and v["inputs"] == "test-split"
    assert 0 < doc["latency_ms"]["p50"] <= doc["latency_ms"]["p99"]
    # int8 bitmap at 90%: about 0.1 B of values + 1/8 B of mask per weight, vs 4 B dense
    dense = sum(p.numel() * 4 for p in zoo.build("digits-lenet300").parameters())
    assert doc["param_bytes"] < dense / 6
    assert doc["file_bytes"] < dense / 4
    [row] = rows(db)
    assert (row["status"], row["engine"], row["format"], row["value_encoding"], row["method"]) == \
        ("ok", "native", "bitmap", "int8", "magnitude")
    assert row["p50_ms"] == pytest.approx(doc["latency_ms"]["p50"])
    assert json.loads(row["extra"])["verification"]["ok"]


def test_packed_file_on_scipy_records_one_thread(tmp_path, capsys):
    net = zoo.build("mnist1d-mlp")
    pruned = prune(net, "magnitude", 0.9, layers=prunable_layers(net)).model
    path = tmp_path / "mlp.pbz"
    save_model(path, pruned, zoo_name="mnist1d-mlp", format="csr",
               info={"prune": {"method": "magnitude", "sparsity_achieved": 0.9}})
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", path, "--engine", "scipy", "--format", "coo",
                          "--threads", str(min(2, os.cpu_count() or 1)), "--db", db, *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == "mnist1d-mlp" and doc["file"] == str(path)
    assert doc["threads_effective"] == 1 and doc["method"] == "magnitude"
    assert doc["verification"]["ok"]
    assert rows(db)[0]["model"] == "mnist1d-mlp"


@pytest.mark.slow
def test_latency_only_model_verifies_on_random_inputs(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "mlp-4096", "--method", "magnitude", "--sparsity", "0.95",
                          "--engine", "torch-sparse", "--format", "csr", "--db", db, *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["accuracy"] == "n/a" and doc["verification"]["inputs"] == "random"
    assert doc["verification"]["n"] == 4
    # default layers: the first and last 4096x4096 layers are not pruned and stay dense
    assert set(doc["dense_layers"]) == {"layers.0.weight", "layers.2.weight"}


class _Broken(Engine):
    name = "test-bench-broken"
    formats = ("csr",)

    def compile(self, model, format="csr", *, values="fp32", threads=1, **options):
        model = model.eval()

        @torch.inference_mode()
        def run(x):
            return model(x) * 1.01

        return run


@pytest.fixture
def broken_engine():
    ENGINES.add(_Broken.name, _Broken())
    yield _Broken.name
    ENGINES._items.pop(_Broken.name)


@pytest.mark.slow
def test_failed_verification_exits_2_stores_failed_row_never_timed(tmp_path, capsys,
                                                                   broken_engine):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "mnist1d-mlp", "--method", "magnitude", "--engine",
                          broken_engine, "--format", "csr", "--db", db, *FAST], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "verification failed" in err
    assert "max error" in err and "not timed" in err
    doc = json.loads(out)
    assert doc["status"] == "failed" and not doc["verification"]["ok"]
    assert "latency_ms" not in doc
    [row] = rows(db)
    assert row["status"] == "failed" and "verification failed" in row["reason"]
    assert row["samples"] is None and row["p50_ms"] is None
    assert json.loads(row["extra"])["verification"]["rel_max"] > 1e-3


BAD = [
    (["--engine", "fpga"], "unknown engine 'fpga'"),
    (["--engine", "scipy", "--format", "bitmap"], "--format: engine scipy cannot run format 'bitmap'"),
    (["--engine", "torch-sparse", "--values", "int8"], "--values: engine torch-sparse runs fp32"),
    (["--format", "zip"], "unknown format 'zip'"),
    (["--method", "snip"], "unknown method 'snip'"),
    (["--method", "magnitude", "--sparsity", "1.5"], "sparsity=1.5 should be a float in [0, 1)"),
    (["--threads", str((os.cpu_count() or 1) + 1), "--format", "csr"], "cores"),
]


@pytest.mark.parametrize("extra, needle", BAD, ids=[n for _, n in BAD])
def test_bad_input_one_line_nothing_written(extra, needle, tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "mnist1d-mlp", *extra, "--db", db], capsys)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not db.exists()


def test_a_format_the_layer_cannot_use_names_the_layer(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "mnist1d-mlp", "--method", "magnitude", "--engine", "native",
                          "--format", "nm", "--db", db, *FAST], capsys)
    assert code == 2 and "layer fc2.weight: not 2:4 sparse" in err
    assert len(err.strip().splitlines()) == 1
    assert not db.exists() or rows(db) == []
    code, out, err = run(["bench", "mnist1d-mlp", "--method", "magnitude", "--engine", "native",
                          "--format", "nm", "--fallback", "dense", "--db", db, *FAST], capsys)
    assert code == 0, err
    assert "kept dense (fallback)" in json.loads(out)["dense_layers"]["fc2.weight"]


def test_method_with_a_model_file_is_refused(tmp_path, capsys):
    path = tmp_path / "m.pbz"
    save_model(path, zoo.build("mnist1d-mlp"), zoo_name="mnist1d-mlp", format="dense")
    code, _, err = run(["bench", path, "--method", "magnitude", "--db", tmp_path / "r.sqlite"],
                       capsys)
    assert code == 2 and "is a model file, already pruned" in err
