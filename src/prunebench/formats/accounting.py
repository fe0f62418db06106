"""Expected storage bytes of each format for a matrix of given shape and sparsity.

The cost models, with ``N = rows * cols``, ``nnz = round((1 - sparsity) * N)``, ``vb`` bytes
per value, ``ib(k)`` the bytes of the narrowest index dtype holding ``k`` (or the forced
``index_dtype``) and ``pb`` = 4 (8 when counting 2**31 entries or more):

========  =====================================================================  ===========
format    bytes (values + indices + pointers; int8 adds 4 * rows of scales)      exactness
========  =====================================================================  ===========
dense     N*vb                                                                   exact
coo       nnz*vb + nnz*(ib(rows-1) + ib(cols-1))                                 exact
csr       nnz*vb + nnz*ib(cols-1) + (rows+1)*pb                                  exact
csc       nnz*vb + nnz*ib(rows-1) + (cols+1)*pb                                  exact
bitmap    nnz*vb + rows*ceil(cols/8) + (rows+1)*pb                               exact
nm        rows*G*n*vb + rows*ceil(G*n*log2(m)/8), G = ceil(cols/m)               exact
bsr       nb*r*c*vb + nb*ib(C-1) + (R+1)*pb                                      see below
rcsr      S*vb + ceil(S*bits/8) + rows*ib(cols), S = nnz + expected fillers      expected
delta8    S*vb + S + (rows+1)*pb, S = nnz + expected fillers (bits = 8)          expected
ell       sum_s h_s*E[w_s]*(vb + ib(cols-1)) + (2*nslices + 1)*4                  expected
panel     nnz*(vb + 1) + 4*sum_{g,p} E[chunks_gp] + 2*(G+1)*pb, G = ceil(rows/16) expected
compact   E[kr]*E[kc]*vb + E[kr]*ib(rows-1) + E[kc]*ib(cols-1)                   expected
lowrank   (rows + cols)*rank*vb (int8: 4*(rows + rank) of scales)                exact
========  =====================================================================  ===========

rcsr with int8 keeps float16 scales (2*rows bytes) unless a row's scale does not fit one; the
estimate assumes they fit.

Patterns
--------
``"unstructured"`` (every format): the nnz nonzeros sit at uniformly random positions.
    bsr: a block of ``b`` cells is empty with probability ``C(N-b, nnz) / C(N, nnz)``
    (edge blocks counted with their true size); compact: the same for a row (b = cols) and
    a column (b = rows), and ``E[kr * kc]`` is taken as ``E[kr] * E[kc]``.
    rcsr, delta8: each cell is nonzero independently with ``p = nnz / N``. A nonzero at column ``c``
    has a gap ``g >= j`` with probability ``q**j`` (``q = 1 - p``, ``j <= c``) and gets
    ``g // L`` fillers (``L = 2**bits``), so expected fillers per row are
    ``p * sum_{t >= 1, tL <= cols-1} (cols - t*L) * q**(t*L)``.
    ell: row counts taken as independent Binomial(cols, p); the width of a slice of ``h``
    rows is the expected maximum, ``sum_k (1 - F(k)**h)``.
    panel: the same for the chunks of a group of ``h <= 16`` rows and a panel of ``w <= 32``
    columns: the most entries of one of its rows there, ``sum_k (1 - F_w(k)**h)``.
``"block"`` (bsr only): ``sparsity`` is the fraction of ``r x c`` blocks that are zero and the
    other ``nb = round((1 - sparsity) * R * C)`` blocks are stored; exact.
``"rows"`` (compact only): ``sparsity`` is the fraction of all-zero rows; the
    ``round((1 - sparsity) * rows)`` other rows are kept with all columns; exact.

Options a format does not use (e.g. ``block`` for csr) are ignored.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

from ..errors import BadInputError
from .base import FORMATS, check_int_option, index_dtype_for, narrowest_index_dtype, pointer_dtype
from .ell import slice_heights
from .values import check_values, value_nbytes

PATTERNS = {"unstructured": None, "block": ("bsr",), "rows": ("compact",)}


def _p_empty(N: int, nnz: int, b: np.ndarray | int) -> np.ndarray:
    """Probability that ``b`` given cells hold none of ``nnz`` uniformly placed nonzeros."""
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        logp = gammaln(N - b + 1) - gammaln(N - b - nnz + 1) - gammaln(N + 1) + gammaln(N - nnz + 1)
    return np.where(N - b >= nnz, np.exp(logp), 0.0)


def _rcsr_fillers_per_row(cols: int, p: float, bits: int) -> float:
    L = 2**bits
    t = np.arange(1, (cols - 1) // L + 1)
    return float(p * np.sum((cols - t * L) * (1.0 - p) ** (t * L)))


def _ell_width(cols: int, p: float, h: int) -> float:
    cdf = binom.cdf(np.arange(cols), cols, p)
    return float(np.sum(1.0 - cdf**h))


def _parts(name: str, shape: tuple[int, int], count: int, o: dict) -> tuple[float, float, float]:
    """(values, indices, pointers) bytes with ``count`` nonzeros (or blocks / rows, by pattern)."""
    rows, cols = shape
    N, vb = rows * cols, o["vb"]

    def ib(limit, what="index"):
        return index_dtype_for(limit, o["index_dtype"], name, what).itemsize

    def pb(n):
        return pointer_dtype(n).itemsize

    nnz = count
    if name == "dense":
        return N * vb, 0, 0
    if name == "coo":
        return nnz * vb, nnz * (ib(rows - 1, "row index") + ib(cols - 1, "column index")), 0
    if name == "csr":
        return nnz * vb, nnz * ib(cols - 1, "column index"), (rows + 1) * pb(nnz)
    if name == "csc":
        return nnz * vb, nnz * ib(rows - 1, "row index"), (cols + 1) * pb(nnz)
    if name == "bitmap":
        return nnz * vb, rows * -(-cols // 8), (rows + 1) * pb(nnz)
    if name == "nm":
        n, m = o["n"], o["m"]
        G = -(-cols // m)
        return rows * G * n * vb, rows * -(-G * n * (m.bit_length() - 1) // 8), 0
    if name == "lowrank":
        return (rows + cols) * o["rank"] * vb, 0, 0
    if name == "bsr":
        r, c = o["block"]
        R, C = -(-rows // r), -(-cols // c)
        if o["pattern"] == "block":
            nb = count
        else:
            # at most two block heights and two widths: full blocks and the edge ones
            hs, hn = np.unique(np.minimum(r, rows - r * np.arange(R)), return_counts=True)
            ws, wn = np.unique(np.minimum(c, cols - c * np.arange(C)), return_counts=True)
            nb = float(np.sum(np.outer(hn, wn) * (1.0 - _p_empty(N, nnz, np.outer(hs, ws)))))
        return nb * r * c * vb, nb * ib(C - 1, "block-column index"), (R + 1) * pb(int(nb))
    if name == "rcsr":
        stored = nnz + rows * _rcsr_fillers_per_row(cols, nnz / N, o["bits"])
        return stored * vb, np.ceil(stored * o["bits"] / 8), rows * narrowest_index_dtype(cols).itemsize
    if name == "delta8":
        stored = nnz + rows * _rcsr_fillers_per_row(cols, nnz / N, 8)
        return stored * vb, stored, (rows + 1) * pb(int(np.ceil(stored)))
    if name == "ell":
        heights = slice_heights(rows, min(o["slice_height"] or rows, rows))
        slots = sum(h * _ell_width(cols, nnz / N, h) for h in heights)
        return slots * vb, slots * ib(cols - 1, "column index"), (2 * len(heights) + 1) * 4
    if name == "panel":
        hs, hn = np.unique(np.minimum(16, rows - 16 * np.arange(-(-rows // 16))), return_counts=True)
        ws, wn = np.unique(np.minimum(32, cols - 32 * np.arange(-(-cols // 32))), return_counts=True)
        chunks = sum(a * b * _ell_width(w, nnz / N, h) for h, a in zip(hs, hn) for w, b in zip(ws, wn))
        return nnz * vb, nnz + 4 * chunks, 2 * (-(-rows // 16) + 1) * pb(nnz)
    if name == "compact":
        if o["pattern"] == "rows":
            kr, kc = count, (cols if count else 0)
        else:
            kr = rows * (1.0 - float(_p_empty(N, nnz, cols)))
            kc = cols * (1.0 - float(_p_empty(N, nnz, rows)))
        return kr * kc * vb, kr * ib(rows - 1, "row index") + kc * ib(cols - 1, "column index"), 0
    raise BadInputError(f"estimate_nbytes: no cost model for format {name!r}")


def _prepare(format: str, shape: Any, values: str, index_dtype: Any, block, n, m, bits, pattern, rank,
             slice_height) -> tuple[type, tuple[int, int], dict]:
    cls = FORMATS.get(format)
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise BadInputError(f"estimate_nbytes: shape={shape!r} should be (rows, cols)")
    shape = (check_int_option(format, "rows", shape[0], 1), check_int_option(format, "cols", shape[1], 1))
    if pattern not in PATTERNS:
        raise BadInputError(f"estimate_nbytes: pattern={pattern!r} is not allowed; allowed: {', '.join(PATTERNS)}")
    if PATTERNS[pattern] is not None and format not in PATTERNS[pattern]:
        raise BadInputError(f"estimate_nbytes: pattern={pattern!r} is modelled only for format(s) "
                            f"{', '.join(PATTERNS[pattern])}, not {format!r}")
    o = {"vb": value_nbytes(check_values(values, format)), "pattern": pattern,
         "index_dtype": index_dtype if cls.has_index_dtype else None, "slice_height": slice_height,
         "rank": rank, "values": values}
    if format == "bsr":
        o.update(cls._check_options(shape, block=block))
    if format == "nm":
        o.update(cls._check_options(shape, n=n, m=m))
    if format == "rcsr":
        o.update(cls._check_options(shape, bits=bits))
    if format == "ell" and slice_height is not None:
        check_int_option(format, "slice_height", slice_height, 1)
    if format == "lowrank":
        o["rank"] = check_int_option(format, "rank", rank, 1, min(shape))
    return cls, shape, o


def _units(format: str, shape: tuple[int, int], o: dict) -> int:
    """How many things ``sparsity`` counts: blocks, rows or cells."""
    if o["pattern"] == "block":
        r, c = o["block"]
        return -(-shape[0] // r) * -(-shape[1] // c)
    if o["pattern"] == "rows":
        return shape[0]
    return shape[0] * shape[1]


def _max_count(format: str, shape: tuple[int, int], o: dict) -> int:
    """Most nonzeros (units) the format can hold: N:M caps the density."""
    if format != "nm":
        return _units(format, shape, o)
    n, m = o["n"], o["m"]
    G = -(-shape[1] // m)
    return shape[0] * ((G - 1) * n + min(n, shape[1] - (G - 1) * m))


def _total(format: str, shape: tuple[int, int], count: int, o: dict) -> dict[str, int]:
    v, i, p = (int(round(float(x))) for x in _parts(format, shape, count, o))
    meta = 0
    if o["values"] == "int8":
        if format == "lowrank":
            meta = 4 * (shape[0] + o["rank"])
        elif format == "rcsr":          # float16 scales, see the note in the table
            meta = 2 * shape[0]
        else:
            meta = 4 * shape[0]
    return {"values": v, "indices": i, "pointers": p, "metadata": meta, "total": v + i + p + meta}


def estimate_nbytes(format: str, shape: tuple[int, int], sparsity: float, *, values: str = "fp32",
                    index_dtype: Any = None, block: tuple[int, int] = (4, 4), n: int = 2, m: int = 4,
                    bits: int = 4, pattern: str = "unstructured", rank: int | None = None,
                    slice_height: int | None = None) -> dict[str, int]:
    """Expected ``nbytes()`` of ``format`` for a random ``shape`` matrix with this sparsity.

    Same keys as :meth:`Format.nbytes`. See the module docstring for the cost models.

    Examples
    --------
    >>> estimate_nbytes("csr", (4, 8), 0.5)["total"]   # 16 values * 4 + 16 uint8 + 5 int32
    100
    """
    cls, shape, o = _prepare(format, shape, values, index_dtype, block, n, m, bits, pattern, rank, slice_height)
    ok = isinstance(sparsity, (float, int, np.floating, np.integer)) and not isinstance(sparsity, bool)
    if not (ok and 0 <= sparsity <= 1):
        raise BadInputError(f"estimate_nbytes: sparsity={sparsity!r} should be a number in [0, 1]")
    count = int(np.floor((1 - sparsity) * _units(format, shape, o) + 0.5))
    if count > _max_count(format, shape, o):
        raise BadInputError(f"estimate_nbytes: sparsity={sparsity} is too dense for {o['n']}:{o['m']} "
                            f"(at most {_max_count(format, shape, o)} nonzeros in shape {shape})")
    return _total(format, shape, count, o)


def break_even_sparsity(format: str, shape: tuple[int, int], **opts: Any) -> float | None:
    """Lowest sparsity at which ``estimate_nbytes`` is below the dense fp32 bytes.

    ``opts`` are those of :func:`estimate_nbytes`. Returns ``1 - count / units`` for the largest
    count of nonzeros (blocks, rows for those patterns) that still beats dense, found by
    bisection (every cost model is non-decreasing in the count); None if even an all-zero
    matrix does not beat dense; 0.0 if the format always does.

    Examples
    --------
    >>> round(break_even_sparsity("csr", (4096, 4096), index_dtype="int32"), 4)
    0.5001
    """
    cls, shape, o = _prepare(format, shape, **{**_DEFAULTS, **_known(opts)})
    dense = shape[0] * shape[1] * 4
    lo, hi = 0, _max_count(format, shape, o)
    if _total(format, shape, lo, o)["total"] >= dense:
        return None
    if _total(format, shape, hi, o)["total"] < dense:
        return 1.0 - hi / _units(format, shape, o)
    while hi - lo > 1:                 # invariant: lo beats dense, hi does not
        mid = (lo + hi) // 2
        if _total(format, shape, mid, o)["total"] < dense:
            lo = mid
        else:
            hi = mid
    return 1.0 - lo / _units(format, shape, o)


_DEFAULTS = {"values": "fp32", "index_dtype": None, "block": (4, 4), "n": 2, "m": 4, "bits": 4,
             "pattern": "unstructured", "rank": None, "slice_height": None}


def _known(opts: dict) -> dict:
    unknown = sorted(set(opts) - set(_DEFAULTS))
    if unknown:
        raise BadInputError(f"break_even_sparsity: unknown option(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(_DEFAULTS)}")
    return opts
