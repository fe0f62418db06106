"""Sparse layers against PyTorch's dense ones on random inputs: every kernel-backed format,
shapes with ragged edges, sparsities from 0 to 0.99, one and two threads, batch 1 (matvec)
and batch > 1 (matmul).

References are PyTorch's own modules (nn.Linear, nn.Conv1d/2d, nn.GRU/LSTM/RNN) holding the
same weights; for fp16/int8 values the reference module holds the *decoded* weights
(``fmt.to_dense()``), so every comparison is tight: only float32 summation order differs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench import kernels as K
from prunebench.errors import BadInputError
from prunebench.formats import encode
from prunebench.runtime import (DenseOp, KernelOp, SparseConv, SparseLinear, SparseRNN,
                                StackedOp)

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
              pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")]
FORMATS = ["csr", "delta8", "bsr", "bitmap", "ell", "nm", "cbcsr"]
OPTS = {"bsr": {"block": (4, 4)}, "ell": {"slice_height": 8}, "nm": {"n": 2, "m": 4}, "cbcsr": {"block_cols": 16}}


@pytest.fixture(params=[1, 2], ids=["t1", "t2"])
def threads(request):
    if request.param > K.max_threads():
        pytest.skip("needs 2 numba threads")
    before = K.get_threads()
    K.set_threads(request.param)
    yield request.param
    K.set_threads(before)


def pruned(shape, sparsity, fmt, seed=0):
    """float32 matrix with ~``sparsity`` zeros in a pattern ``fmt`` can hold (N:M for nm)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(shape, generator=g)
    if fmt == "nm":
        rows, cols = shape
        G = -(-cols // 4)
        keys = torch.rand((rows, G, 4), generator=g)
        keep = keys.argsort(-1).argsort(-1) < 2
        W = W * keep.reshape(rows, G * 4)[:, :cols]
    else:
        W = W * (torch.rand(shape, generator=g) >= sparsity)
    return W.contiguous()


def close(got, want, tol=2e-5):
    scale = float(want.abs().max()) or 1.0
    err = float((got - want).abs().max()) / scale
    assert got.shape == want.shape and got.dtype == torch.float32
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def kernel_op(W: torch.Tensor, fmt: str, values="fp32", bias=None, threads=1):
    f = encode(W.numpy(), fmt, values=values, **OPTS.get(fmt, {}))
    b = None if bias is None else bias.numpy()
    return KernelOp(f, b, threads), torch.from_numpy(f.to_dense())


# ---------------------------------------------------------------- Linear


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape, sparsity", [((37, 50), 0.0), ((64, 64), 0.5), ((13, 300), 0.9),
                                             ((300, 17), 0.99)])
def test_linear_matches_dense(fmt, shape, sparsity, threads):
    W = pruned(shape, sparsity, fmt)
    b = torch.randn(shape[0])
    op, _ = kernel_op(W, fmt, bias=b, threads=threads)
    layer = SparseLinear(op)
    for x in (torch.randn(shape[1]), torch.randn(1, shape[1]), torch.randn(7, shape[1]),
              torch.randn(2, 3, shape[1])):          # vector, batch 1, batch 7, [B, T, in]
        close(layer(x), F.linear(x, W, b))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("values", ["fp16", "int8"])
def test_linear_lossy_values_use_the_decoded_weights(fmt, values, threads):
    W = pruned((40, 72), 0.8, fmt)
    b = torch.randn(40)
    op, decoded = kernel_op(W, fmt, values, bias=b, threads=threads)
    layer = SparseLinear(op)
    for x in (torch.randn(1, 72), torch.randn(33, 72)):
        close(layer(x), F.linear(x, decoded, b))
        close(layer(x), F.linear(x, W, b), tol={"fp16": 2e-3, "int8": 5e-2}[values])


def test_linear_large_work_runs_parallel_and_small_work_one_thread(threads):
    """Above the grain the kernel runs on every thread; below it one; both compute the same."""
    W = pruned((512, 512), 0.5, "csr")
    op, _ = kernel_op(W, "csr", threads=threads)
    for x in (torch.randn(1, 512), torch.randn(64, 512)):
        close(SparseLinear(op)(x), F.linear(x, W))
        assert K.get_threads() == threads


def test_linear_refuses_wrong_input():
    op, _ = kernel_op(pruned((8, 6), 0.5, "csr"), "csr")
    with pytest.raises(BadInputError, match="6"):
        SparseLinear(op)(torch.randn(2, 5))
    with pytest.raises(BadInputError, match="float32"):
        SparseLinear(op)(torch.randn(2, 6, dtype=torch.float64))


