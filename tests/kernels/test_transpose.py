"""The batch transposes around the SpMM cores (16x16 blocks in registers, the edges float by
float) against NumPy's transpose, on shapes that exercise every edge: batch and column counts
below, at and past multiples of 16 and of the 64-column tile, padding rows and lanes."""
import numpy as np
import pytest

from prunebench.kernels._jit import batch_transpose, untranspose
from prunebench.kernels._transpose import transpose16

BATCHES = [1, 7, 15, 16, 17, 32, 33, 48]
COLS = [1, 15, 16, 17, 64, 65, 130]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("cols", COLS)
def test_batch_transpose_pads_with_zeros(batch, cols):
    rng = np.random.default_rng(batch * 1000 + cols)
    X = rng.standard_normal((batch, cols)).astype(np.float32)
    for nrows in (cols, cols + 5, cols + 70):
        for _ in range(2):        # a reused (not zeroed) buffer must not leak into the padding
            T = batch_transpose(X, nrows)
            expect = np.zeros((nrows, -(-batch // 8) * 8), np.float32)
            expect[:cols, :batch] = X.T
            np.testing.assert_array_equal(T, expect)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("rows", COLS)
@pytest.mark.parametrize("finish", [False, True])
def test_untranspose_with_and_without_scales_and_bias(batch, rows, finish):
    rng = np.random.default_rng(batch * 1000 + rows)
    width = -(-batch // 8) * 8
    YT = rng.standard_normal((rows, width)).astype(np.float32)
    none = np.empty(0, np.float32)
    scales = rng.standard_normal(rows).astype(np.float32) if finish else none
    bias = rng.standard_normal(rows).astype(np.float32) if finish else none
    Y = np.full((batch, rows), np.nan, np.float32)
    untranspose(YT, Y, scales, bias)
    expect = YT[:, :batch].T.astype(np.float64)
    if finish:
        expect = expect * scales + bias
    np.testing.assert_allclose(Y, expect, rtol=1e-6, atol=1e-6)


def test_transpose16_moves_one_block_between_offsets():
    from numba import njit

    @njit
    def call(src, r0, c0, dst, d0, e0):
        transpose16(src, r0, c0, dst, d0, e0)

    src = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    dst = np.zeros((30, 60), np.float32)
    call(src, 3, 7, dst, 5, 11)
    expect = np.zeros_like(dst)
    expect[5:21, 11:27] = src[3:19, 7:23].T
    np.testing.assert_array_equal(dst, expect)
