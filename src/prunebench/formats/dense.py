"""Dense storage: the reference every other format is compared against.

Layout
------
``data`` : [rows, cols], value dtype (float32 / float16 / int8), row-major.
``scales`` : float32 [rows], only with ``values="int8"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import FORMATS, Format, expect_array
from .values import VALUE_DTYPES


@FORMATS.register("dense")
class DenseFormat(Format):
    """Plain dense matrix; keeps even ``-0.0`` bit-exactly."""

    name = "dense"
    array_names = ("data",)

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        return shape[0] * shape[1] * o["vb"], 0, 0

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        return cls._new(W.shape, values, scales, {"data": np.array(Q, copy=True)})

    def _check(self):
        expect_array(self.name, self.arrays(), "data", (VALUE_DTYPES[self.values].name,), self.shape)

    def _decode(self):
        return self.data
