"""Latency tables: speedups over dense PyTorch and over the fastest dense engine, the
crossover sparsity of each engine/format pair, per machine and per run profile, the dense
engines, and the per-layer time profile."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .study import StudyData, cached_table, reference_method


@cached_table
def latency_table(d: StudyData) -> pd.DataFrame:
    """Latency rows with ``speedup`` over the unpruned model on dense PyTorch (``baseline_ms``)
    and ``speedup_best`` over the fastest dense run of the unpruned model on any engine
    (``best_dense_ms``, ``best_dense``), same batch and threads. ``format_used`` is False for a
    sparse format the engine ran no layer in (it fell back to dense: e.g. no zeros at 0%).

    Rows timed beside their reference (``extra.reference``: the unpruned model on dense
    PyTorch, calls alternating with the row's own; ``side_by_side`` True) take ``speedup``
    as the ratio of that one run, so drift of the machine between jobs cancels.
    Rows timed beside the fastest dense engine too (``extra.fastest_dense``, chosen per model,
    batch and threads when the job ran; ``fastest_beside`` True) take ``speedup_best`` as the
    ratio of that same run; other rows divide ``speedup`` by the fastest dense engine's own
    side-by-side speedup, and rows without any reference (databases of older versions) divide
    by the dense job's time."""
    lat = d.latency.copy()
    if lat.empty:
        return lat.assign(speedup=[], baseline_ms=[], speedup_best=[], best_dense_ms=[],
                          best_dense=[], pair=[], format_used=[], reference_ms=[],
                          side_by_side=[], fastest_beside=[])
    lat["reference_ms"] = [float(e["reference"]["p50_ms"])
                           if isinstance(e, dict) and isinstance(e.get("reference"), dict)
                           else np.nan for e in lat.extra]
    lat["side_by_side"] = lat.reference_ms.notna()
    base, best = {}, {}
    # a speedup compares two timings of one machine (databases may hold several: fleets, merge)
    dense = lat[(lat.sparsity == 0) & (lat.format == "dense") & (lat.method_label == "dense")]
    for (mid, model, batch, threads), g in dense.groupby(["machine_id", "model", "batch",
                                                          "threads"]):
        td = g[(g.engine == "torch-dense") & (g.value_encoding == "fp32")]
        base[(mid, model, batch, threads)] = float((td if len(td) else g).p50_ms.min())
        # the fastest dense engine: by its side-by-side speedup where there is one; among fp32
        # runs only (OpenVINO's bf16 default is lossy, like our own int8)
        g = g[g.value_encoding == "fp32"] if (g.value_encoding == "fp32").any() else g
        rel = np.where(g.side_by_side, g.reference_ms / g.p50_ms.astype(float),
                       base[(mid, model, batch, threads)] / g.p50_ms.astype(float))
        f = g.iloc[int(np.argmax(rel))]
        best[(mid, model, batch, threads)] = (float(f.p50_ms), str(f.engine), float(rel.max()))
    key = list(zip(lat.machine_id, lat.model, lat.batch, lat.threads))
    lat["baseline_ms"] = [base.get(k, np.nan) for k in key]
    fastest = [e["fastest_dense"] if isinstance(e, dict)
               and isinstance(e.get("fastest_dense"), dict) else None for e in lat.extra]
    lat["fastest_beside"] = [f is not None for f in fastest]
    lat["best_dense_ms"] = [float(f["p50_ms"]) if f else best.get(k, (np.nan, "", np.nan))[0]
                            for f, k in zip(fastest, key)]
    lat["best_dense"] = [str(f["engine"]) if f else best.get(k, (np.nan, "", np.nan))[1]
                         for f, k in zip(fastest, key)]
    best_rel = np.array([best.get(k, (np.nan, "", np.nan))[2] for k in key], dtype=float)
    p50 = lat.p50_ms.astype(float)
    lat["speedup"] = np.where(lat.side_by_side, lat.reference_ms / p50, lat.baseline_ms / p50)
    lat["speedup_best"] = np.where(lat.fastest_beside, lat.best_dense_ms / p50,
                                   lat.speedup / best_rel)
    lat["pair"] = lat.engine + " / " + lat.format + np.where(
        lat.value_encoding == "fp32", "", " " + lat.value_encoding.astype(str))
    lat["format_used"] = [f in ("dense", "auto") or not isinstance((e or {}).get("plan"), dict)
                          or e["plan"].get("in_format", 1) > 0
                          for f, e in zip(lat.format, lat.extra)]
    return lat


BEATS = 1.05   # "beats" = at least 5% faster: smaller gains are within this machine's noise


@cached_table
def crossover_table(d: StudyData) -> pd.DataFrame:
    """Per model, batch and sparse engine/format pair (reference method, first thread count):
    the lowest measured sparsity at which it is at least 5% faster than the fastest dense run
    (``crossover``) and than dense PyTorch (``crossover_torch``), and its best speedup over the
    fastest dense run. Rows where the engine ran no layer in the format are left out."""
    lat = latency_table(d)
    cols = ["model", "latency_only", "method_label", "batch", "pair", "crossover",
            "speedup_at_crossover", "crossover_torch", "best_speedup", "best_at",
            "max_sparsity", "best_dense", "best_dense_ms", "torch_ms"]
    if lat.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for model, g in lat.groupby("model", sort=False):
        ref = reference_method(g.method_label.unique())
        if ref is None:
            continue
        threads = int(g.threads.min())
        g = g[(g.threads == threads) & (g.method_label.isin([ref, "dense"])) & (g.format != "dense")
              & g.format_used & g.speedup_best.notna()]
        for (batch, pair), h in g.groupby(["batch", "pair"]):
            h = h.sort_values("sparsity")
            beat = h[h.speedup_best >= BEATS]
            beat_t = h[h.speedup >= BEATS]
            top = h.loc[h.speedup_best.idxmax()]
            rows.append({"model": model, "latency_only": bool(h.latency_only.iloc[0]),
                         "method_label": ref, "batch": int(batch), "pair": pair,
                         "crossover": float(beat.sparsity.iloc[0]) if len(beat) else None,
                         "speedup_at_crossover": float(beat.speedup_best.iloc[0])
                         if len(beat) else None,
                         "crossover_torch": float(beat_t.sparsity.iloc[0]) if len(beat_t)
                         else None,
                         "best_speedup": float(top.speedup_best), "best_at": float(top.sparsity),
                         "max_sparsity": float(h.sparsity.max()),
                         "best_dense": h.best_dense.iloc[0],
                         "best_dense_ms": float(h.best_dense_ms.iloc[0]),
                         "torch_ms": float(h.baseline_ms.iloc[0])})
    return pd.DataFrame(rows, columns=cols)


@cached_table
def machine_table(d: StudyData) -> pd.DataFrame:
    """:func:`crossover_table` per machine (``machine_id``, ``hostname``): how the same grid
    compares across the machines of a fleet. Empty when the rows come from one machine."""
    lat = d.latency
    if lat.empty or "machine_id" not in lat or lat.machine_id.nunique() < 2:
        return pd.DataFrame(columns=["machine_id", "hostname", "model", "batch", "pair",
                                     "crossover", "best_speedup", "best_at", "max_sparsity"])

    parts = []
    for mid, g in lat.groupby("machine_id", sort=True):
        one = dataclasses.replace(d, latency=g.copy(), cache={})
        x = crossover_table(one)
        fp = d.machines.get(mid) or {}
        host = fp.get("hostname") or mid
        if fp.get("profile", "default") != "default":  # one machine, another run profile
            host = f"{host} ({fp['profile']} profile)"
        parts.append(x.assign(machine_id=mid, hostname=host))
    return (pd.concat(parts, ignore_index=True)
            .sort_values(["model", "batch", "pair", "hostname"]).reset_index(drop=True))


RUN_PROFILE_KEYS = ["host_id", "model", "method_label", "sparsity", "format", "engine",
                "value_encoding", "batch", "threads"]


@cached_table
def run_profile_table(d: StudyData) -> pd.DataFrame:
    """Each latency configuration measured in both run profiles on one machine (the
    fingerprint's ``host_id``): median ms in ``default`` and ``edge`` and their ratio (how much
    slower the edge proxy runs it). Pairs form at equal thread counts, so at 1 thread. Empty
    when no machine has rows of both profiles."""
    cols = ["hostname", *RUN_PROFILE_KEYS[1:], "default_ms", "edge_ms", "edge_vs_default"]
    lat = d.latency
    if lat.empty or "profile" not in lat or "machine_id" not in lat:
        return pd.DataFrame(columns=cols)
    fps = {mid: d.machines.get(mid) or {} for mid in lat.machine_id.unique()}
    lat = lat.assign(profile=lat.profile.fillna("default"),
                     host_id=[fps[m].get("host_id") or m for m in lat.machine_id],
                     method_label=lat.method_label.fillna(""),
                     value_encoding=lat.value_encoding.fillna(""))
    if not {"default", "edge"} <= set(lat.profile):
        return pd.DataFrame(columns=cols)
    pv = lat.pivot_table(index=RUN_PROFILE_KEYS, columns="profile", values="p50_ms", aggfunc="median")
    pv = pv.dropna(subset=["default", "edge"]).reset_index()
    if pv.empty:
        return pd.DataFrame(columns=cols)
    names = {fp.get("host_id") or m: fp.get("hostname") or m for m, fp in fps.items()}
    out = pv.assign(hostname=[names.get(h, h) for h in pv.host_id], default_ms=pv["default"],
                    edge_ms=pv["edge"], edge_vs_default=pv["edge"] / pv["default"])
    return out[cols].sort_values(["hostname", "model", "batch", "engine", "format",
                                  "sparsity"]).reset_index(drop=True)


@cached_table
def dense_engines_table(d: StudyData) -> pd.DataFrame:
    """The unpruned model on every engine that runs it dense, per batch: ms and speedup over
    dense PyTorch."""
    lat = latency_table(d)
    if lat.empty:
        return pd.DataFrame(columns=["model", "batch", "engine", "p50_ms", "speedup"])
    g = lat[(lat.method_label == "dense") & (lat.format == "dense")]
    return g[["model", "batch", "threads", "engine", "p50_ms", "speedup"]].sort_values(
        ["model", "batch", "p50_ms"]).reset_index(drop=True)


@cached_table
def profile_table(d: StudyData) -> pd.DataFrame:
    pr = d.profile
    rows = []
    for _, r in pr.iterrows():
        prof = r.profile or {}
        total = prof.get("total_ms") or 0.0
        for lay in prof.get("layers", []):
            rows.append({"model": r.model, "method_label": r.method_label,
                         "sparsity": r.sparsity, "pair": f"{r.engine} / {r.format}",
                         "batch": r.batch, "layer": lay["name"], "type": lay["type"],
                         "ms": lay["ms"], "share": lay["ms"] / total if total else None,
                         "total_ms": total})
        if prof:
            rows.append({"model": r.model, "method_label": r.method_label,
                         "sparsity": r.sparsity, "pair": f"{r.engine} / {r.format}",
                         "batch": r.batch, "layer": "(other)", "type": "",
                         "ms": prof.get("other_ms", 0.0),
                         "share": prof.get("other_ms", 0.0) / total if total else None,
                         "total_ms": total})
    return pd.DataFrame(rows, columns=["model", "method_label", "sparsity", "pair", "batch",
                                       "layer", "type", "ms", "share", "total_ms"])


def theoretical_speedup(d: StudyData, model: str, label: str, sparsity: float) -> float | None:
    p = d.prune[(d.prune.model == model) & (d.prune.method_label == label)
                & np.isclose(d.prune.sparsity.astype(float), sparsity)]
    vals = [float(t["theoretical_speedup"]) for t in p.totals
            if isinstance(t, dict) and t.get("theoretical_speedup")]
    return float(np.mean(vals)) if vals else None
