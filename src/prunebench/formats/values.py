"""Value encodings shared by every layout: ``fp32``, ``fp16`` and ``int8``.

``fp32``
    float32, lossless.
``fp16``
    float16 (round to nearest); relative error <= 2**-11 for |w| >= 2**-14, absolute error
    <= 2**-25 below. Values that would overflow (|w| > 65504) are refused.
``int8``
    symmetric, one float32 scale per output row ``r`` (row of W, also for column-major
    layouts): ``scale_r = max|W[r, :]| / 127`` and ``q = clip(rint(w / scale_r), -127, 127)``.
    A row of zeros gets scale 1.0; a scale that would underflow to 0 for a row of tiny
    subnormals gets the smallest positive float32 instead, so there is never a division by 0;
    otherwise ``scale_r`` is ``max|W[r, :]| / 127`` rounded to float32, except that a subnormal
    scale is rounded up (so nothing clips) and a scale near float32 max / 127 is lowered one ulp
    (so ``127 * scale`` stays finite).
    The error per entry is at most ``scale_r / 2`` (plus float32 rounding).

Layouts quantise the whole matrix first (:func:`encode_values`) and then gather their
entries from it, so the per-row scale is applied the same way in every layout.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..dtypes import FP16_MAX, VALUE_DTYPES, VALUE_ENCODINGS
from ..errors import BadInputError, FormatError


def check_values(values: Any, who: str) -> str:
    """Return ``values`` if it names a known encoding, else raise BadInputError."""
    if isinstance(values, str) and values in VALUE_ENCODINGS:
        return values
    raise BadInputError(f"{who}: values={values!r} is not allowed; allowed: {', '.join(VALUE_ENCODINGS)}")


def value_nbytes(values: str) -> int:
    """Bytes per stored value."""
    return int(VALUE_DTYPES[values].itemsize)


def row_scales(X: np.ndarray) -> np.ndarray:
    """int8 scale of every row of ``X`` (float32), never zero."""
    amax = np.abs(X).max(axis=1) if X.shape[1] else np.zeros(X.shape[0], np.float32)
    scale = (amax / np.float32(127)).astype(np.float32)
    scale = np.maximum(scale, np.finfo(np.float32).smallest_subnormal)
    # A subnormal scale rounded down clips max|row| to 127 * scale, an error far above scale / 2:
    # step it up one ulp (for normal scales the clip error is 1e-7 relative, left as is).
    # Near float32 max, 127 * scale can round to inf on decode: step it down instead.
    low = (scale < np.finfo(np.float32).smallest_normal) & (127 * scale.astype(np.float64) < amax)
    scale[low] = np.nextafter(scale[low], np.float32(np.inf))
    over = 127 * scale.astype(np.float64) > np.finfo(np.float32).max
    scale[over] = np.nextafter(scale[over], np.float32(0))
    return np.where(amax == 0, np.float32(1), scale).astype(np.float32)


def encode_values(X: np.ndarray, values: str, who: str = "values") -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` (float32, 2-D) in the storage dtype, and the int8 row scales (else None)."""
    if values == "fp32":
        return X, None
    if values == "fp16":
        amax = float(np.abs(X).max()) if X.size else 0.0
        if amax > FP16_MAX:
            raise BadInputError(f"{who}: values='fp16' cannot represent |w| = {amax:g} (fp16 max {FP16_MAX:g}); "
                                f"use values='fp32' or 'int8'")
        return X.astype(np.float16), None
    scales = row_scales(X)
    q = np.clip(np.rint(X / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales


def decode_values(D: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Dense storage-dtype matrix back to float32 (row ``r`` times ``scales[r]`` for int8)."""
    if scales is None:
        return D.astype(np.float32, copy=False)
    return D.astype(np.float32) * scales[:, None]


class _HasScales(Protocol):
    scale_names: tuple[str, ...]


def scale_arrays(cls: _HasScales, values: str) -> tuple[str, ...]:
    """Names of the scale arrays a format has with this value encoding."""
    return tuple(cls.scale_names) if values == "int8" else ()


def check_scales(fmt: Any, arrays: dict[str, np.ndarray]) -> None:
    """Scale arrays: float32, one per row they scale, finite and >= 0."""
    for name, n in fmt._scale_lengths().items():
        if name not in arrays:
            continue
        s = arrays[name]
        if s.dtype != np.float32 or s.ndim != 1 or len(s) != n:
            raise FormatError(f"{fmt.name}: {name} should be float32 [{n}], got {s.dtype} {list(s.shape)}")
        bad = np.flatnonzero(~np.isfinite(s) | (s < 0))
        if len(bad):
            raise FormatError(f"{fmt.name}: {name}[{bad[0]}] is {s[bad[0]]}, expected a finite scale >= 0")
