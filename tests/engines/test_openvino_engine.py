"""Engine ``openvino``: the compiled graph with prunebench's SparseMatMul inside it computes what
the pruned PyTorch model computes (dense PyTorch is the reference), and says what it cannot run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.engines import ENGINES
from prunebench.errors import BadInputError

pytest.importorskip("openvino")


def _prune(model: nn.Module, sparsity: float, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear) or isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups == 1:
                keep = torch.rand(m.weight.shape, generator=g) >= sparsity
                m.weight.mul_(keep)
    return model.eval()


class Block(nn.Module):
    """MobileNetV2's shape: 1x1 expand + BN + ReLU6, depthwise, 1x1 project + BN, residual."""

    def __init__(self, c=24, e=96):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU6()),
            nn.Sequential(nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False), nn.BatchNorm2d(e),
                          nn.ReLU6()),
            nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.conv(x)


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 24, 3, stride=2, padding=1), nn.ReLU(), Block(), Block(),
                        nn.Conv2d(24, 40, 1, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 10))
    for bn in net.modules():    # BatchNorm statistics that are not the identity
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)
    return _prune(net, 0.8)


@pytest.mark.slow
@pytest.mark.parametrize("size", [30, 7])
def test_cnn_with_bn_relu6_residual_and_stride_matches_pytorch(size):
    """30: 15x15 = 3 tiles of 64 positions and a partial one; 7: 4x4, one 16-wide tile."""
    net = _net()
    x = torch.randn(2, 3, size, size)
    run = pb.compile(net, "csr", engine="openvino", threads=1, fallback="dense", example_input=x)
    with torch.no_grad():
        ref = net(x)
    got = run(x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    # the five 1x1 convolutions (one strided) and the Linear are sparse; each block's three
    # layers run as one InvertedBlock, the rest as SparseMatMul (Reference nodes: 4), the stem
    # as OpenVINO's
    assert len(run.sparse_layers) == 6
    counts = run.op_counts()
    assert counts["Reference"] == 4
    assert counts.get("Convolution", 0) + counts.get("GroupConvolution", 0) >= 1
    # unfused: the two depthwise convolutions as our DepthwiseConv (Reference nodes: 8)
    planar = pb.compile(net, "csr", engine="openvino", threads=1, fallback="dense",
                        example_input=x, depthwise="planar")
    np.testing.assert_allclose(planar(x).numpy(), ref.numpy(), rtol=1e-4,
                               atol=1e-4 * float(ref.abs().max()))
    assert planar.op_counts()["Reference"] == 8
    own = pb.compile(net, "csr", engine="openvino", threads=1, fallback="dense",
                     example_input=x, depthwise="openvino")
    np.testing.assert_allclose(own(x).numpy(), ref.numpy(), rtol=1e-4,
                               atol=1e-4 * float(ref.abs().max()))
    assert own.op_counts()["Reference"] == 6
    # the plan says why the 3x3 stem stayed dense
    stem = run.plan["0.weight"]
    assert stem["format"] == "dense" and "1x1" in stem["reason"]
    pb.verify(run, net, x)


@pytest.mark.parametrize("batch", [1, 2, 5, 20])   # 7 to 140 rows: 16- and 64-wide tiles
def test_linear_layers_any_leading_dims(batch):
    torch.manual_seed(1)
    net = _prune(nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 33)), 0.9)
    x = torch.randn(batch, 7, 64)        # token-like input: the product runs on 7*batch rows
    run = pb.compile(net, "csr", engine="openvino", threads=2, example_input=x)
    with torch.no_grad():
        ref = net(x)
    np.testing.assert_allclose(run(x).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    assert run.op_counts()["Reference"] == 2


@pytest.mark.slow
def test_dense_fp32_and_bf16():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    with torch.no_grad():
        ref = net(x)
    f32 = pb.compile(net, "dense", engine="openvino", values="fp32")
    np.testing.assert_allclose(f32(x).numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    bf16 = pb.compile(net, "dense", engine="openvino", values="bf16")
    err = float((bf16(x) - ref).abs().max())
    assert err < 5e-2 * float(ref.abs().max())     # lossy, within verify's bf16 tolerance
    pb.verify(bf16, net, x, values="bf16")


def test_bad_input_is_one_clear_error():
    net = _net()
    with pytest.raises(BadInputError, match="1x1"):
        pb.compile(net, "csr", engine="openvino", fallback="error", example_input=torch.randn(1, 3, 16, 16))
    with pytest.raises(BadInputError, match="cannot run format 'bitmap'"):
        pb.compile(net, "bitmap", engine="openvino")
    with pytest.raises(BadInputError, match="fp32 values only"):
        pb.compile(net, "csr", engine="openvino", values="bf16")
    assert ENGINES.get("openvino").formats == ("dense", "csr")


def test_batch_one_matvec_and_a_new_batch_size():
    """Batch 1 runs the matrix-vector product; another batch size compiles its own shape."""
    torch.manual_seed(3)
    net = _prune(nn.Sequential(nn.Linear(500, 700), nn.ReLU(), nn.Linear(700, 20)), 0.7)
    run = pb.compile(net, "csr", engine="openvino", threads=2)
    for batch in (1, 3, 1):
        x = torch.randn(batch, 500)
        with torch.no_grad():
            ref = net(x)
        np.testing.assert_allclose(run(x).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    assert run.op_counts()["Reference"] == 2


def test_missing_compiler_is_one_clear_error(tmp_path, monkeypatch):
    from prunebench.engines.ov_ext import ExtensionBuildError, library

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))     # nothing built there yet
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(ExtensionBuildError, match="Install g\\+\\+"):
        library()
    assert not list(tmp_path.rglob("*.so"))


@pytest.mark.parametrize("layers,batch_first,hx,unbatched", [
    (1, True, True, False), (2, False, False, False), (2, True, True, True)])
def test_unrolled_lstm_is_nn_lstm(layers, batch_first, hx, unbatched):
    """The LSTM written as products and gates computes what nn.LSTM computes."""
    from prunebench.engines.openvino_engine import UnrolledLSTM

    torch.manual_seed(layers)
    lstm = nn.LSTM(12, 20, num_layers=layers, batch_first=batch_first).eval()
    x = torch.randn(5, 12) if unbatched else torch.randn(3, 5, 12)
    state = None
    if hx:
        shape = (layers, 20) if unbatched else (layers, 3, 20)
        state = (torch.randn(shape), torch.randn(shape))
    with torch.no_grad():
        want, (h, c) = lstm(x, state)
        got, (h2, c2) = UnrolledLSTM(lstm)(x, state)
    for a, b in ((got, want), (h2, h), (c2, c)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


class Step(nn.Module):
    """One streaming step of an LSTM language model (as lee-charlstm): (x, h, c) in one tensor."""

    def __init__(self, e=16, h=128, v=11):
        super().__init__()
        self.e, self.h = e, h
        self.lstm = nn.LSTM(e, h, batch_first=True)
        self.head = nn.Linear(h, v)

    def forward(self, z):
        e, H = self.e, self.lstm.hidden_size     # a forward that reads the LSTM's attributes
        x, h, c = z[:, None, :e], z[None, :, e:e + H], z[None, :, e + H:]
        out, (h1, c1) = self.lstm(x, (h.contiguous(), c.contiguous()))
        return torch.cat([self.head(out[:, 0]), h1[0], c1[0]], 1)


@pytest.mark.slow
def test_pruned_lstm_runs_its_matrices_as_sparse_operations():
    """Both LSTM matrices and the head run as SparseMatMul: three operations in the graph,
    outputs equal to the pruned PyTorch model (dense math)."""
    torch.manual_seed(0)
    net = Step().eval()
    with torch.no_grad():
        for p in (net.lstm.weight_ih_l0, net.lstm.weight_hh_l0, net.head.weight):
            p.mul_(torch.rand(p.shape) >= 0.8)
    z = torch.randn(2, 16 + 2 * 128)
    run = pb.compile(net, "csr", engine="openvino", threads=2, example_input=z)
    assert all(r["format"] == "csr" for r in run.plan.values())
    with torch.no_grad():
        np.testing.assert_allclose(run(z).numpy(), net(z).numpy(), rtol=1e-4, atol=1e-5)
    assert run.op_counts()["Reference"] == 3
    assert "RNNSeq" not in run.op_counts() and "LSTMSequence" not in run.op_counts()
    # a matrix with a dense gate runs dense as a whole, and the plan says why
    with torch.no_grad():
        net.lstm.weight_hh_l0[:128].normal_()
    run = pb.compile(net, "csr", engine="openvino", threads=2, fallback="dense", example_input=z)
    hh = [r for n, r in run.plan.items() if n.startswith("lstm.weight_hh")]
    assert {r["format"] for r in hh} == {"dense"}
    assert any("gates run as one operation" in (r.get("reason") or "") for r in hh)
    with torch.no_grad():
        np.testing.assert_allclose(run(z).numpy(), net(z).numpy(), rtol=1e-4, atol=1e-5)
    assert run.op_counts()["Reference"] == 2
    with pytest.raises(BadInputError, match="four gates as one"):
        pb.compile(net, "csr", engine="openvino", fallback="error", example_input=z)
    # a small LSTM stays on OpenVINO's own sequence operation, and the plan says why
    torch.manual_seed(1)
    small = _prune(Step(h=32), 0.0)
    with torch.no_grad():
        small.lstm.weight_hh_l0.mul_(torch.rand(small.lstm.weight_hh_l0.shape) >= 0.8)
    zs = torch.randn(2, 16 + 2 * 32)
    run = pb.compile(small, "csr", engine="openvino", threads=2, fallback="dense", example_input=zs)
    hh = [r for n, r in run.plan.items() if n.startswith("lstm.weight_hh")]
    assert {r["format"] for r in hh} == {"dense"} and "small LSTM" in hh[0]["reason"]
    with torch.no_grad():
        np.testing.assert_allclose(run(zs).numpy(), small(zs).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("depthwise", ["block", "fused", "planar"])
@pytest.mark.parametrize("h,w,stride,act", [(7, 7, 1, 2), (8, 5, 2, 1), (9, 12, 2, 2), (5, 33, 1, 2), (4, 50, 2, 1),
                                            (1, 3, 1, 0), (30, 33, 2, 0), (37, 40, 1, 1),
                                            (110, 100, 1, 2), (211, 209, 2, 1)])
def test_planar_depthwise_is_conv2d(h, w, stride, act, depthwise):
    """DepthwiseConv (padding 1, stride 1/2, fused activation) against F.conv2d: odd and even
    sizes, the split into even and odd columns of stride 2, a one-row plane. "fused": the sparse
    1x1 convolutions before (with a ReLU6 between them) and after it and the depthwise one as one
    InvertedBlock: planes of 7 to 1480 positions (64- and 16-wide steps and a scalar rest), and
    two over 1 MB of depthwise output (110 x 100, 211 x 209 at stride 2), which run in bands of
    rows with the halo rows recomputed."""
    torch.manual_seed(h * w)
    c = 24
    dw = nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c)
    sparse = nn.Conv2d(c, c, 1)
    acts = {0: nn.Identity(), 1: nn.ReLU(), 2: nn.ReLU6()}
    project = nn.Conv2d(c, 8, 1)
    net = _prune(nn.Sequential(sparse, nn.ReLU6(), dw, acts[act], project), 0.5)
    with torch.no_grad():
        dw.weight.copy_(torch.randn_like(dw.weight))   # dense: _prune thinned only 1x1 convs
        if act == 1:   # a dense projection: expansion and depthwise alone as ExpandDepthwise
            project.weight.copy_(torch.randn_like(project.weight))
    x = torch.randn(2, c, h, w) * 3
    run = pb.compile(net, "csr", engine="openvino", threads=2, example_input=x, depthwise=depthwise)
    with torch.no_grad():
        ref = net(x)
    np.testing.assert_allclose(run(x).numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    whole = depthwise == "block" and act != 1   # InvertedBlock: a sparse projection
    assert run.op_counts()["Reference"] == {"planar": 2, "fused": 1, "block": 1}[depthwise] \
        + (act != 1 and not whole)
    if depthwise != "planar":
        (fused,) = run._fused.values()
        assert len(fused) == (10 if whole else 7)   # InvertedBlock / ExpandDepthwise
    with pytest.raises(BadInputError, match="depthwise="):
        pb.compile(net, "csr", engine="openvino", depthwise="blocked")


@pytest.mark.slow
@pytest.mark.parametrize("cols,rows,sparsity", [(200, 300, 0.5), (1000, 64, 0.9),
                                                 (70000, 24, 0.9), (64, 512, 0.9)])
def test_matvec_every_index_width_long_and_short_rows(cols, rows, sparsity):
    """Batch 1: uint8 (200 columns), uint16 and int32 (70000) indices, rows of ~100 values
    (the gather kernel, its masked tail) and of ~6 (the scalar one)."""
    torch.manual_seed(cols)
    net = _prune(nn.Sequential(nn.Linear(cols, rows), nn.ReLU()), sparsity)
    x = torch.randn(1, cols)
    run = pb.compile(net, "csr", engine="openvino", threads=2, example_input=x)
    with torch.no_grad():
        np.testing.assert_allclose(run(x).numpy(), net(x).numpy(), rtol=1e-4, atol=1e-4)
    assert run.op_counts()["Reference"] == 1
