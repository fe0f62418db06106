"""Model file: save_model -> load_model round trips for every format on zoo architectures.

Models are built with random weights and pruned without fine-tuning, so nothing is trained
here. References are independent of the package's encoders: the pruned model's own tensors
(bit patterns), numpy's SVD, numpy's float16 rounding and the int8 rule worked out per row.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from prunebench import zoo
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import load_model, save_model
from prunebench.runtime.modelfile import inspect_model

torch.set_num_threads(1)

MODELS = ["digits-lenet300", "mnist1d-cnn", "mnist1d-gru"]
# every format that stores W's entries exactly, with the options it needs
EXACT_FORMATS = [("dense", {}), ("coo", {}), ("csr", {}), ("csc", {}), ("rcsr", {"bits": 4}),
                 ("rcsr", {"bits": 8}), ("delta8", {}), ("bsr", {"block": (4, 4)}), ("ell", {}), ("bitmap", {}),
                 ("cbcsr", {})]
GRU_GATES = [f"rnn.weight_{kind}_l0{rev}[{g}]" for kind in ("ih", "hh") for rev in ("", "_reverse")
             for g in range(3)]


def pruned(name: str, method: str = "magnitude", sparsity: float = 0.8, **kw) -> torch.nn.Module:
    net = zoo.build(name, seed=0)
    example = zoo.get_spec(name).example_input(2)
    return prune(net, method, sparsity, layers=kw.pop("layers", prunable_layers(net)),
                 example_input=example, **kw).model


@pytest.fixture(scope="module")
def models():
    return {name: pruned(name) for name in MODELS}


def bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy().view(np.uint8)


def assert_bit_identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        np.testing.assert_array_equal(bits(sa[k]), bits(sb[k]), err_msg=k)


def outputs(model: torch.nn.Module, name: str) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(zoo.get_spec(name).example_input(8, seed=3))


@pytest.mark.parametrize("fmt, opts", EXACT_FORMATS, ids=[f + "".join(f"-{v}" for v in o.values())
                                                          for f, o in EXACT_FORMATS])
@pytest.mark.parametrize("name", MODELS)
def test_fp32_round_trip_is_bit_identical(models, name, fmt, opts, tmp_path):
    model = models[name]
    path = tmp_path / "m.pbz"
    plan = save_model(path, model, zoo_name=name, format=fmt, keep_smaller=False, **opts)
    back, manifest = load_model(path)
    assert_bit_identical(back, model)
    assert torch.equal(outputs(back, name), outputs(model, name))
    assert {p["format"] for p in plan.values()} == {fmt}
    assert all(p["lossless"] and p["error"] == {"max_abs": 0.0, "rel_fro": 0.0} for p in plan.values())
    info = inspect_model(path)
    assert info["lossless"] and {v["format"] for v in info["layers"].values()} == {fmt}
    if name == "mnist1d-gru":        # one layer per gate: [32, 1] input, [32, 32] hidden matrices
        assert set(info["layers"]) == set(GRU_GATES) | {"fc.weight"}
        assert {n: v["shape"] for n, v in info["layers"].items() if n != "fc.weight"} == \
            {n: [32, 1] if "_ih_" in n else [32, 32] for n in GRU_GATES}


# an unpruned LeNet layer: some group of 4 holds 3 or 4 nonzeros
MISFIT = r"^not 2:4 sparse \(row 0, group 0 has [34] nonzeros\); stored dense$"
# a [32, 1] GRU input matrix pads to one group of 4 (it fits) but 2 fp32 slots + 1 index byte
# per row (32 * 9 B) exceed its 32 * 4 B dense
BIGGER = r"^nm would take 288 B > dense 128 B at sparsity 0\.00$"


@pytest.mark.parametrize("name, layers, dense", [
    ("digits-lenet300", "all", {}),                     # fan-ins 64, 300, 100: all 2:4
    ("digits-lenet300", ["layers.1"], {"layers.0.weight": MISFIT, "layers.2.weight": MISFIT}),
    ("mnist1d-gru", "all", {k: BIGGER for k in GRU_GATES if "_ih_" in k}),
])
def test_nm_round_trip_and_layers_that_do_not_fit_stay_dense(name, layers, dense, tmp_path):
    net = zoo.build(name, seed=0)
    model = prune(net, "nm", n=2, m=4, layers=prunable_layers(net) if layers == "all" else layers).model
    path = tmp_path / "nm.pbz"
    plan = save_model(path, model, zoo_name=name, format="nm", n=2, m=4)
    back, manifest = load_model(path)
    assert_bit_identical(back, model)
    assert torch.equal(outputs(back, name), outputs(model, name))
    assert {k for k, p in plan.items() if p["format"] == "dense"} == set(dense)
    assert {k for k, p in plan.items() if p["format"] == "nm"} == set(plan) - set(dense)
    for k, why in dense.items():
        assert re.match(why, plan[k]["reason"]), plan[k]["reason"]
    assert manifest["fallbacks"] == {k: plan[k]["reason"] for k in dense}
    assert {k: v["why"] for k, v in inspect_model(path)["layers"].items()} == \
        {k: plan[k]["reason"] if k in dense else "requested" for k in plan}


@pytest.mark.parametrize("name", ["digits-lenet300", "mnist1d-cnn"])
def test_channel_pruned_model_round_trips_in_compact(name, tmp_path):
    model = pruned(name, "channel", 0.5, layers=None)
    reference = zoo.build(name)
    changed = {n: m for n, m in model.named_modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
               and m.weight.shape != reference.get_submodule(n).weight.shape}
    assert changed, "channel pruning should have shrunk some layers"
    path = tmp_path / "c.pbz"
    save_model(path, model, zoo_name=name, format="compact", keep_smaller=False)
    back, manifest = load_model(path)
    assert_bit_identical(back, model)
    assert torch.equal(outputs(back, name), outputs(model, name))
    for n, m in changed.items():
        assert back.get_submodule(n).weight.shape == m.weight.shape
    # only the shape attributes that differ from the zoo build are in the manifest
    for n, cfg in manifest["modules"].items():
        ref_mod = reference.get_submodule(n)
        assert cfg and all(getattr(ref_mod, a) != v == getattr(model.get_submodule(n), a)
                           for a, v in cfg.items())


@pytest.mark.parametrize("name", ["digits-lenet300", "mnist1d-gru"])
def test_lowrank_is_lossy_with_the_eckart_young_error(name, tmp_path):
    model = zoo.build(name, seed=0)        # dense weights: low rank is the compression here
    path = tmp_path / "lr.pbz"
    rank = 4
    plan = save_model(path, model, zoo_name=name, format="lowrank", rank=rank, keep_smaller=False)
    back, _ = load_model(path)
    assert not inspect_model(path)["lossless"]
    params, got = dict(model.named_parameters()), dict(back.named_parameters())
    for lname, p in plan.items():
        assert p["format"] == "lowrank" and not p["lossless"]
        pname, _, gate = lname.partition("[")
        g, gates = (int(gate[:-1]), 3) if gate else (0, 1)
        W = params[pname].detach().double().reshape(gates, -1, params[pname].shape[1])[g].numpy()
        D = got[pname].detach().double().reshape(gates, -1, params[pname].shape[1])[g].numpy()
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        k = min(rank, len(s))
        np.testing.assert_allclose(D, (U[:, :k] * s[:k]) @ Vt[:k], atol=1e-5)
        want = np.sqrt(np.sum(s[k:] ** 2)) / np.linalg.norm(s)
        assert p["error"]["rel_fro"] == pytest.approx(want, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("values", ["fp16", "int8"])
@pytest.mark.parametrize("name", MODELS)
def test_lossy_values_report_a_bounded_error(models, name, values, tmp_path):
    model = models[name]
    path = tmp_path / "q.pbz"
    plan = save_model(path, model, zoo_name=name, format="csr", values=values, keep_smaller=False)
    back, manifest = load_model(path)
    assert manifest["values"] == values
    info = inspect_model(path)
    assert not info["lossless"] and not any(v["lossless"] for v in info["layers"].values())
    src, got = model.state_dict(), back.state_dict()
    covered = {k.partition("[")[0] for k in plan}
    for k in src:
        W = src[k].double().numpy()
        D = got[k].double().numpy()
        if k not in covered:             # biases, norms: float16 rounding, nothing else
            np.testing.assert_array_equal(D, src[k].half().double().numpy(), err_msg=k)
            continue
        if values == "fp16":
            bound = 2.0**-11 * np.abs(W) + 2.0**-25
        else:                             # int8: half a step of max|row| / 127, per gate row
            rows = W.reshape(W.shape[0], -1)
            bound = (np.abs(rows).max(axis=1, keepdims=True) / 127 / 2 * (1 + 1e-5)).repeat(rows.shape[1], 1)
            bound = bound.reshape(W.shape)
        assert (np.abs(D - W) <= bound).all(), k
    # the reported error is the one measured on the loaded weights
    measured = max(float((src[k].double() - got[k].double()).abs().max()) for k in covered)
    assert max(p["error"]["max_abs"] for p in plan.values()) == pytest.approx(measured, rel=1e-6)
    assert measured > 0 and all(not p["lossless"] and p["error"]["rel_fro"] < 0.01 for p in plan.values())
    y, y_back = outputs(model, name), outputs(back, name)
    assert not torch.equal(y, y_back)
    assert float((y - y_back).abs().max()) <= 0.02 * float(y.abs().max())


def test_save_refuses_a_model_that_is_not_the_named_architecture(tmp_path):
    from prunebench.errors import BadInputError

    with pytest.raises(BadInputError, match="not those of zoo model 'digits-lenet300'"):
        save_model(tmp_path / "m.pbz", zoo.build("mnist1d-cnn"), zoo_name="digits-lenet300")
    assert not (tmp_path / "m.pbz").exists()


def test_keep_smaller_stores_a_dense_layer_dense_and_says_why(tmp_path):
    model = pruned("digits-lenet300", sparsity=0.5, layers=["layers.1"])
    plan = save_model(tmp_path / "m.pbz", model, zoo_name="digits-lenet300", format="coo")
    # an unpruned 300 x 64 layer: coo needs 4 + 2 + 1 bytes per entry (uint16 rows, uint8 columns)
    assert plan["layers.0.weight"]["format"] == "dense"
    assert plan["layers.0.weight"]["reason"] == ("coo would take 134400 B > dense 76800 B at "
                                                 "sparsity 0.00")
    assert plan["layers.1.weight"]["format"] == "coo"   # 50%: 15000 * 7 B < 120000 B
