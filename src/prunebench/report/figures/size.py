"""Size figures: every format's file against the dense fp32 file, and the short one (the
smallest format per value encoding)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .. import data as D
from .common import colors, direct_labels, line_width, pyplot, set_scale

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def size_fig(d: D.StudyData, model: str) -> Figure | None:
    """File size relative to the dense fp32 file vs sparsity, per format (solid fp32, dashed
    fp16, dotted int8), for the reference method; break-even points marked."""
    s = D.size_table(d)
    s = s[s.model == model] if len(s) else s
    if s.empty:
        return None
    ref = D.reference_method(s.method_label.unique())
    if ref is None:  # only the dense model (a control): nothing to plot against sparsity
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 3.4))
    fig.subplots_adjust(left=0.14, right=0.72, bottom=0.14, top=0.9)
    fmts = sorted(s.format.unique())
    col = colors(fmts)
    ls = {"fp32": "-", "fp16": "--", "int8": ":"}
    dense0 = s[s.method_label == "dense"]
    for (fmt, values), g in s[s.method_label == ref].groupby(["format", "value_encoding"]):
        g = pd.concat([dense0[(dense0.format == fmt) & (dense0.value_encoding == values)], g])
        g = g.sort_values("sparsity")
        ax.plot(100 * g.sparsity, g.ratio, color=col[fmt], ls=ls.get(values, "-"), marker="o",
                ms=2.5, lw=line_width(fmt), label=f"{fmt} {values}")
        if values == "fp32" and fmt != "dense":
            be = D.crossing(list(g.sparsity), list(g.ratio))
            if be is not None:
                ax.plot([100 * be], [1.0], marker="|", ms=12, color=col[fmt])
                ax.annotate(f"{100 * be:.0f}%", (100 * be, 1.0), textcoords="offset points",
                            xytext=(2, 4), fontsize=6, color=col[fmt])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("file bytes / dense fp32 file")
    only = ", latency-only" if d.latency_only(model) else ""
    ax.set_title(f"{model}: model file size ({ref} pruning{only}); | = break-even",
                 fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def size_best_fig(d: D.StudyData, model: str) -> Figure | None:
    """File size / dense fp32 file vs sparsity (reference method): per value encoding the
    format that is smallest at the highest sparsity, and the dense fp32 file (1). The full
    figure (:func:`size_fig`) has every format."""
    s = D.size_table(d)
    s = s[s.model == model] if len(s) else s
    if s.empty:
        return None
    ref = D.reference_method(s.method_label.unique())
    g = s[(s.method_label == ref) & (s.format != "dense") & s.ratio.notna()]
    if ref is None or g.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.88)
    top = g[g.sparsity == g.sparsity.max()]
    chosen = [top[top.value_encoding == v].sort_values("ratio").iloc[0]
              for v in sorted(top.value_encoding.unique())]
    col = colors([f"{r.format} {r.value_encoding}" for r in chosen])
    ys, labels = [1.0], []
    for r in chosen:
        c = g[(g.format == r.format) & (g.value_encoding == r.value_encoding)].sort_values(
            "sparsity")
        key = f"{r.format} {r.value_encoding}"
        ax.plot(100 * c.sparsity, c.ratio, marker="o", ms=3, lw=1.4, color=col[key])
        ys += list(c.ratio)
        labels.append((100 * float(c.sparsity.iloc[-1]), float(c.ratio.iloc[-1]), key,
                       col[key]))
    ax.axhline(1.0, color="black", lw=0.9, ls="--")
    set_scale(ax, ys)
    labels.append((100 * float(g.sparsity.max()), 1.0, "dense fp32", "black"))
    direct_labels(ax, labels)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("file bytes / dense fp32 file")
    ax.set_title(f"{model}: smallest format per value encoding ({ref} pruning)", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig
