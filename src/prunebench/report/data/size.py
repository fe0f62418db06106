"""Size tables: file bytes against the dense file, where a format becomes smaller than
dense (per model and per layer shape, against the format's cost model)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .study import StudyData, cached_table, reference_method


@cached_table
def size_table(d: StudyData) -> pd.DataFrame:
    """File bytes (first seed) with ``ratio`` to the unpruned model's dense fp32 file and
    ``ratio_same`` to its dense file in the same value encoding."""
    s = d.size.copy()
    if s.empty:
        return s.assign(ratio=[], ratio_same=[])
    first = s.groupby("model").seed.transform("min")
    s = s[s.seed == first]
    base = {}
    for (model, values), g in s[(s.sparsity == 0) & (s.format == "dense")].groupby(
            ["model", "value_encoding"]):
        base[(model, values)] = float(g.file_bytes.min())
    s["dense_file_bytes"] = [base.get((m, "fp32"), np.nan) for m in s.model]
    s["ratio"] = s.file_bytes.astype(float) / s.dense_file_bytes
    s["ratio_same"] = s.file_bytes.astype(float) / np.array(
        [base.get((m, v), np.nan) for m, v in zip(s.model, s.value_encoding)])
    return s


def crossing(xs: Iterable[float], ys: Iterable[float],
             level: float = 1.0) -> float | None:
    """First x where the piecewise-linear curve (xs, ys) goes below ``level``."""
    pts = sorted(zip(xs, ys))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 >= level > y1:
            return x0 + (y0 - level) / (y0 - y1) * (x1 - x0)
    if pts and pts[0][1] < level:
        return pts[0][0]
    return None


@cached_table
def size_crossover_table(d: StudyData) -> pd.DataFrame:
    """Per model, method, format and value encoding: lowest measured sparsity whose file is
    smaller than the dense file *in the same value encoding*, and the interpolated
    break-even."""
    s = size_table(d)
    if s.empty:
        return pd.DataFrame(columns=["model", "method_label", "format", "values", "crossover",
                                     "break_even", "ratio_at_max", "max_sparsity"])
    rows = []
    for (model, label, fmt, values), g in s.groupby(
            ["model", "method_label", "format", "value_encoding"], sort=False):
        if label == "dense" or fmt == "dense":
            continue
        dense_pt = s[(s.model == model) & (s.method_label == "dense") & (s.format == fmt)
                     & (s.value_encoding == values)]
        g = pd.concat([dense_pt, g]).sort_values("sparsity")
        beat = g[g.ratio_same < 1.0]
        rows.append({"model": model, "method_label": label, "format": fmt, "values": values,
                     "crossover": float(beat.sparsity.iloc[0]) if len(beat) else None,
                     "break_even": crossing(g.sparsity, g.ratio_same),
                     "ratio_at_max": float(g.ratio_same.iloc[-1]),
                     "max_sparsity": float(g.sparsity.max())})
    return pd.DataFrame(rows, columns=["model", "method_label", "format", "values", "crossover",
                                       "break_even", "ratio_at_max", "max_sparsity"])


@cached_table
def layer_size_crossover(d: StudyData) -> pd.DataFrame:
    """Per layer shape and format (fp32 values, reference method): lowest measured sparsity
    whose encoded layers are smaller than dense (the highest among layers of that shape), the
    format cost model's break-even, and whether every measured point sits on the side of the
    break-even the cost model predicts."""
    s = size_table(d)
    if s.empty:
        return pd.DataFrame(columns=["model", "layer", "shape", "format", "crossover",
                                     "break_even_model"])
    rows = []
    for model, g in s[s.value_encoding == "fp32"].groupby("model", sort=False):
        ref = reference_method(g.method_label.unique())
        if ref is None:
            continue
        g = g[g.method_label == ref]
        per: dict[tuple, list] = {}
        for _, r in g.iterrows():
            for lay in r.layers or []:
                if r.format == "dense":
                    continue
                per.setdefault((lay["name"], tuple(lay["shape"]), r.format), []).append(
                    (float(lay["sparsity"]), lay["bytes"] / lay["dense_fp32_bytes"],
                     lay.get("break_even_model")))
        by_shape: dict[tuple, dict] = {}
        for (name, shape, fmt), pts in per.items():
            pts.sort()
            if max(p[0] for p in pts) < 0.05:   # a layer the method does not prune
                continue
            beat = [p for p in pts if p[1] < 1.0]
            models = [p[2] for p in pts if p[2] is not None]
            be = models[0] if models else None
            agrees = _agrees(pts, be)
            row = by_shape.setdefault((shape, fmt), {
                "model": model, "shape": "x".join(map(str, shape)), "format": fmt,
                "layers": [], "crossover": None, "break_even_model": be, "points": 0,
                "agrees": agrees})
            row["layers"].append(name)
            row["points"] += len(pts)
            c = beat[0][0] if beat else None
            if c is not None and (row["crossover"] is None or c > row["crossover"]):
                row["crossover"] = c      # the latest crossover among layers of this shape
            if agrees is not None:
                row["agrees"] = bool(row["agrees"]) and agrees if row["agrees"] is not None \
                    else agrees
        for row in by_shape.values():
            names = row.pop("layers")
            row["layer"] = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
            row["n_layers"] = len(names)
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "shape", "format", "crossover",
                                       "break_even_model", "points", "agrees", "layer",
                                       "n_layers"])


def _agrees(pts: list[tuple], be: float | None, slack: float = 0.02) -> bool | None:
    """Whether measured (sparsity, bytes ratio) points sit on the side of the cost model's
    break-even they should: smaller than dense above it, not below it (``slack`` around it
    allows for the expected-value cost models and for rounding of nonzero counts)."""
    if be is None:
        return None
    for sp, ratio, _ in pts:
        if sp > be + slack and ratio >= 1.0:
            return False
        if sp < be - slack and ratio < 1.0:
            return False
    return True
