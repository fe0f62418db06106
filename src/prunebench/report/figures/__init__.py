"""Matplotlib figures of a report, each returned as a base64 PNG (or None when the database
holds nothing to draw), so the page embeds them and opens offline.

One module per figure family: :mod:`.accuracy` (accuracy vs sparsity, Pareto fronts),
:mod:`.latency` (latency grids, the per-layer profile), :mod:`.size` (file size),
:mod:`.sparsity` (per-layer sparsity, masks), on :mod:`.common`. Each ``*_fig`` function
returns the matplotlib figure (the export writes it as PDF and SVG); the functions here give
it as the PNG the page embeds. A short figure (``latency_best``, ``size_best``) holds a few
lines with their names beside them; its full figure keeps every line.
"""
from __future__ import annotations

from .. import data as D
from .accuracy import accuracy_fig, pareto_fig
from .common import DPI, LINEAR_UP_TO, axis_scale, png, pyplot
from .latency import latency_best_fig, latency_fig, profile_fig
from .size import size_best_fig, size_fig
from .sparsity import masks_fig, sparsity_bars_fig

__all__ = [
    "DPI", "LINEAR_UP_TO", "accuracy", "accuracy_fig", "axis_scale", "latency",
    "latency_best", "latency_best_fig", "latency_fig", "masks", "masks_fig", "pareto",
    "pareto_fig", "png", "profile", "profile_fig", "pyplot", "size", "size_best",
    "size_best_fig", "size_fig", "sparsity_bars", "sparsity_bars_fig",
]


def accuracy(d: D.StudyData) -> str | None:
    return png(accuracy_fig(d))


def latency(d: D.StudyData, model: str) -> str | None:
    """The full latency figure (every engine/format pair); :func:`latency_best` is the short
    one."""
    return png(latency_fig(d, model))


def latency_best(d: D.StudyData, model: str) -> str | None:
    return png(latency_best_fig(d, model))


def size(d: D.StudyData, model: str) -> str | None:
    return png(size_fig(d, model))


def size_best(d: D.StudyData, model: str) -> str | None:
    return png(size_best_fig(d, model))


def pareto(d: D.StudyData, model: str) -> str | None:
    return png(pareto_fig(d, model))


def sparsity_bars(d: D.StudyData, model: str, sparsity: float) -> str | None:
    return png(sparsity_bars_fig(d, model, sparsity))


def masks(d: D.StudyData, model: str, sparsity: float) -> str | None:
    return png(masks_fig(d, model, sparsity))


def profile(d: D.StudyData, model: str) -> str | None:
    return png(profile_fig(d, model))
