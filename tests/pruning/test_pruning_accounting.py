"""MAC and parameter counts against independent references: the conv output-size formula,
torch.utils.flop_counter (aten-level counting), and hand formulas for RNNs."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebench.pruning import count_macs, prune, sparsity_report


class Odd(nn.Module):
    """Strides, padding, dilation, groups, depthwise, Conv1d/2d/3d and a Linear on 3-D input."""

    IN = 40 + 3 * 16 * 12

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 12, 5, stride=2, padding=3, dilation=2)
        self.c2 = nn.Conv2d(3, 12, (3, 5), stride=(2, 1), padding=(2, 1), dilation=(1, 3),
                            groups=3)
        self.dw = nn.Conv2d(12, 12, 3, stride=2, padding=1, groups=12)  # depthwise
        self.pw = nn.Conv2d(12, 8, 1, bias=False)
        self.c3 = nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 2),
                            dilation=(2, 1, 1))
        self.seq = nn.Linear(12, 6)
        with torch.no_grad():
            width = self._features(torch.zeros(1, self.IN)).shape[1]
        self.fc = nn.Linear(width, 7)

    def _features(self, x):
        n = x.shape[0]
        a = self.c1(x[:, :40].reshape(n, 2, 20))
        b = self.pw(self.dw(self.c2(x[:, 40:].reshape(n, 3, 16, 12))))
        c = self.c3(x[:, :2 * 5 * 6 * 8].reshape(n, 2, 5, 6, 8))
        d = self.seq(a.transpose(1, 2))                     # Linear over [n, L, 12]
        return torch.cat([a.flatten(1), b.flatten(1), c.flatten(1), d.flatten(1)], 1)

    def forward(self, x):
        return self.fc(self._features(x))


def _out_size(in_size, conv):
    """Output spatial size from the conv arithmetic formula (Dumoulin & Visin 2016)."""
    return tuple(math.floor((i + 2 * p - d * (k - 1) - 1) / s) + 1 for i, k, s, p, d in zip(
        in_size, conv.kernel_size, conv.stride, conv.padding, conv.dilation))


@pytest.fixture
def odd():
    torch.manual_seed(0)
    return Odd()


def _positions(model):
    """Output positions per sample of every layer, derived by hand from the input sizes."""
    a = _out_size((20,), model.c1)
    b = _out_size((16, 12), model.c2)
    b_dw = _out_size(b, model.dw)
    return {"c1": a, "c2": b, "dw": b_dw, "pw": _out_size(b_dw, model.pw),
            "c3": _out_size((5, 6, 8), model.c3), "seq": a, "fc": (1,)}


def _analytic(model, masks=None):
    """Per-sample (dense, nonzero) MACs: out positions x numel(W) and x nnz(W)."""
    dense, nonzero = {}, {}
    for name, size in _positions(model).items():
        w = getattr(model, name).weight
        nnz = int((w != 0).sum())
        dense[f"{name}.weight"] = math.prod(size) * w.numel()
        nonzero[f"{name}.weight"] = math.prod(size) * nnz
    return dense, nonzero


def test_conv_shapes_assumed_by_the_reference(odd):
    """The hand-derived sizes are the real ones (so the reference is about the model run)."""
    feats = odd._features(torch.randn(2, Odd.IN))
    pos = _positions(odd)
    expected = (12 * math.prod(pos["c1"]) + 8 * math.prod(pos["pw"])
                + 4 * math.prod(pos["c3"]) + 6 * math.prod(pos["seq"]))
    assert feats.shape == (2, expected)
    assert pos["dw"] == (5, 1) and pos["c3"] == (3, 3, 5) and pos["c1"] == (9,)


def test_dense_macs_match_formula_and_flop_counter(odd):
    x = torch.randn(3, Odd.IN)
    macs = count_macs(odd, x)
    dense, _ = _analytic(odd)
    assert macs.dense == dense
    with FlopCounterMode(display=False) as counter:
        odd(x)
    assert macs.total == counter.get_total_flops() // 2 // 3  # FLOPs = 2 x MACs, per sample
    # depthwise: out_elems (12 x 5 x 1) * (in/groups = 1) * 3 * 3
    assert macs.dense["dw.weight"] == 12 * 5 * 1 * 9


def test_nonzero_macs_after_pruning(odd):
    x = torch.randn(2, Odd.IN)
    layers = ["c1", "c2", "dw", "pw", "c3", "seq", "fc"]
    result = prune(odd, "magnitude", 0.7, layers=layers, scope="global", example_input=x)
    macs = count_macs(result.model, x)
    dense, nonzero = _analytic(result.model)
    assert macs.dense == dense and macs.nonzero == nonzero
    report = result.report()
    rows = {r["name"]: r for r in report["layers"]}
    for name in dense:
        assert rows[name]["macs"] == dense[name]
        assert rows[name]["macs_nonzero"] == nonzero[name]
        w = result.model.get_parameter(name)
        assert rows[name]["nonzero"] == int((w != 0).sum())
        assert rows[name]["params"] == w.numel()
    totals = report["totals"]
    assert totals["macs"] == sum(dense.values())
    assert totals["macs_nonzero"] == sum(nonzero.values())
    assert totals["theoretical_speedup"] == pytest.approx(sum(dense.values()) /
                                                         sum(nonzero.values()))
    assert totals["params"] == sum(p.numel() for p in odd.parameters())
    assert totals["nonzero"] == sum(int((p != 0).sum()) for p in result.model.parameters())
    json.dumps(report)  # JSON-able


def test_masks_override_nonzero_counts(odd):
    x = torch.randn(1, Odd.IN)
    masks = {"fc.weight": torch.zeros_like(odd.fc.weight, dtype=torch.bool)}
    macs = count_macs(odd, x, masks=masks)
    assert macs.nonzero["fc.weight"] == 0
    assert macs.dense["fc.weight"] == odd.fc.weight.numel()


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_macs_per_time_step(cell, bidirectional):
    from .pruning_helpers import RNNNet

    torch.manual_seed(0)
    model = RNNNet(cell, hidden=16, layers=2, bidirectional=bidirectional)
    x = torch.randn(3, 40)  # 10 time steps of 4 features
    result = prune(model, "magnitude", 0.6, layers=["rnn"], example_input=x)
    macs = count_macs(result.model, x)
    rnn = result.model.rnn
    steps = 10
    for name, p in rnn.named_parameters():
        if name.startswith("weight"):
            assert macs.dense[f"rnn.{name}"] == steps * p.numel()
            assert macs.nonzero[f"rnn.{name}"] == steps * int((p != 0).sum())
    if cell != "lstm":  # FlopCounterMode does not see LSTM's fused kernel
        with FlopCounterMode(display=False) as counter:
            model(x)
        assert macs.total == counter.get_total_flops() // 2 // 3


def test_sparsity_report_without_input_has_no_macs(mlp):
    report = sparsity_report(mlp)
    assert report["totals"]["macs"] is None
    assert report["totals"]["params"] == sum(p.numel() for p in mlp.parameters())
    assert [r["name"] for r in report["layers"]] == [f"fc{i}.weight" for i in (1, 2, 3, 4)]
