"""Accuracy figures: accuracy vs sparsity per method with the controls, and the Pareto
fronts of accuracy against latency and file size."""
from __future__ import annotations

from typing import TYPE_CHECKING


from .. import data as D
from .common import colors, direct_labels, grid, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def accuracy_fig(d: D.StudyData) -> Figure | None:
    """Accuracy vs sparsity per method (mean ± std over seeds), after fine-tuning (solid) and
    before (dashed), with the matched dense control and the int8 control as markers."""
    acc = D.accuracy_table(d)
    models = [m for m in d.accuracy_models if (acc.model == m).any()]
    if not models:
        return None
    fig, axes = grid(len(models))
    labels = sorted(acc.method_label.unique())
    col = colors(labels)
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
        direct_labels(ax, names)
        if ax.get_legend_handles_labels()[0]:   # the controls' markers
            ax.legend(loc="lower left")
    fig.suptitle("Accuracy vs sparsity: solid = after fine-tuning (mean ± std), dashed = "
                 "before fine-tuning")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.86, wspace=0.3, hspace=0.45)
    return fig


def pareto_fig(d: D.StudyData, model: str) -> Figure | None:
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
