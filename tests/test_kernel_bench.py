"""`prunebench kernels` / measure.kernel_bench: the rows and crossover objects it reports, the
matrices it builds, and bad input. Nothing here asserts a timing: only the shapes of the
answers, the byte accounting and that every candidate computes the right product."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from prunebench.cli import main
from prunebench.errors import BadInputError
from prunebench.measure import bandwidth as bw
from prunebench.measure import kernel_bench as kb

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROW_KEYS = {"shape", "sparsity", "batch", "engine", "format", "ms", "speedup_vs_dense", "gbps",
            "bandwidth_fraction", "cache", "bytes", "values", "threads_effective"}


@pytest.fixture(autouse=True)
def small_buffers(monkeypatch):
    """Streaming and flush buffers of a few MiB: the test checks plumbing, not bandwidth."""
    monkeypatch.setattr(bw, "STREAM_BYTES", 8 << 20)
    monkeypatch.setattr(bw, "FLUSH_BYTES", 4 << 20)


def test_rows_and_crossover():
    res = kb.run([kb.Shape(64, 48), kb.Shape(16, 8, batch=40)], sparsities=[0.5, 0.9],
                 batches=[1, 3], cache="both", repeats=2, rounds=2, threads=1)
    rows = res["rows"]
    assert all(ROW_KEYS <= set(r) for r in rows)
    assert {r["cache"] for r in rows} == {"warm", "cold"}
    assert {r["batch"] for r in rows if r["shape"] == [64, 48]} == {1, 3}
    assert {r["batch"] for r in rows if r["shape"] == [16, 8]} == {40}
    engines = {(r["engine"], r["format"]) for r in rows}
    assert {("torch-dense", "dense"), ("native", "csr"), ("native", "bitmap"),
            ("torch-sparse", "csr"), ("scipy", "csr"), ("onnxruntime", "dense")} <= engines
    for r in rows:
        if r["engine"] == "torch-dense":
            assert r["speedup_vs_dense"] == 1.0
            io = 4 * r["batch"] * (r["shape"][0] + r["shape"][1])
            assert r["bytes"] == r["shape"][0] * r["shape"][1] * 4 + io
        assert r["gbps"] == pytest.approx(r["bytes"] / r["ms"] / 1e6)
        assert r["bandwidth_fraction"] == pytest.approx(r["gbps"] / res["meta"]["stream_gbps"])
    assert all(r["threads_effective"] == 1 for r in rows if r["engine"] == "scipy")
    # one crossover object per shape, batch and cache state
    keys = {(tuple(c["shape"]), c["batch"], c["cache"]) for c in res["crossover"]}
    assert keys == {((64, 48), 1, "warm"), ((64, 48), 1, "cold"), ((64, 48), 3, "warm"),
                    ((64, 48), 3, "cold"), ((16, 8), 40, "warm"), ((16, 8), 40, "cold")}
    for c in res["crossover"]:
        assert c["sparsity"] is None or c["sparsity"] in (0.5, 0.9)
        assert set(c) >= {"shape", "batch", "cache", "sparsity", "engine", "format"}


def test_crossover_is_the_lowest_winning_sparsity():
    def row(s, engine, fmt, speedup):
        return {"shape": [8, 8], "batch": 1, "cache": "cold", "sparsity": s, "engine": engine,
                "format": fmt, "values": "fp32", "speedup_vs_dense": speedup}
    rows = [row(0.5, "torch-dense", "dense", 1.0), row(0.5, "native", "csr", 0.7),
            row(0.7, "torch-dense", "dense", 1.0), row(0.7, "scipy", "csr", 1.2),
            row(0.7, "native", "csr", 1.1), row(0.9, "native", "csr", 3.0)]
    [c] = kb.crossovers(rows)
    assert (c["sparsity"], c["engine"], c["format"]) == (0.7, "scipy", "csr")
    assert (c["native_sparsity"], c["native_format"]) == (0.7, "csr")
    [none] = kb.crossovers(rows[:2])
    assert none["sparsity"] is None and none["native_sparsity"] is None


@pytest.mark.parametrize("pattern", ["unstructured", "block", "nm"])
def test_matrices_have_the_requested_pattern(pattern):
    rng = np.random.default_rng(0)
    W, actual, note = kb.make_matrix(kb.Shape(64, 96), 0.75, pattern, rng)
    assert W.dtype == np.float32 and W.shape == (64, 96)
    assert abs(actual - 0.75) < 0.08
    if pattern == "block":
        B = W.reshape(16, 4, 24, 4).transpose(0, 2, 1, 3).reshape(16, 24, 16)
        nz = (B != 0).sum(axis=2)
        assert set(np.unique(nz)) <= {0, 16}
    if pattern == "nm":
        assert note == "1:4" and ((W.reshape(64, 24, 4) != 0).sum(axis=2) <= 1).all()
        res = kb.run([kb.Shape(32, 64)], sparsities=[0.75], batches=[2], pattern="nm",
                     cache="warm", repeats=1, rounds=1, threads=1)
        assert ("native", "nm") in {(r["engine"], r["format"]) for r in res["rows"]}
    assert kb.nm_for(0.9) == (1, 8) and kb.nm_for(0.5) == (2, 4)


def test_from_model_uses_the_pruned_matrices():
    mats = kb.model_matrices("digits-lenet300", "magnitude", [0.8])
    assert [s.label for s, _, _ in mats] == ["layers.1.weight"]
    shape, W, info = mats[0]
    assert (shape.rows, shape.cols) == (100, 300) and info["actual_sparsity"] == pytest.approx(0.8, abs=0.01)
    res = kb.run(matrices=mats, batches=[1], cache="warm", repeats=1, rounds=1, threads=1)
    assert {r["layer"] for r in res["rows"]} == {"layers.1.weight"}
    assert res["crossover"][0]["layer"] == "layers.1.weight"


def test_cli_json(capsys):
    code = main(["kernels", "--shape", "40x24,8x8@20", "--sparsity", "0.5,0.95", "--batch", "2",
                 "--cache", "warm", "--repeats", "1", "--threads", "1", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"meta", "rows", "crossover", "skipped"}
    assert {tuple(r["shape"]) for r in doc["rows"]} == {(40, 24), (8, 8)}
    assert len(doc["crossover"]) == 2


def test_cli_table(capsys):
    code = main(["kernels", "--shape", "32x32", "--sparsity", "0.9", "--batch", "1",
                 "--cache", "cold", "--repeats", "1", "--threads", "1"])
    cap = capsys.readouterr()
    assert code == 0 and "crossover" in cap.out and "streaming-read bandwidth" in cap.out


BAD = [
    (["--shape", "4096"], "--shape: got '4096', expected ROWSxCOLS"),
    (["--shape", "0x5"], "must be >= 1"),
    (["--sparsity", "0.5,1.0"], "--sparsity: got 1.0; every sparsity must be in [0, 1)"),
    (["--sparsity", "-0.1"], "every sparsity must be in [0, 1)"),
    (["--sparsity", "half"], "--sparsity: got 'half'"),
    (["--threads", str((os.cpu_count() or 1) + 1)], "--threads: got"),
    (["--pattern", "diagonal"], "--pattern: got 'diagonal'; allowed: unstructured, block, nm"),
    (["--cache", "lukewarm"], "--cache: got 'lukewarm'"),
    (["--cache", "cold,tepid"], "--cache: got 'cold,tepid' ('tepid' is not a cache state); "
                                "allowed: warm, cold, layer, both, or a comma list of them"),
    (["--batch", "0"], "--batch"),
    (["--values", "int4"], "--values"),
    (["--from-model", "mnist1d-mlp"], "--from-model and --method go together"),
    (["--from-model", "nope", "--method", "magnitude"], "unknown model 'nope'"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[n for _, n in BAD])
def test_bad_input_one_line(argv, needle, capsys):
    code = main(["kernels", *argv])
    cap = capsys.readouterr()
    assert code == 2 and needle in cap.err, cap.err
    assert len(cap.err.strip().splitlines()) == 1 and cap.out == ""


def test_api_checks():
    with pytest.raises(BadInputError, match="every sparsity"):
        kb.check_sparsities([1.2])
    with pytest.raises(BadInputError, match="--pattern"):
        kb.run([kb.Shape(8, 8)], pattern="weird")


def test_cache_modes():
    assert kb.cache_modes("cold") == ["cold"]
    assert kb.cache_modes("both") == ["warm", "cold"]
    assert kb.cache_modes("layer, cold,both") == ["layer", "cold", "warm"]
    with pytest.raises(BadInputError, match="--cache: got 'warm,hot' \\('hot' is not"):
        kb.cache_modes("warm,hot")
    with pytest.raises(BadInputError, match="--cache: got ''"):
        kb.cache_modes("")


def test_layer_runs_flush_then_twin_before_every_timed_call():
    """The order of events in a ``layer`` run: flush, the candidate's twin, the timed call."""
    log: list[str] = []

    def cand(name: str) -> kb.Candidate:
        return kb.Candidate("native", name, "fp32", 0, lambda X: log.append(name), 1)

    cands = [cand("a"), cand("b")]
    twins = {kb._key(c): cand(c.format + "-twin") for c in cands}
    kb._time(cands, torch.zeros(1, 4), repeats=4, rounds=2, flush=lambda: log.append("flush"),
             twins=twins)
    assert log[:4] == ["a", "b", "a-twin", "b-twin"]        # first calls, outside the timing
    timed = log[4:]
    assert len(timed) == 3 * 8 and all(len(c.samples) == 4 for c in cands)
    for i in range(0, len(timed), 3):
        flush, twin, call = timed[i:i + 3]
        assert (flush, twin) == ("flush", call + "-twin")


def test_layer_rows_have_twins():
    res = kb.run([kb.Shape(64, 48)], sparsities=[0.9], batches=[1], cache="cold,layer",
                 repeats=2, rounds=1, threads=1)
    layer = [r for r in res["rows"] if r["cache"] == "layer"]
    cold = [r for r in res["rows"] if r["cache"] == "cold"]
    assert layer and len(layer) == len(cold)
    assert all(r["twin"] is True for r in layer) and all(r["twin"] is None for r in cold)
    assert res["meta"]["cache"] == "cold,layer"
