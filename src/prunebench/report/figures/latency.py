"""Latency figures: the full grid of every engine/format pair, the short one (each engine's
best format against the fastest dense engine), and the per-layer time profile."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import data as D
from .common import colors, direct_labels, line_width, pyplot, set_scale

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def latency_fig(d: D.StudyData, model: str) -> Figure | None:
    """Per batch size (columns): median latency and speedup over dense PyTorch vs sparsity for
    the reference unstructured method, then one row of speedups per other timed method (e.g.
    block pruning), one line per engine/format pair; dotted horizontal lines are the unpruned
    model on each dense engine."""
    lat = D.latency_table(d)
    lat = lat[lat.model == model] if len(lat) else lat
    if lat.empty:
        return None
    lat = lat[lat.threads == lat.threads.min()]
    methods = [m for m in lat.method_label.unique() if m != "dense"]
    if not methods:   # only the dense model: nothing vs sparsity
        return None
    ref = D.reference_method(methods)
    others = [m for m in methods if m != ref]
    batches = sorted(lat.batch.unique())
    nrows = 2 + len(others)
    plt = pyplot()
    width = 4.0 * len(batches) + 2.6
    fig, axes = plt.subplots(nrows, len(batches), figsize=(width, 2.7 * nrows), squeeze=False)
    pairs = sorted(lat.pair.unique())
    col = colors(pairs)
    for j, b in enumerate(batches):
        lb = lat[lat.batch == b]
        dense0 = lb[lb.method_label == "dense"]
        rows = [(0, ref, "p50_ms", f"batch {b}: median latency ({ref})", "ms per call")]
        rows += [(1, ref, "speedup", f"batch {b}: speedup over dense PyTorch ({ref})",
                  "speedup (x)")]
        rows += [(2 + k, m, "speedup", f"batch {b}: speedup ({m})", "speedup (x)")
                 for k, m in enumerate(others)]
        for i, label, y, title, ylabel in rows:
            ax = axes[i, j]
            for pair, g in lb[lb.method_label == label].groupby("pair"):
                g = pd.concat([dense0[dense0.pair == pair], g]).sort_values("sparsity")
                ax.plot(100 * g.sparsity, g[y], color=col[pair], marker="o", ms=2.5,
                        lw=line_width(pair), label=pair)
            for _, r in dense0[dense0.format == "dense"].iterrows():
                ax.axhline(r[y], color=col[r.pair], lw=0.9, ls=":", label=r.pair)
            if y == "speedup":
                ax.axhline(1.0, color="black", lw=0.8)
            ax.set_yscale("log")
            ax.set_title(title, fontsize=8)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("sparsity (%)")
            ax.grid(alpha=0.3, which="both")
    handles, labels, seen = [], [], set()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    right = 1 - 2.5 / width
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(right + 0.01, 0.95),
               frameon=False)
    only = " (latency-only: random weights)" if d.latency_only(model) else ""
    fig.suptitle(f"{model}{only}")
    fig.subplots_adjust(left=0.08, right=right - 0.02, bottom=0.06, top=1 - 0.35 / nrows,
                        wspace=0.35, hspace=0.55)
    return fig


def latency_best_fig(d: D.StudyData, model: str) -> Figure | None:
    """Speedup over the fastest dense engine vs sparsity (reference method), one line per
    engine (its best format, by peak speedup), per batch; the dashed line at 1 is the fastest
    dense engine itself. The full figure (:func:`latency_fig`) has every pair."""
    lat = D.latency_table(d)
    lat = lat[lat.model == model] if len(lat) else lat
    if lat.empty:
        return None
    lat = lat[(lat.threads == lat.threads.min()) & lat.speedup_best.notna()]
    ref = D.reference_method([m for m in lat.method_label.unique() if m != "dense"])
    g = lat[(lat.method_label == ref) & lat.format_used & (lat.format != "dense")]
    if ref is None or g.empty:
        return None
    batches = sorted(g.batch.unique())
    plt = pyplot()
    fig, axes = plt.subplots(1, len(batches), figsize=(4.6 * len(batches) + 0.4, 3.2),
                             squeeze=False)
    col = colors(sorted(g.pair.unique()))
    for ax, b in zip(axes[0], batches):
        h = g[g.batch == b]
        peak = h.groupby("pair").speedup_best.max()
        per_engine: dict[str, str] = {}
        for pair, v in peak.items():
            e = pair.split(" / ")[0]
            if e not in per_engine or v > peak[per_engine[e]]:
                per_engine[e] = pair
        ys, labels = [1.0], []
        for e, pair in sorted(per_engine.items()):
            c = h[h.pair == pair].sort_values("sparsity")
            ax.plot(100 * c.sparsity, c.speedup_best, marker="o", ms=3, lw=1.4, color=col[pair])
            ys += list(c.speedup_best)
            labels.append((100 * float(c.sparsity.iloc[-1]), float(c.speedup_best.iloc[-1]),
                           pair, col[pair]))
        dense = h.best_dense.mode().iloc[0]
        ax.axhline(1.0, color="black", lw=0.9, ls="--")
        set_scale(ax, ys)
        labels.append((100 * float(h.sparsity.max()), 1.0, f"dense: {dense}", "black"))
        direct_labels(ax, labels)
        ax.set_title(f"batch {b}", fontsize=8)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("speedup over the fastest dense engine (x)")
        ax.grid(alpha=0.3, which="both")
    only = " (latency-only: random weights)" if d.latency_only(model) else ""
    fig.suptitle(f"{model}{only}: best format per engine, {ref} pruning", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.84, wspace=0.3)
    return fig


def profile_fig(d: D.StudyData, model: str) -> Figure | None:
    """Per-layer time of the profiled pruned model on each engine/format (stacked bars)."""
    p = D.profile_table(d)
    p = p[p.model == model] if len(p) else p
    if p.empty:
        return None
    pairs = list(dict.fromkeys(p.pair))
    table = p.pivot_table(index="pair", columns="layer", values="ms", aggfunc="sum",
                          sort=False).reindex(pairs).fillna(0.0)
    TOP = 8  # the layers that take most time somewhere; the rest are summed
    order = table.drop(columns=["(other)"], errors="ignore").max().sort_values(ascending=False)
    top = list(order.index[:TOP])
    rest = [c for c in order.index[TOP:]]
    if rest:
        table["(other layers)"] = table[rest].sum(axis=1)
    cols = top + (["(other layers)"] if rest else []) + \
        (["(other)"] if "(other)" in table.columns else [])
    col = colors(cols)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(pairs) + 1.3))
    fig.subplots_adjust(left=0.25, right=0.72, bottom=0.3 / (0.45 * len(pairs) + 1.3) + 0.2,
                        top=0.85)
    left = np.zeros(len(pairs))
    for c in cols:
        vals = table[c].to_numpy(dtype=float)
        ax.barh(pairs, vals, left=left, color=col[c], label=c)
        left += vals
    ax.set_xlabel("ms per call")
    r = p.iloc[0]
    ax.set_title(f"{model}: time per layer at {100 * r.sparsity:.0f}% {r.method_label}, "
                 f"batch {int(r.batch)}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=6)
    return fig
