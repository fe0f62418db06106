"""The engine protocol: every engine turns the same pruned torch model into a callable that
computes the same function, possibly with its weights in another storage format."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import nn

from ..registry import Registry

#: what :meth:`Engine.compile` returns: ``f(x)`` with the model's forward signature (a tensor,
#: or what the model's forward returns, e.g. a tuple)
Compiled = Callable[[torch.Tensor], Any]

ENGINES: Registry[Engine] = Registry("engine")


class Engine(ABC):
    """An inference engine.

    ``formats`` lists the storage formats it can run pruned layers in and ``values`` the value
    encodings; ``compile`` returns a callable ``f(x: torch.Tensor) -> torch.Tensor`` with the
    model's forward signature. ``rnn`` says in one line how the engine runs GRU/LSTM layers.

    Options every engine accepts (and may ignore): ``fallback`` ("error" | "dense": what a
    pruned layer the format cannot serve does), ``keep_smaller`` (keep dense the layers whose
    encoding is larger than dense), ``example_input`` (a model input, for engines that trace),
    and the format options ``block``, ``n``, ``m``, ``slice_height``.
    """

    name: str = ""
    formats: tuple[str, ...] = ("dense",)
    #: formats that are the engine's own file encodings, not prunebench formats (no entry in
    #: :data:`prunebench.formats.FORMATS`), e.g. litert's ``tflite-sparse``
    own_formats: tuple[str, ...] = ()
    values: tuple[str, ...] = ("fp32",)
    rnn: str = "PyTorch's own GRU/LSTM"

    def supports(self, format: str) -> bool:
        return format in self.formats

    def check_available(self) -> None:
        """Raise :class:`PrunebenchError` with one line naming what to install when the
        engine's packages are missing here (checked before any model is loaded)."""

    def threads_effective(self, threads: int) -> int:
        """Threads the engine really computes with when asked for ``threads``."""
        return threads

    @abstractmethod
    def compile(self, model: nn.Module, format: Any = "dense", *, values: str = "fp32",
                threads: int = 1, **options: Any) -> Compiled:
        ...
