"""Cheap argument checks of the kernel wrappers (shapes and dtypes only, never structure)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import BadInputError
from ._threads import max_threads

#: dtypes of stored values a kernel accepts (float16 travels to numba as its uint16 bits)
VALUE_DTYPES: tuple[np.dtype, ...] = tuple(dtypes.VALUE_DTYPES.values())
#: dtypes of column indices: a format's, and int64
KERNEL_INDEX_DTYPES = tuple(np.dtype(n) for n in dtypes.KERNEL_INDEX_DTYPES)
#: dtypes of row/slice pointers
POINTER_DTYPES = tuple(np.dtype(n) for n in dtypes.POINTER_DTYPES)

_EMPTY = np.zeros(0, np.float32)


def _names(dtypes: Iterable[Any]) -> str:
    return ", ".join(str(d) for d in dtypes)


def check_shape(shape: Any) -> tuple[int, int]:
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise BadInputError(f"shape={shape!r} should be a pair (rows, cols) of integers") from None
    if rows < 0 or cols < 0:
        raise BadInputError(f"shape={shape!r} should hold non-negative integers")
    return rows, cols


def check_array(arr: Any, name: str, dtypes: tuple[np.dtype, ...], ndim: int) -> np.ndarray:
    """``arr`` itself when it is a C-contiguous ndarray of one of ``dtypes`` with ``ndim`` axes."""
    if not isinstance(arr, np.ndarray):
        raise BadInputError(f"{name} should be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype not in dtypes:
        raise BadInputError(f"{name} has dtype {arr.dtype}; allowed: {_names(dtypes)}")
    if arr.ndim != ndim:
        raise BadInputError(f"{name} should have {ndim} dimension(s), got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise BadInputError(f"{name} should be C-contiguous (use numpy.ascontiguousarray)")
    return arr


def values_for_kernel(data: Any, name: str, ndim: int, scales: Any) -> np.ndarray:
    """The value array as numba takes it (float16 as uint16 bits); int8 needs ``scales``."""
    check_array(data, name, VALUE_DTYPES, ndim)
    if data.dtype == np.int8 and scales is None:
        raise BadInputError(f"{name} is int8 and needs scales= (per-output-row float32)")
    if data.dtype == np.float16:
        return data.view(np.uint16)
    return data


def row_vector(v: Any, name: str, rows: int) -> np.ndarray:
    """``scales``/``bias``: ``None`` becomes the empty array the kernels read as 'none'."""
    if v is None:
        return _EMPTY
    check_array(v, name, (np.dtype(np.float32),), 1)
    if v.shape[0] != rows:
        raise BadInputError(f"{name} has length {v.shape[0]}; the matrix has {rows} rows")
    return v


def input_vector(x: Any, cols: int) -> np.ndarray:
    check_array(x, "x", (np.dtype(np.float32),), 1)
    if x.shape[0] != cols:
        raise BadInputError(f"x has length {x.shape[0]}; the matrix has {cols} columns")
    return x


def input_batch(X: Any, cols: int) -> np.ndarray:
    check_array(X, "X", (np.dtype(np.float32),), 2)
    if X.shape[1] != cols:
        raise BadInputError(f"X has shape {X.shape}; expected (batch, {cols})")
    return X


def output(out: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A caller's ``out`` checked (float32, C-contiguous, ``shape``). Without one the products
    allocate their own: ``matvec`` with NumPy, ``matmul`` inside its numba call, on a cache
    line (:func:`._left.right_end`)."""
    check_array(out, "out", (np.dtype(np.float32),), len(shape))
    if out.shape != shape:
        raise BadInputError(f"out has shape {out.shape}; expected {shape}")
    return out


#: work parts per call. numba's prange gives each thread an equal run of consecutive parts, so
#: a thread count dividing NUMBA_NUM_THREADS gets balanced work; a constant because
#: numba.get_num_threads() costs ~1 us, a third of a wrapper's overhead.
NPARTS = max_threads()

