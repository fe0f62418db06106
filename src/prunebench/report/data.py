"""Stored rows -> the tables a report shows. Everything here is computed from the database;
nothing is measured.

Conventions
-----------
* ``sparsity`` is the requested grid value (0 = the dense model); the achieved one is kept as
  ``sparsity_achieved``.
* Speedup = batch-matched latency of the *unpruned* model run densely by PyTorch
  (``torch-dense``, format ``dense``, fp32, same batch and threads) / the row's latency. Where
  no torch-dense row exists, the fastest dense-format row of the unpruned model is the baseline.
* Size ratio = file bytes / the unpruned model's dense fp32 file.
* Accuracy per configuration = mean and standard deviation over seeds (``n`` seeds).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError
from ..formats import approximating_formats

STUDY_KINDS = ("prune", "size", "latency", "profile", "quant", "quant-latency")
REFERENCE_METHODS = ("magnitude", "random", "magnitude-global")  # for latency crossovers


@dataclass
class StudyData:
    db: str
    prune: pd.DataFrame
    size: pd.DataFrame
    latency: pd.DataFrame
    profile: pd.DataFrame
    quant: pd.DataFrame
    quant_latency: pd.DataFrame
    failed: pd.DataFrame
    skipped: pd.DataFrame
    machines: dict
    masks: dict = field(default_factory=dict)   # (model, method_label, sparsity) -> [layers]
    cache: dict = field(default_factory=dict, repr=False)  # derived tables, see cached_table

    def latency_only(self, model: str) -> bool:
        rows = self.prune[self.prune.model == model]
        if len(rows):
            return bool(rows.latency_only.iloc[0])
        rows = self.latency[self.latency.model == model]
        return bool(len(rows) and rows.latency_only.iloc[0])

    @property
    def models(self) -> list[str]:
        seen = []
        for df in (self.prune, self.latency, self.size):
            for m in df.get("model", []):
                if m not in seen:
                    seen.append(m)
        return seen

    @property
    def accuracy_models(self) -> list[str]:
        return [m for m in self.models if not self.latency_only(m) and not self.is_control(m)]

    def is_control(self, model: str) -> bool:
        rows = self.prune[self.prune.model == model]
        return bool(len(rows) and isinstance(rows.control_of.iloc[0], str))


def _frame(rows: list[dict], extra_fields: tuple[str, ...]) -> pd.DataFrame:
    flat = []
    for r in rows:
        d = {k: v for k, v in r.items() if k not in ("extra", "spec", "samples")}
        e = r.get("extra") or {}
        d["method_label"] = e.get("method_label", r.get("method"))
        d["latency_only"] = bool(e.get("latency_only", False))
        for f in extra_fields:
            d[f] = e.get(f)
        d["extra"] = e
        d["spec"] = r.get("spec") or {}
        flat.append(d)
    df = pd.DataFrame(flat)
    if df.empty:
        df = pd.DataFrame(columns=["model", "method_label", "sparsity", "latency_only",
                                   "seed", "format", "engine", "value_encoding", "batch",
                                   "threads", "accuracy", "p50_ms", "file_bytes", "extra",
                                   "spec", "job_hash", "status", "reason", "kind",
                                   *extra_fields])
    return df


def load(db: str | Path) -> StudyData:
    """Read every study row of ``db``. BadInputError when it holds none."""
    from ..study.store import Store

    p = Path(db)
    if not p.exists():
        raise BadInputError(f"database: {str(db)!r} does not exist")
    if p.is_file() and p.stat().st_size == 0:  # Store would write its schema into it
        raise BadInputError(f"report: database {str(db)!r} is empty (0 bytes), no study "
                            "results; run `prunebench study` first")
    with Store(p) as store:
        rows = [r for r in store.rows() if r["kind"] in STUDY_KINDS]
        skipped = store.skipped_rows()
        machines = store.machines()
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise BadInputError(f"report: database {str(db)!r} has no study results "
                            f"({len(rows)} failed); run `prunebench study` first")
    by = {k: [r for r in ok if r["kind"] == k] for k in STUDY_KINDS}
    prune = _frame(by["prune"], ("accuracy_dense", "accuracy_before_finetune",
                                 "sparsity_achieved", "control_of", "totals", "layers",
                                 "at_chance"))
    masks = {}
    for r in by["prune"]:
        m = (r.get("extra") or {}).get("masks")
        if m:
            masks[(r["model"], r["extra"].get("method_label"), r["sparsity"])] = m
    size = _frame(by["size"], ("layers", "output_rel_error"))
    latency = _frame(by["latency"], ("verify", "noisy", "compile_s"))
    profile = _frame(by["profile"], ("profile",))
    quant = _frame(by["quant"], ("accuracy_dense", "dense_state_bytes", "verify"))
    quant_latency = _frame(by["quant-latency"], ("noisy",))
    failed = _frame([r for r in rows if r["status"] == "failed"], ())
    skipped_df = pd.DataFrame(skipped) if skipped else pd.DataFrame(
        columns=["job_hash", "stage", "kind", "model", "method", "sparsity", "format", "engine",
                 "batch", "seed", "reason"])
    done = set(r["job_hash"] for r in rows)
    if len(skipped_df):
        skipped_df = skipped_df[~skipped_df.job_hash.isin(done)]
    data = StudyData(str(db), prune, size, latency, profile, quant, quant_latency, failed,
                     skipped_df, machines, masks)
    # latency-only is a property of the model: spread it to rows that lack it
    lo = {m: bool(g.latency_only.any()) for m, g in prune.groupby("model")} if len(prune) else {}
    for df in (size, latency, profile):
        if len(df):
            df["latency_only"] = [lo.get(m, v) for m, v in zip(df.model, df.latency_only)]
    return data


def cached_table(fn):
    """Compute a derived table once per loaded database (figures and findings ask for the
    same tables many times); callers get a copy they may change."""
    @functools.wraps(fn)
    def wrap(d: StudyData, *args):
        key = (fn.__name__, args)
        if key not in d.cache:
            d.cache[key] = fn(d, *args)
        v = d.cache[key]
        return v.copy() if isinstance(v, pd.DataFrame) else v
    return wrap


# ------------------------------------------------------------------------------ accuracy


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


def sample_std(x: pd.Series) -> float:
    """The standard deviation over seeds (ddof 1); 0 for a single seed."""
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


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


# ------------------------------------------------------------------------------ latency


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


def reference_method(labels) -> str | None:
    """The unstructured method whose latencies the crossover table reads."""
    labels = [x for x in labels if x != "dense"]
    for m in REFERENCE_METHODS:
        if m in labels:
            return m
    return labels[0] if labels else None


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
    import dataclasses

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


# ------------------------------------------------------------------------------ size


@cached_table
def size_table(d: StudyData) -> pd.DataFrame:
    """File bytes (first seed) with ``ratio`` to the unpruned model's dense fp32 file and
    ``ratio_same`` to its dense file in the same value encoding."""
    s = d.size.copy()
    if s.empty:
        return s.assign(ratio=[], ratio_same=[])
    first = s.groupby("model").seed.transform("min")
    s = s[s.seed == first]
    base = {}
    for (model, values), g in s[(s.sparsity == 0) & (s.format == "dense")].groupby(
            ["model", "value_encoding"]):
        base[(model, values)] = float(g.file_bytes.min())
    s["dense_file_bytes"] = [base.get((m, "fp32"), np.nan) for m in s.model]
    s["ratio"] = s.file_bytes.astype(float) / s.dense_file_bytes
    s["ratio_same"] = s.file_bytes.astype(float) / np.array(
        [base.get((m, v), np.nan) for m, v in zip(s.model, s.value_encoding)])
    return s


def crossing(xs, ys, level: float = 1.0) -> float | None:
    """First x where the piecewise-linear curve (xs, ys) goes below ``level``."""
    pts = sorted(zip(xs, ys))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 >= level > y1:
            return x0 + (y0 - level) / (y0 - y1) * (x1 - x0)
    if pts and pts[0][1] < level:
        return pts[0][0]
    return None


@cached_table
def size_crossover_table(d: StudyData) -> pd.DataFrame:
    """Per model, method, format and value encoding: lowest measured sparsity whose file is
    smaller than the dense file *in the same value encoding*, and the interpolated
    break-even."""
    s = size_table(d)
    if s.empty:
        return pd.DataFrame(columns=["model", "method_label", "format", "values", "crossover",
                                     "break_even", "ratio_at_max", "max_sparsity"])
    rows = []
    for (model, label, fmt, values), g in s.groupby(
            ["model", "method_label", "format", "value_encoding"], sort=False):
        if label == "dense" or fmt == "dense":
            continue
        dense_pt = s[(s.model == model) & (s.method_label == "dense") & (s.format == fmt)
                     & (s.value_encoding == values)]
        g = pd.concat([dense_pt, g]).sort_values("sparsity")
        beat = g[g.ratio_same < 1.0]
        rows.append({"model": model, "method_label": label, "format": fmt, "values": values,
                     "crossover": float(beat.sparsity.iloc[0]) if len(beat) else None,
                     "break_even": crossing(g.sparsity, g.ratio_same),
                     "ratio_at_max": float(g.ratio_same.iloc[-1]),
                     "max_sparsity": float(g.sparsity.max())})
    return pd.DataFrame(rows, columns=["model", "method_label", "format", "values", "crossover",
                                       "break_even", "ratio_at_max", "max_sparsity"])


@cached_table
def layer_size_crossover(d: StudyData) -> pd.DataFrame:
    """Per layer shape and format (fp32 values, reference method): lowest measured sparsity
    whose encoded layers are smaller than dense (the highest among layers of that shape), the
    format cost model's break-even, and whether every measured point sits on the side of the
    break-even the cost model predicts."""
    s = size_table(d)
    if s.empty:
        return pd.DataFrame(columns=["model", "layer", "shape", "format", "crossover",
                                     "break_even_model"])
    rows = []
    for model, g in s[s.value_encoding == "fp32"].groupby("model", sort=False):
        ref = reference_method(g.method_label.unique())
        if ref is None:
            continue
        g = g[g.method_label == ref]
        per: dict[tuple, list] = {}
        for _, r in g.iterrows():
            for lay in r.layers or []:
                if r.format == "dense":
                    continue
                per.setdefault((lay["name"], tuple(lay["shape"]), r.format), []).append(
                    (float(lay["sparsity"]), lay["bytes"] / lay["dense_fp32_bytes"],
                     lay.get("break_even_model")))
        by_shape: dict[tuple, dict] = {}
        for (name, shape, fmt), pts in per.items():
            pts.sort()
            if max(p[0] for p in pts) < 0.05:   # a layer the method does not prune
                continue
            beat = [p for p in pts if p[1] < 1.0]
            models = [p[2] for p in pts if p[2] is not None]
            be = models[0] if models else None
            agrees = _agrees(pts, be)
            row = by_shape.setdefault((shape, fmt), {
                "model": model, "shape": "x".join(map(str, shape)), "format": fmt,
                "layers": [], "crossover": None, "break_even_model": be, "points": 0,
                "agrees": agrees})
            row["layers"].append(name)
            row["points"] += len(pts)
            c = beat[0][0] if beat else None
            if c is not None and (row["crossover"] is None or c > row["crossover"]):
                row["crossover"] = c      # the latest crossover among layers of this shape
            if agrees is not None:
                row["agrees"] = bool(row["agrees"]) and agrees if row["agrees"] is not None \
                    else agrees
        for row in by_shape.values():
            names = row.pop("layers")
            row["layer"] = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
            row["n_layers"] = len(names)
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "shape", "format", "crossover",
                                       "break_even_model", "points", "agrees", "layer",
                                       "n_layers"])


def _agrees(pts: list[tuple], be: float | None, slack: float = 0.02) -> bool | None:
    """Whether measured (sparsity, bytes ratio) points sit on the side of the cost model's
    break-even they should: smaller than dense above it, not below it (``slack`` around it
    allows for the expected-value cost models and for rounding of nonzero counts)."""
    if be is None:
        return None
    for sp, ratio, _ in pts:
        if sp > be + slack and ratio >= 1.0:
            return False
        if sp < be - slack and ratio < 1.0:
            return False
    return True


# ------------------------------------------------------------------------------ pareto


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Non-dominated points of (cost, accuracy, label): lower cost, higher accuracy."""
    pts = sorted(points, key=lambda p: (p[0], -p[1]))
    front, best = [], -math.inf
    for p in pts:
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


