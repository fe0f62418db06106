"""The report's answer to its research question: at most ten sentences computed from the rows,
and the decision table most of them rest on.

Decision table
--------------
Per model and sparsity band (:data:`BANDS`), among the latency rows of the reference
unstructured method (the one the crossover table reads) at the smallest batch and thread count:
the (engine, format, values) with the highest speedup over the fastest dense engine
(``speedup_best`` of :func:`~prunebench.report.data.latency_table`), its file against the
unpruned model's dense fp32 file, and the accuracy change it costs: per seed, the pruned
model's accuracy minus that seed's dense accuracy, mean ± std over seeds. Models judged by a
task (``extra.metrics``: MiniLM, the char-LSTM) show their task metrics instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from ..formats import approximating_formats
from . import data as D
from .findings import pct, pct1

QUESTION = ("Once a network is pruned, which way of storing its weights makes inference "
            "smaller and faster on ordinary CPUs, and what does it cost in accuracy?")
#: sparsity bands of the decision table: [low, high)
BANDS = ((0.0, 0.75), (0.75, 0.925), (0.925, 1.0))
MAX_SENTENCES = 10
#: task metrics shown instead of accuracy: (key, label, higher is better, format)
TASK_METRICS = (("lee_spearman", "Lee Spearman", True, "{:.3f}"),
                ("polarity_accuracy", "polarity probe", True, "{:.1%}"),
                ("bits_per_char", "bits/char", False, "{:.2f}"))

DECISION_COLUMNS = ["model", "band", "sparsity", "method_label", "batch", "threads", "engine",
                    "format", "values", "pair", "speedup_best", "best_dense", "beats",
                    "size_ratio", "acc_change", "acc_std", "acc_n", "unconverged", "task",
                    "latency_only"]


@dataclass(frozen=True)
class Conclusion:
    text: str
    table: str                 # key of findings.TABLES
    engine_dependent: bool     # would the sentence change with the engines measured?


def band_label(sparsities: Iterable[float]) -> str:
    s = sorted(set(float(x) for x in sparsities))
    return pct(s[0]) if len(s) == 1 else f"{pct(s[0])}-{pct(s[-1])}"


def task_models(d: D.StudyData) -> list[str]:
    """Models whose prune rows carry task metrics (``extra.metrics``)."""
    tm = D.task_metrics_table(d)
    return list(dict.fromkeys(tm.model)) if len(tm) else []


def accuracy_change(d: D.StudyData, model: str, label: str, sparsity: float,
                    values: str = "fp32") -> tuple[float, float, int, int]:
    """(mean, std, seeds, unconverged seeds) of accuracy minus the same seed's dense accuracy.

    fp32 values: the prune rows' own accuracy; other value encodings: the accuracy of the
    model loaded back from its file in that encoding (size rows, lossless layouts), mean per
    seed. NaN when the model has no accuracy (latency-only or task-judged)."""
    p = d.prune
    p = p[(p.model == model) & (p.method_label == label)
          & np.isclose(p.sparsity.astype(float), sparsity)]
    if p.empty:
        return (np.nan, np.nan, 0, 0)
    unconverged = D.unconverged_count(p)
    dense = _dense_by_seed(d, model)
    if values == "fp32":
        acc = {int(s): float(a) for s, a in zip(p.seed, p.accuracy) if a is not None
               and not pd.isna(a)}
    else:
        s = d.size
        s = s[(s.model == model) & (s.method_label == label) & (s.value_encoding == values)
              & ~s.format.isin(approximating_formats()) & np.isclose(s.sparsity.astype(float), sparsity)]
        s = s[s.accuracy.notna()]
        acc = {int(k): float(v) for k, v in s.groupby("seed").accuracy.mean().items()}
    diffs = [a - dense[k] for k, a in acc.items() if k in dense]
    if not diffs:
        return (np.nan, np.nan, 0, unconverged)
    x = pd.Series(diffs, dtype=float)
    return (float(x.mean()), D.sample_std(x), len(x), unconverged)


def _dense_by_seed(d: D.StudyData, model: str) -> dict[int, float]:
    """Each seed's dense accuracy: the prune rows' ``accuracy_dense``, else the dense row."""
    p = d.prune[d.prune.model == model]
    out: dict[int, float] = {}
    for _, r in p.iterrows():
        v = r.accuracy_dense if r.method_label != "dense" else r.accuracy
        if v is not None and not pd.isna(v):
            out.setdefault(int(r.seed), float(v))
    return out


def task_cell(d: D.StudyData, model: str, label: str, sparsity: float) -> str | None:
    """"Lee Spearman 0.340 (dense 0.508), ..." for a task-judged model, else None."""
    tm = D.task_metrics_table(d)
    if tm.empty or not (tm.model == model).any():
        return None
    at = tm[(tm.model == model) & (tm.method_label == label) & np.isclose(tm.sparsity, sparsity)]
    dense = tm[(tm.model == model) & (tm.method_label == "dense")]
    parts = []
    for key, name, _, f in TASK_METRICS:
        if key not in tm.columns or at.empty or pd.isna(at[key].iloc[0]):
            continue
        txt = f"{name} {f.format(float(at[key].iloc[0]))}"
        if len(dense) and not pd.isna(dense[key].iloc[0]):
            txt += f" (dense {f.format(float(dense[key].iloc[0]))})"
        parts.append(txt)
    n = int(at.n.iloc[0]) if len(at) else 0
    return ", ".join(parts) + f"; n={n}" if parts else None


@D.cached_table
def decision_table(d: D.StudyData) -> pd.DataFrame:
    """See the module docstring: one row per model and sparsity band."""
    lat = D.latency_table(d)
    if lat.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    lat = lat[(lat.method_label != "dense") & lat.format_used & lat.speedup_best.notna()]
    st = D.size_table(d)
    rows = []
    for model, g in lat.groupby("model", sort=False):
        if d.is_control(model):
            continue
        ref = D.reference_method(g.method_label.unique())
        if ref is None:   # only the dense model: nothing pruned to choose from
            continue
        g = g[g.method_label == ref]
        # one machine (the first), the smallest batch and thread count: latency per input
        g = g[g.machine_id == sorted(g.machine_id.unique())[0]] if "machine_id" in g else g
        g = g[(g.batch == g.batch.min()) & (g.threads == g.threads.min())]
        for lo, hi in BANDS:
            b = g[(g.sparsity.astype(float) >= lo) & (g.sparsity.astype(float) < hi)]
            if b.empty:
                continue
            best = b.sort_values(["sparsity", "pair"]).loc[lambda t: t.speedup_best.idxmax()]
            sp = float(best.sparsity)
            size = st[(st.model == model) & (st.method_label == ref)
                      & np.isclose(st.sparsity.astype(float), sp) & (st.format == best.format)
                      & (st.value_encoding == best.value_encoding)] if len(st) else st
            mean, std, n, unconv = accuracy_change(d, model, ref, sp, best.value_encoding)
            rows.append({"model": model, "band": band_label(b.sparsity), "sparsity": sp,
                         "method_label": ref, "batch": int(best.batch),
                         "threads": int(best.threads), "engine": best.engine,
                         "format": best.format, "values": best.value_encoding,
                         "pair": best.pair, "speedup_best": float(best.speedup_best),
                         "best_dense": best.best_dense,
                         "beats": bool(best.speedup_best >= D.BEATS),
                         "size_ratio": float(size.ratio.iloc[0]) if len(size) else np.nan,
                         "acc_change": mean, "acc_std": std, "acc_n": n,
                         "unconverged": unconv, "task": task_cell(d, model, ref, sp),
                         "latency_only": d.latency_only(model)})
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def accuracy_text(r: pd.Series) -> str:
    """The decision table's accuracy cell."""
    if isinstance(r.task, str):
        return r.task
    if r.acc_n == 0 or pd.isna(r.acc_change):
        return "n/a (latency-only: random weights)" if r.latency_only else "n/a"
    txt = f"{100 * r.acc_change:+.1f} ± {100 * r.acc_std:.1f} pts (n={int(r.acc_n)})"
    if r.unconverged:
        txt += f", not converged on {int(r.unconverged)} seed(s)"
    return txt


