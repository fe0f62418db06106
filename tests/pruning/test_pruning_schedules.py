"""Schedules: fine-tuning keeps pruned weights at exactly zero; targets follow the formulas."""
from __future__ import annotations

import copy

import pytest
import torch

from prunebench.errors import BadInputError
from prunebench.pruning import prune
from prunebench.pruning.schedules import (GRADUAL_EVENTS, cubic_targets, geometric_targets,
                                          linear_targets)
from prunebench.train import evaluate, fit


@pytest.fixture(scope="module")
def trained(data):
    from .pruning_helpers import MLP

    torch.manual_seed(0)
    return fit(MLP(), data, steps=300, lr=3e-3)


def _zeros_match_masks(result):
    for name, mask in result.masks.items():
        w = result.model.get_parameter(name).detach()
        assert bool((w[~mask] == 0).all()), name        # pruned: exactly zero
        assert int((w[mask] == 0).sum()) == 0, name     # kept: trained, not zeroed


@pytest.mark.parametrize("method", ["magnitude", "block", "nm", "taylor"])
def test_oneshot_finetune_keeps_zeros(trained, data, method):
    result = prune(trained, method, 0.8, finetune=data, finetune_steps=60, block=(4, 4))
    _zeros_match_masks(result)
    report = result.report()
    assert report["accuracy_dense"] == pytest.approx(evaluate(trained, data))
    assert report["accuracy_pruned"] == pytest.approx(evaluate(result.model, data))
    # the kept weights moved during fine-tuning
    name = next(iter(result.masks))
    assert not torch.equal(result.model.get_parameter(name), trained.get_parameter(name))


def test_iterative_reaches_target_through_geometric_rounds(trained, data):
    result = prune(trained, "magnitude", 0.9, schedule="iterative", rounds=3, finetune=data,
                   finetune_steps=30)
    _zeros_match_masks(result)
    history = result.report()["history"]
    expected = [1 - 0.1 ** (1 / 3), 1 - 0.1 ** (2 / 3), 0.9]
    assert [h["sparsity_target"] for h in history] == pytest.approx(expected)
    for h in history:
        assert abs(h["sparsity_achieved"] - h["sparsity_target"]) <= 0.005
    # each round removes the same fraction (1 - 0.1^(1/3)) of what is left
    left = [1 - s for s in [0] + expected]
    assert [b / a for a, b in zip(left, left[1:])] == pytest.approx([0.1 ** (1 / 3)] * 3)


def test_linear_and_geometric_targets():
    assert linear_targets(0.6, 3) == pytest.approx([0.2, 0.4, 0.6])
    assert geometric_targets(0.75, 2) == pytest.approx([0.5, 0.75])


def test_cubic_ramp_follows_zhu_gupta():
    events = cubic_targets(0.8, 400)  # ramp T = 300 steps
    assert len(events) == GRADUAL_EVENTS
    assert max(events) == 300 and events[300] == pytest.approx(0.8)
    for t, s in events.items():
        assert s == pytest.approx(0.8 + (0.0 - 0.8) * (1 - t / 300) ** 3)
    values = [events[t] for t in sorted(events)]
    assert values == sorted(values)


def test_gradual_keeps_zeros_and_ends_at_target(trained, data):
    result = prune(trained, "magnitude", 0.8, schedule="gradual", finetune=data,
                   finetune_steps=80)
    _zeros_match_masks(result)
    report = result.report()
    assert abs(report["sparsity_achieved"] - 0.8) <= 0.005
    assert [h["step"] for h in report["history"]][-1] == 60


@pytest.mark.parametrize("rounds", [1, 2])
def test_rewind_resets_survivors_to_the_given_state(data, rounds):
    from .pruning_helpers import MLP

    torch.manual_seed(0)
    init = MLP()
    init_state = copy.deepcopy(init.state_dict())
    trained = fit(copy.deepcopy(init), data, steps=200, lr=3e-3)
    # with finetune_steps=1 the survivors are one Adam step (lr 1e-3) away from init
    result = prune(trained, "magnitude", 0.8, schedule="rewind", rounds=rounds, finetune=data,
                   finetune_steps=1, rewind_state=init_state)
    _zeros_match_masks(result)
    for name, mask in result.masks.items():
        w = result.model.get_parameter(name).detach()
        assert torch.allclose(w[mask], init_state[name][mask], atol=1.1e-3)
    if rounds > 1:
        return
    # the mask came from the trained weights, not from init
    trained_mask = trained.fc2.weight.abs() >= trained.fc2.weight.abs().flatten().kthvalue(
        round(0.8 * trained.fc2.weight.numel())).values
    assert (result.masks["fc2.weight"] == trained_mask).float().mean() > 0.99


def test_rewind_needs_a_matching_state(trained, data):
    with pytest.raises(BadInputError, match="rewind_state"):
        prune(trained, schedule="rewind", finetune=data)
    bad = {k: v for k, v in trained.state_dict().items() if k != "fc1.bias"}
    with pytest.raises(BadInputError, match="missing"):
        prune(trained, schedule="rewind", finetune=data, rewind_state=bad)


@pytest.mark.parametrize("schedule", ["gradual", "rewind"])
def test_training_schedules_need_data(trained, schedule):
    with pytest.raises(BadInputError, match=f"schedule='{schedule}'.*finetune"):
        prune(trained, schedule=schedule,
              rewind_state=trained.state_dict() if schedule == "rewind" else None)


def test_accuracy_before_finetune_is_the_oneshot_damage(trained, data):
    oneshot = prune(trained, "magnitude", 0.9, finetune=data, finetune_steps=0).report()
    iterative = prune(trained, "magnitude", 0.9, schedule="iterative", finetune=data,
                      finetune_steps=10).report()
    assert oneshot["accuracy_pruned"] == oneshot["accuracy_pruned_before_finetune"]
    assert iterative["accuracy_pruned_before_finetune"] == pytest.approx(
        oneshot["accuracy_pruned_before_finetune"])
