"""The engine protocol: every engine turns the same pruned torch model into a callable that
computes the same function, possibly with its weights in another storage format."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import nn

from ..registry import Registry

ENGINES: Registry = Registry("engine")


class Engine(ABC):
    """An inference engine.

    ``formats`` lists the storage formats it can run pruned layers in; ``compile`` returns a
    callable ``f(x: torch.Tensor) -> torch.Tensor`` with the model's forward signature."""

    name: str = ""
    formats: tuple[str, ...] = ("dense",)

    def supports(self, format: str) -> bool:
        return format in self.formats

    @abstractmethod
    def compile(self, model: nn.Module, format: str = "dense", *, values: str = "fp32",
                threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
        ...