# ---------------------------------------------------------------- Conv


CONV2D = [dict(kernel_size=1), dict(kernel_size=1, stride=2), dict(kernel_size=3, padding=1),
          dict(kernel_size=3, stride=2, padding=1, dilation=2), dict(kernel_size=(2, 3), padding="same"),
          dict(kernel_size=(3, 1), padding=(0, 1), stride=(1, 2))]


@pytest.mark.parametrize("fmt", ["csr", "bitmap", "bsr"])
@pytest.mark.parametrize("cfg", CONV2D, ids=[str(c) for c in CONV2D])
def test_conv2d_matches_dense(fmt, cfg, threads):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, **cfg)
    with torch.no_grad():
        conv.weight.copy_(pruned(tuple(conv.weight.reshape(10, -1).shape), 0.7, fmt)
                          .reshape(conv.weight.shape))
    op, _ = kernel_op(conv.weight.detach().reshape(10, -1), fmt, bias=conv.bias.detach(),
                      threads=threads)
    layer = SparseConv(op, conv)
    for x in (torch.randn(1, 6, 9, 11), torch.randn(3, 6, 8, 8), torch.randn(6, 7, 7)):
        with torch.no_grad():
            close(layer(x), conv(x))


def test_conv2d_channels_last_input_and_output_chain():
    """A chain of 1x1 layers gives the dense chain's numbers from a channels-first or a
    channels-last input; for one image the output is a contiguous channels-first tensor
    (the kernels' own [C, positions] layout, no copy)."""
    torch.manual_seed(1)
    a, b = nn.Conv2d(8, 16, 1, bias=False), nn.Conv2d(16, 8, 1)
    for c in (a, b):
        with torch.no_grad():
            c.weight.mul_(torch.rand_like(c.weight) > 0.6)
    la = SparseConv(kernel_op(a.weight.detach().reshape(16, 8), "csr")[0], a)
    lb = SparseConv(kernel_op(b.weight.detach().reshape(8, 16), "csr", bias=b.bias.detach())[0], b)
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        want = b(F.relu6(a(x)))
        mid = la(x)
        assert la(x[:1]).is_contiguous()      # one image: W @ X[C, H*W] written in place
        close(lb(F.relu6(mid)), want)
        close(lb(F.relu6(la(x.contiguous(memory_format=torch.channels_last)))), want)
        close(lb(F.relu6(mid)), b(F.relu6(a(x.contiguous(memory_format=torch.channels_last)))))


@pytest.mark.parametrize("cfg", [dict(kernel_size=5, stride=2, padding=1), dict(kernel_size=1),
                                 dict(kernel_size=3, padding="same", dilation=2)])
def test_conv1d_matches_dense(cfg, threads):
    torch.manual_seed(2)
    conv = nn.Conv1d(4, 9, **cfg)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) > 0.8)
    op, _ = kernel_op(conv.weight.detach().reshape(9, -1), "csr", bias=conv.bias.detach(),
                      threads=threads)
    layer = SparseConv(op, conv)
    for x in (torch.randn(1, 4, 40), torch.randn(5, 4, 21)):
        with torch.no_grad():
            close(layer(x), conv(x))


def test_conv_refuses_groups_and_padding_modes():
    op, _ = kernel_op(pruned((8, 9), 0.5, "csr"), "csr")
    with pytest.raises(BadInputError, match="groups=8"):
        SparseConv(op, nn.Conv2d(8, 8, 3, groups=8))
    with pytest.raises(BadInputError, match="reflect"):
        SparseConv(op, nn.Conv2d(1, 8, 3, padding=1, padding_mode="reflect"))


# ---------------------------------------------------------------- RNN


