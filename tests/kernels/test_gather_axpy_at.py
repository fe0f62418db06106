"""``gather_axpy_at``: the batched axpy over a range of entries of whole arrays into one row of a
2-D output, overwriting or adding (the piece a column-blocked SpMM calls once per row and
block of columns), checked against float64 NumPy on every value type and batch width."""
import numpy as np
import pytest
from numba import njit

from prunebench.kernels._simd import gather_axpy_at


@njit(cache=False)
def _call(vals, cols, lo, hi, T, col0, nvec, out, orow, add):
    gather_axpy_at(vals, cols, lo, hi, T, col0, nvec, out, orow, add)


def _stored(values, rng, n):
    if values == "fp32":
        return rng.standard_normal(n).astype(np.float32)
    if values == "int8":
        return rng.integers(-127, 128, n).astype(np.int8)
    return rng.standard_normal(n).astype(np.float16).view(np.uint16)    # fp16 as its bits


def _as_float(v, values):
    return (v.view(np.float16) if values == "fp16" else v).astype(np.float64)


@pytest.mark.parametrize("values", ["fp32", "int8", "fp16"])
@pytest.mark.parametrize("index", [np.int32, np.uint16, np.int64])
@pytest.mark.parametrize("width", [8, 24, 32, 64, 80])
def test_range_into_a_row_overwrites_then_adds(values, index, width):
    rng = np.random.default_rng(width)
    n, tcols = 300, 97
    vals = _stored(values, rng, n)
    cols = rng.integers(0, tcols, n).astype(index)
    T = rng.standard_normal((tcols, width)).astype(np.float32)
    out = np.full((5, width + 8), 7.0, np.float32)         # wider than the pass: rows of 88
    col0 = 8 if width >= 16 else 0
    nvec = min(64, width - col0) // 8
    span = slice(col0, col0 + 8 * nvec)
    w = _as_float(vals, values)
    for lo, hi in [(0, 0), (3, 4), (10, 17), (0, n), (250, 300)]:
        expect = (w[lo:hi, None] * T[cols[lo:hi].astype(np.int64)].astype(np.float64)).sum(0)
        before = out.copy()
        _call(vals, cols, lo, hi, T, col0, nvec, out, 2, 0)
        np.testing.assert_allclose(out[2, span], expect[span], rtol=1e-5, atol=1e-4 * max(1, hi - lo))
        untouched = np.ones(out.shape, bool)
        untouched[2, span] = False
        np.testing.assert_array_equal(out[untouched], before[untouched])
        _call(vals, cols, lo, hi, T, col0, nvec, out, 2, 1)          # add the same again
        np.testing.assert_allclose(out[2, span], 2 * expect[span], rtol=1e-5, atol=2e-4 * max(1, hi - lo))
        np.testing.assert_array_equal(out[untouched], before[untouched])


def test_prefetch_at_types_1d_contiguous_arrays_only():
    """``prefetch_at`` (cbcsr's core asks for its weights ahead with it) compiles on every
    value and index dtype and changes nothing; a 2-D array is refused at typing."""
    from numba.core.errors import TypingError

    from prunebench.kernels._simd import prefetch_at

    @njit(cache=False)
    def touch(a, i):
        prefetch_at(a, i)
        return a[i]

    for dtype in (np.float32, np.int8, np.uint16, np.int32, np.int64):
        a = np.arange(40).astype(dtype)
        before = a.copy()
        assert touch(a, 17) == 17
        np.testing.assert_array_equal(a, before)
    with pytest.raises(TypingError):
        touch(np.zeros((4, 4), np.float32), 1)
