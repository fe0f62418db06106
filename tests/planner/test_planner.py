"""The planner's choices, with timings injected (the logic) and measured (the plumbing:
compile, verify, cache, model file, inspect)."""
import json

import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.errors import BadInputError
from prunebench.planner import DENSE_MARGIN, plan
from prunebench.planner.rules import fastest


def _pruned(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(32, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(),
                        nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 10))
    return pb.prune(net, "magnitude", 0.9, layers=["2", "4"]).model


class FakeTimer:
    """Injected timings: {label: {candidate: ms}}; counts the calls it answers."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, fns, *, rounds, label):
        self.calls.append((label, sorted(fns)))
        return {k: self.table[label][k] for k in fns}


LAYERS = {"2": {"dense": 1.0, "csr": 0.5, "delta8": 0.7, "bsr": 0.9, "bitmap": 0.6, "ell": 0.55,
                "panel": 0.65, "cbcsr": 0.75},
          "4": {"dense": 1.0, "csr": 1.2, "delta8": 1.4, "bsr": 1.1, "bitmap": 1.3, "ell": 1.25,
                "panel": 1.35, "cbcsr": 1.45}}


def _table(model_ms):
    # whole models on delta8, panel and cbcsr are slower than dense and over every budget below
    return dict(LAYERS, model={"delta8": 2.2, "panel": 2.3, "cbcsr": 2.4, **model_ms})


def test_fastest_needs_more_than_noise_to_leave_dense_and_ties_go_to_the_smaller():
    b = {"dense": 1000, "csr": 300, "bitmap": 250}
    assert fastest({"dense": 1.0, "csr": 0.5, "bitmap": 0.9}, b) == "csr"
    # 2% faster than dense is noise: dense stays
    assert fastest({"dense": 1.0, "csr": 1 - DENSE_MARGIN / 2}, b) == "dense"
    # csr and bitmap within 2% of each other: the smaller (bitmap) wins
    assert fastest({"dense": 1.0, "csr": 0.50, "bitmap": 0.505}, b) == "bitmap"


def test_latency_plan_takes_the_fastest_format_per_layer(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    timer = FakeTimer(_table({"dense": 2.0, "csr": 1.7, "bsr": 2.0, "bitmap": 1.9,
                              "ell": 1.8, "per-layer": 1.5}))
    p = plan(model, torch.randn(1, 32), timer=timer, cache=False)
    assert p.formats == {"2": "csr"}                 # layer 4: every format slower than dense
    assert p.chosen_from == "per-layer" and p.planned_ms == 1.5
    assert p.dense_ms == 2.0 and p.best_single_format == "csr" and p.best_single_ms == 1.7
    doc = p.to_json()
    lay = {row["name"]: row for row in doc["layers"]}
    assert lay["2"]["format"] == "csr" and lay["4"]["format"] == "dense"
    # cbcsr is built for batches of 8 and more: not a default candidate at batch 1
    assert lay["2"]["times_ms"] == {k: v for k, v in LAYERS["2"].items() if k != "cbcsr"}
    assert "nm" in lay["2"]["unavailable"]
    assert lay["0"]["reason"].startswith("not pruned")
    assert doc["verify"]["ok"] and doc["verify"]["max_abs"] < 1e-5
    # the plan computes what the pruned model computes
    x = torch.randn(5, 32)
    torch.testing.assert_close(p.compile(model)(x), model(x), atol=1e-5, rtol=1e-5)


def test_whole_model_that_beats_the_per_layer_plan_is_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    timer = FakeTimer(_table({"dense": 2.0, "csr": 1.2, "bsr": 2.0, "bitmap": 1.9,
                              "ell": 1.8, "per-layer": 1.5}))
    p = plan(_pruned(), torch.randn(1, 32), timer=timer, cache=False)
    assert p.chosen_from == "csr" and p.planned_ms == 1.2
    assert p.formats == {"2": "csr", "4": "csr"}
    assert p.per_layer_formats == {"2": "csr"}


def test_size_plan_is_the_smallest_within_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    # the planner's trial of the size plan (key "size") measures 1.7 ms
    timer = FakeTimer(_table({"dense": 2.0, "csr": 1.7, "bsr": 2.0, "bitmap": 1.9,
                              "ell": 1.8, "per-layer": 1.5, "size": 1.7}))
    p = plan(model, torch.randn(1, 32), objective="size", budget_ms=1.95, timer=timer,
             cache=False)
    assert p.planned_ms <= 1.95
    lay = {row["name"]: row for row in p.layers}
    # layer 4 moves to its smallest format (within budget by the estimate and the measurement)
    smallest_4 = min(lay["4"]["bytes"], key=lay["4"]["bytes"].get)
    assert p.formats["4"] == smallest_4
    # never larger than any single-format model that meets the same budget
    for f, ms in p.model_ms.items():
        if f in lay["2"]["bytes"] and ms <= 1.95:
            assert p.model_bytes["planned"] <= p.model_bytes[f], f


def test_size_plan_over_budget_undoes_changes_until_within(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    answers = iter([2.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])

    class Timer(FakeTimer):
        def __call__(self, fns, *, rounds, label):
            if label == "model" and list(fns) == ["size"]:
                self.calls.append((label, ["size"]))
                return {"size": next(answers)}
            return super().__call__(fns, rounds=rounds, label=label)

    timer = Timer(_table({"dense": 2.0, "csr": 1.7, "bsr": 2.0, "bitmap": 1.9, "ell": 1.8,
                          "per-layer": 1.5}))
    p = plan(_pruned(), torch.randn(1, 32), objective="size", budget_ms=1.95, timer=timer,
             cache=False)
    assert p.planned_ms <= 1.95
    # measured 2.5 ms (over the budget), undone one change, measured again within it
    assert sum(1 for label, keys in timer.calls if keys == ["size"]) == 2
    assert p.model_ms["per-layer-size"] == 1.0
    # the undone plan is larger than the all-csr model (1.7 ms, within budget): csr wins
    assert p.chosen_from == "csr"
    assert p.model_bytes["planned"] == p.model_bytes["csr"] < p.model_bytes["per-layer-size"]


def test_measured_plan_is_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    x = torch.randn(1, 32)
    first = plan(model, x)
    assert first.cache_hits == 0
    files = list((tmp_path / "planner").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())
    counting = FakeTimer({})
    second = plan(model, x, timer=counting)
    assert counting.calls == []                     # nothing measured again
    assert second.formats == first.formats and second.cache_hits > 0
    # another sparsity pattern is another key: measured
    other = _pruned(seed=1)
    third = plan(other, x, timer=lambda fns, **kw: {k: 1.0 for k in fns})
    assert third.cache_hits == 0
    # other kernel or runtime code (an upgrade, an edit): the old timings are not reused
    from prunebench.planner import search

    monkeypatch.setattr(search, "sources_digest", lambda: "other-code")
    fourth = plan(model, x, timer=lambda fns, **kw: {k: 1.0 for k in fns})
    assert fourth.cache_hits == 0


def test_sources_digest_follows_the_kernel_and_runtime_files(tmp_path, monkeypatch):
    from prunebench.kernels import _cache

    before = _cache.sources_digest()
    assert before == _cache.sources_digest() and len(before) == 16
    fake = tmp_path / "kernels"
    fake.mkdir()
    (tmp_path / "runtime").mkdir()
    (fake / "csr.py").write_text("x = 1\n")
    monkeypatch.setattr(_cache, "HERE", fake)
    one = _cache.sources_digest()
    (fake / "csr.py").write_text("x = 2\n")
    assert _cache.sources_digest() != one
    (tmp_path / "runtime" / "compile.py").write_text("y = 1\n")
    assert _cache.sources_digest() not in (one, before)


def test_bad_arguments_are_one_clear_error():
    model = _pruned()
    x = torch.randn(1, 32)
    with pytest.raises(BadInputError, match="--objective: got 'speed'"):
        plan(model, x, objective="speed")
    with pytest.raises(BadInputError, match="--budget-ms: got -1"):
        plan(model, x, objective="size", budget_ms=-1)
    with pytest.raises(BadInputError, match="only with --objective size"):
        plan(model, x, budget_ms=3.0)
    with pytest.raises(BadInputError, match="--engine: got 'torch-dense'"):
        plan(model, x, engine="torch-dense")
    with pytest.raises(BadInputError, match="fewer than --batch 4"):
        plan(model, x, batch=4)


def test_encode_auto_uses_the_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    timer = FakeTimer(_table({"dense": 2.0, "csr": 1.7, "bsr": 2.0, "bitmap": 1.9,
                              "ell": 1.8, "per-layer": 1.5}))
    layers, rows = pb.encode(model, "auto", example_input=torch.randn(1, 32), timer=timer)
    assert rows["2.weight"]["format"] == "csr" and rows["4.weight"]["format"] == "dense"
    W = model[2].weight.detach().numpy()
    assert (layers["2.weight"].to_dense() == W).all()
    with pytest.raises(BadInputError, match="pass example_input"):
        pb.encode(model, "auto")


def _favouring(layer: str, fmt: str, seen: dict):
    """Injected timings: ``fmt`` fastest in ``layer``, dense fastest in every other layer,
    the per-layer plan fastest among whole models; the candidates of each label go in
    ``seen``."""
    def timer(fns, *, rounds, label):
        seen[label] = sorted(fns)
        if label == layer:
            return {k: (0.1 if k == fmt else 1.0) for k in fns}
        if label == "model":
            return {k: (0.3 if k == "per-layer" else 1.0) for k in fns}
        return {k: (0.5 if k == "dense" else 1.0) for k in fns}
    return timer


def test_conv_net_with_batchnorm_plans_and_computes_the_same(tmp_path, monkeypatch):
    """Conv layers are timed on their real (captured) input; BatchNorm's 0-d counter is
    hashed for the cache key like any tensor."""
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 8, 1)).eval()
    pruned = pb.prune(net, "magnitude", 0.8, layers=["3", "6"]).model
    seen = {}
    timer = _favouring("6", "csr", seen)  # the 1x1 conv is fastest in csr, the 3x3 conv dense
    x = torch.randn(2, 3, 8, 8)
    p = plan(pruned, x, timer=timer, cache=False)
    assert seen["3"][0] == "bitmap" and "dense" in seen["3"]
    assert p.formats == {"6": "csr"} and p.chosen_from == "per-layer"
    torch.testing.assert_close(p.compile(pruned)(x), pruned(x), atol=1e-4, rtol=1e-4)


def test_encode_auto_stores_the_layout_the_planner_timed(tmp_path, monkeypatch):
    """Format options go to the planner and to the encoder alike: a bsr layer chosen with
    1x4 blocks is stored with 1x4 blocks (not the default 4x4)."""
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    seen = {}
    timer = _favouring("2", "bsr", seen)
    layers, rows = pb.encode(model, "auto", example_input=torch.randn(1, 32), timer=timer,
                             block=(1, 4))
    assert "bsr" in seen["2"] and rows["2.weight"]["format"] == "bsr"
    assert tuple(layers["2.weight"].block) == (1, 4)
    assert (layers["2.weight"].to_dense() == model[2].weight.detach().numpy()).all()


@pytest.mark.parametrize("values", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("pattern", ["scattered", "blocks"])
def test_too_few_zeros_never_hides_a_format_smaller_than_dense(values, pattern):
    """At the largest zero count the planner skips as 'too few', every format it could
    choose (and the other sparse formats) still encodes larger than dense, measured."""
    import numpy as np

    from prunebench.formats import FORMATS, encode
    from prunebench.formats.values import value_nbytes
    from prunebench.planner.rules import too_few_zeros

    rows = cols = 256
    total = rows * cols
    vb = value_nbytes(values)
    zeros = max(z for z in range(0, 2000) if too_few_zeros(z, total, values))
    assert not too_few_zeros(zeros + 1, total, values)
    rng = np.random.default_rng(0)
    W = rng.uniform(0.5, 1.0, (rows, cols)).astype(np.float32)
    if pattern == "scattered":
        W.reshape(-1)[rng.choice(total, zeros, replace=False)] = 0
    else:  # whole 4x4 and 16x16 blocks first, the rest scattered: the best case for BSR
        done = 0
        for b in (16, 4):
            while zeros - done >= b * b:
                r, c = rng.integers(0, rows // b) * b, rng.integers(0, cols // b) * b
                if (W[r:r + b, c:c + b] != 0).all():
                    W[r:r + b, c:c + b] = 0
                    done += b * b
        rest = np.flatnonzero(W)
        W.reshape(-1)[rng.choice(rest, zeros - done, replace=False)] = 0
    assert int((W == 0).sum()) == zeros
    dense = encode(W, "dense", values=values).nbytes()["total"]
    assert dense >= total * vb
    tried = 0
    for name in FORMATS.names():
        if name in ("dense", "lowrank", "nm"):   # not sparse-storage candidates (nm: no fit)
            continue
        opts = [{}] + ([{"block": (16, 16)}] if name == "bsr" else [])
        for o in opts:
            try:
                f = encode(W, name, values=values, **o)
            except Exception:  # noqa: BLE001 - a format that cannot hold this matrix
                continue
            tried += 1
            assert f.nbytes()["total"] > dense, (name, o, f.nbytes(), dense)
    assert tried >= 6


def test_layer_with_a_few_stray_zeros_is_not_encoded(monkeypatch):
    """An unpruned layer with exact zeros from initialisation (mlp-4096 has 1-2 per layer) is
    left dense without encoding it in every format (that took 5 s of a 7 s plan)."""
    import importlib

    rc = importlib.import_module("prunebench.runtime.compile")  # the module, not the function
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                        nn.Linear(512, 10))
    with torch.no_grad():
        net[2].weight[0, :3] = 0                     # 3 zeros of 262,144
    encoded = []
    real = rc._encode
    monkeypatch.setattr(rc, "_encode", lambda *a, **k: encoded.append(a[2]) or real(*a, **k))
    p = plan(net, torch.randn(1, 64), timer=lambda fns, **kw: {k: 1.0 for k in fns},
             cache=False)
    lay = next(layer for layer in p.layers if layer["name"] == "2")
    assert lay["format"] == "dense" and "too few" in lay["reason"]
    assert list(lay["times_ms"]) == [] and encoded == []


def test_interleaved_timing_races_out_candidates_that_cannot_win(fake_clock):
    """a 1 ms, b 1.2 ms, c 3 ms a call: with a race at 1.5x, c is timed for the first
    RACE_MIN_ROUNDS rounds only and b (within 1.5x) for all; medians are the true times.
    Without a race every candidate is timed every round."""
    from prunebench import planner

    calls = {"a": 0, "b": 0, "c": 0}

    def make(name, ms):
        def fn():
            calls[name] += 1
            fake_clock.advance(ms / 1e3)
        return fn

    fns = {"a": make("a", 1.0), "b": make("b", 1.2), "c": make("c", 3.0)}
    out = planner.interleaved_ms(fns, rounds=7, sample_s=0.002, clock=fake_clock,
                                 drop_above=1.5)
    assert out == pytest.approx({"a": 1.0, "b": 1.2, "c": 3.0})
    # 2 warm-up/calibration calls, then reps per round: a 2, b 2, c 1
    assert calls == {"a": 2 + 7 * 2, "b": 2 + 7 * 2, "c": 2 + planner.RACE_MIN_ROUNDS * 1}
    calls.update(a=0, b=0, c=0)
    out = planner.interleaved_ms(fns, rounds=7, sample_s=0.002, clock=fake_clock)
    assert calls == {"a": 2 + 14, "b": 2 + 14, "c": 2 + 7}


def test_batched_only_formats_join_the_default_candidates_from_their_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    model = _pruned()
    table = _table({"dense": 2.0, "csr": 1.7, "bsr": 2.0, "bitmap": 1.9, "ell": 1.8,
                    "per-layer": 1.5})
    timed = {}
    for batch, formats in [(1, None), (8, None), (1, ("csr", "cbcsr"))]:
        timer = FakeTimer(table)
        plan(model, torch.randn(8, 32), batch=batch, formats=formats, timer=timer, cache=False)
        timed[(batch, formats)] = {f for label, fns in timer.calls if label == "2" for f in fns}
    assert "cbcsr" not in timed[(1, None)] and "csr" in timed[(1, None)]
    assert "cbcsr" in timed[(8, None)]
    assert timed[(1, ("csr", "cbcsr"))] == {"dense", "csr", "cbcsr"}
