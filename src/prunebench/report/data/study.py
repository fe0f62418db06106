"""The rows of a results database as data frames (:class:`StudyData`, :func:`load`), the
per-database cache of derived tables, and the helpers every table family shares."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar, cast

import pandas as pd

from ...errors import BadInputError


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
    machines: dict[str, dict[str, Any]]
    #: (model, method_label, sparsity) -> the pruned layers' downsampled masks
    masks: dict[tuple[str, str, float], list[dict[str, Any]]] = field(default_factory=dict)
    #: derived tables, see :func:`cached_table`
    cache: dict[tuple[str, tuple[Any, ...]], Any] = field(default_factory=dict, repr=False)

    def latency_only(self, model: str) -> bool:
        rows = self.prune[self.prune.model == model]
        if len(rows):
            return bool(rows.latency_only.iloc[0])
        rows = self.latency[self.latency.model == model]
        return bool(len(rows) and rows.latency_only.iloc[0])

    @property
    def models(self) -> list[str]:
        seen: list[str] = []
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


def load(db: str | os.PathLike[str]) -> StudyData:
    """Read every study row of ``db``. BadInputError when it holds none."""
    from ...study.store import Store

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


TableFn = TypeVar("TableFn", bound=Callable[..., Any])


def cached_table(fn: TableFn) -> TableFn:
    """Compute a derived table once per loaded database (figures and findings ask for the
    same tables many times); callers get a copy they may change."""
    @functools.wraps(fn)
    def wrap(d: StudyData, *args: Any) -> Any:
        key = (fn.__name__, args)
        if key not in d.cache:
            d.cache[key] = fn(d, *args)
        v = d.cache[key]
        return v.copy() if isinstance(v, pd.DataFrame) else v
    return cast(TableFn, wrap)


def sample_std(x: pd.Series) -> float:
    """The standard deviation over seeds (ddof 1); 0 for a single seed."""
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def reference_method(labels: Iterable[str]) -> str | None:
    """The unstructured method whose latencies the crossover table reads."""
    labels = [x for x in labels if x != "dense"]
    for m in REFERENCE_METHODS:
        if m in labels:
            return m
    return labels[0] if labels else None