# ------------------------------------------------------------------------------ sentences


def compute(d: D.StudyData) -> list[Conclusion]:
    out: list[Conclusion] = []
    for fn in (_speed, _engine, _baseline, _size, _accuracy, _unconverged, _tasks, _controls):
        out.extend(fn(d))
    return out[:MAX_SENTENCES]


def _seeds_timed(d: D.StudyData) -> int:
    lat = d.latency
    return int(lat.seed.nunique()) if len(lat) and "seed" in lat else 0


def _speed(d: D.StudyData) -> list[Conclusion]:
    dt = decision_table(d)
    if dt.empty:
        return []
    per = dt.loc[dt.groupby("model", sort=False).speedup_best.idxmax()]
    win, lose = per[per.beats], per[~per.beats]
    batch = int(per.batch.min())
    text = (f"At batch {batch}, a sparse format runs at least {round(100 * (D.BEATS - 1))}% "
            f"faster than the fastest dense engine for {len(win)} of {len(per)} models")
    if len(win):
        text += ": " + "; ".join(f"{r.model} with {r.pair} at {pct(r.sparsity)} "
                                 f"({r.speedup_best:.2f}x {r.best_dense})"
                                 for _, r in win.iterrows())
    if len(lose):
        text += ("; " if len(win) else ": ") + "; ".join(
            f"{r.model} is best kept dense on {r.best_dense} (closest: {r.pair} at "
            f"{pct(r.sparsity)}, {r.speedup_best:.2f}x)" for _, r in lose.iterrows())
    text += (f" ({per.method_label.iloc[0]} pruning; latency timed on "
             f"{_seeds_timed(d)} seed(s), so no seed spread)")
    return [Conclusion(text + ".", "decision", True)]


