"""The probability and byte helpers the formats' byte models share
(:meth:`prunebench.formats.Format.expected_parts`; the models are summed up in
:mod:`prunebench.formats.accounting`).

``o`` is the dict a byte model reads: ``vb`` bytes per value, ``pattern``, ``index_dtype`` (a
forced index dtype or None), ``values`` and the format's checked options.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

from .base import index_dtype_for, pointer_dtype


def p_empty(N: int, nnz: int, b: Any) -> np.ndarray:
    """Probability that ``b`` given cells hold none of ``nnz`` uniformly placed nonzeros."""
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        logp = gammaln(N - b + 1) - gammaln(N - b - nnz + 1) - gammaln(N + 1) + gammaln(N - nnz + 1)
    return np.where(N - b >= nnz, np.exp(logp), 0.0)


def gap_fillers_per_row(cols: int, p: float, bits: int) -> float:
    """Expected zero fillers per row when each gap of ``2**bits`` columns or more needs one,
    with each cell nonzero independently with probability ``p``."""
    L = 2**bits
    t = np.arange(1, (cols - 1) // L + 1)
    return float(p * np.sum((cols - t * L) * (1.0 - p) ** (t * L)))


def ell_width(cols: int, p: float, h: int) -> float:
    """Expected widest row of ``h`` rows whose counts are Binomial(cols, p)."""
    cdf = binom.cdf(np.arange(cols), cols, p)
    return float(np.sum(1.0 - cdf**h))


def index_bytes(who: str, o: dict[str, Any], limit: int, what: str = "index") -> int:
    """Bytes of one index in [0, limit]: the forced ``index_dtype``'s, else the narrowest."""
    return index_dtype_for(limit, o["index_dtype"], who, what).itemsize


def pointer_bytes(count: int) -> int:
    """Bytes of one pointer into an array of ``count`` entries."""
    return pointer_dtype(count).itemsize
