"""The report's tables as rows of cells: which columns each table shows and how a cell reads.
The templates lay them out (``templates/macros.html.j2``, ``templates/report.md.j2``).

A cell is plain text, escaped when the HTML is rendered, or :class:`markupsafe.Markup` for the
few cells that carry markup of their own (a model's label with its latency-only note).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup

from . import conclusions as C
from . import data as D
from .findings import TABLES

#: a column: its header and the function that writes its cell from a row
Column = tuple[str, Callable[[pd.Series], Any]]


@dataclass(frozen=True)
class Table:
    """A table of the page: ``key`` is its anchor (``#table-KEY``, the findings link to it),
    ``left`` how many leading columns are left-aligned; no rows and a key show "no rows"."""
    key: str | None
    caption: str | None
    headers: list[str]
    rows: list[list[Any]]
    left: int = 1


def table(df: pd.DataFrame | None, cols: Sequence[Column], key: str | None = None,
          caption: str | None = None, left: int = 1) -> Table:
    """The cells of ``df`` under ``cols``."""
    rows = [] if df is None or df.empty else [[f(r) for _, f in cols] for _, r in df.iterrows()]
    return Table(key, caption, [h for h, _ in cols], rows, left)


def markdown_rows(df: pd.DataFrame | None, cols: Sequence[Column]) -> Table:
    """``df`` under ``cols`` as Markdown cells: text, with ``|`` written as ``/``."""
    t = table(df, cols)
    return Table(None, None, t.headers,
                 [[str(c).replace("|", "/") for c in row] for row in t.rows])


def fmt_pct(x: Any) -> str:
    """A fraction as a percentage with one decimal; empty for None/NaN."""
    return "" if x is None or pd.isna(x) else f"{100 * float(x):.1f}%"


def fmt_num(x: Any, digits: int = 3) -> str:
    """An integer with thousands separators, a float with ``digits`` significant digits (with
    separators from 10,000); empty for None/NaN."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    return f"{float(x):.{digits}g}" if abs(float(x)) < 1e4 else f"{float(x):,.0f}"


def model_label(d: D.StudyData, model: str) -> Markup:
    """The model's name, with a note when it is judged by a task or has random weights."""
    name = html.escape(str(model), quote=True)
    if model in C.task_models(d):
        return Markup(f"{name} <span class='lo'>(pretrained: judged by task metrics)</span>")
    if d.latency_only(model):
        return Markup(f"{name} <span class='lo'>(latency-only: random weights, accuracy "
                      "n/a)</span>")
    return Markup(name)


def _never(v: Any, r: pd.Series) -> str:
    return fmt_pct(v) if v is not None and not pd.isna(v) else \
        f"never (≤ {fmt_pct(r.max_sparsity)})"


def _since(v: Any) -> str:
    return fmt_pct(v) if v is not None and not pd.isna(v) else "never"


def _pm(mean: Any, std: Any) -> str:
    return f"{fmt_pct(mean)} ± {100 * std:.1f}"


def decision_columns(d: D.StudyData) -> list[Column]:
    """The decision table's columns (plain text: the HTML escapes them, the Markdown and the
    CSV export take them as they are)."""
    return [
        ("model", lambda r: r.model), ("sparsity band", lambda r: r.band),
        ("best at", lambda r: fmt_pct(r.sparsity)),
        ("engine / format / values", lambda r: f"{r.engine} / {r.format} / {r['values']}"),
        ("speedup vs fastest dense", lambda r: f"{r.speedup_best:.2f}x {r.best_dense}"
         + ("" if r.beats else " (keep dense)")),
        ("file vs dense", lambda r: "" if pd.isna(r.size_ratio) else f"{r.size_ratio:.2f}x"),
        ("accuracy change", lambda r: C.accuracy_text(r))]


def task_columns(tm: pd.DataFrame) -> list[Column]:
    """The task-metrics table: one column per metric (``n_*`` counts are not metrics)."""
    cols: list[Column] = [("model", lambda r: r.model), ("method", lambda r: r.method_label),
                          ("sparsity", lambda r: fmt_pct(r.sparsity))]
    for c in tm.columns:
        if c not in ("model", "method_label", "sparsity", "n") and not c.startswith("n_"):
            cols.append((c.replace("_", " "), _metric(c)))
    return cols + [("seeds", lambda r: int(r.n))]


def _metric(c: str) -> Callable[[pd.Series], str]:
    return lambda r: "" if pd.isna(r[c]) else f"{r[c]:.3f}"


def _cell(c: Any) -> Callable[[pd.Series], Any]:
    """Column ``c`` of the row as it is."""
    return lambda r: r[c]


def accuracy_pivot(acc: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method), one column per sparsity: "mean ± std (before)"."""
    if acc.empty:
        return acc
    rows = []
    for (model, label), g in acc.groupby(["model", "method_label"], sort=True):
        r: dict[Any, Any] = {"model": model, "method_label": label, "n": int(g.n.max())}
        for _, x in g.iterrows():
            r[float(x.sparsity)] = (f"{100 * x.acc_mean:.1f} ± {100 * x.acc_std:.1f} "
                                    f"({100 * x.before_mean:.1f})")
        rows.append(r)
    out = pd.DataFrame(rows)
    cols = ["model", "method_label", "n"] + sorted(c for c in out.columns if isinstance(c, float))
    return out[cols].fillna("")


def profile_pivot(pt: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """Per profiled model: rows = its most expensive layers (the rest summed), columns = engine
    / format pairs, cells = "ms (share)"."""
    rows: list[dict[str, Any]] = []
    for model, g in pt.groupby("model", sort=False):
        tab = g.pivot_table(index="layer", columns="pair", values="ms", aggfunc="sum",
                            sort=False).fillna(0.0)
        totals = g.groupby("pair").total_ms.first()
        named = tab.drop(index=["(other)"], errors="ignore")
        order = list(named.max(axis=1).sort_values(ascending=False).index)
        keep, rest = order[:top], order[top:]
        for layer in keep + (["(other layers)"] if rest else []) + \
                (["(other)"] if "(other)" in tab.index else []):
            vals = tab.loc[rest].sum() if layer == "(other layers)" else tab.loc[layer]
            r = {"model": model, "layer": layer}
            for pair in tab.columns:
                t = totals.get(pair) or 0.0
                r[pair] = f"{vals[pair]:.3g} ({100 * vals[pair] / t:.0f}%)" if t else ""
            rows.append(r)
        rows.append({"model": model, "layer": "total per call",
                     **{pair: f"{totals.get(pair, 0.0):.3g}" for pair in tab.columns}})
    return pd.DataFrame(rows).fillna("")


def skips_grouped(skipped: pd.DataFrame) -> pd.DataFrame:
    """Skipped jobs counted per kind, engine, format and reason, most frequent first."""
    if skipped.empty:
        return skipped
    g = skipped.groupby(["kind", "engine", "format", "reason"], dropna=False).size()
    return g.reset_index(name="jobs").sort_values("jobs", ascending=False)


def _int(v: Any) -> str:
    return str(int(v))


def _or_empty(v: Any) -> Any:
    return v or ""


# ------------------------------------------------------------------------------ the tables


def decision(d: D.StudyData) -> Table:
    return table(C.decision_table(d), decision_columns(d), "decision", TABLES["decision"],
                 left=4)


def accuracy(d: D.StudyData) -> Table:
    piv = accuracy_pivot(D.accuracy_table(d))
    sp_cols = [c for c in piv.columns if isinstance(c, float)]
    cols: list[Column] = [("model", lambda r: r.model), ("method", lambda r: r.method_label),
                          ("seeds", lambda r: _int(r.n))]
    cols += [(fmt_pct(c), _cell(c)) for c in sp_cols]
    return table(piv, cols, "accuracy", TABLES["accuracy"], left=2)


def dead_units(du: pd.DataFrame) -> Table:
    return table(du, [
        ("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("accuracy", lambda r: "n/a" if pd.isna(r.acc_mean) else _pm(r.acc_mean, r.acc_std)),
        ("dead outputs", lambda r: f"{r.dead_out:.3g} of {r.outputs:,} "
                                   f"({fmt_pct(r.dead_out / r.outputs)})"),
        ("unread inputs", lambda r: f"{r.dead_in:.3g} of {r.inputs:,} "
                                    f"({fmt_pct(r.dead_in / r.inputs)})"),
        ("most disconnected layer", lambda r: f"{r.worst_layer}: {r.worst_dead_out} of "
                                              f"{r.worst_outputs}"),
        ("seeds", lambda r: _int(r.n))], "dead-units", TABLES["dead-units"], left=3)


def accuracy_by_values(accv: pd.DataFrame) -> Table:
    return table(accv, [
        ("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("sparsity", lambda r: fmt_pct(r.sparsity)), ("values", lambda r: r.value_encoding),
        ("accuracy", lambda r: _pm(r.acc_mean, r.acc_std)),
        ("seeds", lambda r: _int(r.n))], None, None, left=2)


def _layers_in_format(r: pd.Series) -> str:
    plan = (r.extra or {}).get("plan")
    return "" if not isinstance(plan, dict) else \
        f"{plan['in_format']} (+{plan['fell_back']} dense)"


def latency(show: pd.DataFrame) -> Table:
    if show.empty:
        return table(show, [], "latency", TABLES["latency"])
    return table(show, [
        ("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("sparsity", lambda r: fmt_pct(r.sparsity)), ("engine / format", lambda r: r.pair),
        ("batch", lambda r: _int(r.batch)), ("threads", lambda r: _int(r.threads)),
        ("p50 ms", lambda r: fmt_num(r.p50_ms)), ("p90 ms", lambda r: fmt_num(r.p90_ms)),
        ("dense PyTorch beside", lambda r: fmt_num(r.reference_ms)),
        ("speedup", lambda r: fmt_num(r.speedup)),
        ("vs fastest dense", lambda r: fmt_num(r.speedup_best)),
        ("layers in format", _layers_in_format),
        ("max rel. error", lambda r: fmt_num((r.verify or {}).get("rel_max"), 2)),
        ("noisy", lambda r: "yes" if r.noisy else "")], "latency", TABLES["latency"], left=4)


def crossover(d: D.StudyData) -> Table:
    return table(D.crossover_table(d), [
        ("model", lambda r: model_label(d, r.model)), ("method", lambda r: r.method_label),
        ("batch", lambda r: _int(r.batch)), ("engine / format", lambda r: r.pair),
        ("fastest dense", lambda r: f"{r.best_dense} {fmt_num(r.best_dense_ms)} ms"),
        ("beats it from", lambda r: _never(r.crossover, r)),
        ("speedup there", lambda r: fmt_num(r.speedup_at_crossover)),
        ("beats dense PyTorch from", lambda r: _never(r.crossover_torch, r)),
        ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")],
        "crossover", TABLES["crossover"], left=5)


def dense_engines(d: D.StudyData, de: pd.DataFrame) -> Table:
    return table(de, [
        ("model", lambda r: model_label(d, r.model)), ("batch", lambda r: _int(r.batch)),
        ("engine (dense)", lambda r: r.engine), ("p50 ms", lambda r: fmt_num(r.p50_ms)),
        ("speedup over PyTorch", lambda r: fmt_num(r.speedup))], "dense", TABLES["dense"],
        left=3)


def size(d: D.StudyData) -> Table:
    return table(D.size_crossover_table(d), [
        ("model", lambda r: model_label(d, r.model)), ("method", lambda r: r.method_label),
        ("format", lambda r: r.format), ("values", lambda r: r["values"]),
        ("smaller than dense (same values) from", lambda r: _since(r.crossover)),
        ("break-even (interpolated)", lambda r: fmt_pct(r.break_even)),
        ("size vs dense at max sparsity", lambda r: f"{fmt_num(r.ratio_at_max)}x at "
                                                    f"{fmt_pct(r.max_sparsity)}")],
        "size", TABLES["size"], left=4)


def layer_size(d: D.StudyData) -> Table:
    return table(D.layer_size_crossover(d), [
        ("model", lambda r: r.model), ("shape", lambda r: r["shape"]),
        ("layers", lambda r: r.layer), ("format", lambda r: r.format),
        ("measured: smaller from", lambda r: _since(r.crossover)),
        ("cost model break-even", lambda r: fmt_pct(r.break_even_model)),
        ("measured points", lambda r: _int(r.points)),
        ("agree", lambda r: "" if r.agrees is None or pd.isna(r.agrees)
         else ("yes" if r.agrees else "no"))],
        "layer-size", TABLES["layer-size"], left=4)


def controls(d: D.StudyData) -> Table:
    return table(D.controls_table(d), [
        ("model", lambda r: r.model), ("pruned with", lambda r: r.method_label),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("pruned: nonzeros", lambda r: fmt_num(r.pruned_nonzero)),
        ("pruned: accuracy", lambda r: _pm(r.pruned_mean, r.pruned_std)),
        ("matched dense model", lambda r: r.control),
        ("its params", lambda r: fmt_num(r.control_params)),
        ("its accuracy", lambda r: _pm(r.control_mean, r.control_std)),
        ("pruned − matched", lambda r: f"{100 * r.difference:+.1f} pts")],
        "controls", TABLES["controls"], left=2)


def _quant_latency(c: str, dense: str) -> Callable[[pd.Series], str]:
    return lambda r: f"{fmt_num(r[c])} ({fmt_num(r.get(dense))})"


def quant(d: D.StudyData) -> Table:
    qt = D.quant_table(d)
    cols: list[Column] = [
        ("model", lambda r: r.model), ("accuracy", lambda r: _pm(r.acc_mean, r.acc_std)),
        ("dense accuracy", lambda r: fmt_pct(r.dense_mean)),
        ("top-1 agreement", lambda r: fmt_pct(r.top1_agreement)),
        ("max rel. output error", lambda r: fmt_num(r.rel_error, 2)
         + ("" if r.within_tolerance else " (above the int8 tolerance)")),
        ("file bytes", lambda r: fmt_num(int(r.file_bytes))),
        ("dense file bytes", lambda r: fmt_num(int(r.dense_file_bytes))),
        ("size ratio", lambda r: fmt_num(r.size_ratio))]
    for c in [c for c in qt.columns if c.startswith("latency_b")]:
        b = c[len("latency_b"):-3]
        cols.append((f"b{b} ms (dense)", _quant_latency(c, f"dense_b{b}_ms")))
    return table(qt, cols, "quant", TABLES["quant"])


def tasks(tm: pd.DataFrame) -> Table:
    return table(tm, task_columns(tm), "tasks", TABLES["tasks"], left=2)


def profile(pt: pd.DataFrame) -> Table:
    pp = profile_pivot(pt) if len(pt) else pt
    pcols = [c for c in pp.columns if c not in ("model", "layer")]
    return table(pp, [("model", lambda r: r.model), ("layer", lambda r: r.layer)]
                 + [(c, _cell(c)) for c in pcols],
                 "profile", TABLES["profile"] + " (ms per call and share)", left=2)


def failures(d: D.StudyData) -> Table:
    return table(d.failed.head(200), [
        ("kind", lambda r: r.kind), ("model", lambda r: r.model),
        ("method", lambda r: _or_empty(r.method_label)),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("engine", lambda r: _or_empty(r.engine)), ("format", lambda r: _or_empty(r.format)),
        ("batch", lambda r: "" if r.batch is None or pd.isna(r.batch) else _int(r.batch)),
        ("reason", lambda r: r.reason)], "failures", TABLES["failures"], left=8)


def skipped(d: D.StudyData) -> Table:
    return table(skips_grouped(d.skipped), [
        ("kind", lambda r: r.kind), ("engine", lambda r: _or_empty(r.engine)),
        ("format", lambda r: _or_empty(r.format)), ("reason", lambda r: r.reason),
        ("jobs", lambda r: _int(r.jobs))], None, "Skipped jobs, by reason", left=4)


def machines(d: D.StudyData, mt: pd.DataFrame) -> Table:
    return table(mt, [
        ("model", lambda r: model_label(d, r.model)), ("batch", lambda r: _int(r.batch)),
        ("engine / format", lambda r: r.pair), ("machine", lambda r: r.hostname),
        ("beats the fastest dense from", lambda r: _never(r.crossover, r)),
        ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")],
        None, "Machines compared: crossover and best speedup over the machine's own "
        "fastest dense run", left=4)


def run_profiles(d: D.StudyData, rp: pd.DataFrame) -> Table:
    return table(rp, [
        ("machine", lambda r: r.hostname), ("model", lambda r: model_label(d, r.model)),
        ("method", lambda r: r.method_label), ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("engine / format", lambda r: f"{r.engine}/{r.format}"),
        ("values", lambda r: r.value_encoding), ("batch", lambda r: _int(r.batch)),
        ("default ms", lambda r: fmt_num(r.default_ms)),
        ("edge ms", lambda r: fmt_num(r.edge_ms)),
        ("edge / default", lambda r: f"{fmt_num(r.edge_vs_default)}x")],
        None, "Run profiles compared on one machine: default vs edge (1 thread, 128-bit "
        "SIMD code; a proxy for a Cortex-A class board, not a measurement of one)", left=5)
