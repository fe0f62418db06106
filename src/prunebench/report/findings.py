"""Findings: sentences computed from stored rows, each with its numbers and the table it
comes from. Nothing here is written by hand: change the rows and the sentences change."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import data as D

TABLES = {
    "decision": "Decision table: best storage per model and sparsity band",
    "accuracy": "Table 1: accuracy vs sparsity",
    "dense": "Table 2: dense engines",
    "crossover": "Table 3: latency crossover",
    "size": "Table 4: file size crossover",
    "layer-size": "Table 5: per-layer size break-even",
    "controls": "Table 6: matched dense controls",
    "quant": "Table 7: int8 dynamic quantization",
    "profile": "Table 8: per-layer time",
    "failures": "Table 9: failed and skipped jobs",
    "latency": "Table 10: every latency row",
    "tasks": "Table 11: task metrics (models judged by a task, not by accuracy)",
    "dead-units": "Table 12: dead units beside accuracy",
}


@dataclass(frozen=True)
class Finding:
    text: str
    table: str          # key of TABLES; the HTML links to #table-<key>

    @property
    def where(self) -> str:
        return TABLES[self.table]


def pct(x: float | None) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.0f}%"


def pct1(x: float | None) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.1f}%"


def model_name(d: D.StudyData, model: str) -> str:
    return f"{model} (latency-only)" if d.latency_only(model) else model


def compute(d: D.StudyData) -> list[Finding]:
    out: list[Finding] = []
    for fn in (latency_findings, auto_findings, size_findings, accuracy_findings,
               task_findings, control_findings, quant_findings, profile_findings,
               failure_findings):
        out.extend(fn(d))
    return out


def latency_findings(d: D.StudyData) -> list[Finding]:
    """Per model and batch: which sparse engine/format first beats the fastest dense run (by at
    least 5%), from what sparsity; and how the dense engines compare."""
    x = D.crossover_table(d)
    out = []
    dense = D.dense_engines_table(d)
    for model, g in dense.groupby("model", sort=False):
        if d.is_control(model) or not (g.engine == "torch-dense").any():
            continue
        fastest = g.loc[g.speedup.astype(float).groupby(g.batch).idxmax()]
        parts = [f"{r.engine} at batch {int(r.batch)} ({r.p50_ms:.3g} ms, {r.speedup:.2f}x "
                 f"dense PyTorch)" for _, r in fastest.iterrows()]
        out.append(Finding(f"The fastest dense run of the unpruned {model_name(d, model)}: "
                           + "; ".join(parts) + ". Sparse formats are measured against it.",
                           "dense"))
    if x.empty:
        return out
    for (model, batch), g in x.groupby(["model", "batch"], sort=False):
        beat = g[g.crossover.notna()].sort_values(["crossover", "speedup_at_crossover"],
                                                  ascending=[True, False])
        never = g[g.crossover.isna()]
        top = float(g.max_sparsity.max())
        r0 = g.iloc[0]
        base = (f"the fastest dense run ({r0.best_dense}, {r0.best_dense_ms:.3g} ms"
                + ("" if r0.best_dense == "torch-dense" else
                   f"; dense PyTorch {r0.torch_ms:.3g} ms") + ")")
        where = (f"On this machine, {model_name(d, model)} at batch {batch} "
                 f"({r0.method_label} pruning)")
        if beat.empty:
            best = g.loc[g.best_speedup.idxmax()]
            out.append(Finding(f"{where}: no sparse engine/format pair beats {base} by 5% up "
                               f"to {pct(top)} sparsity ({len(g)} pairs measured); the closest "
                               f"is {best.pair} at {best.best_speedup:.2f}x "
                               f"({pct(best.best_at)} sparsity).", "crossover"))
            continue
        first = beat.iloc[0]
        theo = D.theoretical_speedup(d, model, first.method_label, first.best_at)
        parts = [f"{first.pair} beats {base} only from {pct(first.crossover)} sparsity "
                 f"({first.speedup_at_crossover:.2f}x there, best {first.best_speedup:.2f}x at "
                 f"{pct(first.best_at)}" + (f", where the MAC count promises {theo:.1f}x"
                                            if theo else "") + ")"]
        for _, r in beat.iloc[1:3].iterrows():
            parts.append(f"{r.pair} from {pct(r.crossover)}")
        tail = (f"; {len(never)} of {len(g)} sparse pairs never do up to {pct(top)}" if len(never)
                else f"; all {len(g)} sparse pairs do by {pct(beat.crossover.max())}")
        out.append(Finding(f"{where}, " + ", ".join(parts) + tail + ".", "crossover"))
    return out


def auto_findings(d: D.StudyData) -> list[Finding]:
    """Per model and batch: the per-layer planner's model (format ``auto``, native engine)
    against dense PyTorch and against the best single-format native model at each sparsity
    (reference method, first thread count, one machine)."""
    lat = D.latency_table(d)
    if lat.empty or not (lat.format == "auto").any():
        return []
    out = []
    lat = lat[(lat.value_encoding == "fp32") & (lat.method_label != "dense")]
    for (mid, model, batch), g in lat.groupby(["machine_id", "model", "batch"], sort=False):
        g = g[g.threads == g.threads.min()]
        ref = D.reference_method(list(g.method_label.unique()))
        g = g[g.method_label == ref]
        auto = g[g.format == "auto"].sort_values("sparsity")
        if auto.empty:
            continue
        singles = g[(g.engine == "native") & ~g.format.isin(["auto", "dense"])]
        vs_dense, vs_single = [], []
        for _, r in auto.iterrows():  # latency ratios from the side-by-side speedups
            vs_dense.append((1.0 / float(r.speedup), r.sparsity))
            same = singles[singles.sparsity == r.sparsity]
            if len(same):
                best = same.loc[same.speedup.astype(float).idxmax()]
                vs_single.append((float(best.speedup) / float(r.speedup), r.sparsity,
                                  best.format))
        worst_d = max(vs_dense)
        text = (f"The per-layer planner (auto, native) on {model_name(d, model)} at batch "
                f"{batch} ({ref} pruning): {worst_d[0]:.2f}x the latency of the unpruned model "
                f"on dense PyTorch at worst ({pct(worst_d[1])} sparsity), "
                f"{min(vs_dense)[0]:.2f}x at best ({pct(min(vs_dense)[1])})")
        if vs_single:
            worst_s = max(vs_single)
            text += (f"; against the fastest single-format native model at the same sparsity, "
                     f"{worst_s[0]:.2f}x at worst ({worst_s[2]} at {pct(worst_s[1])}) and "
                     f"{min(vs_single)[0]:.2f}x at best")
        out.append(Finding(text + " (1.00x = as fast; the goal is <= 1.05x on both).",
                           "latency"))
    return out


#: the headline task metric of each task-judged model, and whether higher is better
HEADLINE = {"lee_spearman": True, "bits_per_char": False}


def task_findings(d: D.StudyData) -> list[Finding]:
    """Per task-judged model and method: its headline metric (Lee Spearman for MiniLM, bits
    per character for the char-LSTM) from dense to the highest sparsity, as a share of dense."""
    tm = D.task_metrics_table(d)
    out = []
    for (model, label), g in tm.groupby(["model", "method_label"], sort=False):
        if label == "dense":
            continue
        dense = tm[(tm.model == model) & (tm.method_label == "dense")]
        for key, higher in HEADLINE.items():
            if key not in g.columns or g[key].isna().all() or dense.empty \
                    or pd.isna(dense[key].iloc[0]):
                continue
            base = float(dense[key].iloc[0])
            parts = [f"{pct(r.sparsity)}: {r[key]:.3f}" + (f" ({r[key] / base:.0%} of dense)"
                                                           if higher and base else "")
                     for _, r in g.sort_values("sparsity").iterrows()]
            out.append(Finding(f"{model} ({label} pruning): {key.replace('_', ' ')} dense "
                               f"{base:.3f}; " + ", ".join(parts) + ".", "tasks"))
    return out


def size_findings(d: D.StudyData) -> list[Finding]:
    x = D.size_crossover_table(d)
    out: list[Finding] = []
    if x.empty:
        return out
    x = x[x["values"] == "fp32"]
    for model, g in x.groupby("model", sort=False):
        ref = D.reference_method(g.method_label.unique())
        g = g[g.method_label == ref].sort_values("crossover", na_position="last")
        if g.empty:
            continue
        parts = []
        for _, r in g.iterrows():
            if r.crossover is None or pd.isna(r.crossover):
                parts.append(f"{r.format} never (x{r.ratio_at_max:.2f} of dense at "
                             f"{pct(r.max_sparsity)})")
            else:
                be = "" if r.break_even is None or pd.isna(r.break_even) else \
                    f", break-even ~{pct(r.break_even)}"
                parts.append(f"{r.format} from {pct(r.crossover)}{be}")
        out.append(Finding(f"{model_name(d, model)}: with fp32 values and {ref} pruning, the "
                           f"model file is smaller than the dense fp32 file for "
                           + "; ".join(parts) + ".", "size"))
    lay = D.layer_size_crossover(d)
    if len(lay):
        lay = lay[lay.agrees.notna()]
    if len(lay):
        bad = lay[lay.agrees == False]  # noqa: E712 (a pandas column)
        text = (f"Per layer, the formats' cost models predict which measured encodings are "
                f"smaller than dense: {len(lay) - len(bad)} of {len(lay)} layer-shape/format "
                f"pairs ({int(lay.n_layers.sum())} layers) agree (every measured sparsity above "
                f"the predicted break-even is smaller, none below it)")
        if len(bad):
            r = bad.iloc[0]
            text += (f"; e.g. {r['format']} on {r['model']} {r['layer']} ({r['shape']}) is "
                     f"smaller from {pct(r['crossover'])} measured vs "
                     f"{pct1(r['break_even_model'])} predicted")
        out.append(Finding(text + ".", "layer-size"))
    return out


def _chance_note(at_chance) -> str:
    return f", {int(at_chance)} at chance" if at_chance else ""


def accuracy_findings(d: D.StudyData) -> list[Finding]:
    """Accuracy conclusions, drawn only from fine-tunes that reached their validation plateau;
    the configurations that did not are listed instead of concluded from."""
    acc = D.accuracy_table(d)
    out = []
    flagged = acc[acc.unconverged > 0] if len(acc) else acc
    acc = acc[acc.unconverged == 0] if len(acc) else acc
    for model in d.accuracy_models:
        f = flagged[flagged.model == model]
        if len(f):
            where = ", ".join(f"{lab} at {pct(s)} ({int(u)}/{int(n)} seeds{_chance_note(c)})"
                              for lab, s, u, n, c in zip(f.method_label, f.sparsity,
                                                         f.unconverged, f.n, f.at_chance))
            out.append(Finding(
                f"{model}: {len(f)} pruned configuration(s) did not converge (validation "
                "accuracy still improving when the fine-tuning budget ran out, or a plateau "
                f"at chance): {where}; they are left out of the accuracy conclusions: a "
                "longer fine-tune (finetune_steps) would change the former.", "accuracy"))
    for model in d.accuracy_models:
        a = acc[acc.model == model]
        if a.empty or a.sparsity.max() == 0:
            continue
        dense = float(a[a.sparsity == 0].acc_mean.mean())
        keep = []
        for label, g in a.groupby("method_label"):
            ok = g[(g.sparsity > 0) & (g.acc_mean >= dense - 0.01)]
            keep.append((label, float(ok.sparsity.max()) if len(ok) else 0.0))
        keep.sort(key=lambda t: -t[1])
        hi = float(a.sparsity.max())
        s90 = 0.9 if np.isclose(a.sparsity, 0.9).any() else hi
        at = a[np.isclose(a.sparsity, s90)].sort_values("acc_mean", ascending=False)
        text = (f"{model}: after fine-tuning, {keep[0][0]} keeps top-1 accuracy within 1 point "
                f"of dense ({pct1(dense)}) up to {pct(keep[0][1])} sparsity" if keep[0][1] else
                f"{model}: after fine-tuning, no method keeps top-1 accuracy within 1 point of "
                f"dense ({pct1(dense)}) at any pruned sparsity")
        if len(keep) > 1 and keep[0][1]:
            text += ", " + ", ".join(f"{lab} up to {pct(s)}" if s else f"{lab} at none"
                                     for lab, s in keep[1:])
        if len(at) > 1:
            b, w = at.iloc[0], at.iloc[-1]
            text += (f"; at {pct(s90)} the best method is {b.method_label} "
                     f"({pct1(b.acc_mean)} ± {100 * b.acc_std:.1f}, n={int(b.n)}) and the worst "
                     f"{w.method_label} ({pct1(w.acc_mean)} ± {100 * w.acc_std:.1f})")
        out.append(Finding(text + ".", "accuracy"))
    ft = acc[(acc.sparsity > 0) & acc.before_mean.notna()] if len(acc) else acc
    if len(ft) and d.accuracy_models:
        s = float(ft.sparsity.max()) if not np.isclose(ft.sparsity, 0.9).any() else 0.9
        g = ft[np.isclose(ft.sparsity, s)]
        if len(g):
            gain = (g.acc_mean - g.before_mean).mean()
            out.append(Finding(
                f"Fine-tuning after pruning to {pct(s)} recovers {100 * gain:.1f} points of "
                f"accuracy on average over {len(g)} model/method pairs (before: "
                f"{pct1(g.before_mean.mean())}, after: {pct1(g.acc_mean.mean())}).",
                "accuracy"))
    return out


def control_findings(d: D.StudyData) -> list[Finding]:
    c = D.controls_table(d)
    out = []
    for _, r in c.iterrows():
        verdict = ("pruning beats training the smaller model" if r.difference > 0
                   else "training the smaller model is as good or better than pruning")
        nz = f"{int(r.pruned_nonzero):,} nonzero" if r.pruned_nonzero else "its nonzeros"
        out.append(Finding(
            f"{r.model} pruned to {pct(r.sparsity)} with {r.method_label} ({nz} parameters) "
            f"reaches {pct1(r.pruned_mean)} ± {100 * r.pruned_std:.1f}; a dense model of matched "
            f"size trained the same way ({r.control}, {int(r.control_params or 0):,} params) "
            f"reaches {pct1(r.control_mean)} ± {100 * r.control_std:.1f} (n={int(r.n)}): "
            f"{verdict} by {abs(100 * r.difference):.1f} points"
            + (f" (not conclusive: {int(r.unconverged)} of its fine-tunes did not converge)"
               if r.unconverged else "") + ".", "controls"))
    return out


def quant_findings(d: D.StudyData) -> list[Finding]:
    q = D.quant_table(d)
    out = []
    st = D.size_table(d)
    for _, r in q.iterrows():
        text = (f"int8 dynamic quantization of {r.model} (no pruning): file "
                f"{1 / r.size_ratio:.1f}x smaller than dense, accuracy {pct1(r.acc_mean)} vs "
                f"{pct1(r.dense_mean)} dense")
        if not r.within_tolerance:
            text += (f" (its outputs differ from dense by up to {100 * r.rel_error:.0f}% of "
                     f"their scale, beyond the int8 tolerance)")
        if "latency_b1_ms" in r and not pd.isna(r.get("latency_b1_ms")) and r.get("dense_b1_ms"):
            text += (f", batch-1 latency {r['latency_b1_ms']:.3f} ms vs "
                     f"{r['dense_b1_ms']:.3f} ms dense")
        if len(st):
            s = st[(st.model == r.model) & (st.method_label != "dense")
                   & st.ratio.notna()]
            acc = D.accuracy_by_values(d)
            if len(s) and len(acc):
                best = s.loc[s.ratio.idxmin()]
                a = acc[(acc.model == r.model) & (acc.method_label == best.method_label)
                        & (acc.sparsity == best.sparsity)
                        & (acc.value_encoding == best.value_encoding)]
                if len(a):
                    text += (f"; the smallest pruned file ({best.method_label} at "
                             f"{pct(best.sparsity)}, {best.format} {best.value_encoding}) is "
                             f"{1 / best.ratio:.1f}x smaller at {pct1(a.acc_mean.iloc[0])}")
        out.append(Finding(text + ".", "quant"))
    return out


def profile_findings(d: D.StudyData) -> list[Finding]:
    """Per profiled model: the layer that takes the largest share of a call, and how that
    share varies across engine/format pairs."""
    p = D.profile_table(d)
    out: list[Finding] = []
    if p.empty:
        return out
    p = p[p.layer != "(other)"]
    for (model, label, s), g in p.groupby(["model", "method_label", "sparsity"], sort=False):
        mean_share = g.groupby("layer").share.mean().sort_values(ascending=False)
        layer = mean_share.index[0]
        h = g[g.layer == layer].sort_values("share")
        lo, hi = h.iloc[0], h.iloc[-1]
        out.append(Finding(
            f"{model_name(d, model)} at {pct(s)} {label} pruning, batch {int(g.batch.iloc[0])}: "
            f"{layer} takes the largest share of a call, from {pct(lo.share)} with {lo.pair} "
            f"({lo.total_ms:.3g} ms per call) to {pct(hi.share)} with {hi.pair} "
            f"({hi.total_ms:.3g} ms), over {g.pair.nunique()} engine/format pairs.", "profile"))
    return out


def failure_findings(d: D.StudyData) -> list[Finding]:
    out = []
    f, s = d.failed, d.skipped
    if len(f):
        ver = f[f.reason.astype(str).str.startswith("verification")]
        ex = f.iloc[0]
        text = (f"{len(f)} job(s) failed and were stored with the reason, not timed "
                f"({len(ver)} failed verification); e.g. {ex.kind} {ex.model} "
                f"{ex.engine or ''} {ex.format or ''}: {ex.reason}")
        out.append(Finding(text.strip() + ".", "failures"))
    if len(s):
        reasons = s.reason.value_counts()
        out.append(Finding(f"{len(s)} job(s) were skipped as not applicable; most often: "
                           f"\"{reasons.index[0]}\" ({int(reasons.iloc[0])}).", "failures"))
    return out
