"""The kernels' registry and the one factory that builds every format's checked wrappers.

A format family's module defines its numba cores (``spmv``, ``spmm``, ``spmm_t``) and one
``check(*arrays, shape, scales, bias, **options)`` returning a :data:`Checked` tuple;
:func:`make_products` turns them into the three public products (``matvec``, ``matmul``,
``left``) with the same argument checks, output allocation and thread count, and
:data:`KERNELS` maps a format name (:data:`prunebench.formats.FORMATS`) to them. The arrays a
format hands over are its class's ``kernel_arrays`` (:meth:`prunebench.formats.Format.kernel_args`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..registry import Registry
from . import _checks as chk
from ._left import NO_OUT, input_columns, left_product


#: what a format's ``check(*arrays, shape, scales, bias, **options)`` returns: ``(rows, cols,
#: args, scales, bias)``, the true shape, the arguments its numba cores take before ``scales,
#: bias`` (values as numba reads them, options as ints), and ``scales`` / ``bias`` as the cores
#: read them (empty arrays for none). A plain tuple: a wrapper call builds one.
Checked = tuple[int, int, tuple[Any, ...], np.ndarray, np.ndarray]


class Kernel(NamedTuple):
    """The three products of one format: ``matvec(*arrays, x, *, shape, <options>, scales=None,
    bias=None, out=None)`` -> float32 [rows]; ``matmul(..., X[B, cols], ...)`` -> [B, rows];
    ``left(..., X[cols, N], ...)`` -> [rows, N] (no ``out``); and ``bind(*arrays, shape,
    <options>, scales=None, bias=None)`` -> :class:`Bound`, the same products of one matrix with
    its arrays checked once (what an engine that calls them layer after layer holds)."""

    matvec: Callable[..., np.ndarray]
    matmul: Callable[..., np.ndarray]
    left: Callable[..., np.ndarray]
    bind: Callable[..., "Bound"]


_F32 = np.dtype(np.float32)


class Bound:
    """The products of one matrix, its arrays, options, scales and bias checked once: a call
    checks only its input. Per call on a cold cache (the state between the layers of a model)
    the checks of the unbound products cost more than a small kernel: 384x1536 at 90%, 2
    threads, a 96 MiB stream before each call, ``matvec`` 0.054 ms against 0.026 ms for the
    numba core alone."""

    __slots__ = ("rows", "cols", "_args", "_sc", "_bi", "_spmv", "_spmm", "_spmm_t", "_width")

    def __init__(self, checked: Checked, spmv: Callable[..., None], spmm: Callable[..., np.ndarray],
                 spmm_t: Callable[..., None], width: int):
        self.rows, self.cols, self._args, self._sc, self._bi = checked
        self._spmv, self._spmm, self._spmm_t, self._width = spmv, spmm, spmm_t, width

    def matvec(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``W @ x`` (+ bias): x float32 [cols] -> float32 [rows]."""
        if (type(x) is not np.ndarray or x.dtype != _F32 or x.ndim != 1
                or x.shape[0] != self.cols or not x.flags.c_contiguous):
            x = chk.input_vector(x, self.cols)       # raises the one-line error
        y = np.empty(self.rows, _F32) if out is None else chk.output(out, (self.rows,))
        self._spmv(*self._args, self._sc, self._bi, x, y, chk.NPARTS)
        return y

    def matmul(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``X @ W.T`` (+ bias): X float32 [B, cols] -> float32 [B, rows]."""
        if (type(X) is not np.ndarray or X.dtype != _F32 or X.ndim != 2
                or X.shape[1] != self.cols or not X.flags.c_contiguous):
            X = chk.input_batch(X, self.cols)       # raises the one-line error
        Y = NO_OUT if out is None else chk.output(out, (X.shape[0], self.rows))
        # one numba call: transpose, core, untranspose and the output's allocation
        return self._spmm(*self._args, self._sc, self._bi, X, Y, self.rows, chk.NPARTS)

    def left(self, X: np.ndarray) -> np.ndarray:
        """``W @ X`` (+ bias per row): X float32 [cols, N] -> float32 [rows, N]."""
        X = input_columns(X, self.cols)
        return left_product(self._spmm_t, self._args, X, self._width, self.rows, self._sc,
                            self._bi, chk.NPARTS)


#: format name -> its :class:`Kernel`; a kernel module registers its format on import
KERNELS: Registry[Kernel] = Registry("kernel")


def make_products(name: str, label: str, check: Callable[..., Checked],
                  spmv: Callable[..., None], spmm: Callable[..., np.ndarray],
                  spmm_t: Callable[..., None],
                  left_width: Callable[[Checked], int] | None = None) -> Kernel:
    """The checked products of format ``name`` (``label`` names it in docstrings): ``bind``
    checks a matrix once into a :class:`Bound`; ``matvec``, ``matmul`` and ``left`` bind the
    matrix for one call (one ``check`` call and one small object).

    ``spmv(*args, scales, bias, x, y, nparts)`` writes into a preallocated output and
    ``spmm(*args, scales, bias, X, Y, rows, nparts)`` into ``Y`` (or a new array when ``Y`` is
    :data:`._left.NO_OUT`), which it returns; ``spmm_t(*args, T, YT, nparts)`` is the core of the
    column-major product (:mod:`prunebench.kernels._left`); ``left_width`` is the input width
    it reads (the padded width of a blocked layout; default ``cols``)."""

    def bind(*arrays: Any, shape: Any, scales: Any = None, bias: Any = None,
             **options: Any) -> Bound:
        c = check(*arrays, shape, scales, bias, **options)
        return Bound(c, spmv, spmm, spmm_t, c[1] if left_width is None else left_width(c))

    # the one-call products: the matrix's arrays bound for this call only, its input last
    def matvec(*arrays: Any, shape: Any, scales: Any = None, bias: Any = None, out: Any = None,
               **options: Any) -> np.ndarray:
        return bind(*arrays[:-1], shape=shape, scales=scales, bias=bias,
                    **options).matvec(arrays[-1], out)

    def matmul(*arrays: Any, shape: Any, scales: Any = None, bias: Any = None, out: Any = None,
               **options: Any) -> np.ndarray:
        return bind(*arrays[:-1], shape=shape, scales=scales, bias=bias,
                    **options).matmul(arrays[-1], out)

    def left(*arrays: Any, shape: Any, scales: Any = None, bias: Any = None,
             **options: Any) -> np.ndarray:
        return bind(*arrays[:-1], shape=shape, scales=scales, bias=bias, **options).left(arrays[-1])

    docs = {
        "matvec": f"``W @ x`` (+ bias) for a {label} matrix of true ``shape``; returns float32 [rows].",
        "matmul": "``X @ W.T`` (+ bias) for X float32 [B, cols]; returns float32 [B, rows].",
        "left": "``W @ X`` (+ bias per row) for X float32 [cols, N]; returns float32 [rows, N].",
        "bind": f"The products of one {label} matrix, its arrays checked once (:class:`Bound`).",
    }
    for fn in (matvec, matmul, left, bind):
        kind = fn.__name__
        fn.__name__ = fn.__qualname__ = f"{name}_{kind}"
        fn.__doc__ = docs[kind]
    return Kernel(matvec, matmul, left, bind)
