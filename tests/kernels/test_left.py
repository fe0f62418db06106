"""``<format>_left``: ``W @ X`` on a channels-first operand ``X[cols, N]``, against dense math,
for every kernel format, value encoding, widths that are and are not whole vector lanes, and
the runtime op's ``left`` (which a channels-first convolution calls)."""
import numpy as np
import pytest
import torch

from prunebench import formats as Fm
from prunebench import kernels as K
from prunebench.errors import BadInputError
from prunebench.runtime.ops import KernelOp

CASES = [("csr", {}), ("bsr", {"block": (4, 4)}), ("bitmap", {}), ("ell", {}),
         ("nm", {"n": 2, "m": 4})]


def _matrix(fmt, rows, cols, rng):
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    if fmt == "nm":
        g = W.reshape(rows, cols // 4, 4)
        drop = np.argsort(-np.abs(g), axis=2)[:, :, 2:]
        np.put_along_axis(g, drop, 0, axis=2)
        return g.reshape(rows, cols)
    W[rng.random(W.shape) < 0.8] = 0
    return W


@pytest.mark.parametrize("fmt, opts", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("values", ["fp32", "fp16", "int8"])
def test_left_matches_dense(fmt, opts, values):
    rng = np.random.default_rng(0)
    for rows, cols, n in ((24, 32, 49), (24, 32, 64), (17, 40, 2), (33, 36, 196), (5, 8, 1)):
        W = _matrix(fmt, rows, cols, rng)
        f = Fm.encode(W, fmt, values=values, **opts)
        b = rng.standard_normal(rows).astype(np.float32)
        X = rng.standard_normal((cols, n)).astype(np.float32)
        want = f.to_dense().astype(np.float64) @ X + b[:, None]
        got = KernelOp(f, b, threads=2).left(torch.from_numpy(X)).numpy()
        assert got.shape == (rows, n)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_left_reads_the_operand_in_place_and_checks_its_shape():
    rng = np.random.default_rng(1)
    W = _matrix("csr", 16, 32, rng)
    f = Fm.encode(W, "csr")
    X = rng.standard_normal((32, 48)).astype(np.float32)
    before = X.copy()
    Y = K.csr_left(f.indptr, f.indices, f.data, X, shape=f.shape)
    np.testing.assert_allclose(Y, W.astype(np.float64) @ X, rtol=1e-4, atol=1e-4)
    assert np.array_equal(X, before)
    with pytest.raises(BadInputError, match=r"X has shape \(31, 48\); expected \(32, N\)"):
        K.csr_left(f.indptr, f.indices, f.data, X[:31], shape=f.shape)
