"""What every figure shares: pyplot on the Agg backend, the PNG encoding, colours and line
widths per key (the planner's ``auto`` lines black and thick), the y scale, and the direct
labels of the short figures."""
from __future__ import annotations

import base64
import io
import math
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported when the first figure is drawn (see pyplot)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 80


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, with the report's font sizes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7,
                         "figure.autolayout": False})
    return plt


def png(fig: Figure | None) -> str | None:
    """``fig`` as a base64 PNG, closed after; None for None (nothing to draw)."""
    if fig is None:
        return None
    plt = pyplot()
    buf = io.BytesIO()
    # no bbox_inches="tight": it lays every figure out twice (half of the report's time);
    # each figure leaves room for its legend with subplots_adjust instead
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def grid(n: int, ncols: int = 3, w: float = 3.6,
         h: float = 2.8) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` axes of ``w`` x ``h`` inches, ``ncols`` a row (the spare ones
    hidden)."""
    plt = pyplot()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def colors(keys: Sequence[Any]) -> dict[Any, Any]:
    """A colour per key; the planner's ``auto`` lines are black (and drawn thick, see line_width)."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    rest = [k for k in keys if not _is_auto(k)]
    col = {k: cmap(i % cmap.N) for i, k in enumerate(rest)}
    col.update({k: "black" for k in keys if _is_auto(k)})
    return col


def _is_auto(key: object) -> bool:
    return str(key) == "auto" or str(key).split(" / ")[-1].startswith("auto")


def line_width(key: object) -> float:
    """The planner's ``auto`` lines thick, the others thin."""
    return 2.2 if _is_auto(key) else 1.0


#: a y range up to this max/min ratio is drawn on a linear axis (from 0), a wider one on log
LINEAR_UP_TO = 10.0


def axis_scale(values: Iterable[float | None]) -> str:
    """"linear" when the positive ``values`` span at most :data:`LINEAR_UP_TO`x, else "log"."""
    v = [float(x) for x in values if x is not None and np.isfinite(x) and x > 0]
    return "linear" if not v or max(v) / min(v) <= LINEAR_UP_TO else "log"


def set_scale(ax: Axes, values: Sequence[float]) -> None:
    """The y axis of ``ax`` on the scale :func:`axis_scale` chooses for ``values``."""
    if axis_scale(values) == "log":
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.12 * max(float(x) for x in values))


def direct_labels(ax: Axes, items: list[tuple[float, float, str, Any]],
                  gap: float = 0.07) -> None:
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
