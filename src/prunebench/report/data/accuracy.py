"""Accuracy tables: per model, method and sparsity over seeds, per value encoding, the
task-judged models' metrics, and the units pruning disconnects."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...formats import approximating_formats
from .study import StudyData, cached_table, sample_std


@cached_table
def accuracy_table(d: StudyData) -> pd.DataFrame:
    """Mean/std over seeds of accuracy before and after fine-tuning, per model, method and
    sparsity; the dense model (sparsity 0) appears under every method of its model.
    ``unconverged`` counts the seeds whose fine-tune had not reached its validation plateau
    or reached it at chance; ``at_chance`` counts the latter."""
    p = d.prune[~d.prune.latency_only] if len(d.prune) else d.prune
    if p.empty:
        return pd.DataFrame(columns=["model", "method_label", "sparsity", "acc_mean", "acc_std",
                                     "before_mean", "before_std", "n", "achieved",
                                     "unconverged", "at_chance"])
    rows = []
    for (model, label, s), g in p.groupby(["model", "method_label", "sparsity"], sort=False):
        acc = g.accuracy.astype(float)
        before = g.accuracy_before_finetune.astype(float)
        rows.append({"model": model, "method_label": label, "sparsity": float(s),
                     "acc_mean": acc.mean(), "acc_std": sample_std(acc), "before_mean": before.mean(),
                     "before_std": sample_std(before), "n": len(g),
                     "achieved": g.sparsity_achieved.astype(float).mean(),
                     "dense_mean": g.accuracy_dense.astype(float).mean(),
                     "unconverged": unconverged_count(g), "at_chance": at_chance_count(g)})
    t = pd.DataFrame(rows)
    dense = t[t.method_label == "dense"]
    out = [t[t.method_label != "dense"]]
    for model, g in t[t.method_label != "dense"].groupby("model"):
        dm = dense[dense.model == model]
        for label in g.method_label.unique():
            if len(dm):
                out.append(dm.assign(method_label=label))
    if len(out) == 1:  # only dense models
        out.append(dense)
    return (pd.concat(out, ignore_index=True)
            .sort_values(["model", "method_label", "sparsity"]).reset_index(drop=True))


def unconverged_count(g: pd.DataFrame) -> int:
    """Rows of ``g`` whose fine-tune was still improving on its validation split when its
    step budget ran out (``converged`` 0; NULL = not fine-tuned or not judged)."""
    if "converged" not in g:
        return 0
    c = pd.to_numeric(g.converged, errors="coerce")
    return int((c == 0).sum())


def at_chance_count(g: pd.DataFrame) -> int:
    """Rows of ``g`` whose fine-tune plateaued at chance (stored as not converged)."""
    if "at_chance" not in g:
        return 0
    return int(sum(v is True or v == 1 for v in g.at_chance))


@cached_table
def accuracy_by_values(d: StudyData) -> pd.DataFrame:
    """Accuracy of each (model, method, sparsity, value encoding) read back from the file,
    mean over seeds (rows of the ``dense`` layout, or any lossless layout)."""
    s = d.size[~d.size.latency_only] if len(d.size) else d.size
    s = s[s.accuracy.notna()] if len(s) else s
    if s.empty:
        return pd.DataFrame(columns=["model", "method_label", "sparsity", "value_encoding",
                                     "acc_mean", "acc_std", "n"])
    s = s[~s.format.isin(approximating_formats())]
    rows = []
    for key, g in s.groupby(["model", "method_label", "sparsity", "value_encoding"]):
        per_seed = g.groupby("seed").accuracy.mean().astype(float)
        rows.append(dict(zip(["model", "method_label", "sparsity", "value_encoding"], key),
                         acc_mean=per_seed.mean(), acc_std=sample_std(per_seed), n=len(per_seed)))
    return pd.DataFrame(rows, columns=["model", "method_label", "sparsity", "value_encoding",
                                       "acc_mean", "acc_std", "n"])


@cached_table
def task_metrics_table(d: StudyData) -> pd.DataFrame:
    """Models judged by a task (``extra.metrics`` of their prune rows: MiniLM's Lee
    correlations, polarity probe and fidelity; the char-LSTM's bits per character): one row per
    model, method and sparsity, metrics averaged over seeds."""
    p = d.prune
    if p.empty:
        return pd.DataFrame(columns=["model", "method_label", "sparsity", "n"])
    rows = []
    for _, r in p.iterrows():
        met = (r.extra or {}).get("metrics") if isinstance(r.extra, dict) else None
        if isinstance(met, dict):
            rows.append({"model": r.model, "method_label": r.method_label,
                         "sparsity": float(r.sparsity),
                         **{k: v for k, v in met.items() if isinstance(v, (int, float))}})
    if not rows:
        return pd.DataFrame(columns=["model", "method_label", "sparsity", "n"])
    df = pd.DataFrame(rows)
    keys = ["model", "method_label", "sparsity"]
    out = df.groupby(keys, sort=False).mean(numeric_only=True).reset_index()
    out["n"] = df.groupby(keys, sort=False).size().values
    return out.sort_values(["model", "method_label", "sparsity"]).reset_index(drop=True)


@cached_table
def dead_units_table(d: StudyData) -> pd.DataFrame:
    """Per model, method and sparsity: units the pruned layers disconnect (``dead_out``:
    outputs with no incoming weight; ``dead_in``: inputs with no outgoing weight, see
    :func:`prunebench.pruning.accounting.dead_units`), summed over pruned layers and averaged
    over seeds, beside the accuracy; ``worst_layer`` is the layer with the largest share of dead
    outputs (first seed). Rows of older databases without the counts are left out."""
    cols = ["model", "method_label", "sparsity", "dead_out", "outputs", "dead_in", "inputs",
            "worst_layer", "worst_dead_out", "worst_outputs", "acc_mean", "acc_std", "n"]
    p = d.prune[d.prune.method_label != "dense"] if len(d.prune) else d.prune
    rows = []
    for (model, label, s), g in (p.groupby(["model", "method_label", "sparsity"], sort=False)
                                 if len(p) else []):
        per_seed, worst = [], None
        for _, r in g.sort_values("seed").iterrows():
            lays = [lay for lay in (r.layers or []) if lay.get("pruned", True)
                    and lay.get("outputs") is not None]
            if not lays:
                continue
            per_seed.append([sum(lay[k] for lay in lays)
                             for k in ("dead_out", "outputs", "dead_in", "inputs")])
            if worst is None:
                worst = max(lays, key=lambda lay: lay["dead_out"] / lay["outputs"])
        if not per_seed or worst is None:
            continue
        m = np.mean(per_seed, axis=0)
        acc = g.accuracy.astype(float)
        rows.append({"model": model, "method_label": label, "sparsity": float(s),
                     "dead_out": float(m[0]), "outputs": int(m[1]), "dead_in": float(m[2]),
                     "inputs": int(m[3]), "worst_layer": worst["name"],
                     "worst_dead_out": int(worst["dead_out"]),
                     "worst_outputs": int(worst["outputs"]),
                     "acc_mean": acc.mean(), "acc_std": sample_std(acc), "n": len(per_seed)})
    return (pd.DataFrame(rows, columns=cols).sort_values(["model", "sparsity", "method_label"])
            .reset_index(drop=True))
