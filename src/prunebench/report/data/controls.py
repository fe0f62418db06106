"""Controls: the pruned model against a dense model of matched parameter count, and
against int8 dynamic quantization."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .accuracy import accuracy_table
from .latency import latency_table
from .study import StudyData, cached_table, sample_std


@cached_table
def controls_table(d: StudyData, sparsity: float = 0.9) -> pd.DataFrame:
    """Per model with a matched dense control: the best method at ``sparsity`` vs the dense
    model of matched parameter count, both mean ± std over seeds."""
    acc = accuracy_table(d)
    rows = []
    p = d.prune
    for control in [m for m in d.models if d.is_control(m)]:
        base = p[p.model == control].control_of.iloc[0]
        c = p[(p.model == control) & (p.method_label == "dense")].accuracy.astype(float)
        a = acc[(acc.model == base) & (np.isclose(acc.sparsity, sparsity))]
        if a.empty:
            continue
        # the best method among fine-tunes that converged; all of them flagged otherwise
        settled = a[a.unconverged == 0]
        best = (settled if len(settled) else a).loc[
            (settled if len(settled) else a).acc_mean.idxmax()]
        params_c = _params(p[p.model == control])
        base_rows = p[(p.model == base) & (p.method_label == best.method_label)
                      & np.isclose(p.sparsity, sparsity)]
        nonzero = _nonzero(base_rows)
        rows.append({"model": base, "control": control, "method_label": best.method_label,
                     "sparsity": sparsity, "pruned_mean": best.acc_mean,
                     "pruned_std": best.acc_std, "pruned_nonzero": nonzero,
                     "control_params": params_c, "control_mean": c.mean(),
                     "control_std": sample_std(c), "dense_mean": best.dense_mean,
                     "difference": best.acc_mean - c.mean(), "n": len(c),
                     "unconverged": int(best.unconverged)})
    return pd.DataFrame(rows, columns=["model", "control", "method_label", "sparsity",
                                       "pruned_mean", "pruned_std", "pruned_nonzero",
                                       "control_params", "control_mean", "control_std",
                                       "dense_mean", "difference", "n", "unconverged"])


def _params(rows: pd.DataFrame) -> int | None:
    for t in rows.totals:
        if isinstance(t, dict) and t.get("params") is not None:
            return int(t["params"])
    return None


def _nonzero(rows: pd.DataFrame) -> int | None:
    vals = [float(t["nonzero"]) for t in rows.totals
            if isinstance(t, dict) and t.get("nonzero") is not None]
    return int(round(float(np.mean(vals)))) if vals else None


def quant_table(d: StudyData) -> pd.DataFrame:
    """int8 dynamic quantization vs dense: accuracy, file bytes, latency per batch."""
    q = d.quant
    if q.empty:
        return pd.DataFrame(columns=["model", "acc_mean", "acc_std", "dense_mean",
                                     "file_bytes", "dense_file_bytes", "size_ratio"])
    lat = latency_table(d)
    rows = []
    for model, g in q.groupby("model", sort=False):
        r = {"model": model, "acc_mean": g.accuracy.astype(float).mean(),
             "acc_std": sample_std(g.accuracy.astype(float)),
             "dense_mean": g.accuracy_dense.astype(float).mean(),
             "file_bytes": int(g.file_bytes.iloc[0]),
             "dense_file_bytes": int(g.dense_state_bytes.iloc[0]),
             "top1_agreement": float(np.mean([v.get("top1_agreement", np.nan)
                                              for v in g.verify])),
             "rel_error": float(np.max([v.get("rel_max", np.nan) for v in g.verify])),
             "within_tolerance": all(bool(v.get("ok", True)) for v in g.verify)}
        r["size_ratio"] = r["file_bytes"] / r["dense_file_bytes"]
        ql = d.quant_latency[d.quant_latency.model == model]
        for _, x in ql.iterrows():
            base = lat[(lat.model == model) & (lat.batch == x.batch) & (lat.threads == x.threads)
                       ]["baseline_ms"] if len(lat) else pd.Series(dtype=float)
            r[f"latency_b{int(x.batch)}_ms"] = float(x.p50_ms)
            r[f"dense_b{int(x.batch)}_ms"] = float(base.iloc[0]) if len(base) else None
        rows.append(r)
    return pd.DataFrame(rows)
