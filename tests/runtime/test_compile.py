"""``runtime.compile``: which layers run sparse and why, the plan's forms, bad input, and the
compiled model against the dense one on zoo architectures (random weights: nothing trains)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from prunebench import zoo
from prunebench.errors import BadInputError
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import CompiledModel, SparseConv, SparseLinear, SparseRNN, compile

torch.set_num_threads(1)


def pruned(name, method="magnitude", sparsity=0.9, layers="all", **kw):
    net = zoo.build(name, seed=0)
    chosen = prunable_layers(net) if layers == "all" else layers
    ex = zoo.get_spec(name).example_input(2)
    return prune(net, method, sparsity, layers=chosen, example_input=ex, **kw).model.eval()


def rel_err(a, b):
    return float((a - b).abs().max()) / (float(b.abs().max()) or 1.0)


@pytest.fixture(scope="module")
def mlp():
    return pruned("mnist1d-mlp")


@pytest.mark.parametrize("name", ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-gru", "mnist1d-lstm",
                                  "digits-lenet300", "digits-lenet5"])
@pytest.mark.parametrize("fmt", ["csr", "delta8", "bsr", "bitmap", "ell"])
def test_compiled_zoo_models_match_dense(name, fmt):
    net = pruned(name)
    fast = compile(net, fmt, threads=1, keep_smaller=False)
    x = zoo.get_spec(name).example_input(9, seed=1)
    with torch.no_grad():
        want = net(x)
    for xb in (x[:1], x):
        assert rel_err(fast(xb), want[:len(xb)]) < 1e-5
    kinds = {"rnn": SparseRNN, "linear": SparseLinear, "conv": SparseConv}
    for p in fast.plan.values():
        assert p["format"] == fmt and p["reason"] == "requested"
        assert isinstance(fast.model.get_submodule(p["module"]), kinds[p["kind"]])


def test_the_callers_model_is_not_changed(mlp):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    compile(mlp, "csr")
    assert all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())
    assert isinstance(mlp.fc2, nn.Linear)


def test_plan_forms_matrix_parameter_module(mlp):
    by_matrix = compile(mlp, {"fc2.weight": "bitmap"})
    by_module = compile(mlp, {"fc2": "bitmap"})
    for c in (by_matrix, by_module):
        assert c.sparse_layers() == ["fc2"]
        assert c.plan["fc2.weight"]["format"] == "bitmap"
        assert c.plan["fc1.weight"]["format"] == "dense"
    gru = pruned("mnist1d-gru")
    # W_ih gates are [32, 1]: no sparse format is smaller than dense there
    c = compile(gru, {"rnn.weight_hh_l0": "csr", "rnn.weight_ih_l0[1]": "ell"}, keep_smaller=False)
    fmts = {n: p["format"] for n, p in c.plan.items()}
    assert [fmts[f"rnn.weight_hh_l0[{g}]"] for g in range(3)] == ["csr"] * 3
    assert [fmts[f"rnn.weight_ih_l0[{g}]"] for g in range(3)] == ["dense", "ell", "dense"]
    assert fmts["rnn.weight_hh_l0_reverse[0]"] == "dense"
    x = zoo.get_spec("mnist1d-gru").example_input(3)
    with torch.no_grad():
        assert rel_err(c(x), gru(x)) < 1e-5
    assert c.model.rnn.ops["weight_ih_l0"].format == "dense+ell"   # gates mixed: stacked ops
    assert c.model.rnn.ops["weight_hh_l0"].format == "csr"         # same format: one matrix


def test_unpruned_and_larger_than_dense_layers_stay_dense():
    net = pruned("digits-lenet300", sparsity=0.3, layers=["layers.1"])
    c = compile(net, "csr")
    assert "not pruned" in c.plan["layers.0.weight"]["reason"]
    # CSR with uint8 indices breaks even at 50%: at 30% it is larger than dense
    assert c.plan["layers.1.weight"]["format"] == "dense"
    assert "would take" in c.plan["layers.1.weight"]["reason"]
    assert c.sparse_layers() == []
    assert compile(net, "csr", keep_smaller=False).sparse_layers() == ["layers.1"]
    assert "bitmap" == compile(net, "bitmap").plan["layers.1.weight"]["format"]


def test_nm_on_a_layer_that_is_not_nm_sparse(mlp):
    with pytest.raises(BadInputError, match=r"^layer fc1\.weight: not 2:4 sparse .*nm"):
        compile(mlp, "nm")
    c = compile(mlp, "nm", fallback="dense")
    assert all(p["format"] == "dense" and "kept dense (fallback)" in p["reason"]
               for p in c.plan.values())
    nm_net = pruned("mnist1d-mlp", method="nm")
    c = compile(nm_net, "nm", n=2, m=4)
    assert {p["format"] for p in c.plan.values()} == {"nm"}
    x = torch.randn(4, 40)
    with torch.no_grad():
        assert rel_err(c(x), nm_net(x)) < 1e-5


def test_depthwise_conv_cannot_run_a_sparse_format():
    net = zoo.build("mobilenetv2")
    dw = "features.2.conv.1.0"
    with torch.no_grad():
        net.get_submodule(dw).weight.mul_(torch.rand_like(net.get_submodule(dw).weight) > 0.5)
    with pytest.raises(BadInputError, match=rf"layer {dw}\.weight: depthwise Conv2d \(groups=96\)"):
        compile(net, "csr")
    c = compile(net, "csr", fallback="dense")
    assert "depthwise" in c.plan[f"{dw}.weight"]["reason"]
    assert c.sparse_layers() == []


def test_mobilenet_pointwise_convs_match_dense():
    net = zoo.build("mobilenetv2")
    pw = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    net = prune(net, "magnitude", 0.9, layers=pw[:6]).model.eval()
    c = compile(net, "csr")
    assert c.sparse_layers() == pw[:6]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert rel_err(c(x), net(x)) < 1e-4


@pytest.mark.parametrize("values, tol", [("fp16", 2e-2), ("int8", 1.5e-1)])
def test_lossy_values(mlp, values, tol):
    c = compile(mlp, "csr", values=values)
    x = torch.randn(16, 40)
    with torch.no_grad():
        assert rel_err(c(x), mlp(x)) < tol
    assert all(p["values"] == values for p in c.plan.values() if p["format"] == "csr")


def test_compiled_model_is_smaller_than_dense():
    net = pruned("digits-lenet300")
    c = compile(net, "csr")
    dense = sum(p.numel() * 4 for p in net.parameters())
    nb = c.nbytes()
    assert nb["torch"] == 0 and nb["ops"] == nb["total"] < dense / 3
    assert c.summary()["matrices"] == {"csr": 3}


def test_threads_are_set_on_call(mlp):
    c = compile(mlp, "csr", threads=1)
    torch.set_num_threads(os.cpu_count() or 1)
    c(torch.randn(1, 40))
    assert torch.get_num_threads() == 1
    assert c.threads_effective == 1


BAD = [
    (dict(plan="nope"), "unknown format 'nope'"),
    (dict(plan="coo"), "engine native cannot run format 'coo'; it runs: csr, delta8, bsr, bitmap, nm, ell"),
    (dict(plan={"fc9": "csr"}), "plan: unknown layer 'fc9'; layers: fc1.weight"),
    (dict(plan=3), "plan=3 should be a format name"),
    (dict(values="int4"), "values='int4' is not allowed"),
    (dict(threads=(os.cpu_count() or 1) + 1), f"threads={(os.cpu_count() or 1) + 1} should be"),
    (dict(threads=0), "threads=0 should be"),
    (dict(fallback="maybe"), "fallback='maybe' is not allowed"),
    (dict(blocks=(2, 2)), "unknown format option(s) blocks"),
]


@pytest.mark.parametrize("kw, needle", BAD, ids=[n for _, n in BAD])
def test_bad_input(mlp, kw, needle):
    with pytest.raises(BadInputError) as e:
        compile(mlp, **kw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_format_options_reach_the_format():
    net = pruned("digits-lenet300", method="block", block=(2, 8))
    c = compile(net, "bsr", block=(2, 8))
    op = c.model.layers[1].op
    assert op.fmt.block == (2, 8)
    assert isinstance(c, CompiledModel)
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert rel_err(c(x), net(x)) < 1e-5
    ell = compile(net, "ell", slice_height=16)
    assert ell.model.layers[1].op.fmt.slice_height == 16
    assert np.isclose(compile(net, "ell").model.layers[1].op.fmt.slice_height, 32)
