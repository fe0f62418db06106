"""Test factory: every format configuration with its capability flags, and matrix strategies.

A new format gets the whole generic suite by adding one ``Case`` here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st

from prunebench.formats import FORMATS


@dataclass(frozen=True)
class Case:
    """One format configuration and what it supports.

    index_limits : None if the format takes no ``index_dtype``; else shape -> {index array:
        largest index it must hold} (the independent statement of the narrowest-dtype rule).
    nm : (n, m) when the input must be N:M pruned first.
    lossy_layout : the layout itself is approximate (lowrank), so no bit-exact round trip.
    keeps_signed_zero : -0.0 survives (dense layouts keep every entry).
    half_scales : int8 scales are rounded up to float16 when every row's scale is a normal
        float16 (rcsr, a storage-only format), else float32 by the shared rule.
    """

    name: str
    opts: dict = field(default_factory=dict)
    index_limits: Callable[[int, int], dict] | None = None
    nm: tuple[int, int] | None = None
    lossy_layout: bool = False
    keeps_signed_zero: bool = False
    half_scales: bool = False

    @property
    def id(self) -> str:
        return self.name + "".join(f"-{k}={v}" for k, v in self.opts.items())

    def prepare(self, W: np.ndarray) -> np.ndarray:
        """The input this case can encode (N:M-pruned for nm)."""
        return make_nm(W, *self.nm) if self.nm else W

    def encode(self, W: np.ndarray, **kw):
        return FORMATS.get(self.name).from_dense(W, **{**self.opts, **kw})


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


CASES = [
    Case("dense", keeps_signed_zero=True),
    Case("coo", index_limits=lambda r, c: {"row": r - 1, "col": c - 1}),
    Case("csr", index_limits=lambda r, c: {"indices": c - 1}),
    Case("csc", index_limits=lambda r, c: {"indices": r - 1}),
    Case("rcsr", {"bits": 4}, half_scales=True),
    Case("rcsr", {"bits": 8}, half_scales=True),
    Case("delta8"),
    Case("bsr", {"block": (4, 4)}, index_limits=lambda r, c: {"indices": _ceil(c, 4) - 1}),
    Case("bsr", {"block": (3, 5)}, index_limits=lambda r, c: {"indices": _ceil(c, 5) - 1}),
    Case("bsr", {"block": (1, 1)}, index_limits=lambda r, c: {"indices": c - 1}),
    Case("ell", index_limits=lambda r, c: {"indices": c - 1}),
    Case("ell", {"slice_height": 3}, index_limits=lambda r, c: {"indices": c - 1}),
    Case("bitmap"),
    Case("panel"),
    Case("cbcsr", index_limits=lambda r, c: {"indices": c - 1}),
    Case("cbcsr", {"block_cols": 3}, index_limits=lambda r, c: {"indices": c - 1}),
    Case("nm", {"n": 2, "m": 4}, nm=(2, 4)),
    Case("nm", {"n": 1, "m": 2}, nm=(1, 2)),
    Case("nm", {"n": 3, "m": 8}, nm=(3, 8)),
    Case("nm", {"n": 5, "m": 16}, nm=(5, 16)),
    Case("lowrank", {"energy": 1.0}, lossy_layout=True),
    Case("compact", index_limits=lambda r, c: {"rows_kept": r - 1, "cols_kept": c - 1}),
]
LOSSLESS = [c for c in CASES if not c.lossy_layout]
INDEXED = [c for c in CASES if c.index_limits]


def make_nm(W: np.ndarray, n: int, m: int) -> np.ndarray:
    """Zero all but the first n nonzeros of every group of m columns (last group padded)."""
    rows, cols = W.shape
    P = np.zeros((rows, _ceil(cols, m) * m), np.float32)
    P[:, :cols] = W
    g = P.reshape(rows, -1, m)
    g[np.cumsum(g != 0, axis=2) > n] = 0
    return np.ascontiguousarray(P[:, :cols])


def canonical_bits(X: np.ndarray) -> np.ndarray:
    """float32 bit patterns with -0.0 turned into +0.0 (x + 0.0 is exact for every other x)."""
    return (np.asarray(X, np.float32) + np.float32(0)).view(np.uint32)


# ------------------------------------------------------------------ matrix strategies

F32 = np.finfo(np.float32)
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, F32.smallest_subnormal, -F32.smallest_subnormal,
                    F32.smallest_normal, F32.smallest_normal * np.float32(0.75), F32.max, -F32.max,
                    0.1, -2.5e-40, 65504.0, 3.0e-8], dtype=np.float32)
SHAPES = [(1, 1), (1, 17), (17, 1), (1, 300), (300, 1), (2, 257), (9, 8), (5, 64)]


@st.composite
def _rng_matrix(draw, max_rows: int, max_cols: int) -> np.ndarray:
    shape = draw(st.one_of(st.sampled_from([s for s in SHAPES if s[0] <= max_rows and s[1] <= max_cols]),
                           st.tuples(st.integers(1, max_rows), st.integers(1, max_cols))))
    density = draw(st.sampled_from([0.0, 0.03, 0.2, 0.6, 1.0]))
    kind = draw(st.sampled_from(["bits", "normal", "special"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "bits":          # every float32 bit pattern: subnormals, huge values, -0.0
        vals = rng.integers(0, 2**32, size=shape, dtype=np.uint32).view(np.float32)
        vals = np.where(np.isfinite(vals), vals, np.float32(1.5))
    elif kind == "normal":
        vals = rng.standard_normal(shape).astype(np.float32)
    else:
        vals = rng.choice(SPECIAL, size=shape)
    W = np.where(rng.random(shape) < density, vals, np.float32(0)).astype(np.float32)
    if draw(st.booleans()):     # empty rows and columns, and -0.0 where W is zero
        W[rng.random(shape[0]) < 0.3] = 0
        W[:, rng.random(shape[1]) < 0.3] = 0
        W[(W == 0) & (rng.random(shape) < 0.5)] = -0.0
    return W


_small_native = hnp.arrays(
    np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)),
    elements=st.one_of(st.just(0.0), st.just(-0.0), st.floats(width=32, allow_nan=False, allow_infinity=False)))


def matrices(max_rows: int = 24, max_cols: int = 300) -> st.SearchStrategy[np.ndarray]:
    """Finite float32 matrices: small shrinkable ones and larger seeded random ones."""
    return st.one_of(_small_native, _rng_matrix(max_rows, max_cols))


def random_sparse(shape: tuple[int, int], nnz: int, seed: int = 0) -> np.ndarray:
    """float32 matrix with exactly ``nnz`` nonzeros at uniformly random positions."""
    rng = np.random.default_rng(seed)
    W = np.zeros(shape[0] * shape[1], np.float32)
    W[rng.choice(W.size, size=nnz, replace=False)] = rng.uniform(0.5, 2.0, nnz) * rng.choice([-1, 1], nnz)
    return W.reshape(shape)
