"""Shared tail of the NumPy references: apply a decoded dense matrix in float64."""
from __future__ import annotations

from typing import Any

import numpy as np


def apply_dense(W: Any, x: Any, scales: Any = None, bias: Any = None) -> np.ndarray:
    """``x @ (scales[:, None] * W).T + bias`` in float64; ``x`` is [cols] or [B, cols]."""
    W = np.asarray(W, np.float64)
    if scales is not None:
        W = W * np.asarray(scales, np.float64)[:, None]
    out = np.asarray(x, np.float64) @ W.T
    if bias is not None:
        out = out + np.asarray(bias, np.float64)
    return out


def value_array(data: Any) -> np.ndarray:
    """Stored values as float64 (float16 given as its uint16 bits is read as float16)."""
    data = np.asarray(data)
    if data.dtype == np.uint16:
        data = data.view(np.float16)
    return data.astype(np.float64)