def _engine(d: D.StudyData) -> list[Conclusion]:
    """How much the engine alone moves the speed of one format at one sparsity."""
    lat = D.latency_table(d)
    if lat.empty:
        return []
    lat = lat[(lat.method_label != "dense") & ~lat.format.isin(["dense", "auto"])
              & lat.format_used & lat.speedup.notna()]
    best = None
    for model, g in lat.groupby("model", sort=False):
        ref = D.reference_method(g.method_label.unique())
        g = g[(g.method_label == ref) & (g.batch == g.batch.min()) & (g.threads == g.threads.min())]
        for (sp, fmt, values), h in g.groupby(["sparsity", "format", "value_encoding"]):
            if h.engine.nunique() < 2:
                continue
            fast, slow = h.loc[h.speedup.idxmax()], h.loc[h.speedup.idxmin()]
            ratio = float(fast.speedup / slow.speedup)
            if best is None or ratio > best[0]:
                best = (ratio, model, float(sp), fmt, fast.engine, slow.engine)
    dt = decision_table(d)
    if best is None:
        return []
    engines = dt.engine.value_counts()
    text = (f"Which storage wins depends on the engine that runs it: the same format at the "
            f"same sparsity ran up to {best[0]:.1f}x slower on one engine than on another "
            f"({best[3]} on {best[1]} at {pct(best[2])}: {best[4]} vs {best[5]}), and the "
            f"decision table's winners use {len(engines)} engine(s) ("
            + ", ".join(f"{e} {n}" for e, n in engines.items()) + " of "
            f"{len(dt)} rows)")
    return [Conclusion(text + ".", "latency", True)]


def _baseline(d: D.StudyData) -> list[Conclusion]:
    x = D.crossover_table(d)
    if x.empty:
        return []
    n_t, n_b = int(x.crossover_torch.notna().sum()), int(x.crossover.notna().sum())
    ratio = (x.torch_ms / x.best_dense_ms).groupby([x.model, x.batch]).first()
    text = (f"The reference matters as much: {n_t} of {len(x)} sparse engine/format pairs "
            f"beat dense PyTorch somewhere, but only {n_b} beat the fastest dense engine, "
            f"which runs the unpruned models {ratio.min():.2f}-{ratio.max():.2f}x faster than "
            "dense PyTorch")
    return [Conclusion(text + ".", "crossover", True)]


def _size(d: D.StudyData) -> list[Conclusion]:
    x = D.size_crossover_table(d)
    if x.empty:
        return []
    x = x[x["values"] == "fp32"]
    parts = []
    for model, g in x.groupby("model", sort=False):
        if d.is_control(model):
            continue
        ref = D.reference_method(g.method_label.unique())
        g = g[(g.method_label == ref) & g.crossover.notna()]
        if g.empty:
            parts.append(f"{model}: no format up to the highest sparsity")
            continue
        first = g.sort_values(["crossover", "ratio_at_max"]).iloc[0]
        small = g.loc[g.ratio_at_max.idxmin()]
        parts.append(f"{model}: {first.format} from {pct(first.crossover)}, smallest "
                     f"{small.format} at {small.ratio_at_max:.2f}x the dense file at "
                     f"{pct(small.max_sparsity)}")
    if not parts:
        return []
    text = ("Smaller is engine-independent and comes first: with fp32 values the pruned model's "
            "file is smaller than the dense file for " + "; ".join(parts)
            + " (file sizes are exact, one seed)")
    return [Conclusion(text + ".", "size", False)]


