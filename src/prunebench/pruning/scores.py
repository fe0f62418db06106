"""Importance scores: one non-negative number per weight, higher = more worth keeping.

A score function only scores; choosing which weights go (granularity, scope) and writing zeros
(masks) live in other modules. Every function has the signature
``score(model, weights, context) -> {parameter name: tensor shaped like the weight}``.

- ``random``: uniform noise from ``context.generator`` (the baseline).
- ``magnitude``: ``|w|``.
- ``gradient``: ``|w * dL/dw|`` with the gradient of the mean cross-entropy over the whole
  calibration batch (connection sensitivity, as in SNIP).
- ``taylor``: first-order Taylor estimate of the loss change from removing each weight,
  accumulated over mini-batches as Molchanov et al. (2019) do: the mean over
  ``TAYLOR_CHUNKS`` slices of the calibration batch of ``(w * dL_b/dw)^2``. It differs from
  ``gradient`` because it squares before averaging, so weights whose per-batch contributions
  cancel out still score high.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError
from ..registry import Registry
from .targets import PrunableWeight

TAYLOR_CHUNKS = 8

ScoreFn = Callable[[nn.Module, Sequence[PrunableWeight], "ScoreContext"], dict[str, torch.Tensor]]
SCORES: Registry[ScoreFn] = Registry("pruning score")


@dataclass
class ScoreContext:
    """What scores may need beyond the weights: a labelled batch and a random generator."""

    calibration: tuple[torch.Tensor, torch.Tensor] | None
    generator: torch.Generator

    def batch(self, score: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.calibration is None:
            raise BadInputError(f"method scored by {score!r} needs labelled data: pass "
                                "calibration=(x, y) or finetune=<Dataset>")
        return self.calibration


@SCORES.register("random")
def random_scores(model: nn.Module, weights: Sequence[PrunableWeight],
                  context: ScoreContext) -> dict[str, torch.Tensor]:
    return {w.name: torch.rand(w.tensor(model).shape, generator=context.generator)
            for w in weights}


@SCORES.register("magnitude")
@torch.no_grad()
def magnitude_scores(model: nn.Module, weights: Sequence[PrunableWeight],
                     context: ScoreContext) -> dict[str, torch.Tensor]:
    return {w.name: w.tensor(model).detach().abs() for w in weights}


def _weight_gradients(model: nn.Module, weights: Sequence[PrunableWeight],
                      x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
    """d(mean cross-entropy)/dw for each weight, without touching ``.grad`` or the mode."""
    was_training = model.training
    model.eval()  # no dropout noise in a score; BatchNorm uses its running statistics
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y)
            params = [w.tensor(model) for w in weights]
            return list(torch.autograd.grad(loss, params, allow_unused=True))
    finally:
        model.train(was_training)


def _zeros_if_none(grads: list[torch.Tensor | None], model: nn.Module,
                   weights: Sequence[PrunableWeight]) -> list[torch.Tensor]:
    return [torch.zeros_like(w.tensor(model)) if g is None else g for g, w in zip(grads, weights)]


@SCORES.register("gradient")
def gradient_scores(model: nn.Module, weights: Sequence[PrunableWeight],
                    context: ScoreContext) -> dict[str, torch.Tensor]:
    x, y = context.batch("gradient")
    grads = _zeros_if_none(_weight_gradients(model, weights, x, y), model, weights)
    return {w.name: (w.tensor(model).detach() * g).abs() for w, g in zip(weights, grads)}


@SCORES.register("taylor")
def taylor_scores(model: nn.Module, weights: Sequence[PrunableWeight],
                  context: ScoreContext) -> dict[str, torch.Tensor]:
    x, y = context.batch("taylor")
    chunks = max(1, min(TAYLOR_CHUNKS, len(x)))
    total = {w.name: torch.zeros_like(w.tensor(model).detach()) for w in weights}
    for xb, yb in zip(torch.tensor_split(x, chunks), torch.tensor_split(y, chunks)):
        grads = _zeros_if_none(_weight_gradients(model, weights, xb, yb), model, weights)
        for w, g in zip(weights, grads):
            total[w.name] += (w.tensor(model).detach() * g).pow(2)
    return {name: t / chunks for name, t in total.items()}
