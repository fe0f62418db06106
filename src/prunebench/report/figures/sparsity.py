"""Pictures of the pruned weights: per-layer sparsity of each method, and each layer's
downsampled mask."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import data as D
from .common import colors, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def sparsity_bars_fig(d: D.StudyData, model: str, sparsity: float) -> Figure | None:
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
    col = colors(sorted(labels))
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


def masks_fig(d: D.StudyData, model: str, sparsity: float) -> Figure | None:
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
