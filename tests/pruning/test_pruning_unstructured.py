"""Unstructured scores and scopes against torch.nn.utils.prune and hand-computed scores."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunebench.pruning import prune

ALL = ["fc1", "fc2", "fc3", "fc4"]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.97])
def test_layer_scope_equals_l1_unstructured(mlp, sparsity):
    result = prune(mlp, "magnitude", sparsity, scope="layer", layers=ALL)
    reference = copy.deepcopy(mlp)
    for name in ALL:
        module = getattr(reference, name)
        torch_prune.l1_unstructured(module, "weight", amount=sparsity)
        assert torch.equal(result.masks[f"{name}.weight"], module.weight_mask.bool()), name
        assert torch.equal(getattr(result.model, name).weight, module.weight)


@pytest.mark.parametrize("sparsity", [0.2, 0.6, 0.9])
def test_global_scope_equals_global_unstructured(mlp, sparsity):
    layers = ["fc2", "fc3", "fc4"]
    result = prune(mlp, "magnitude", sparsity, scope="global", layers=layers)
    reference = copy.deepcopy(mlp)
    torch_prune.global_unstructured([(getattr(reference, n), "weight") for n in layers],
                                    pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    mine = torch.cat([result.masks[f"{n}.weight"].flatten() for n in layers])
    ref = torch.cat([getattr(reference, n).weight_mask.bool().flatten() for n in layers])
    scores = torch.cat([getattr(mlp, n).weight.detach().abs().flatten() for n in layers])
    # up to ties: disagreements may only fall on weights whose |w| equals the threshold
    threshold = scores[~ref].max()
    disagree = mine != ref
    assert bool((scores[disagree] == threshold).all())
    assert int(mine.sum()) == int(ref.sum())
    # global: layers end up with different sparsities, layer scope would give the same
    per_layer = [1 - result.masks[f"{n}.weight"].float().mean().item() for n in layers]
    assert max(per_layer) - min(per_layer) > 0.02


@pytest.mark.parametrize("method", ["random", "magnitude", "gradient", "taylor"])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.95])
def test_achieved_sparsity_within_half_point(mlp, data, method, scope, sparsity):
    result = prune(mlp, method, sparsity, scope=scope, finetune=data, finetune_steps=0)
    pruned = [result.model.get_parameter(n) for n in result.masks]
    zeros = sum(int((p == 0).sum()) for p in pruned)
    total = sum(p.numel() for p in pruned)
    assert abs(zeros / total - sparsity) <= 0.005
    assert abs(result.report()["sparsity_achieved"] - sparsity) <= 0.005
    if scope == "layer":
        for p in pruned:
            assert abs(float((p == 0).float().mean()) - sparsity) <= 0.005


def test_default_layers_skip_first_and_last(mlp):
    result = prune(mlp, "magnitude", 0.5)
    assert sorted(result.masks) == ["fc2.weight", "fc3.weight"]
    assert torch.equal(result.model.fc1.weight, mlp.fc1.weight)
    assert torch.equal(result.model.fc4.weight, mlp.fc4.weight)
    for name in ("fc1", "fc2", "fc3", "fc4"):  # biases are never pruned
        assert torch.equal(getattr(result.model, name).bias, getattr(mlp, name).bias)


def test_default_layers_fall_back_to_all_on_a_two_layer_model():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    result = prune(model, "magnitude", 0.5)
    assert sorted(result.masks) == ["0.weight", "2.weight"]


def test_caller_model_is_not_changed(mlp):
    before = copy.deepcopy(mlp.state_dict())
    prune(mlp, "magnitude", 0.9)
    for k, v in mlp.state_dict().items():
        assert torch.equal(v, before[k])


def _reference_grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_gradient_score_is_abs_w_times_grad(mlp, data):
    x, y = data.x_train[:64], data.y_train[:64]
    result = prune(mlp, "gradient", 0.5, layers=["fc2"], calibration=(x, y))
    ref_model = copy.deepcopy(mlp)
    g = _reference_grads(ref_model, x, y)["fc2.weight"]
    score = (mlp.fc2.weight.detach() * g).abs().flatten()
    expected = torch.ones(score.numel(), dtype=torch.bool)
    expected[torch.topk(score, round(0.5 * score.numel()), largest=False).indices] = False
    assert torch.equal(result.masks["fc2.weight"].flatten(), expected)


def test_taylor_score_averages_squared_contributions(mlp, data):
    x, y = data.x_train[:64], data.y_train[:64]
    result = prune(mlp, "taylor", 0.5, layers=["fc2"], calibration=(x, y))
    ref_model = copy.deepcopy(mlp)
    total = torch.zeros_like(mlp.fc2.weight)
    for xb, yb in zip(x.split(8), y.split(8)):  # TAYLOR_CHUNKS = 8 slices of 64
        total += (mlp.fc2.weight.detach() * _reference_grads(ref_model, xb, yb)["fc2.weight"]) ** 2
    score = total.flatten()
    expected = torch.ones(score.numel(), dtype=torch.bool)
    expected[torch.topk(score, round(0.5 * score.numel()), largest=False).indices] = False
    assert torch.equal(result.masks["fc2.weight"].flatten(), expected)
    gradient = prune(mlp, "gradient", 0.5, layers=["fc2"], calibration=(x, y))
    assert not torch.equal(gradient.masks["fc2.weight"], result.masks["fc2.weight"])


def test_random_scores_depend_on_seed(mlp):
    a = prune(mlp, "random", 0.5, seed=1).masks["fc2.weight"]
    b = prune(mlp, "random", 0.5, seed=1).masks["fc2.weight"]
    c = prune(mlp, "random", 0.5, seed=2).masks["fc2.weight"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_lowest_k_equals_a_stable_sort_prefix_with_many_ties():
    """The O(n) selection for unit-size scores picks exactly what a stable argsort would:
    on ties, the lower index first."""
    from prunebench.pruning.select import lowest_units

    g = torch.Generator().manual_seed(0)
    for n, k in ((1000, 300), (50, 49), (10, 10), (7, 1), (64, 0)):
        for _ in range(20):
            s = torch.randint(0, 5, (n,), generator=g).float()
            ref = torch.zeros(n, dtype=torch.bool)
            ref[torch.argsort(s, stable=True)[:k]] = True
            assert torch.equal(lowest_units(s, torch.ones(n, dtype=torch.long), k), ref)
