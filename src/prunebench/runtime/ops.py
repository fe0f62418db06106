"""Matrix operators: the product ``X @ W.T + b`` of one fixed weight matrix ``W`` [rows, cols],
as one engine computes it. The sparse layers of :mod:`prunebench.runtime.layers` hold one per
weight matrix and do not care which engine's it is.

:class:`KernelOp` calls prunebench's own numba kernels (the one registered for the format in
``prunebench.kernels.KERNELS``, on the arrays its class names: ``Format.kernel_args``);
:class:`DenseOp` is PyTorch's dense ``F.linear``; :class:`StackedOp` stacks ops along the output
rows; the ``torch-sparse`` and ``scipy`` engines add their own ops (:mod:`prunebench.engines`).
A :class:`Backend` (:data:`NATIVE`: our kernels) says which formats and values an engine's ops
run and makes them.

Layouts
-------
An op says which operand layout it computes without copies (``layout``):

* ``"rows"``: ``Y[N, rows] = X[N, cols] @ W.T``, the batch as rows. A 1x1 convolution then
  wants its activations channels-last (``[N*H*W, C]``) and returns a channels-last tensor.
* ``"columns"`` (our kernels, torch sparse, SciPy): ``Y[rows, N] = W @ X[cols, N]``, the
  natural sparse x dense product: a 1x1 convolution of one image is ``W @ X`` on its
  channels-first ``[C, H*W]`` view. Our kernels read that view in place as their transposed
  batch (:mod:`prunebench.kernels._left`). Measured on MobileNetV2's 1x1 convolutions at 90%,
  2 threads: 32->16 channels at 112x112 0.065 ms vs 1.67 ms through "rows" (which transposed
  the activations four times), the whole model 1.23x faster than dense instead of 0.97x.

Small products run on one thread: below :data:`GRAIN` stored values x batch, waking a second
thread costs more than it saves (PyTorch's ``at::parallel_for`` has the same kind of grain
size).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import os
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .. import kernels as K
from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from ..formats import Format

#: stored values x batch below which a kernel call runs on one thread. With OpenMP's passive
#: wait (prunebench's default, :func:`prunebench.kernels.wait_policy`) waking the sleeping peer
#: costs about 0.06 ms here, so two threads pay from about 0.2 ms of one-thread work
#: (`benchmarks/bench_threads_under_load.py --compare`, quiet machine: csr 1024x1024 at 90%,
#: 105k values, 0.04 ms on one thread, 0.09 ms on two passive ones, 0.03 ms on two spinning
#: ones; 4096x4096, 1.7M values, 0.64 / 0.38 / 0.32 ms). With spinning threads (the user's
#: OMP_WAIT_POLICY/GOMP_SPINCOUNT) the grain stays 32k values.
GRAIN = (1 << 19) if K.wait_policy() == "passive" else (1 << 15)

#: formats our kernels run (those registered in ``prunebench.kernels.KERNELS`` on import), and
#: the value encodings they take (all of them)
KERNEL_FORMATS = tuple(K.KERNELS)
KERNEL_VALUES = VALUE_ENCODINGS


# ---------------------------------------------------------------- matrix operators


class MatrixOp(ABC):
    """``X @ W.T + b`` for one fixed weight matrix ``W`` [rows, cols], as an engine runs it.

    Attributes: ``shape`` (rows, cols), ``format`` (storage format name), ``values``
    (fp32/fp16/int8), ``layout`` ("rows" or "columns", see the module docstring).
    """

    layout: ClassVar[str] = "rows"
    shape: tuple[int, int]
    format: str
    values: str = "fp32"

    @abstractmethod
    def linear(self, X: torch.Tensor) -> torch.Tensor:
        """``X[N, cols] @ W.T + b`` -> float32 [N, rows]."""

    def left(self, X: torch.Tensor) -> torch.Tensor:
        """``W @ X[cols, N] + b[:, None]`` -> float32 [rows, N]."""
        return self.linear(X.t()).t()

    @abstractmethod
    def nbytes(self) -> int:
        """Bytes of the arrays the op holds (weights, indices, scales, bias)."""


class DenseOp(MatrixOp):
    """PyTorch dense ``F.linear``: weights the plan keeps dense inside a sparse layer (an
    unpruned RNN gate next to pruned ones)."""

    layout = "rows"
    format = "dense"

    def __init__(self, W: torch.Tensor, bias: torch.Tensor | None = None):
        self.W = W.detach().float().contiguous()
        self.b = None if bias is None else bias.detach().float().contiguous()
        self.shape = (int(self.W.shape[0]), int(self.W.shape[1]))

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        return F.linear(X, self.W, self.b)

    def left(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.W @ X
        return Y if self.b is None else Y.add_(self.b[:, None])

    def nbytes(self) -> int:
        return self.W.numel() * 4 + (0 if self.b is None else self.b.numel() * 4)


def kernel_call(fmt: Format) -> tuple[tuple[np.ndarray, ...], K.Kernel, dict[str, int]]:
    """(arrays, (matvec, matmul, left), options) of prunebench.kernels for a format object:
    the kernel registered under its name, on the arrays its class names."""
    if fmt.name not in K.KERNELS:
        raise BadInputError(f"format {fmt.name!r} has no prunebench kernel; kernels run: "
                            + ", ".join(K.KERNELS))
    arrays, options = fmt.kernel_args()
    return arrays, K.KERNELS.get(fmt.name), options


class KernelOp(MatrixOp):
    """prunebench's numba kernels on the arrays of a format object (csr, delta8, bsr, bitmap,
    nm, ell, panel, cbcsr; fp32, fp16 or int8 values). The bias is added inside the kernel.

    ``threads`` is the count the compiled model runs with; calls with fewer than
    :data:`GRAIN` stored values x batch run on one thread.
    """

    # convolutions hand their channels-first [C, positions] input to left(), which runs the
    # kernels on it without a copy (see Layouts)
    layout = "columns"

    def __init__(self, fmt: Format, bias: np.ndarray | None = None, threads: int = 1):
        self.fmt = fmt
        self.format, self.values, self.shape = fmt.name, fmt.values, fmt.shape
        self.arrays, kernel, opts = kernel_call(fmt)
        self.opts: dict[str, Any] = dict(opts, shape=self.shape)
        if fmt.values == "int8":
            self.opts["scales"] = np.ascontiguousarray(fmt.arrays()["scales"], dtype=np.float32)
        if bias is not None:
            self.opts["bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        # checked once here: a call checks only its input (kernels.products.Bound)
        self.bound = kernel.bind(*self.arrays, **self.opts)
        self.stored = int(fmt.arrays()[fmt.value_arrays[0]].size)
        self.threads = threads
        self._one_thread_below = GRAIN if threads > 1 else 0

    def _run(self, fn, x, batch: int):
        if self.stored * batch < self._one_thread_below:
            K.set_threads(1)
            try:
                return fn(x)
            finally:
                K.set_threads(self.threads)
        return fn(x)

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        x = X.numpy() if X.is_contiguous() else X.contiguous().numpy()
        if x.shape[0] == 1:
            return torch.from_numpy(self._run(self.bound.matvec, x[0], 1)[None])
        return torch.from_numpy(self._run(self.bound.matmul, x, x.shape[0]))

    def left(self, X: torch.Tensor) -> torch.Tensor:
        x = X.contiguous().numpy()
        if x.shape[1] == 1:
            return torch.from_numpy(self._run(self.bound.matvec, x[:, 0], 1)).unsqueeze(1)
        y = self._run(self.bound.left, x, x.shape[1])
        return torch.from_numpy(np.ascontiguousarray(y))

    def nbytes(self) -> int:
        extra = sum(self.opts[k].nbytes for k in ("scales", "bias") if k in self.opts)
        return int(sum(a.nbytes for a in self.arrays) + extra)


class StackedOp(MatrixOp):
    """Ops stacked along the output rows (RNN gates whose plans differ)."""

    def __init__(self, ops: list[MatrixOp]):
        self.ops = ops
        self.shape = (sum(o.shape[0] for o in ops), ops[0].shape[1])
        self.format = "+".join(sorted({o.format for o in ops}))
        self.values = ops[0].values

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        return torch.cat([o.linear(X) for o in self.ops], dim=1)

    def nbytes(self) -> int:
        return sum(o.nbytes() for o in self.ops)


# ---------------------------------------------------------------- the backend


class Backend:
    """What computes the products of the sparse layers: the formats and value encodings it
    runs, and :meth:`make_op`, which turns one encoded matrix (plus bias) into a
    :class:`MatrixOp`. This one is prunebench's numba kernels."""

    name: ClassVar[str] = "native"
    formats: ClassVar[tuple[str, ...]] = KERNEL_FORMATS
    values: ClassVar[tuple[str, ...]] = KERNEL_VALUES

    def make_op(self, fmt: Format, bias: np.ndarray | None, threads: int) -> MatrixOp:
        return KernelOp(fmt, bias, threads)

    def set_threads(self, threads: int) -> None:
        """Make the backend's own thread pool run ``threads`` threads."""
        K.set_threads(threads)

    def threads_effective(self, threads: int) -> int:
        """Threads the sparse products really use when ``threads`` are asked for."""
        return threads

    def max_threads(self) -> int:
        return min(os.cpu_count() or 1, K.max_threads())


NATIVE = Backend()
