"""The batched products around a kernel core ``core(*arrays, T, YT, nparts)`` (``YT = W @ T``):
``right_begin``/``right_end`` for ``X[B, cols] @ W.T`` (each format's ``spmm`` calls them
around its core) and ``left_product`` for ``W @ X`` with X already column-major for the
kernels (``X[cols, N]``, N inputs side by side): the product a channels-first convolution
needs.

The batched kernels work on the transposed batch ``T[cols, N]`` and write ``YT[rows, N]``
(see :func:`prunebench.kernels._jit.batch_transpose`). A 1x1 or im2col convolution already
holds its input as ``[channels, positions]`` and wants ``[out channels, positions]`` back, so
going through ``X @ W.T`` cost four full copies of the activations (to channels-last, the
kernel's transpose, its untranspose, back to channels-first). Here the input is used as ``T``
directly when its width is a whole number of 8-float units (else one padded copy) and the
kernel's output is the result.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import (BATCH_STEP, JIT, PJIT, batch_transpose, empty_lined_rows, finish, lined,
                   untranspose)


@njit(**PJIT)
def finish_rows(YT: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> None:
    """``YT[r, :] = YT[r, :] * scales[r] + bias[r]`` in place (empty arrays: none)."""
    if scales.size == 0 and bias.size == 0:
        return
    rows, width = YT.shape
    for r in prange(rows):
        for b in range(width):
            YT[r, b] = finish(YT[r, b], r, scales, bias)


def input_columns(X: Any, cols: int) -> np.ndarray:
    chk.check_array(X, "X", (np.dtype(np.float32),), 2)
    if X.shape[0] != cols:
        raise BadInputError(f"X has shape {X.shape}; expected ({cols}, N)")
    return X


@njit(**JIT)
def right_begin(X: np.ndarray, t_rows: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The buffers of ``X[B, cols] @ W.T`` through a core: ``X`` transposed into ``T``
    (``t_rows`` rows, zero past ``cols``) and the core's output ``YT[rows, T width]`` (not
    initialised: the cores write every row).

    With :func:`right_end` this is the whole batched product inside one numba call (each
    format's ``spmm``). Run from Python as four calls (transpose, allocation, core,
    untranspose), its glue took 0.06 ms of a 0.84 ms csr product at batch 32 warm and 0.15 ms
    in a model's layer (flushed cache, the layer before just ran) on the Xeon VM."""
    T = batch_transpose(X, t_rows)
    return T, empty_lined_rows(rows, T.shape[1])


@njit(**JIT)
def right_end(YT: np.ndarray, Y: np.ndarray, scales: np.ndarray, bias: np.ndarray,
              batch: int) -> np.ndarray:
    """``Y[b, r] = finish(YT[r, b], r)`` and ``Y``; a ``Y`` of another shape than ``[batch,
    rows]`` (the callers' :data:`NO_OUT`) is replaced by a new array starting on a cache
    line."""
    Y = out_or_new(Y, batch, YT.shape[0])
    untranspose(YT, Y, scales, bias)
    return Y


@njit(**JIT)
def out_or_new(Y: np.ndarray, batch: int, rows: int) -> np.ndarray:
    """``Y`` when it is ``[batch, rows]``, else (the callers' :data:`NO_OUT`) a new array of
    that shape starting on a cache line: the output rule of every format's ``spmm``."""
    if Y.shape[0] != batch or Y.shape[1] != rows:
        return empty_lined_rows(batch, rows)
    return Y


#: the ``Y`` of an ``spmm`` call that should allocate its output (:func:`right_end`)
NO_OUT = np.empty((0, 0), np.float32)


def left_product(core: Callable[..., None], args: tuple[Any, ...], X: np.ndarray, t_rows: int,
                 rows: int, scales: np.ndarray, bias: np.ndarray, nparts: int) -> np.ndarray:
    """Run ``core(*args, T, YT, nparts)`` on ``X[cols, N]``; returns float32 [rows, N].

    ``t_rows`` is the row count the kernel reads from ``T`` (``cols`` rounded up to a whole
    block for bsr, to whole groups for nm); rows past ``cols`` are zero."""
    cols, n = X.shape
    width = -(-n // BATCH_STEP) * BATCH_STEP
    if width == n and t_rows == cols and X.flags.c_contiguous:
        T = X
    else:
        T = lined((t_rows, max(width, BATCH_STEP)))
        T[:] = 0
        T[:cols, :n] = X
    YT = lined((rows, T.shape[1]))
    core(*args, T, YT, nparts)
    finish_rows(YT, scales, bias)
    return YT if T.shape[1] == n else YT[:, :n]
