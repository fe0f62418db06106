"""``Kernel.bind``: one matrix's products with its arrays checked once (what ``KernelOp`` calls
layer after layer). Each format's bound products against the dense product of the decoded
weights, bit for bit against the unbound products (same cores), and the same one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

import prunebench.kernels as K
from prunebench.errors import BadInputError
from prunebench.formats import encode
from .kernel_builders import nm_matrix, random_matrix

ROWS, COLS = 77, 133      # neither a multiple of a group, a panel, a block nor a slice


def _bound(name: str, values: str, bias: bool):
    W = nm_matrix(ROWS, COLS, 2, 4, seed=3) if name == "nm" else random_matrix(ROWS, COLS, 0.8, seed=3)
    fmt = encode(W, name, values=values)
    arrays, opts = fmt.kernel_args()
    opts = dict(opts, shape=fmt.shape)
    if values == "int8":
        opts["scales"] = np.ascontiguousarray(fmt.arrays()["scales"], np.float32)
    b = np.linspace(-1, 1, ROWS, dtype=np.float32) if bias else None
    if b is not None:
        opts["bias"] = b
    dense = fmt.to_dense().astype(np.float64)
    return K.KERNELS.get(name), arrays, opts, dense, b


@pytest.mark.parametrize("name", list(K.KERNELS))
@pytest.mark.parametrize("values,bias", [("fp32", False), ("int8", True), ("fp16", True)])
def test_bound_products_match_dense_and_unbound(name, values, bias):
    kernel, arrays, opts, dense, b = _bound(name, values, bias)
    bound = kernel.bind(*arrays, **opts)
    assert (bound.rows, bound.cols) == (ROWS, COLS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(COLS).astype(np.float32)
    X = rng.standard_normal((5, COLS)).astype(np.float32)
    XT = rng.standard_normal((COLS, 3)).astype(np.float32)
    add = 0 if b is None else b.astype(np.float64)
    np.testing.assert_allclose(bound.matvec(x), dense @ x + add, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bound.matmul(X), X @ dense.T + add, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bound.left(XT), dense @ XT + (0 if b is None else b[:, None]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(bound.matvec(x), kernel.matvec(*arrays, x, **opts))
    np.testing.assert_array_equal(bound.matmul(X), kernel.matmul(*arrays, X, **opts))
    out = np.full(ROWS, np.nan, np.float32)
    assert bound.matvec(x, out=out) is out
    np.testing.assert_array_equal(out, kernel.matvec(*arrays, x, **opts))


@pytest.mark.parametrize(
    "x, message",
    [
        (np.ones(COLS, np.float64), "x has dtype float64; allowed: float32"),
        (np.ones(COLS - 1, np.float32), f"x has length {COLS - 1}; the matrix has {COLS} columns"),
        (np.ones((1, COLS), np.float32), "x should have 1 dimension"),
        (np.ones(2 * COLS, np.float32)[::2], "x should be C-contiguous"),
        ([1.0] * COLS, "x should be a numpy.ndarray, got list"),
    ],
)
def test_bound_rejects_bad_input_like_unbound(x, message):
    kernel, arrays, opts, _, _ = _bound("panel", "fp32", False)
    with pytest.raises(BadInputError, match=message):
        kernel.bind(*arrays, **opts).matvec(x)
    with pytest.raises(BadInputError, match=message):
        kernel.matvec(*arrays, x, **opts)


def test_bind_checks_the_arrays_once_up_front():
    kernel, arrays, opts, _, _ = _bound("csr", "fp32", False)
    bad = (arrays[0], arrays[1].astype(np.float64), arrays[2])
    with pytest.raises(BadInputError, match="indices"):
        kernel.bind(*bad, **opts)
    with pytest.raises(BadInputError, match="scales"):
        kernel.bind(*arrays, **dict(opts, scales=np.ones(ROWS + 1, np.float32)))
    bound = kernel.bind(*arrays, **opts)
    with pytest.raises(BadInputError, match=r"out has shape"):
        bound.matvec(np.ones(COLS, np.float32), out=np.empty(ROWS + 1, np.float32))
    with pytest.raises(BadInputError, match=r"X has shape \(2, 9\)"):
        bound.matmul(np.ones((2, 9), np.float32))
