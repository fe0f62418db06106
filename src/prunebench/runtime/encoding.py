"""What the runtime asks about a weight matrix before it encodes it: the options a format's
``from_dense`` takes, and whether a matrix fits an N:M pattern. Shared by
:func:`~prunebench.runtime.compile.compile` and the model files
(:mod:`~prunebench.runtime.modelfile`, :mod:`~prunebench.runtime.graphfile`)."""
from __future__ import annotations

import numpy as np


def options_for(fmt: str, opts: dict) -> dict:
    """Keep only the options the format's ``from_dense`` understands."""
    keys = {"bsr": ("block",), "ell": ("slice_height",), "nm": ("n", "m"), "rcsr": ("bits",),
            "lowrank": ("rank", "energy")}.get(fmt, ())
    return {k: opts[k] for k in keys if opts.get(k) is not None}


def nm_violation(W: np.ndarray, n: int, m: int) -> str | None:
    """Where ``W`` breaks the n:m pattern along its columns, or None if it fits."""
    rows, cols = W.shape
    G = -(-cols // m)
    P = np.zeros((rows, G * m), dtype=bool)
    P[:, :cols] = W != 0
    count = P.reshape(rows, G, m).sum(axis=2)
    if (count <= n).all():
        return None
    r, g = np.argwhere(count > n)[0]
    return f"not {n}:{m} sparse (row {r}, group {g} has {count[r, g]} nonzeros)"
