"""Every format's matvec/matmul against the dense product and the format's NumPy reference.

One suite for all formats (scipy.sparse style): a format joins by adding a :class:`Format` row.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import prunebench.kernels as K
from prunebench.kernels._left import NO_OUT
from .kernel_builders import (
    assert_product,
    bitmap_arrays,
    bsr_arrays,
    cbcsr_arrays,
    csr_arrays,
    delta8_arrays,
    ell_arrays,
    encode_values,
    narrowest_index,
    nm_arrays,
    nm_matrix,
    random_matrix,
)


@dataclass(frozen=True)
class Format:
    name: str
    encode: Callable  # (P, V, index_dtype, variant) -> (arrays, keyword options)
    matvec: Callable
    matmul: Callable
    reference: Callable
    variants: tuple  # format parameters that change the layout, not the compiled code
    index_dtypes: tuple = (np.uint8, np.uint16, np.int32)
    nm: bool = False

    def matrix(self, rows, cols, sparsity, variant, seed=0, empty=()):
        if self.nm:
            n, m = variant
            W = nm_matrix(rows, cols, n, m, seed=seed)
            if sparsity >= 1.0:
                W[:] = 0
            W[list(empty)] = 0
            return W
        return random_matrix(rows, cols, sparsity, seed=seed, empty_rows=empty)


FORMATS = [
    Format("csr", lambda P, V, it, v: (csr_arrays(P, V, it), {}),
           K.csr_matvec, K.csr_matmul, K.csr_reference, (None,)),
    Format("delta8", lambda P, V, it, v: (delta8_arrays(P, V), {}),
           K.delta8_matvec, K.delta8_matmul, K.delta8_reference, (None,), index_dtypes=(None,)),
    Format("bsr", lambda P, V, it, v: (bsr_arrays(P, V, *v, it), {}),
           K.bsr_matvec, K.bsr_matmul, K.bsr_reference,
           # every vector layout of _simd.bsr_block_row (r*c = 1, 2, 8, 16, 32, 48; c = 4, 8 or
           # other) and the scalar path (3 x 5)
           ((1, 4), (4, 1), (4, 4), (8, 8), (3, 5), (1, 1), (2, 1), (1, 8), (2, 4), (4, 8), (4, 12), (16, 1))),
    Format("ell", lambda P, V, it, v: (ell_arrays(P, V, v, it), {"slice_height": v}),
           K.ell_matvec, K.ell_matmul, K.ell_reference, (1, 8, 32, 100)),  # 100: two 64-row passes
    Format("bitmap", lambda P, V, it, v: (bitmap_arrays(P, V), {}),
           K.bitmap_matvec, K.bitmap_matmul, K.bitmap_reference, (None,), index_dtypes=(None,)),
    Format("nm", lambda P, V, it, v: (nm_arrays(P, V, *v), {"n": v[0], "m": v[1]}),
           K.nm_matvec, K.nm_matmul, K.nm_reference, ((2, 4), (1, 2), (3, 8), (5, 16), (4, 4), (16, 16), (7, 8)),
           index_dtypes=(None,), nm=True),
    Format("cbcsr", lambda P, V, it, v: (cbcsr_arrays(P, V, v, it), {}),
           K.cbcsr_matvec, K.cbcsr_matmul, K.cbcsr_reference, (1, 16, 100, 512)),
]

# (rows, cols, sparsity, all-zero rows)
SHAPES = [
    (1, 37, 0.5, ()),
    (37, 1, 0.5, ()),
    (1, 1, 0.0, ()),
    (300, 700, 0.9, (0, 5, 299)),
    (129, 257, 0.7, (3,)),
    (64, 200, 0.0, ()),  # fully dense (N:M patterns ignore the sparsity: n per m, some fewer)
    (20, 30, 1.0, ()),  # all zero
    (0, 5, 0.5, ()),
    (4, 0, 0.5, ()),
]


@functools.lru_cache(maxsize=64)  # the same case runs on 1 and 2 threads; nothing mutates it
def _case(fmt, rows, cols, sparsity, variant, kind="float32", index_dtype="narrowest", empty=(), seed=0):
    W = fmt.matrix(rows, cols, sparsity, variant, seed=seed, empty=empty)
    V, scales, Wref = encode_values(W, kind)
    if fmt.index_dtypes == (None,):
        index_dtype = None
    elif index_dtype == "narrowest":
        index_dtype = narrowest_index(cols)
    arrays, opts = fmt.encode(W != 0, V, index_dtype, variant)
    return arrays, dict(opts, shape=(rows, cols)), scales, Wref


def _variant_params():
    return [pytest.param(f, v, id=f"{f.name}-{v}") for f in FORMATS for v in f.variants]


@pytest.mark.parametrize("rows,cols,sparsity,empty", SHAPES)
@pytest.mark.parametrize("fmt,variant", _variant_params())
def test_matvec_fp32(fmt, variant, rows, cols, sparsity, empty, threads):
    arrays, opts, _, W = _case(fmt, rows, cols, sparsity, variant, empty=empty)
    x = np.random.default_rng(1).standard_normal(cols).astype(np.float32)
    y = fmt.matvec(*arrays, x, **opts)
    assert_product(y, W, x, reference=fmt.reference(*arrays, x, **opts))


@pytest.mark.parametrize(
    "fmt,index_dtype",
    [pytest.param(f, d, id=f"{f.name}-{np.dtype(d).name}") for f in FORMATS for d in f.index_dtypes if d],
)
def test_matvec_index_dtypes(fmt, index_dtype, threads):
    cols = 250 if index_dtype == np.uint8 else 1000
    arrays, opts, _, W = _case(fmt, 70, cols, 0.8, fmt.variants[-1], index_dtype=index_dtype)
    x = np.random.default_rng(2).standard_normal(cols).astype(np.float32)
    assert np.dtype(index_dtype) in [a.dtype for a in arrays]
    assert_product(fmt.matvec(*arrays, x, **opts), W, x)


@pytest.mark.parametrize("kind", ["int8", "float16", "float32"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_matvec_values_scales_bias(fmt, kind, threads):
    rows, cols = 300, 700
    arrays, opts, scales, W = _case(fmt, rows, cols, 0.8, fmt.variants[0], kind=kind, index_dtype=np.uint16, empty=(2,))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(cols).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32)
    y = fmt.matvec(*arrays, x, scales=scales, bias=bias, **opts)
    ref = fmt.reference(*arrays, x, scales=scales, bias=bias, **opts)
    assert_product(y, W, x, bias=bias, reference=ref)


@pytest.mark.parametrize("kind", ["float32", "int8", "float16"])
@pytest.mark.parametrize("batch", [1, 3, 32])
@pytest.mark.parametrize("rows,cols,sparsity", [(300, 700, 0.9), (33, 17, 0.3), (1, 1, 0.0)])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_matmul(fmt, rows, cols, sparsity, batch, kind, threads):
    arrays, opts, scales, W = _case(fmt, rows, cols, sparsity, fmt.variants[0], kind=kind, index_dtype=np.uint16, empty=(0,))
    rng = np.random.default_rng(4)
    X = rng.standard_normal((batch, cols)).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32)
    Y = fmt.matmul(*arrays, X, scales=scales, bias=bias, **opts)
    ref = fmt.reference(*arrays, X, scales=scales, bias=bias, **opts)
    assert_product(Y, W, X, bias=bias, reference=ref)


@pytest.mark.parametrize("fmt,variant", _variant_params())
def test_matmul_variants(fmt, variant, threads):
    arrays, opts, _, W = _case(fmt, 45, 83, 0.6, variant, index_dtype=np.uint16)
    X = np.random.default_rng(5).standard_normal((17, 83)).astype(np.float32)
    assert_product(fmt.matmul(*arrays, X, **opts), W, X)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_out_is_filled_and_returned(fmt):
    arrays, opts, _, W = _case(fmt, 50, 90, 0.5, fmt.variants[0], index_dtype=np.uint16)
    x = np.random.default_rng(6).standard_normal(90).astype(np.float32)
    out = np.full(50, np.nan, np.float32)
    assert fmt.matvec(*arrays, x, out=out, **opts) is out
    assert_product(out, W, x)
    X = np.random.default_rng(7).standard_normal((5, 90)).astype(np.float32)
    OUT = np.full((5, 50), np.nan, np.float32)
    assert fmt.matmul(*arrays, X, out=OUT, **opts) is OUT
    assert_product(OUT, W, X)


def test_csr_int64_indptr(threads):
    W = random_matrix(50, 90, 0.5)
    arrays = csr_arrays(W != 0, W, np.int32, np.int64)
    x = np.random.default_rng(8).standard_normal(90).astype(np.float32)
    assert_product(K.csr_matvec(*arrays, x, shape=W.shape), W, x)


def test_raw_kernels_write_into_given_outputs():
    """The raw kernels take empty scales/bias for none, uint16 bits for float16, and nparts."""
    W = random_matrix(40, 60, 0.5)
    P = W != 0
    indptr, indices, data = csr_arrays(P, W.astype(np.float16), np.uint16)
    Wh = W.astype(np.float16).astype(np.float64)
    x = np.random.default_rng(9).standard_normal(60).astype(np.float32)
    X = np.random.default_rng(10).standard_normal((3, 60)).astype(np.float32)
    none = np.zeros(0, np.float32)
    y = np.full(40, np.nan, np.float32)
    Y = np.full((3, 40), np.nan, np.float32)
    K.spmv_csr(indptr, indices, data.view(np.uint16), none, none, x, y, 2)
    assert K.spmm_csr(indptr, indices, data.view(np.uint16), none, none, X, Y, 40, 2) is Y
    assert_product(y, Wh, x)
    assert_product(Y, Wh, X)
    # an output of another shape (the wrappers pass NO_OUT) asks for a new one, on a cache line
    Y2 = K.spmm_csr(indptr, indices, data.view(np.uint16), none, none, X, NO_OUT, 40, 2)
    assert Y2.shape == (3, 40) and Y2.ctypes.data % 64 == 0
    assert_product(Y2, Wh, X)
    mask, row_ptr, bdata = bitmap_arrays(P, W)
    y[:] = np.nan
    K.spmv_bitmap(mask, row_ptr, bdata, none, none, x, y, 3)  # more parts than threads is fine
    assert_product(y, W, x)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_matmul_wide_batch(fmt, threads):
    """B = 100: one pass of four vectors, then one of three (lanes past B are padding)."""
    arrays, opts, _, W = _case(fmt, 40, 90, 0.7, fmt.variants[0], index_dtype=np.uint16)
    X = np.random.default_rng(11).standard_normal((100, 90)).astype(np.float32)
    assert_product(fmt.matmul(*arrays, X, **opts), W, X)


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_delta8_long_gaps_and_fillers(kind, threads):
    """Gaps of 255 (the widest without a filler), 256 (one filler), 600 (two) and rows whose
    stored entries are 15, 16, 17, 31, 32, 33 long (the 16-lane chunks and the masked tail)."""
    cols = 2100
    W = np.zeros((9, cols), np.float32)
    rng = np.random.default_rng(12)
    W[0, [255, 511, 1112, 2099]] = [1, 2, 3, 4]          # gaps 255, 255, 600, 986: 0, 0, 2, 3 fillers
    W[1, [0, 257]] = [5, 6]                              # gap 256: one filler
    for r, n in zip(range(2, 8), (15, 16, 17, 31, 32, 33)):
        W[r, np.sort(rng.choice(cols, n, replace=False))] = rng.standard_normal(n)
    V, scales, Wref = encode_values(W, kind)
    arrays = delta8_arrays(W != 0, V)
    assert arrays[0][1] == 4 + 5 and arrays[0][2] - arrays[0][1] == 2 + 1   # fillers are stored
    x = rng.standard_normal(cols).astype(np.float32)
    assert_product(K.delta8_matvec(*arrays, x, shape=W.shape, scales=scales), Wref, x)
    X = rng.standard_normal((20, cols)).astype(np.float32)
    assert_product(K.delta8_matmul(*arrays, X, shape=W.shape, scales=scales), Wref, X)
