"""Low-rank factorisation by truncated SVD (always lossy).

Layout
------
``u`` : [rows, r], value dtype, left singular vectors times the singular values.
``v`` : [r, cols], value dtype, right singular vectors; ``W ~= u @ v``.
``u_scales`` : float32 [rows], ``v_scales`` : float32 [r], only with ``values="int8"``
    (one scale per row of ``u`` and per row of ``v``).
meta : ``rank`` = r.

Options: exactly one of ``rank`` (int in [1, min(rows, cols)]) or ``energy`` (fraction in
(0, 1] of the sum of squared singular values to keep; the smallest rank that reaches it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInputError, FormatError
from .base import FORMATS, Format, check_int_option, expect_array
from .values import VALUE_DTYPES, decode_values, encode_values


@FORMATS.register("lowrank")
class LowRankFormat(Format):
    """``W ~= u @ v`` with ``u`` [rows, r] and ``v`` [r, cols]."""

    name = "lowrank"
    lossless = False
    stores_entries = False
    array_names = ("u", "v")
    value_arrays = ("u", "v")
    scale_names = ("u_scales", "v_scales")
    meta_keys = ("rank",)
    option_defaults = {"rank": None, "energy": None}
    one_of_options = {"rank": "int >= 1", "energy": "fraction in (0, 1]"}
    one_of_default = {"energy": 0.9}

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        return {"rank": check_int_option(cls.name, "rank", given["rank"], 1, min(shape))}

    @classmethod
    def expected_scale_bytes(cls, shape: tuple[int, int], o: dict[str, Any]) -> int:
        return 4 * (shape[0] + o["rank"])

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        return (shape[0] + shape[1]) * o["rank"] * o["vb"], 0, 0

    @classmethod
    def _check_options(cls, shape, rank, energy):
        if (rank is None) == (energy is None):
            raise BadInputError(f"{cls.name}: pass exactly one of rank= (int in [1, {min(shape)}]) "
                                f"or energy= (float in (0, 1]); got rank={rank!r}, energy={energy!r}")
        if rank is not None:
            return {"rank": check_int_option(cls.name, "rank", rank, 1, min(shape)), "energy": None}
        if not (isinstance(energy, (float, int, np.floating)) and not isinstance(energy, bool) and 0 < energy <= 1):
            raise BadInputError(f"{cls.name}: energy={energy!r} should be a float in (0, 1]")
        return {"rank": None, "energy": float(energy)}

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, rank, energy):
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        if rank is None:
            s2 = s.astype(np.float64) ** 2
            frac = np.cumsum(s2) / s2.sum() if s2.sum() > 0 else np.ones_like(s2)
            rank = min(len(s), int(np.sum(frac < energy * (1 - 1e-9))) + 1)
        u, u_scales = encode_values((U[:, :rank] * s[:rank]).astype(np.float32), values, cls.name)
        v, v_scales = encode_values(np.ascontiguousarray(Vt[:rank], dtype=np.float32), values, cls.name)
        arrays = {"u": u, "v": v}
        if values == "int8":
            arrays.update(u_scales=u_scales, v_scales=v_scales)
        return cls(W.shape, values, arrays, rank=rank)

    def _scale_lengths(self):
        return {"u_scales": self.shape[0], "v_scales": self.rank}

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        if not (type(self.rank) is int and 1 <= self.rank <= min(rows, cols)):
            raise FormatError(f"{who}: meta rank={self.rank!r}, expected an int in [1, {min(rows, cols)}]")
        dt = (VALUE_DTYPES[self.values].name,)
        expect_array(who, a, "u", dt, (rows, self.rank))
        expect_array(who, a, "v", dt, (self.rank, cols))

    def _decode(self):
        u = decode_values(self.u, getattr(self, "u_scales", None)).astype(np.float64)
        v = decode_values(self.v, getattr(self, "v_scales", None)).astype(np.float64)
        return (u @ v).astype(np.float32)
