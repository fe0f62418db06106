"""``scipy``: the pruned layers as ``scipy.sparse`` arrays (csr, bsr, coo, csc), everything
else dense PyTorch.

SciPy's sparse products are single-threaded: the compiled model records
``threads_effective = 1`` (PyTorch still runs the dense rest on the threads asked for).
Products run channels-first (``A @ X``), like ``torch-sparse``; GRU/LSTM run the runtime's
recurrence with SciPy products. Values are fp32 (SciPy has no float16 sparse products and
would upcast int8 on every call). SciPy takes int32 indices, so its arrays are larger than
prunebench's narrow-index formats; ``nbytes`` reports what SciPy holds. BSR is padded to
whole blocks, as SciPy requires.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..formats import Format
from ..runtime.compile import Backend, CompiledModel, compile
from ..runtime.layers import MatrixOp
from .base import ENGINES, Engine
from .native import runtime_options


def _i32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def scipy_matrix(fmt: Format) -> tuple[sp.sparray, tuple[int, int]]:
    """The scipy.sparse array of a csr/csc/coo/bsr format object, and its padded shape."""
    rows, cols = fmt.shape
    a = fmt.arrays()
    data = np.ascontiguousarray(a["data"])
    if fmt.name == "csr":
        return sp.csr_array((data, _i32(a["indices"]), _i32(a["indptr"])), shape=fmt.shape), \
            (rows, cols)
    if fmt.name == "csc":
        return sp.csc_array((data, _i32(a["indices"]), _i32(a["indptr"])), shape=fmt.shape), \
            (rows, cols)
    if fmt.name == "coo":
        return sp.coo_array((data, (_i32(a["row"]), _i32(a["col"]))), shape=fmt.shape), \
            (rows, cols)
    r, c = fmt.meta()["block"]
    padded = (-(-rows // r) * r, -(-cols // c) * c)
    return sp.bsr_array((data, _i32(a["indices"]), _i32(a["indptr"])), shape=padded), padded


class ScipyOp(MatrixOp):
    """``A @ X + b`` with A a scipy.sparse array."""

    layout = "columns"

    def __init__(self, fmt: Format, bias: np.ndarray | None):
        rows, cols = fmt.shape
        self.format, self.values, self.shape = fmt.name, fmt.values, (rows, cols)
        self.A, self.padded = scipy_matrix(fmt)
        self.b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)

    def _product(self, X: np.ndarray) -> np.ndarray:
        """``A @ X`` for X [cols, N] or [cols], cut to the true rows, plus bias."""
        extra = self.padded[1] - self.shape[1]
        if extra:
            X = np.concatenate([X, np.zeros((extra, *X.shape[1:]), np.float32)])
        Y = self.A @ X
        if self.padded[0] != self.shape[0]:
            Y = Y[: self.shape[0]]
        if self.b is not None:
            Y += self.b if Y.ndim == 1 else self.b[:, None]
        return Y

    def left(self, X: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._product(X.numpy())))

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        x = X.numpy()
        if x.shape[0] == 1:
            return torch.from_numpy(self._product(x[0])).unsqueeze(0)
        return torch.from_numpy(np.ascontiguousarray(self._product(x.T).T))

    def nbytes(self) -> int:
        A = self.A
        arrays = [A.data] + ([A.row, A.col] if A.format == "coo" else [A.indices, A.indptr])
        return int(sum(a.nbytes for a in arrays) + (0 if self.b is None else self.b.nbytes))


class ScipyBackend(Backend):
    name = "scipy"
    formats = ("csr", "bsr", "coo", "csc")
    values = ("fp32",)

    def make_op(self, fmt: Format, bias: np.ndarray | None, threads: int) -> ScipyOp:
        return ScipyOp(fmt, bias)

    def set_threads(self, threads: int) -> None:
        pass

    def threads_effective(self, threads: int) -> int:
        return 1

    def max_threads(self) -> int:
        import os

        return os.cpu_count() or 1


SCIPY = ScipyBackend()


class ScipyEngine(Engine):
    name = "scipy"
    formats = SCIPY.formats
    values = SCIPY.values
    rnn = "our recurrence (runtime.SparseRNN) with scipy.sparse products"

    def threads_effective(self, threads: int) -> int:
        return 1

    def compile(self, model: nn.Module, format: Any = "csr", *, values: str = "fp32",
                threads: int = 1, **options: Any) -> CompiledModel:
        return compile(model, format, values=values, threads=threads, backend=SCIPY,
                       **runtime_options(options))


ENGINES.add("scipy", ScipyEngine())
