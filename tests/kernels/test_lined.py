"""The buffers the kernels load 16 floats at a time from start on a cache line (a load that
straddles two lines made batch-32 products twice as slow in some processes), and hold what
they should."""
import numpy as np
import pytest

from prunebench.kernels import KERNELS
from prunebench.kernels._jit import LINE, batch_transpose, lined, zeros_lined
from prunebench.kernels.panel import _padded_input
from prunebench.formats import encode


@pytest.mark.parametrize("n", [1, 33, 4096, 4096 * 32, 100_003])
def test_zeros_lined(n):
    for _ in range(3):            # numba's allocator returns other offsets after the first call
        a = zeros_lined(n)
        assert a.ctypes.data % LINE == 0 and a.shape == (n,) and a.dtype == np.float32
        assert not a.any()


@pytest.mark.parametrize("shape", [(1,), (3, 5), (4096, 32), (7, 8, 9)])
def test_lined(shape):
    for _ in range(3):
        a = lined(shape)
        assert a.ctypes.data % LINE == 0 and a.shape == shape and a.dtype == np.float32
        assert a.flags.c_contiguous and a.flags.writeable


def test_transposed_batch_and_padded_input_are_lined_and_right():
    rng = np.random.default_rng(0)
    for batch, cols, nrows in [(32, 4096, 4096), (3, 50, 64), (8, 7, 7)]:
        X = rng.standard_normal((batch, cols)).astype(np.float32)
        T = batch_transpose(X, nrows)
        assert T.ctypes.data % LINE == 0 and T.shape == (nrows, -(-batch // 8) * 8)
        expect = np.zeros(T.shape, np.float32)
        expect[:cols, :batch] = X.T
        np.testing.assert_array_equal(T, expect)
        xp = _padded_input(X[0], cols)
        assert xp.ctypes.data % LINE == 0 and xp.size == -(-cols // 32) * 32
        np.testing.assert_array_equal(xp[:cols], X[0])
        assert not xp[cols:].any()


@pytest.mark.parametrize("fmt", ["csr", "panel"])
def test_batched_products_on_lined_buffers_match_dense(fmt):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((300, 200)).astype(np.float32)
    W[rng.random(W.shape) < 0.9] = 0
    X = rng.standard_normal((32, 200)).astype(np.float32)
    f = encode(W, fmt)
    arrays, opts = f.kernel_args()
    bound = KERNELS.get(fmt).bind(*arrays, shape=W.shape, **opts)
    ref = X.astype(np.float64) @ W.T.astype(np.float64)
    np.testing.assert_allclose(bound.matmul(X), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bound.left(np.ascontiguousarray(X.T[:, :5])), ref[:5].T,
                               rtol=1e-4, atol=1e-4)
