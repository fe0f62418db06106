"""``native``: prunebench's own numba kernels (csr, delta8, bsr, bitmap, nm, ell, panel, cbcsr;
fp32, fp16 and int8 values) behind the sparse layers of :mod:`prunebench.runtime`."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..runtime.compile import NATIVE, CompiledModel, compile
from .base import ENGINES, Engine

#: compile() options an engine passes on to the runtime
RUNTIME_OPTIONS = ("fallback", "keep_smaller", "block", "n", "m", "slice_height")


def runtime_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options :func:`prunebench.runtime.compile` takes (``example_input`` is dropped:
    the runtime does not trace)."""
    return {k: v for k, v in options.items() if k in RUNTIME_OPTIONS and v is not None}


class NativeEngine(Engine):
    name = "native"
    formats = NATIVE.formats
    values = NATIVE.values
    rnn = ("our recurrence (runtime.SparseRNN): input gates of all steps in one sparse "
           "product, one sparse product of the stacked W_hh gates per step")

    def compile(self, model: nn.Module, format: Any = "csr", *, values: str = "fp32",
                threads: int = 1, **options: Any) -> CompiledModel:
        """:func:`prunebench.runtime.compile` with our kernels; ``format`` may be a per-layer
        plan dict."""
        return compile(model, format, values=values, threads=threads, backend=NATIVE,
                       **runtime_options(options))


ENGINES.add("native", NativeEngine())