@cached_table
def pareto_points(d: StudyData, model: str, axis: str) -> list[tuple[float, float, str]]:
    """(latency ms at the smallest batch | file bytes, accuracy, label) for every measured
    configuration of ``model``: accuracy is the mean over seeds of that configuration (of its
    value encoding, read back from the file, for non-fp32 values)."""
    acc = accuracy_table(d)
    acc = acc[acc.model == model][["method_label", "sparsity", "acc_mean"]]
    accv = accuracy_by_values(d)
    accv = accv[accv.model == model][["method_label", "sparsity", "value_encoding", "acc_mean"]] \
        if len(accv) else pd.DataFrame(columns=["method_label", "sparsity", "value_encoding",
                                                "acc_mean"])
    keys = ["method_label", "sparsity"]
    if axis == "latency":
        lat = latency_table(d)
        lat = lat[(lat.model == model)] if len(lat) else lat
        if lat.empty:
            return []
        lat = lat[lat.batch == lat.batch.min()]
        a = pd.concat([lat[lat.value_encoding == "fp32"].merge(acc, on=keys),
                       lat[lat.value_encoding != "fp32"].merge(accv, on=keys + ["value_encoding"])])
        return [(float(r.p50_ms), float(r.acc_mean), f"{r.method_label}@{r.sparsity:g} {r.pair}")
                for r in a.itertuples()]
    s = size_table(d)
    s = s[s.model == model] if len(s) else s
    if s.empty:
        return []
    approx = s.format.isin(approximating_formats())
    lossy = s[approx].assign(acc_mean=lambda t: t.accuracy)
    a = pd.concat([s[~approx].merge(accv, on=keys + ["value_encoding"]), lossy])
    a = a[a.acc_mean.notna()]
    return [(float(r.file_bytes), float(r.acc_mean),
             f"{r.method_label}@{r.sparsity:g} {r.format} {r.value_encoding}")
            for r in a.itertuples()]


# ------------------------------------------------------------------------------ controls


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
    vals = [t.get("nonzero") for t in rows.totals if isinstance(t, dict)]
    vals = [v for v in vals if v is not None]
    return int(round(float(np.mean(vals)))) if vals else None


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
    vals = [t.get("theoretical_speedup") for t in p.totals if isinstance(t, dict)]
    vals = [v for v in vals if v]
    return float(np.mean(vals)) if vals else None


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
        if not per_seed:
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
