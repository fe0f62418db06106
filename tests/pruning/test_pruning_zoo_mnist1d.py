"""Accuracy on the zoo's mnist1d-mlp (trained checkpoints; the first run trains and caches
them, ~30 s per seed).

Measured on seeds 0, 1, 2 (dense 0.661, 0.661, 0.649), 200 fine-tuning steps, default layers
(fc2 only: the first and last layers are skipped):

==========  =====================  =====================
sparsity    magnitude (mean gap)   random
==========  =====================  =====================
0.6         0.650-0.663 (0.3 pt)
0.9         0.589-0.602 (6.0 pt)   0.532-0.551
==========  =====================  =====================

The issue asked for 90 % within 2 points of dense; that does not hold for this model (a
100-unit MLP that fits its 4000 training examples perfectly), whatever the fine-tuning (lr 3e-4
to 1e-2, 200 to 2000 steps, iterative and gradual schedules all end at 0.60-0.62 on seed 0). The
tests below assert what holds, with the measured margins in the comments.
"""
from __future__ import annotations

import pytest
import torch

zoo = pytest.importorskip("prunebench.zoo")
from prunebench.pruning import prune  # noqa: E402

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    out = {}
    for seed in SEEDS:
        model, data = zoo.load("mnist1d-mlp", trained=True, seed=seed)
        for method, sparsity in (("magnitude", 0.9), ("random", 0.9), ("magnitude", 0.6)):
            out[seed, method, sparsity] = prune(
                model, method, sparsity, scope="global", finetune=data, finetune_steps=200,
                seed=seed).report()
    return out


@pytest.mark.slow
def test_magnitude_60_percent_within_2_points_of_dense(runs):
    gaps = [runs[s, "magnitude", 0.6]["accuracy_dense"] - runs[s, "magnitude", 0.6]
            ["accuracy_pruned"] for s in SEEDS]
    assert sum(gaps) / len(gaps) <= 0.02  # measured 0.003
    assert max(gaps) <= 0.03              # measured 0.011


@pytest.mark.slow
def test_magnitude_90_percent_recovers_most_of_dense(runs):
    for s in SEEDS:
        r = runs[s, "magnitude", 0.9]
        assert abs(r["sparsity_achieved"] - 0.9) <= 0.005
        # fine-tuning recovers: measured +9 to +14 points over the one-shot damage
        assert r["accuracy_pruned"] >= r["accuracy_pruned_before_finetune"] + 0.05
    gaps = [runs[s, "magnitude", 0.9]["accuracy_dense"] - runs[s, "magnitude", 0.9]
            ["accuracy_pruned"] for s in SEEDS]
    assert sum(gaps) / len(gaps) <= 0.08  # measured 0.060; the target was 0.02


@pytest.mark.slow
def test_random_is_clearly_worse_than_magnitude(runs):
    for s in SEEDS:
        mag, rnd = runs[s, "magnitude", 0.9], runs[s, "random", 0.9]
        # before fine-tuning: measured 0.51/0.46/0.46 against 0.28/0.23/0.23
        assert mag["accuracy_pruned_before_finetune"] >= rnd["accuracy_pruned_before_finetune"] + 0.15
        # after 200 steps: measured gaps 6.9, 6.7 and 3.8 points
        assert mag["accuracy_pruned"] >= rnd["accuracy_pruned"] + 0.02
