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
cbcsr     nnz*vb + nnz*ib(cols-1) + (ceil(cols/block_cols)*rows+1)*pb            exact
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

Options a format does not use (e.g. ``block`` for csr) are ignored. Each model is the
format's own (:meth:`~prunebench.formats.Format.expected_parts`, with ``estimate_options``,
``max_count``, ``expected_scale_bytes`` and ``estimate_patterns`` on its class); this module
checks the arguments and sums them up.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInputError
from .base import FORMATS, Format, check_int_option
from .values import check_values, value_nbytes


def patterns() -> dict[str, tuple[str, ...] | None]:
    """{pattern: the formats whose byte model covers it (None: every format)}."""
    out: dict[str, tuple[str, ...] | None] = {"unstructured": None}
    for name in FORMATS:
        for p in FORMATS.get(name).estimate_patterns:
            out[p] = (out.get(p) or ()) + (name,)
    return out


def _prepare(format: str, shape: Any, values: str, index_dtype: Any, block: Any, n: int, m: int,
             bits: int, pattern: str, rank: int | None, slice_height: int | None,
             ) -> tuple[type[Format], tuple[int, int], dict[str, Any]]:
    cls = FORMATS.get(format)
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise BadInputError(f"estimate_nbytes: shape={shape!r} should be (rows, cols)")
    shape = (check_int_option(format, "rows", shape[0], 1), check_int_option(format, "cols", shape[1], 1))
    known = patterns()
    if pattern not in known:
        raise BadInputError(f"estimate_nbytes: pattern={pattern!r} is not allowed; allowed: {', '.join(known)}")
    modelled = known[pattern]
    if modelled is not None and format not in modelled:
        raise BadInputError(f"estimate_nbytes: pattern={pattern!r} is modelled only for format(s) "
                            f"{', '.join(modelled)}, not {format!r}")
    o = {"vb": value_nbytes(check_values(values, format)), "pattern": pattern,
         "index_dtype": index_dtype if cls.has_index_dtype else None, "slice_height": slice_height,
         "rank": rank, "values": values}
    o.update(cls.estimate_options(shape, {"block": block, "n": n, "m": m, "bits": bits,
                                          "rank": rank, "slice_height": slice_height}))
    return cls, shape, o


def _units(shape: tuple[int, int], o: dict[str, Any]) -> int:
    """How many things ``sparsity`` counts: blocks, rows or cells."""
    if o["pattern"] == "block":
        r, c = o["block"]
        return -(-shape[0] // r) * -(-shape[1] // c)
    if o["pattern"] == "rows":
        return shape[0]
    return shape[0] * shape[1]


def _max_count(cls: type[Format], shape: tuple[int, int], o: dict[str, Any]) -> int:
    """Most nonzeros (units) the format can hold: N:M caps the density."""
    return cls.max_count(shape, o, _units(shape, o))


def _total(cls: type[Format], shape: tuple[int, int], count: int, o: dict[str, Any]) -> dict[str, int]:
    v, i, p = (int(round(float(x))) for x in cls.expected_parts(shape, count, o))
    meta = cls.expected_scale_bytes(shape, o) if o["values"] == "int8" else 0
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
    count = int(np.floor((1 - sparsity) * _units(shape, o) + 0.5))
    if count > _max_count(cls, shape, o):
        raise BadInputError(f"estimate_nbytes: sparsity={sparsity} is too dense for {o['n']}:{o['m']} "
                            f"(at most {_max_count(cls, shape, o)} nonzeros in shape {shape})")
    return _total(cls, shape, count, o)


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
    lo, hi = 0, _max_count(cls, shape, o)
    if _total(cls, shape, lo, o)["total"] >= dense:
        return None
    if _total(cls, shape, hi, o)["total"] < dense:
        return 1.0 - hi / _units(shape, o)
    while hi - lo > 1:                 # invariant: lo beats dense, hi does not
        mid = (lo + hi) // 2
        if _total(cls, shape, mid, o)["total"] < dense:
            lo = mid
        else:
            hi = mid
    return 1.0 - lo / _units(shape, o)


_DEFAULTS = {"values": "fp32", "index_dtype": None, "block": (4, 4), "n": 2, "m": 4, "bits": 4,
             "pattern": "unstructured", "rank": None, "slice_height": None}


def _known(opts: dict) -> dict:
    unknown = sorted(set(opts) - set(_DEFAULTS))
    if unknown:
        raise BadInputError(f"break_even_sparsity: unknown option(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(_DEFAULTS)}")
    return opts
