"""Storage formats for pruned weight matrices (the package's only public door).

Every format is a :class:`Format` subclass registered in :data:`FORMATS` under its
``name``; :func:`encode` looks one up and calls ``from_dense``. The exact array layout of
each format is documented in its module (``prunebench.formats.csr`` etc.).

Examples
--------
>>> import numpy as np
>>> W = np.array([[0, 1.5], [0, 0]], dtype=np.float32)
>>> fmt = encode(W, "csr")
>>> fmt.indptr.tolist(), fmt.indices.tolist(), fmt.data.tolist()
([0, 1, 1], [1], [1.5])
>>> bool((fmt.to_dense() == W).all())
True
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import FORMATS, Format, encoding_error
from .bitmap import BitmapFormat
from .bsr import BSRFormat
from .cbcsr import CBCSRFormat
from .compact import CompactFormat
from .coo import COOFormat
from .csc import CSCFormat
from .csr import CSRFormat
from .delta8 import Delta8Format
from .dense import DenseFormat
from .ell import ELLFormat
from .lowrank import LowRankFormat
from .nm import NMFormat
from .panel import PanelFormat
from .rcsr import RCSRFormat
from .values import VALUE_ENCODINGS
from .accounting import break_even_sparsity, estimate_nbytes
from .container import inspect_container, load_container, save_container


def encode(W: np.ndarray, format: str, **opts: Any) -> Format:
    """Encode ``W`` in the format registered as ``format`` (``opts`` go to ``from_dense``).

    Raises BadInputError for an unknown format name, listing the valid ones.
    """
    return FORMATS.get(format).from_dense(W, **opts)


def approximating_formats() -> tuple[str, ...]:
    """Formats whose stored values are not entries of W (``lowrank``): the accuracy of a model
    read back from a lossless file says nothing about theirs."""
    return tuple(n for n in FORMATS if not FORMATS.get(n).stores_entries)


__all__ = [
    "FORMATS", "Format", "encode", "approximating_formats", "encoding_error", "VALUE_ENCODINGS",
    "DenseFormat", "COOFormat", "CSRFormat", "CSCFormat", "RCSRFormat", "Delta8Format", "BSRFormat", "ELLFormat",
    "BitmapFormat", "NMFormat", "CBCSRFormat", "PanelFormat", "LowRankFormat", "CompactFormat",
    "estimate_nbytes", "break_even_sparsity", "save_container", "load_container", "inspect_container",
]
