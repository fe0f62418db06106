"""Granularity: how element scores become the units that are kept or removed together.

Every granularity works on the ``[gates, rows, fan_in]`` view of a weight (see
:mod:`.targets`) and returns bool keep-masks of the same shape (True = keep).

- :class:`Unstructured`: every weight is a unit.
- :class:`Blocks`: ``rows x cols`` tiles, ranked by the block norm (L1 or L2) of their scores;
  tiles on a ragged edge are smaller and count with their true size.
- :class:`NM`: keep the ``n`` highest-scoring weights of every ``m`` consecutive weights along
  the input (fan-in) dimension; ``fan_in`` must be a multiple of ``m``.

A weight a granularity cannot use (a block larger than its matrices, a fan-in that ``m`` does
not divide) is reported by :meth:`Granularity.unusable` and left dense by :func:`~.api.prune`.

Structured channel removal is not a mask; it lives in :mod:`.structured`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from .select import remove_global, remove_per_layer

Masks3D = dict[str, torch.Tensor]


class Granularity(ABC):
    """Turns scores into keep-masks at a sparsity; ``check`` refuses shapes it cannot use."""

    name: str

    def unusable(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, str]:
        """{weight name: why} for the weights (name -> ``[gates, rows, fan_in]``) this
        granularity cannot prune; the caller leaves them dense and reports them."""
        return {}

    @abstractmethod
    def keep_masks(self, scores: Masks3D, alive: Masks3D, sparsity: float,
                   scope: str) -> Masks3D:
        """Keep-masks at ``sparsity``; weights already removed (``alive`` False) stay removed."""


class UnitGranularity(Granularity):
    """A granularity whose units are ranked by one score each, per layer or globally."""

    @abstractmethod
    def pool(self, scores: torch.Tensor, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[G, R, C]`` element scores -> ``(unit scores [G, U], unit sizes [G, U])``; a unit
        with no live weight scores -inf so it is removed first and stays removed."""

    @abstractmethod
    def expand(self, removed: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """``[G, U]`` bool unit decisions -> ``[G, R, C]`` element decisions."""

    def keep_masks(self, scores: Masks3D, alive: Masks3D, sparsity: float,
                   scope: str) -> Masks3D:
        names = list(scores)
        units = [self.pool(scores[n].float(), alive[n]) for n in names]
        remove = remove_global if scope == "global" else remove_per_layer
        removed = remove(units, sparsity)
        out = {}
        for n, r in zip(names, removed):
            g, rows, cols = scores[n].shape
            out[n] = ~self.expand(r, (g, rows, cols))
        return out


class Unstructured(UnitGranularity):
    name = "unstructured"

    def pool(self, scores: torch.Tensor, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = scores.masked_fill(~alive, float("-inf")).reshape(scores.shape[0], -1)
        return s, torch.ones(s.shape, dtype=torch.long)

    def expand(self, removed: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        return removed.reshape(shape)


class Blocks(UnitGranularity):
    """``rows x cols`` blocks, scored by the ``p``-norm of their element scores."""

    name = "block"

    def __init__(self, rows: int, cols: int, p: float = 1.0):
        self.rows, self.cols, self.p = rows, cols, p

    def unusable(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, str]:
        return {name: f"block=({self.rows}, {self.cols}) is larger than its {rows} x {cols} "
                      "matrices" for name, (_, rows, cols) in shapes.items()
                if self.rows > rows or self.cols > cols}

    def _tiles(self, t: torch.Tensor) -> torch.Tensor:
        """``[G, R, C]`` zero-padded to whole blocks -> ``[G, R/r, r, C/c, c]``."""
        g, r, c = t.shape
        pad_r, pad_c = -r % self.rows, -c % self.cols
        t = F.pad(t, (0, pad_c, 0, pad_r))
        return t.reshape(g, (r + pad_r) // self.rows, self.rows, (c + pad_c) // self.cols,
                         self.cols)

    def pool(self, scores: torch.Tensor, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = scores.shape[0]
        tiles = self._tiles(scores.abs().pow(self.p) * alive)
        norms = tiles.sum(dim=(2, 4)).pow(1.0 / self.p)
        sizes = self._tiles(torch.ones_like(scores)).sum(dim=(2, 4)).long()
        live = self._tiles(alive.float()).sum(dim=(2, 4)) > 0
        norms = norms.masked_fill(~live, float("-inf"))
        return norms.reshape(g, -1), sizes.reshape(g, -1)

    def expand(self, removed: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        g, r, c = shape
        nr, nc = -(-r // self.rows), -(-c // self.cols)
        grid = removed.reshape(g, nr, nc)
        full = grid.repeat_interleave(self.rows, 1).repeat_interleave(self.cols, 2)
        return full[:, :r, :c]


class NM(Granularity):
    """Keep ``n`` of every ``m`` consecutive weights along the fan-in dimension.

    The pattern fixes the sparsity at ``1 - n/m``; a lower ``sparsity`` (an intermediate step
    of an iterative or gradual schedule) keeps ``m - round(m * sparsity)`` per group instead,
    never fewer than ``n``. Scope does not matter: every group is decided on its own.
    """

    name = "nm"

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def unusable(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, str]:
        return {name: f"m={self.m} does not divide its fan-in {cols}"
                for name, (_, _, cols) in shapes.items() if cols % self.m}

    def keep_masks(self, scores: Masks3D, alive: Masks3D, sparsity: float,
                   scope: str) -> Masks3D:
        keep = min(self.m, max(self.n, self.m - round(self.m * sparsity)))
        out = {}
        for name, s in scores.items():
            g, r, c = s.shape
            groups = s.float().masked_fill(~alive[name], float("-inf")).reshape(g, r, c // self.m,
                                                                                self.m)
            top = torch.topk(groups, keep, dim=-1).indices
            mask = torch.zeros(groups.shape, dtype=torch.bool).scatter_(-1, top, True)
            out[name] = mask.reshape(g, r, c)
        return out
