"""Accuracy on the zoo's mnist1d-mlp (trained checkpoints; the first run trains and caches
them, ~30 s per seed).

Measured on seeds 0, 1, 2 (dense 0.664, 0.660, 0.648), 200 fine-tuning steps, default layers
(fc2 only: the first and last layers are skipped):

==========  =====================  =====================
sparsity    magnitude (mean gap)   random
==========  =====================  =====================
0.6         0.645-0.664 (0.2 pt)
0.9         0.584-0.605 (6.5 pt)   0.530-0.541
==========  =====================  =====================

Fine-tuning on the labels alone does not bring 90 % within 2 points of dense (a 100-unit
MLP that fits its 4000 training examples perfectly: lr 3e-4 to 1e-2, 200 to 4000 steps,
iterative and gradual schedules all end 3-6 points short). Fine-tuning by knowledge
distillation from the dense model (``distill=True``: temperature 4, 90 % distillation loss,
cosine learning-rate decay) does, once the student is matched to the teacher on more inputs
than the 4000 labelled ones ("function matching", Beyer et al. 2022): each batch also carries
a mixup of itself and a noisy copy (``train.transfer_batch``; only training inputs are used).
Mean gap to dense, 3000 steps, on the checkpoints the current code trains (deterministic:
dense 66.4 / 66.0 / 64.8 % for seeds 0-2):

==================================================  =========  =========  =========
distillation                                         seeds 0-2  seeds 3-5  seeds 6-8
==================================================  =========  =========  =========
training inputs only, lr 1e-3                        2.37       1.57       1.77
+ mixup (lr 1e-3)                                    1.87
+ noisy copy (lr 1e-3)                               1.93
+ mixup + noisy copy (lr 1e-3)                       1.53
+ mixup + noisy copy, lr 3e-3 (``distill=True``)     0.73       -0.17      -0.40
==================================================  =========  =========  =========

(points; seeds 0-2 chose the setting, 3-8 check it; 1000 / 2000 / 6000 steps of the chosen
setting leave 1.83 / 1.17 / 1.40 on seeds 0-2). Earlier settings on the training inputs only:
T=8 alpha=0.95 2.0, T=2 alpha=0.7 2.83, gradual + distillation 3.0, iterative 2.7; pruning all
layers (global) 35. (Rows 2-4 were measured with a prototype of the same loop.)
"""
from __future__ import annotations

import pytest
import torch

from prunebench import zoo
from prunebench.pruning import prune

SEEDS = (0, 1, 2)


# the fine-tuning these figures were measured with (before issue 16 took the recipe from the
# model's training and held out a validation split): Adam 1e-3, batch 128, all 4000 examples
RECIPE_OF_THE_FIGURES = {"finetune_lr": 1e-3, "finetune_batch": 128, "validation": 0.0}


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    out = {}
    for seed in SEEDS:
        model, data = zoo.load("mnist1d-mlp", trained=True, seed=seed)
        for method, sparsity in (("magnitude", 0.9), ("random", 0.9), ("magnitude", 0.6)):
            out[seed, method, sparsity] = prune(
                model, method, sparsity, scope="global", finetune=data, finetune_steps=200,
                seed=seed, **RECIPE_OF_THE_FIGURES).report()
        out[seed, "distill", 0.9] = prune(
            model, "magnitude", 0.9, scope="global", finetune=data, finetune_steps=3000,
            seed=seed, distill=True, validation=0.0).report()
    return out


@pytest.mark.slow
def test_magnitude_90_percent_distilled_within_2_points_of_dense(runs):
    """The issue's target: 90 % global magnitude, fine-tuned, mean test accuracy over 3 seeds
    within 2 points of dense."""
    gaps = []
    for s in SEEDS:
        r = runs[s, "distill", 0.9]
        assert r["distill"] and abs(r["sparsity_achieved"] - 0.9) <= 0.005
        gaps.append(r["accuracy_dense"] - r["accuracy_pruned"])
    assert sum(gaps) / len(gaps) <= 0.02   # measured 0.0073 (seeds 3-8: -0.002, -0.004)
    # and distillation beats fine-tuning on labels alone (200 steps) on every seed
    for s in SEEDS:
        assert runs[s, "distill", 0.9]["accuracy_pruned"] > runs[s, "magnitude", 0.9][
            "accuracy_pruned"] + 0.02


@pytest.mark.slow
def test_magnitude_60_percent_within_2_points_of_dense(runs):
    gaps = [runs[s, "magnitude", 0.6]["accuracy_dense"] - runs[s, "magnitude", 0.6]
            ["accuracy_pruned"] for s in SEEDS]
    assert sum(gaps) / len(gaps) <= 0.02  # measured 0.002
    assert max(gaps) <= 0.03              # measured 0.007


@pytest.mark.slow
def test_magnitude_90_percent_recovers_most_of_dense(runs):
    for s in SEEDS:
        r = runs[s, "magnitude", 0.9]
        assert abs(r["sparsity_achieved"] - 0.9) <= 0.005
        # fine-tuning recovers: measured +10 to +16 points over the one-shot damage
        assert r["accuracy_pruned"] >= r["accuracy_pruned_before_finetune"] + 0.05
    gaps = [runs[s, "magnitude", 0.9]["accuracy_dense"] - runs[s, "magnitude", 0.9]
            ["accuracy_pruned"] for s in SEEDS]
    assert sum(gaps) / len(gaps) <= 0.08  # measured 0.065 (labels only; distillation: 0.007)


@pytest.mark.slow
def test_random_is_clearly_worse_than_magnitude(runs):
    for s in SEEDS:
        mag, rnd = runs[s, "magnitude", 0.9], runs[s, "random", 0.9]
        # before fine-tuning: measured 0.47/0.44/0.48 against 0.29/0.20/0.24
        assert mag["accuracy_pruned_before_finetune"] >= rnd["accuracy_pruned_before_finetune"] + 0.15
        # after 200 steps: measured gaps 5.7, 6.4 and 4.7 points
        assert mag["accuracy_pruned"] >= rnd["accuracy_pruned"] + 0.02
