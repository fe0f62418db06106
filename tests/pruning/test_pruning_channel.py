"""Channel pruning physically removes channels; checked against models sliced by hand."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import BadInputError
from prunebench.pruning import prune


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _top(scores, k):
    return torch.sort(torch.topk(scores, k).indices).values


def test_cnn1d_half_channels(cnn):
    x = torch.randn(6, 40)
    result = prune(cnn, "channel", 0.5, example_input=x)  # default: conv2, conv3
    pruned = result.model
    # 25 channels, round(12.5) = 12 removed: 13 kept in conv2 and conv3
    assert pruned.conv2.out_channels == 13 and pruned.conv3.out_channels == 13
    assert pruned.conv3.in_channels == 13 and pruned.conv1.out_channels == 25
    assert pruned.fc.in_features == 13 * 5 and pruned.fc.out_features == 10
    expected = (25 * 1 * 5 + 25) + (13 * 25 * 3 + 13) + (13 * 13 * 3 + 13) + (13 * 5 * 10 + 10)
    assert _params(pruned) == expected < _params(cnn)
    report = result.report()
    assert report["totals"]["params"] == _params(cnn)
    assert report["totals"]["nonzero"] == expected
    assert report["sparsity_achieved"] == pytest.approx(24 / 50)  # what rounding allowed
    assert report["sparsity_unit"] == "channels"

    # reference: keep the 13 channels with the largest L1 norm and slice the weights by hand
    k2 = _top(cnn.conv2.weight.detach().abs().flatten(1).sum(1), 13)
    k3 = _top(cnn.conv3.weight.detach().abs().flatten(1).sum(1), 13)
    fc_cols = (k3[:, None] * 5 + torch.arange(5)).flatten()  # flatten is channel-major
    with torch.no_grad():
        h = F.relu(cnn.conv1(x.unsqueeze(1)))
        h = F.relu(F.conv1d(h, cnn.conv2.weight[k2], cnn.conv2.bias[k2], stride=2, padding=1))
        h = F.relu(F.conv1d(h, cnn.conv3.weight[k3][:, k2], cnn.conv3.bias[k3], stride=2,
                            padding=1))
        expected_out = F.linear(h.flatten(1), cnn.fc.weight[:, fc_cols], cnn.fc.bias)
        assert torch.allclose(pruned(x), expected_out, atol=1e-5)

    # MACs shrink with the channels: conv3 = 5 positions x 13 x 13 x 3
    rows = {r["name"]: r for r in report["layers"]}
    assert rows["conv3.weight"]["macs"] == 5 * 25 * 25 * 3
    assert rows["conv3.weight"]["macs_nonzero"] == 5 * 13 * 13 * 3


def test_cnn1d_global_scope_removes_the_requested_total(cnn):
    result = prune(cnn, "channel", 0.4, scope="global", layers=["conv1", "conv2", "conv3"],
                   example_input=torch.randn(2, 40), norm="l2")
    m = result.model
    kept = m.conv1.out_channels + m.conv2.out_channels + m.conv3.out_channels
    assert kept == 75 - round(0.4 * 75)
    assert m(torch.randn(3, 40)).shape == (3, 10)


class ResNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.conv1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x.view(-1, 3, 8, 8))))
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        x = F.relu(out + x)  # residual: stem and conv2 channels are coupled
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    model = ResNetLike()
    for bn in (model.bn0, model.bn1, model.bn2):  # non-trivial statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_residual_block_default_prunes_only_the_inner_conv(resnet):
    x = torch.randn(2, 192)
    result = prune(resnet, "channel", 0.5, example_input=x)  # default: conv1, conv2
    m = result.model
    assert m.conv1.out_channels == 8 and m.bn1.num_features == 8 and m.conv2.in_channels == 8
    # conv2's outputs are coupled to the stem (not selected), so they stay
    assert m.conv2.out_channels == 16 and m.stem.out_channels == 16
    assert _params(resnet) - _params(m) == 8 * 16 * 9 + 2 * 8 + 16 * 8 * 9
    assert m(x).shape == (2, 10)
    rep = result.report()
    # conv2 is listed as skipped, with the layer it is tied to, and is not claimed as pruned;
    # the achieved fraction is over the layers that could shrink (8 of conv1's 16 channels)
    assert [row["name"] for row in rep["skipped"]] == ["conv2"]
    assert "stem" in rep["skipped"][0]["reason"]
    assert rep["pruned_layers"] == ["conv1"]
    assert {row["module"]: row["pruned"] for row in rep["layers"]}["conv2"] is False
    assert rep["sparsity_achieved"] == pytest.approx(8 / 16)


def test_residual_group_is_pruned_together(resnet):
    x = torch.randn(2, 192)
    result = prune(resnet, "channel", 0.5, layers=["stem", "conv1", "conv2"], example_input=x)
    m = result.model
    assert m.stem.out_channels == m.conv2.out_channels == m.bn0.num_features == 8
    assert m.bn2.num_features == 8 and m.fc.in_features == 8 and m.conv1.in_channels == 8
    # the coupled group is ranked by the norm over both convolutions' rows
    group_score = (resnet.stem.weight.detach().abs().flatten(1).sum(1)
                   + resnet.conv2.weight.detach().abs().flatten(1).sum(1))
    keep = _top(group_score, 8)
    assert torch.equal(m.stem.weight, resnet.stem.weight[keep])
    assert torch.equal(m.bn0.running_mean, resnet.bn0.running_mean[keep])
    assert torch.equal(m.fc.weight, resnet.fc.weight[:, keep])
    assert m(x).shape == (2, 10)


class InvertedResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(8, 24, 1)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.project = nn.Conv2d(24, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x.view(-1, 3, 8, 8))
        x = x + self.project(F.relu6(self.dw(F.relu6(self.expand(x)))))
        return self.fc(x.mean(dim=(2, 3)))


def test_depthwise_follows_the_expand_conv():
    torch.manual_seed(0)
    model = InvertedResidual()
    result = prune(model, "channel", 0.5, layers=["expand", "dw"],
                   example_input=torch.randn(2, 192))
    m = result.model
    assert m.expand.out_channels == m.dw.in_channels == m.dw.out_channels == m.dw.groups == 12
    assert m.project.in_channels == 12
    assert m(torch.randn(3, 192)).shape == (3, 10)


def test_channel_argument_errors(cnn):
    from .pruning_helpers import synthetic_dataset

    x = torch.randn(2, 40)
    with pytest.raises(BadInputError, match="'fc' is the model's last layer"):
        prune(cnn, "channel", 0.5, layers=["conv2", "fc"], example_input=x)
    with pytest.raises(BadInputError, match="needs example_input"):
        prune(cnn, "channel", 0.5)
    with pytest.raises(BadInputError, match="schedule='gradual' cannot follow channel"):
        prune(cnn, "channel", 0.5, schedule="gradual", finetune=synthetic_dataset(64, 16))


def test_channel_iterative_with_finetuning(cnn):
    from .pruning_helpers import synthetic_dataset

    data = synthetic_dataset(256, 64)
    result = prune(cnn, "channel", 0.5, schedule="iterative", rounds=2, finetune=data,
                   finetune_steps=10)
    m = result.model
    assert m.conv2.out_channels == m.conv3.out_channels == 13
    history = result.report()["history"]
    assert [h["sparsity_achieved"] for h in history] == pytest.approx([(2 * 7) / 50, 24 / 50])
