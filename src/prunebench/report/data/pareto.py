"""Pareto fronts: accuracy against latency and against file size."""
from __future__ import annotations

import math

import pandas as pd

from ...formats import approximating_formats
from .accuracy import accuracy_by_values, accuracy_table
from .latency import latency_table
from .size import size_table
from .study import StudyData, cached_table


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Non-dominated points of (cost, accuracy, label): lower cost, higher accuracy."""
    pts = sorted(points, key=lambda p: (p[0], -p[1]))
    front, best = [], -math.inf
    for p in pts:
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


@cached_table
def pareto_points(d: StudyData, model: str, axis: str) -> list[tuple[float, float, str]]:
    """(latency ms at the smallest batch | file bytes, accuracy, label) for every measured
    configuration of ``model``: accuracy is the mean over seeds of that configuration (of its
    value encoding, read back from the file, for non-fp32 values)."""
    acc = accuracy_table(d)
    acc = acc[acc.model == model][["method_label", "sparsity", "acc_mean"]]
    accv = accuracy_by_values(d)
    accv = accv[accv.model == model][["method_label", "sparsity", "value_encoding", "acc_mean"]] \
        if len(accv) else pd.DataFrame(columns=["method_label", "sparsity", "value_encoding",
                                                "acc_mean"])
    keys = ["method_label", "sparsity"]
    if axis == "latency":
        lat = latency_table(d)
        lat = lat[(lat.model == model)] if len(lat) else lat
        if lat.empty:
            return []
        lat = lat[lat.batch == lat.batch.min()]
        a = pd.concat([lat[lat.value_encoding == "fp32"].merge(acc, on=keys),
                       lat[lat.value_encoding != "fp32"].merge(accv, on=keys + ["value_encoding"])])
        return [(float(r.p50_ms), float(r.acc_mean), f"{r.method_label}@{r.sparsity:g} {r.pair}")
                for r in a.itertuples()]
    s = size_table(d)
    s = s[s.model == model] if len(s) else s
    if s.empty:
        return []
    approx = s.format.isin(approximating_formats())
    lossy = s[approx].assign(acc_mean=lambda t: t.accuracy)
    a = pd.concat([s[~approx].merge(accv, on=keys + ["value_encoding"]), lossy])
    a = a[a.acc_mean.notna()]
    return [(float(r.file_bytes), float(r.acc_mean),
             f"{r.method_label}@{r.sparsity:g} {r.format} {r.value_encoding}")
            for r in a.itertuples()]
