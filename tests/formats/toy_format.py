"""A toy storage format in one module, registered with its kernel: the acceptance check of issue
19 (``test_toy_format.py`` imports it in a child process). Nothing else in the package names
it, yet it encodes, decodes, is stored and loaded (container and model file) and is timed by
``prunebench kernels``.

Layout: ``positions`` int64 [nnz], the flat index ``r * cols + c`` of every nonzero in
row-major order; ``data`` [nnz] its value (int8 with per-row ``scales``, as every format).
The kernel is a NumPy product (decode, then multiply), wrapped by the kernels' factory.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from prunebench.errors import FormatError
from prunebench.formats import FORMATS, Format
from prunebench.formats.base import check_indices, expect_array
from prunebench.kernels import KERNELS, Checked, make_products


@FORMATS.register("toy")
class ToyFormat(Format):
    """Nonzeros and their flat positions."""

    name = "toy"
    array_names = ("positions", "data")
    index_arrays = ("positions",)
    kernel_arrays = ("positions", "data")

    @classmethod
    def _encode(cls, W: np.ndarray, Q: np.ndarray, scales: np.ndarray | None, values: str,
                index_dtype: Any, **opts: Any) -> Format:
        pos = np.flatnonzero(W).astype(np.int64)
        return cls._new(W.shape, values, scales,
                        {"positions": pos, "data": np.ascontiguousarray(Q.ravel()[pos])})

    def _decode(self) -> np.ndarray:
        D = np.zeros(self.shape[0] * self.shape[1], self.data.dtype)
        D[self.positions] = self.data
        return D.reshape(self.shape)

    def _check(self) -> None:
        a = self.arrays()
        pos = expect_array(self.name, a, "positions", ("int64",), (None,))
        if a["data"].shape != pos.shape:
            raise FormatError(f"toy: data has shape {list(a['data'].shape)}, expected "
                              f"[{len(pos)}] (one value per position)")
        check_indices(self.name, pos, self.shape[0] * self.shape[1], "position", "cells")


# ---------------------------------------------------------------- its kernel


def _dense(positions: np.ndarray, data: np.ndarray, rows: int, cols: int) -> np.ndarray:
    W = np.zeros(rows * cols, np.float32)
    W[positions] = data.astype(np.float32)
    return W.reshape(rows, cols)


def _finish(Y: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> None:
    """Per-row scales and bias on the last axis of ``Y`` (empty arrays: none)."""
    if scales.size:
        Y *= scales
    if bias.size:
        Y += bias


def _check(positions: np.ndarray, data: np.ndarray, shape: Any, scales: Any,
           bias: Any) -> Checked:
    rows, cols = (int(s) for s in shape)
    none = np.zeros(0, np.float32)
    sc = none if scales is None else np.asarray(scales, np.float32)
    bi = none if bias is None else np.asarray(bias, np.float32)
    return rows, cols, (_dense(positions, data, rows, cols),), sc, bi


def _spmv(W: np.ndarray, scales: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray,
          nparts: int) -> None:
    y[:] = W @ x
    _finish(y, scales, bias)


def _spmm(W: np.ndarray, scales: np.ndarray, bias: np.ndarray, X: np.ndarray, Y: np.ndarray,
          rows: int, nparts: int) -> np.ndarray:
    if Y.shape != (X.shape[0], rows):          # NO_OUT: a new output
        Y = np.empty((X.shape[0], rows), np.float32)
    Y[:] = X @ W.T
    _finish(Y, scales, bias)
    return Y


def _spmm_t(W: np.ndarray, T: np.ndarray, YT: np.ndarray, nparts: int) -> None:
    YT[:] = W @ T[:W.shape[1]]


KERNELS.add("toy", make_products("toy", "toy", _check, _spmv, _spmm, _spmm_t))
