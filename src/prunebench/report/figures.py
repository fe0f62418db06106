"""Matplotlib figures of a report, each returned as a base64 PNG (or None when the database
holds nothing to draw), so the page embeds them and opens offline."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

from . import data as D

DPI = 80


def pyplot():
    """matplotlib's pyplot on the Agg backend, with the report's font sizes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7,
                         "figure.autolayout": False})
    return plt


def _png(fig) -> str | None:
    if fig is None:
        return None
    plt = pyplot()
    buf = io.BytesIO()
    # no bbox_inches="tight": it lays every figure out twice (half of the report's time);
    # each figure leaves room for its legend with subplots_adjust instead
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, ncols: int = 3, w: float = 3.6, h: float = 2.8):
    plt = pyplot()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _colors(keys) -> dict:
    """A colour per key; the planner's ``auto`` lines are black (and drawn thick, see _lw)."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    rest = [k for k in keys if not _is_auto(k)]
    col = {k: cmap(i % cmap.N) for i, k in enumerate(rest)}
    col.update({k: "black" for k in keys if _is_auto(k)})
    return col


def _is_auto(key) -> bool:
    return str(key) == "auto" or str(key).split(" / ")[-1].startswith("auto")


def _lw(key) -> float:
    return 2.2 if _is_auto(key) else 1.0


def accuracy_fig(d: D.StudyData):
    """Accuracy vs sparsity per method (mean ± std over seeds), after fine-tuning (solid) and
    before (dashed), with the matched dense control and the int8 control as markers."""
    acc = D.accuracy_table(d)
    models = [m for m in d.accuracy_models if (acc.model == m).any()]
    if not models:
        return None
    fig, axes = _grid(len(models))
    labels = sorted(acc.method_label.unique())
    col = _colors(labels)
    ctl = D.controls_table(d)
    q = D.quant_table(d)
    for ax, model in zip(axes, models):
        a = acc[acc.model == model]
        names = []
        for label, g in a.groupby("method_label"):
            g = g.sort_values("sparsity")
            ax.errorbar(100 * g.sparsity, 100 * g.acc_mean, yerr=100 * g.acc_std, marker="o",
                        ms=3, lw=1.2, capsize=2, color=col[label])
            ax.plot(100 * g.sparsity, 100 * g.before_mean, ls="--", lw=0.8, color=col[label],
                    alpha=0.7)
            names.append((100 * float(g.sparsity.iloc[-1]), 100 * float(g.acc_mean.iloc[-1]),
                          label, col[label]))
        for _, r in ctl[ctl.model == model].iterrows():
            ax.errorbar([100 * r.sparsity], [100 * r.control_mean], yerr=[100 * r.control_std],
                        marker="*", ms=9, color="black", ls="none",
                        label=f"dense, matched params ({int(r.control_params or 0):,})")
        for _, r in q[q.model == model].iterrows():
            ax.errorbar([0], [100 * r.acc_mean], yerr=[100 * r.acc_std], marker="D", ms=5,
                        color="grey", ls="none", label="int8 dynamic quant.")
        ax.set_title(f"{model} (n={int(a.n.max())} seeds)")
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        _direct_labels(ax, names)
        if ax.get_legend_handles_labels()[0]:   # the controls' markers
            ax.legend(loc="lower left")
    fig.suptitle("Accuracy vs sparsity: solid = after fine-tuning (mean ± std), dashed = "
                 "before fine-tuning")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.86, wspace=0.3, hspace=0.45)
    return fig


def latency_fig(d: D.StudyData, model: str):
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
    col = _colors(pairs)
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
                        lw=_lw(pair), label=pair)
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


def size_fig(d: D.StudyData, model: str):
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
    col = _colors(fmts)
    ls = {"fp32": "-", "fp16": "--", "int8": ":"}
    dense0 = s[s.method_label == "dense"]
    for (fmt, values), g in s[s.method_label == ref].groupby(["format", "value_encoding"]):
        g = pd.concat([dense0[(dense0.format == fmt) & (dense0.value_encoding == values)], g])
        g = g.sort_values("sparsity")
        ax.plot(100 * g.sparsity, g.ratio, color=col[fmt], ls=ls.get(values, "-"), marker="o",
                ms=2.5, lw=_lw(fmt), label=f"{fmt} {values}")
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


def pareto_fig(d: D.StudyData, model: str):
    """Accuracy vs batch-1 latency and vs file size; the Pareto front in red."""
    plt = pyplot()
    pts_l = D.pareto_points(d, model, "latency")
    pts_s = D.pareto_points(d, model, "size")
    if not pts_l and not pts_s:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for ax, pts, xl in ((axes[0], pts_l, "median latency at batch 1 (ms)"),
                        (axes[1], pts_s, "model file (bytes)")):
        if not pts:
            ax.set_visible(False)
            continue
        xs, ys = [p[0] for p in pts], [100 * p[1] for p in pts]
        ax.scatter(xs, ys, s=8, color="0.6", label="measured configurations")
        front = D.pareto_front(pts)
        ax.plot([p[0] for p in front], [100 * p[1] for p in front], color="tab:red",
                marker="o", ms=4, lw=1.2, drawstyle="steps-post", label="Pareto front")
        for p in front[-4:]:
            ax.annotate(p[2], (p[0], 100 * p[1]), fontsize=5.5, xytext=(3, -8),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right")
    fig.suptitle(f"{model}: accuracy vs latency and vs size (up and left is better)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    return fig


def sparsity_bars_fig(d: D.StudyData, model: str, sparsity: float):
    """Per-layer sparsity of each method at ``sparsity`` (first seed)."""
    p = d.prune[(d.prune.model == model) & np.isclose(d.prune.sparsity.astype(float), sparsity)]
    if p.empty:
        return None
    p = p[p.seed == p.seed.min()]
    layer_names = [lay["name"] for lay in p.layers.iloc[0]]
    labels = list(p.method_label)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(layer_names) * len(labels) ** 0.5 + 2)
                                    + 1.5, 3.2))
    fig.subplots_adjust(left=0.1, right=0.78, bottom=0.35, top=0.9)
    width = 0.8 / max(1, len(labels))
    col = _colors(sorted(labels))
    x = np.arange(len(layer_names))
    for i, (_, r) in enumerate(p.iterrows()):
        sp = {lay["name"]: lay["sparsity"] for lay in r.layers}
        ax.bar(x + i * width, [100 * sp.get(n, 0.0) for n in layer_names], width,
               color=col[r.method_label], label=r.method_label)
    ax.set_xticks(x + width * (len(labels) - 1) / 2)
    ax.set_xticklabels(layer_names, rotation=45, ha="right", fontsize=6)
    ax.set_ylabel("sparsity (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{model}: per-layer sparsity at {100 * sparsity:.0f}% requested")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return fig


def masks_fig(d: D.StudyData, model: str, sparsity: float):
    """Nonzero density of each pruned layer (white = all pruned), one row per method (the
    eight largest layers of models with more)."""
    rows = [(label, m) for (mod, label, s), m in d.masks.items()
            if mod == model and np.isclose(s, sparsity) and m]
    if not rows:
        return None
    rows.sort(key=lambda t: t[0])
    # at most MAX_LAYERS pictures a row: the largest layers
    MAX_LAYERS = 8
    rows = [(label, sorted(m, key=lambda lay: -lay["shape"][0] * lay["shape"][1])[:MAX_LAYERS])
            for label, m in rows]
    ncols = max(len(m) for _, m in rows)
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.0 * ncols + 0.6, 2.0 * len(rows)),
                             squeeze=False)
    for i, (label, layers) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(layers):
                ax.set_visible(False)
                continue
            lay = layers[j]
            gr, gc = lay["grid"]
            dens = np.frombuffer(bytes.fromhex(lay["density"]), dtype=np.uint8).reshape(gr, gc)
            ax.imshow(dens / 255.0, cmap="Greys", vmin=0, vmax=1, aspect="auto",
                      interpolation="nearest")
            ax.set_title(f"{lay['name']}\n{lay['shape'][0]}x{lay['shape'][1]}", fontsize=6)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{model} at {100 * sparsity:.0f}%: nonzero density per layer "
                 f"(rows x fan-in, downsampled; black = dense)", fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.03, top=0.8, wspace=0.15,
                        hspace=0.5)
    return fig


def profile_fig(d: D.StudyData, model: str):
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
    col = _colors(cols)
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


# ------------------------------------------------------------------------------ short figures
# A thesis figure holds a few lines with their names beside them: the best pair of each engine
# (or the smallest format per value encoding) and the reference; the full figures keep the rest.

#: a y range up to this max/min ratio is drawn on a linear axis (from 0), a wider one on log
LINEAR_UP_TO = 10.0


def axis_scale(values) -> str:
    """"linear" when the positive ``values`` span at most :data:`LINEAR_UP_TO`x, else "log"."""
    v = [float(x) for x in values if x is not None and np.isfinite(x) and x > 0]
    return "linear" if not v or max(v) / min(v) <= LINEAR_UP_TO else "log"


def _set_scale(ax, values) -> None:
    if axis_scale(values) == "log":
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.12 * max(float(x) for x in values))


def _direct_labels(ax, items: list[tuple[float, float, str, object]], gap: float = 0.07) -> None:
    """Write each (x, y, text, colour) at the right of its line's last point, pushed apart
    vertically (in axes fractions) so that no two overlap; call after the y scale is set."""
    from matplotlib.transforms import blended_transform_factory

    if not items:
        return
    lo, hi = ax.get_ylim()
    log = ax.get_yscale() == "log"
    frac = [((math.log(y) - math.log(lo)) / (math.log(hi) - math.log(lo)) if log else
             (y - lo) / (hi - lo)) for _, y, _, _ in items]
    order = sorted(range(len(items)), key=lambda i: frac[i])
    placed: list[float] = []
    for i in order:
        f = frac[i] if not placed else max(frac[i], placed[-1] + gap)
        placed.append(f)
    top = placed[-1]
    if top > 0.97:  # shift the stack down when it runs out of the axes
        placed = [p - (top - 0.97) for p in placed]
    xmax = max(x for x, _, _, _ in items)
    x0, x1 = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if x0 <= t <= max(x1, xmax)]
    ax.set_xlim(x0, max(x1, xmax + 0.5 * (xmax - x0)))
    ax.set_xticks(ticks)   # no ticks over the labels' room (sparsity above 100%)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for i, f in zip(order, placed):
        x, y, text, color = items[i]
        ax.annotate(text, xy=(x, y), xytext=(x + 0.03 * (xmax - x0), f), textcoords=trans,
                    fontsize=6.5, color=color, va="center",
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 0.4})


def latency_best_fig(d: D.StudyData, model: str):
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
    col = _colors(sorted(g.pair.unique()))
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
        _set_scale(ax, ys)
        labels.append((100 * float(h.sparsity.max()), 1.0, f"dense: {dense}", "black"))
        _direct_labels(ax, labels)
        ax.set_title(f"batch {b}", fontsize=8)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("speedup over the fastest dense engine (x)")
        ax.grid(alpha=0.3, which="both")
    only = " (latency-only: random weights)" if d.latency_only(model) else ""
    fig.suptitle(f"{model}{only}: best format per engine, {ref} pruning", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.84, wspace=0.3)
    return fig


def size_best_fig(d: D.StudyData, model: str):
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
    col = _colors([f"{r.format} {r.value_encoding}" for r in chosen])
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
    _set_scale(ax, ys)
    labels.append((100 * float(g.sparsity.max()), 1.0, "dense fp32", "black"))
    _direct_labels(ax, labels)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("file bytes / dense fp32 file")
    ax.set_title(f"{model}: smallest format per value encoding ({ref} pruning)", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


# ------------------------------------------------------------------------------ PNG for the page


def accuracy(d: D.StudyData) -> str | None:
    return _png(accuracy_fig(d))


def latency(d: D.StudyData, model: str) -> str | None:
    """The full latency figure (every engine/format pair); :func:`latency_best` is the short
    one."""
    return _png(latency_fig(d, model))


def latency_best(d: D.StudyData, model: str) -> str | None:
    return _png(latency_best_fig(d, model))


def size(d: D.StudyData, model: str) -> str | None:
    return _png(size_fig(d, model))


def size_best(d: D.StudyData, model: str) -> str | None:
    return _png(size_best_fig(d, model))


def pareto(d: D.StudyData, model: str) -> str | None:
    return _png(pareto_fig(d, model))


def sparsity_bars(d: D.StudyData, model: str, sparsity: float) -> str | None:
    return _png(sparsity_bars_fig(d, model, sparsity))


def masks(d: D.StudyData, model: str, sparsity: float) -> str | None:
    return _png(masks_fig(d, model, sparsity))


def profile(d: D.StudyData, model: str) -> str | None:
    return _png(profile_fig(d, model))