def prune_rnn(rnn: nn.RNNBase, sparsity: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight"):
                p.mul_(torch.rand(p.shape, generator=g) >= sparsity)


def rnn_ops(rnn: nn.RNNBase, fmt: str, threads: int = 1, values: str = "fp32"):
    """Every weight of ``rnn`` as one op over its stacked gates, biases fused; returns the ops
    and a copy of ``rnn`` holding the decoded weights (the reference for lossy values)."""
    import copy

    ref = copy.deepcopy(rnn)
    ops = {}
    for name, p in rnn.named_parameters():
        if not name.startswith("weight"):
            continue
        bias = getattr(rnn, name.replace("weight", "bias"), None) if "_hr_" not in name else None
        op, decoded = kernel_op(p.detach(), fmt, values,
                                bias=None if bias is None else bias.detach(), threads=threads)
        ops[name] = op
        with torch.no_grad():
            getattr(ref, name).copy_(decoded)
    return ops, ref


RNNS = [
    (nn.GRU, dict(input_size=1, hidden_size=32, batch_first=True, bidirectional=True)),  # mnist1d-gru
    (nn.LSTM, dict(input_size=1, hidden_size=64, batch_first=True)),                     # mnist1d-lstm
    (nn.GRU, dict(input_size=12, hidden_size=20, num_layers=2)),
    (nn.LSTM, dict(input_size=12, hidden_size=16, num_layers=2, bidirectional=True, proj_size=8)),
    (nn.RNN, dict(input_size=5, hidden_size=24, nonlinearity="relu", batch_first=True)),
    (nn.RNN, dict(input_size=5, hidden_size=24, bias=False)),
]


@pytest.mark.parametrize("fmt", ["csr", "bitmap", "ell"])
@pytest.mark.parametrize("cls, cfg", RNNS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(RNNS)])
def test_rnn_matches_torch(cls, cfg, fmt, threads):
    torch.manual_seed(3)
    rnn = cls(**cfg).eval()
    prune_rnn(rnn, 0.9)
    ops, _ = rnn_ops(rnn, fmt, threads)
    layer = SparseRNN(rnn, ops)
    T, inp = 9, cfg["input_size"]
    for B in (1, 4):
        x = torch.randn((B, T, inp) if rnn.batch_first else (T, B, inp))
        with torch.no_grad():
            want_out, want_h = rnn(x)
        got_out, got_h = layer(x)
        close(got_out, want_out)
        if cls is nn.LSTM:
            close(got_h[0], want_h[0])
            close(got_h[1], want_h[1])
        else:
            close(got_h, want_h)


def test_rnn_initial_state_and_unbatched_input():
    torch.manual_seed(4)
    rnn = nn.LSTM(3, 10, num_layers=2, bidirectional=True).eval()
    prune_rnn(rnn, 0.8)
    layer = SparseRNN(rnn, rnn_ops(rnn, "csr")[0])
    x = torch.randn(6, 2, 3)
    hx = (torch.randn(4, 2, 10), torch.randn(4, 2, 10))
    with torch.no_grad():
        want, (h, c) = rnn(x, hx)
        got, (gh, gc) = layer(x, hx)
    close(got, want), close(gh, h), close(gc, c)
    with torch.no_grad():
        want, (h, c) = rnn(x[:, 0], (hx[0][:, 0], hx[1][:, 0]))   # unbatched [T, in]
        got, (gh, gc) = layer(x[:, 0], (hx[0][:, 0], hx[1][:, 0]))
    close(got, want), close(gh, h), close(gc, c)


@pytest.mark.parametrize("values", ["fp16", "int8"])
def test_gru_lossy_values_match_torch_with_decoded_weights(values):
    torch.manual_seed(5)
    rnn = nn.GRU(4, 16, batch_first=True, bidirectional=True).eval()
    prune_rnn(rnn, 0.7)
    ops, ref = rnn_ops(rnn, "csr", values=values)
    x = torch.randn(3, 11, 4)
    with torch.no_grad():
        close(SparseRNN(rnn, ops)(x)[0], ref(x)[0])


def test_rnn_mixed_gate_ops():
    """Gates in different formats (one kept dense) stacked with StackedOp give the same."""
    torch.manual_seed(6)
    rnn = nn.GRU(6, 8).eval()
    prune_rnn(rnn, 0.75)
    ops = {}
    for name, p in rnn.named_parameters():
        if not name.startswith("weight"):
            continue
        b = getattr(rnn, name.replace("weight", "bias")).detach()
        gates = p.detach().reshape(3, 8, -1)
        ops[name] = StackedOp([DenseOp(gates[0], b[:8]),
                               kernel_op(gates[1], "csr", bias=b[8:16])[0],
                               kernel_op(gates[2], "bitmap", bias=b[16:])[0]])
    x = torch.randn(5, 2, 6)
    with torch.no_grad():
        close(SparseRNN(rnn, ops)(x)[0], rnn(x)[0])
    assert ops["weight_ih_l0"].format == "bitmap+csr+dense"
