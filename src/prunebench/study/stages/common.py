"""What every stage shares: the two ways a job ends without a result of its own
(:class:`Skip`, :class:`VerifyFailed`) and the inputs it runs and is verified on."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ...zoo.datasets import Dataset
    from ..spec import Spec


class Skip(Exception):
    """A job that turns out not to apply (e.g. a method that fits none of a model's layers)."""


class VerifyFailed(Exception):
    """Outputs differ from the dense fp32 reference by more than the tolerance."""

    def __init__(self, message: str, numbers: dict[str, Any]):
        super().__init__(message)
        self.numbers = numbers


def inputs(model_name: str, data: Dataset | None, n: int, seed: int = 1234) -> torch.Tensor:
    """``n`` test inputs (repeated when the test split is smaller), or seeded random inputs of
    the model's shape for latency-only models."""
    from ... import zoo

    if data is None:
        return zoo.get_spec(model_name).example_input(n, seed)
    x = data.x_test
    if len(x) < n:
        x = x.repeat((n + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))
    return x[:n]


class Inputs:
    """Verification inputs (and labels) of a model: ``verify.inputs`` test inputs, at least
    one full batch; 4 random inputs (or one batch) for latency-only models."""

    def __init__(self, name: str, data: Dataset | None, spec: Spec):
        self.name, self.data = name, data
        n = spec.verify["inputs"]
        self.target = n if data is not None else min(n, 4)

    def for_batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At least ``batch`` verification inputs, and their labels (None without)."""
        n = max(batch, self.target)
        x = inputs(self.name, self.data, n)
        y = None
        if self.data is not None and len(self.data.y_test) >= n:
            y = self.data.y_test[:n]
        return x, y
