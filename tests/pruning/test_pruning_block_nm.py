"""Block and N:M granularity, checked directly on the resulting zeros."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.errors import BadInputError
from prunebench.pruning import prune


class Wide(nn.Module):
    """Layers big enough for 8x8 blocks; conv fan-in 16*3*3 = 144 (a multiple of 4 and 8)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 96)
        self.fc2 = nn.Linear(96, 72)
        self.out = nn.Linear(72, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x.view(-1, 1, 4, 4)))
        x = torch.relu(self.conv(x))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.out(torch.relu(self.fc2(x)))


@pytest.fixture
def wide():
    torch.manual_seed(0)
    return Wide()


def _as_matrix(w):
    return w.detach().reshape(w.shape[0], -1)


@pytest.mark.parametrize("block", [(1, 4), (4, 1), (4, 4), (8, 8), (3, 5)])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_blocks_are_all_zero_or_all_kept(wide, block, scope):
    sparsity = 0.75
    result = prune(wide, "block", sparsity, block=block, scope=scope)
    r, c = block
    zeros = total = 0
    for name in result.masks:
        w = _as_matrix(result.model.get_parameter(name))
        rows, cols = w.shape
        for i in range(0, rows, r):
            for j in range(0, cols, c):
                tile = w[i:i + r, j:j + c]
                nz = int((tile != 0).sum())
                assert nz in (0, tile.numel()), (name, i, j)
        zeros += int((w == 0).sum())
        total += w.numel()
        if scope == "layer":
            assert abs(float((w == 0).float().mean()) - sparsity) <= 0.005 + r * c / w.numel()
    assert abs(zeros / total - sparsity) <= 0.005


def test_block_ranking_uses_block_norm(wide):
    """The removed blocks are exactly the lowest L2 block norms (reference: unfold by hand)."""
    result = prune(wide, "block", 0.5, block=(4, 4), norm="l2", layers=["fc2"])
    w = wide.fc2.weight.detach()  # 72 x 96: 18 x 24 whole blocks
    norms = w.reshape(18, 4, 24, 4).pow(2).sum(dim=(1, 3)).sqrt().flatten()
    drop = torch.topk(norms, norms.numel() // 2, largest=False).indices
    expected = torch.ones(norms.numel(), dtype=torch.bool)
    expected[drop] = False
    kept = result.masks["fc2.weight"].reshape(18, 4, 24, 4)[:, 0, :, 0].flatten()
    assert torch.equal(kept, expected)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8)])
def test_nm_every_group_has_at_most_n_nonzeros(wide, n, m):
    result = prune(wide, "nm", n=n, m=m)
    report = result.report()
    assert report["sparsity_requested"] == pytest.approx(1 - n / m)
    zeros = total = 0
    for name in result.masks:
        w = _as_matrix(result.model.get_parameter(name))
        groups = w.reshape(w.shape[0], -1, m)
        assert int((groups != 0).sum(-1).max()) <= n
        zeros += int((w == 0).sum())
        total += w.numel()
        # the kept weights are the n largest |w| of each group of the dense model
        dense = _as_matrix(wide.get_parameter(name)).reshape(w.shape[0], -1, m).abs()
        kth = dense.topk(n, dim=-1).values[..., -1:]
        assert bool(((groups != 0) == (dense >= kth)).all())
    assert abs(zeros / total - (1 - n / m)) <= 0.005
    assert abs(report["sparsity_achieved"] - (1 - n / m)) <= 0.005


def test_nm_on_gru_gates(wide):
    from .pruning_helpers import RNNNet

    torch.manual_seed(0)
    model = RNNNet("gru", hidden=16, layers=1, bidirectional=False)
    result = prune(model, "nm", n=2, m=4, layers=["rnn"])
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0"):
        w = result.model.get_parameter(name).detach()
        assert int((w.reshape(w.shape[0], -1, 4) != 0).sum(-1).max()) <= 2


def test_weights_a_pattern_cannot_fit_stay_dense_and_are_reported():
    """A GRU fed one feature per step: weight_ih has fan-in 1, weight_hh has fan-in 16."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.GRU(1, 16, batch_first=True))
    result = prune(model, "nm", n=2, m=4)
    assert sorted(result.masks) == ["0.weight_hh_l0"]
    assert torch.equal(result.model[0].weight_ih_l0, model[0].weight_ih_l0)
    report = result.report()
    assert report["skipped"] == [{"name": "0.weight_ih_l0",
                                  "reason": "m=4 does not divide its fan-in 1"}]
    rows = {r["name"]: r for r in report["layers"]}
    assert rows["0.weight_hh_l0"]["pruned"] and not rows["0.weight_ih_l0"]["pruned"]
    assert rows["0.weight_hh_l0"]["sparsity"] == 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="nm", n=4, m=4), "n=4 with m=4"),
    (dict(method="nm", n=3, m=2), "n=3 with m=2"),
    (dict(method="nm", n=0, m=4), "n=0"),
    (dict(method="nm", n=2, m=5), "method='nm' fits none of the selected weights "
                                  r"\(conv.weight: m=5 does not divide its fan-in 144\)"),
    (dict(method="block", block=(128, 4)), r"block=\(128, 4\) is larger than its 32 x 144"),
    (dict(method="block", block=(0, 4)), "block=.*positive integers"),
    (dict(method="block", block=4), "block=4"),
    (dict(method="block", norm="l3"), "norm='l3'"),
])
def test_bad_block_and_nm_arguments(wide, kwargs, match):
    with pytest.raises(BadInputError, match=match):
        prune(wide, **kwargs)