def _accuracy(d: D.StudyData) -> list[Conclusion]:
    """Per accuracy model and reference method: the highest sparsity whose converged
    fine-tunes stay within 1 point of dense (paired by seed), and the cost at the highest."""
    acc = D.accuracy_table(d)
    parts = []
    label = None
    for model in d.accuracy_models:
        a = acc[(acc.model == model) & (acc.sparsity > 0)]
        if a.empty:
            continue
        label = D.reference_method(a.method_label.unique())
        if label is None:
            continue
        pts = []
        for s in sorted(a[a.method_label == label].sparsity.unique()):
            mean, std, n, unconv = accuracy_change(d, model, label, float(s))
            if n and not unconv:
                pts.append((float(s), mean, std, n))
        if not pts:
            continue
        within = []   # the sparsities up to the first one that loses more than a point
        for p in pts:
            if p[1] < -0.01:
                break
            within.append(p)
        top = pts[-1]
        txt = (f"{model} stays within 1 point of dense up to {pct(within[-1][0])} "
               f"({100 * within[-1][1]:+.1f} ± {100 * within[-1][2]:.1f} points, "
               f"n={within[-1][3]})" if within else f"{model} loses more than 1 point already "
               f"at {pct(pts[0][0])} ({100 * pts[0][1]:+.1f} ± {100 * pts[0][2]:.1f} points, "
               f"n={pts[0][3]})")
        if not within or top[0] != within[-1][0]:
            txt += (f" and changes by {100 * top[1]:+.1f} ± {100 * top[2]:.1f} points at "
                    f"{pct(top[0])}")
        parts.append(txt)
    if not parts:
        return []
    text = (f"The accuracy cost ({label} pruning after fine-tuning, change against each seed's "
            f"dense model, mean ± std over seeds, converged fine-tunes only): " + "; ".join(parts))
    return [Conclusion(text + ".", "accuracy", False)]


def _unconverged(d: D.StudyData) -> list[Conclusion]:
    acc = D.accuracy_table(d)
    f = acc[(acc.unconverged > 0) & (acc.sparsity > 0)] if len(acc) else acc
    if f.empty:
        return []
    f = f.drop_duplicates(["model", "method_label", "sparsity"])
    where = ", ".join(f"{m} {lab} at {pct(s)} ({int(u)}/{int(n)} seeds"
                      + (f", {int(c)} at chance" if c else "") + ")"
                      for m, lab, s, u, n, c in zip(f.model, f.method_label, f.sparsity,
                                                    f.unconverged, f.n, f.at_chance))
    return [Conclusion(f"{len(f)} pruned configuration(s) had not converged when their "
                       "fine-tuning budget ran out (or reached a plateau at chance) and are "
                       f"not concluded from: {where}.", "accuracy", False)]


def _tasks(d: D.StudyData) -> list[Conclusion]:
    tm = D.task_metrics_table(d)
    out = []
    for model in task_models(d):
        g = tm[(tm.model == model) & (tm.method_label != "dense")]
        dense = tm[(tm.model == model) & (tm.method_label == "dense")]
        key = next((k for k, *_ in TASK_METRICS if k in g.columns and g[k].notna().any()
                    and len(dense) and not pd.isna(dense[k].iloc[0])), None)
        if g.empty or key is None:
            continue
        name, higher, f = next((n, h, f) for k, n, h, f in TASK_METRICS if k == key)
        base = float(dense[key].iloc[0])
        top = g.sort_values("sparsity").iloc[-1]
        share = f" ({float(top[key]) / base:.0%} of dense)" if higher and base else ""
        out.append(Conclusion(
            f"{model} is pretrained and judged by its task, not by accuracy: {name} "
            f"{f.format(base)} dense, {f.format(float(top[key]))} at {pct(top.sparsity)} "
            f"{top.method_label}{share} (n={int(top.n)} seed(s), no spread).", "tasks", False))
    return out


def _controls(d: D.StudyData) -> list[Conclusion]:
    c = D.controls_table(d)
    if c.empty:
        return []
    wins = c[c.difference > 0]
    parts = [f"{r.model} {100 * r.difference:+.1f} points ({pct1(r.pruned_mean)} ± "
             f"{100 * r.pruned_std:.1f} vs {pct1(r.control_mean)} ± {100 * r.control_std:.1f}, "
             f"n={int(r.n)}" + (", not converged" if r.unconverged else "") + ")"
             for _, r in c.iterrows()]
    return [Conclusion(f"Pruning to {pct(c.sparsity.iloc[0])} beats training a dense model of "
                       f"the same parameter count for {len(wins)} of {len(c)} models: "
                       + "; ".join(parts) + ".", "controls", False)]
