"""Independent NumPy/SciPy encoders of the kernel array layouts, and the shared assertion.

They do not import prunebench.formats: the tests check the kernels against arrays built here
from a dense matrix, and against that dense matrix itself.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: float32 sums are reordered (vector lanes, several accumulators, thread splits), so a result may
#: differ from the float64 one by a few ulps of sum_k |w_k x_k|; 1e-5 of it is ~100 ulps.
RTOL = 1e-5


def random_matrix(rows, cols, sparsity, seed=0, empty_rows=()):
    """float32 [rows, cols] with about ``sparsity`` zeros; rows in ``empty_rows`` all zero."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    W[rng.random((rows, cols)) < sparsity] = 0
    W[list(empty_rows)] = 0
    return W


def nm_matrix(rows, cols, n, m, seed=0):
    """float32 [rows, cols] with at most n nonzeros per group of m columns (some groups fewer)."""
    rng = np.random.default_rng(seed)
    ngroups = -(-cols // m)
    keys = rng.random((rows, ngroups, m))
    keys.reshape(rows, ngroups * m)[:, cols:] = np.inf  # never pick a column past cols
    rank = keys.argsort(axis=2).argsort(axis=2)
    keep = (rank < n) & np.isfinite(keys) & (rng.random(keys.shape) < 0.8)  # some groups fewer
    W = np.where(keep, rng.standard_normal(keys.shape), 0).astype(np.float32)
    return np.ascontiguousarray(W.reshape(rows, ngroups * m)[:, :cols])


def encode_values(W, kind):
    """Stored values for ``kind`` in float32/float16/int8, per-row scales (int8 only) and the
    dense float64 matrix the kernel must then compute with."""
    if kind == "float32":
        return W.astype(np.float32), None, W.astype(np.float64)
    if kind == "float16":
        V = W.astype(np.float16)
        return V, None, V.astype(np.float64)
    if kind == "int8":
        peak = np.abs(W).max(axis=1)
        scales = np.where(peak > 0, peak / 127, 1).astype(np.float32)
        q = np.clip(np.rint(W / scales[:, None]), -127, 127).astype(np.int8)
        return q, scales, q.astype(np.float64) * scales[:, None].astype(np.float64)
    raise ValueError(kind)


def narrowest_index(cols):
    return np.uint8 if cols <= 256 else (np.uint16 if cols <= 65536 else np.int32)


def csr_arrays(P, V, index_dtype=np.int32, indptr_dtype=np.int32):
    """(indptr, indices, data) of pattern P (bool) holding V's values, via scipy.sparse."""
    A = sp.csr_array(P.astype(np.int8))
    A.sort_indices()
    r, c = np.nonzero(P)
    return A.indptr.astype(indptr_dtype), A.indices.astype(index_dtype), np.ascontiguousarray(V[r, c])


def delta8_arrays(P, V):
    """(indptr, deltas, data) of delta8: per row, each stored entry's gap from the previous
    one (``col - prev - 1``, ``prev = -1`` at the row start) in a byte, a filler (gap 255,
    value 0) for every 256 columns a gap spans beyond 255."""
    indptr, deltas, data = [0], [], []
    for r in range(P.shape[0]):
        prev = -1
        for c in np.nonzero(P[r])[0]:
            gap = c - prev - 1
            while gap > 255:
                deltas.append(255)
                data.append(0)
                gap -= 256
            deltas.append(gap)
            data.append(V[r, c])
            prev = c
        indptr.append(len(deltas))
    return (np.array(indptr, np.int32), np.array(deltas, np.uint8),
            np.array(data, V.dtype).reshape(-1))


def bsr_arrays(P, V, r, c, index_dtype=np.int32):
    """(indptr, indices, data[nblocks, r, c]) keeping every block that holds a nonzero."""
    rows, cols = P.shape
    nbr, ncb = -(-rows // r), -(-cols // c)
    Pp = np.zeros((nbr * r, ncb * c), bool)
    Pp[:rows, :cols] = P
    Vp = np.zeros((nbr * r, ncb * c), V.dtype)
    Vp[:rows, :cols] = V
    blocks = Pp.reshape(nbr, r, ncb, c).any(axis=(1, 3))
    br, bc = np.nonzero(blocks)
    data = Vp.reshape(nbr, r, ncb, c).transpose(0, 2, 1, 3)[br, bc]
    indptr = np.zeros(nbr + 1, np.int32)
    indptr[1:] = np.cumsum(blocks.sum(axis=1))
    return indptr, bc.astype(index_dtype), np.ascontiguousarray(data)


def ell_arrays(P, V, h, index_dtype=np.int32):
    """(slice_ptr, widths, indices, data) of sliced ELL with slice height h."""
    rows, _ = P.shape
    nslices = -(-rows // h)
    slice_ptr = np.zeros(nslices + 1, np.int32)
    widths = np.zeros(nslices, np.int32)
    idx_parts, val_parts = [], []
    for s in range(nslices):
        r0, hs = s * h, min(h, rows - s * h)
        w = int(P[r0 : r0 + hs].sum(axis=1).max(initial=0))
        ix = np.zeros((w, hs), np.int64)  # column-major inside the slice: (k, i)
        vals = np.zeros((w, hs), V.dtype)
        for i in range(hs):
            cols = np.nonzero(P[r0 + i])[0]
            ix[: cols.size, i] = cols
            vals[: cols.size, i] = V[r0 + i, cols]
        widths[s] = w
        slice_ptr[s + 1] = slice_ptr[s] + w * hs
        idx_parts.append(ix.ravel())
        val_parts.append(vals.ravel())
    indices = np.concatenate(idx_parts or [np.zeros(0, np.int64)]).astype(index_dtype)
    data = np.concatenate(val_parts or [np.zeros(0, V.dtype)]).astype(V.dtype)
    return slice_ptr, widths, indices, data


def bitmap_arrays(P, V):
    """(mask, row_ptr, data) of the bitmap format."""
    mask = np.packbits(P, axis=1, bitorder="little")
    if mask.shape[1] != -(-P.shape[1] // 8):  # packbits of zero columns
        mask = np.zeros((P.shape[0], 0), np.uint8)
    row_ptr = np.zeros(P.shape[0] + 1, np.int32)
    row_ptr[1:] = np.cumsum(P.sum(axis=1))
    return mask, row_ptr, np.ascontiguousarray(V[P])


def nm_arrays(P, V, n, m):
    """(data[rows, ngroups*n], indices uint8 packed) of N:M; spare slots hold value 0 and point
    at the last in-group position, which is past ``cols`` in a partial last group."""
    rows, cols = P.shape
    bits = {2: 1, 4: 2, 8: 3, 16: 4}[m]
    ngroups = -(-cols // m)
    Pg = np.zeros((rows, ngroups * m), bool)
    Pg[:, :cols] = P
    Vg = np.zeros((rows, ngroups * m), V.dtype)
    Vg[:, :cols] = V
    Pg, Vg = Pg.reshape(rows, ngroups, m), Vg.reshape(rows, ngroups, m)
    assert Pg.sum(axis=2).max(initial=0) <= n, "pattern is not N:M"
    pos = np.argsort(~Pg, axis=2, kind="stable")[:, :, :n]  # nonzero positions first, in order
    used = np.arange(n) < Pg.sum(axis=2, keepdims=True)
    fields = np.where(used, pos, m - 1).reshape(rows, ngroups * n)
    data = np.where(used, np.take_along_axis(Vg, pos, axis=2), 0).astype(V.dtype).reshape(rows, ngroups * n)
    stream = ((fields[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(rows, ngroups * n * bits)
    nbytes = -(-ngroups * n * bits // 8)
    padded = np.zeros((rows, nbytes * 8), np.uint8)
    padded[:, : stream.shape[1]] = stream
    indices = np.packbits(padded, axis=1, bitorder="little") if nbytes else np.zeros((rows, 0), np.uint8)
    return np.ascontiguousarray(data), np.ascontiguousarray(indices)


def assert_product(got, W, x, bias=None, reference=None):
    """``got`` equals ``x @ W.T (+ bias)`` in float64 within :data:`RTOL` of sum |w x|, and so
    does the format's NumPy ``reference`` result when given."""
    W = np.asarray(W, np.float64)
    x = np.asarray(x, np.float64)
    want = x @ W.T
    bound = np.abs(x) @ np.abs(W).T
    if bias is not None:
        want = want + bias
        bound = bound + np.abs(bias)
    tol = RTOL * bound + 1e-30
    assert got.dtype == np.float32 and got.shape == want.shape
    err = np.abs(got - want)
    assert np.all(err <= tol), f"max error {err.max()} (at {np.unravel_index(err.argmax(), err.shape)}) > tolerance"
    if reference is not None:
        assert reference.shape == want.shape
        np.testing.assert_allclose(reference, want, rtol=1e-12, atol=1e-12 * (bound.max(initial=0) + 1))


def compiled_asm(kernel) -> str:
    """The assembly of a numba kernel for every signature it has been called with, compiled
    here with its own options: numba keeps no assembly for an overload loaded from its cache
    (``inspect_asm`` then returns an empty file), which is what a second run finds."""
    import numba

    opts = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
    fresh = numba.njit(**opts)(kernel.py_func)
    for sig in kernel.signatures:
        fresh.compile(sig)
    return "\n".join(fresh.inspect_asm().values())


def cbcsr_arrays(P, V, block_cols, index_dtype=np.int32):
    """(indptr, indices, data) of column-blocked CSR, built block by block and row by row:
    segment j * rows + r holds row r's entries in columns [j * block_cols, (j+1) * block_cols)."""
    rows, cols = P.shape
    nblocks = -(-cols // block_cols)
    indptr, indices, data = [0], [], []
    for j in range(nblocks):
        for r in range(rows):
            for c in range(j * block_cols, min((j + 1) * block_cols, cols)):
                if P[r, c]:
                    indices.append(c)
                    data.append(V[r, c])
            indptr.append(len(indices))
    return (np.array(indptr, np.int32), np.array(indices, index_dtype),
            np.array(data, V.dtype).reshape(-1))
