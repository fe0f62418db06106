"""The report page (one self-contained HTML file) and its Markdown summary, rendered from the
jinja2 templates in ``templates/`` (installed with the package): this module gathers what each
section shows (tables from :mod:`.tables`, figures from :mod:`.figures`), the templates lay it
out.

The HTML is autoescaped: text is escaped with :func:`html.escape` (as the page was before it
had templates; markupsafe writes ``'`` as ``&#39;``, html.escape as ``&#x27;``), and only
:class:`markupsafe.Markup` values (a model's label, the tables and figures the macros render)
go in as they are.
"""
from __future__ import annotations

import functools
import html
import json
import time
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from jinja2.nodes import EvalContext
from markupsafe import Markup

from . import conclusions as C
from . import data as D
from . import figures as F
from . import tables as T
from .findings import TABLES, Finding
from .tables import decision_columns, fmt_num, fmt_pct, model_label

__all__ = ["build_html", "build_markdown", "decision_columns", "fmt_num", "fmt_pct",
           "model_label"]


@jinja2.pass_eval_context
def _finalize(ctx: EvalContext, value: Any) -> Any:
    """Every ``{{ value }}`` of an HTML template: escaped as :func:`html.escape` does."""
    if not ctx.autoescape or isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates' environment: HTML templates (``*.html.j2``) autoescaped, Markdown ones
    not; a block tag's line leaves no blank line behind; an undefined name is an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("prunebench.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            default_for_string=True),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize)


@dataclass(frozen=True)
class Figure:
    """A figure of the page: a base64 PNG (None: nothing to draw, the page leaves it out)."""
    b64: str | None
    alt: str
    caption: str

    def __bool__(self) -> bool:
        return bool(self.b64)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(name))


def _latency_only_models(d: D.StudyData) -> list[str]:
    return [m for m in d.models if d.latency_only(m) and m not in C.task_models(d)]


def _latency_section(d: D.StudyData) -> dict[str, Any]:
    lat = D.latency_table(d)
    models = []
    for model in dict.fromkeys(lat.model) if len(lat) else []:
        full = F.latency(d, model)
        models.append({
            "label": model_label(d, model), "name": model,
            "id": f"fig-latency-full-{_slug(model)}",
            "short": Figure(F.latency_best(d, model), f"latency (best per engine) {model}",
                            "Speedup over the fastest dense engine: each engine's best format "
                            "(reference method); dashed: the fastest dense engine. Every pair: "
                            "the full figure below."),
            "full": Figure(full, f"latency {model}", "Median latency (top) and "
                           "speedup (bottom); solid lines: the reference unstructured method, "
                           "dashed: others; dotted horizontal lines: the unpruned model on each "
                           "dense engine. A sparse format at 0% runs dense where the engine "
                           "falls back (no zeros to skip).")})
    show = lat.sort_values(["model", "method_label", "sparsity", "batch", "pair"]) \
        if len(lat) else lat
    de = D.dense_engines_table(d)
    return {"rows": len(lat), "side_by_side": int(lat.side_by_side.sum()) if len(lat) else 0,
            "models": models, "table": T.latency(show), "crossover": T.crossover(d),
            "beats_pct": round(100 * (D.BEATS - 1)),
            "dense": T.dense_engines(d, de) if len(de) else None}


def _size_section(d: D.StudyData) -> dict[str, Any]:
    st = D.size_table(d)
    models = []
    for model in dict.fromkeys(st.model) if len(st) else []:
        full = F.size(d, model)
        models.append({
            "name": model, "id": f"fig-size-full-{_slug(model)}",
            "short": Figure(F.size_best(d, model), f"size (smallest per values) {model}",
                            f"{model}: the smallest format per value encoding against the dense "
                            "fp32 file (dashed)."),
            "full": Figure(full, f"size {model}", f"{model}: compressed model file relative to "
                           "the dense fp32 file; | marks the interpolated break-even of each "
                           "fp32 format.")})
    return {"models": models, "table": T.size(d), "layers": T.layer_size(d)}


def _pictures(d: D.StudyData) -> list[dict[str, Any]]:
    out = []
    for model in d.models:
        if d.is_control(model):
            continue
        p = d.prune[(d.prune.model == model) & (d.prune.method_label != "dense")]
        if p.empty:
            continue
        ss = sorted(p.sparsity.astype(float).unique())
        s = 0.9 if any(np.isclose(ss, 0.9)) else ss[-1]
        out.append({"label": model_label(d, model), "figures": [
            Figure(F.sparsity_bars(d, model, s), f"sparsity bars {model}",
                   f"Per-layer sparsity of each method at {100 * s:.0f}% requested (first "
                   "seed)."),
            Figure(F.masks(d, model, s), f"masks {model}", "Each pruned layer's weight matrix "
                   "(rows x fan-in, gates stacked for RNNs), downsampled; darker = more "
                   "nonzeros.")]})
    return out


def _machines(d: D.StudyData) -> list[dict[str, Any]]:
    out = []
    for mid, fp in d.machines.items():
        out.append({"id": mid, "fp": fp, "profile": fp.get("profile", "default"),
                    "libraries": ", ".join(f"{k} {v}" for k, v in
                                           (fp.get("libraries") or {}).items() if v),
                    "simd": " ".join(fp.get("simd") or []),
                    "memory_gib": fmt_num((fp.get("memory_bytes") or 0) / 2**30),
                    "env": json.dumps(fp.get("env") or {})})
    return out


def _context(d: D.StudyData, findings: list[Finding], title: str,
             conclusions: list[C.Conclusion]) -> dict[str, Any]:
    """Everything the page shows, section by section, in the order it shows it."""
    du = D.dead_units_table(d)
    accv = D.accuracy_by_values(d)
    tm = D.task_metrics_table(d)
    pt = D.profile_table(d)
    mt = D.machine_table(d)
    rp = D.run_profile_table(d)
    return {
        "title": title, "db": d.db, "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine_count": len(d.machines), "question": C.QUESTION,
        "conclusions": conclusions, "findings": findings, "TABLES": TABLES,
        "decision": T.decision(d), "latency_only": _latency_only_models(d),
        "accuracy": {
            "figure": Figure(F.accuracy(d), "accuracy vs sparsity", "Mean ± std over seeds; "
                             "dashed lines are before fine-tuning. Star: dense model with the "
                             "parameter count the 90%-pruned model keeps. Diamond: int8 dynamic "
                             "quantization (no pruning)."),
            "table": T.accuracy(d), "dead_units": T.dead_units(du) if len(du) else None,
            "by_values": T.accuracy_by_values(accv)
            if len(accv) and accv.value_encoding.nunique() > 1 else None},
        "latency": _latency_section(d),
        "size": _size_section(d),
        "pareto": [Figure(F.pareto(d, model), f"pareto {model}", f"{model}: every measured "
                          "configuration (grey) and the non-dominated ones (red).")
                   for model in d.accuracy_models],
        "controls": T.controls(d), "quant": T.quant(d),
        "tasks": T.tasks(tm) if len(tm) else None,
        "pictures": _pictures(d),
        "profile": {"figures": [Figure(F.profile(d, model), f"profile {model}", "Time per "
                                       "layer from forward hooks; (other) is time outside the "
                                       "hooked layers.")
                                for model in (dict.fromkeys(pt.model) if len(pt) else [])],
                    "table": T.profile(pt)},
        "failed_count": len(d.failed), "skipped_count": len(d.skipped),
        "failures": T.failures(d), "skipped": T.skipped(d),
        "machine_table": T.machines(d, mt) if len(mt) else None,
        "run_profiles": T.run_profiles(d, rp) if len(rp) else None,
        "machines": _machines(d),
    }


def _figures(obj: object) -> list[Figure]:
    """Every figure in the page's context (``obj``), wherever it sits."""
    if isinstance(obj, Figure):
        return [obj]
    if isinstance(obj, dict):
        return [f for v in obj.values() for f in _figures(v)]
    if isinstance(obj, list):
        return [f for v in obj for f in _figures(v)]
    return []


def build_html(d: D.StudyData, findings: list[Finding], title: str,
               conclusions: list[C.Conclusion] | None = None) -> tuple[str, int]:
    """The page and the number of figures in it."""
    ctx = _context(d, findings, title, C.compute(d) if conclusions is None else conclusions)
    page = environment().get_template("report.html.j2").render(ctx)
    return page, sum(bool(f) for f in _figures(ctx))


def _markdown_tables(d: D.StudyData) -> list[tuple[str, T.Table]]:
    """The Markdown summary's tables after its findings: (caption, cells)."""
    out = []
    xo = D.crossover_table(d)
    out.append((TABLES["crossover"], T.markdown_rows(xo, [
        ("model", lambda r: r.model + (" (latency-only)" if r.latency_only else "")),
        ("method", lambda r: r.method_label), ("batch", lambda r: int(r.batch)),
        ("engine / format", lambda r: r.pair),
        ("fastest dense", lambda r: f"{r.best_dense} {fmt_num(r.best_dense_ms)} ms"),
        ("beats it from", lambda r: fmt_pct(r.crossover) if r.crossover is not None
         and not pd.isna(r.crossover) else f"never (≤ {fmt_pct(r.max_sparsity)})"),
        ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")])))
    sx = D.size_crossover_table(d)
    out.append((TABLES["size"], T.markdown_rows(sx[sx["values"] == "fp32"] if len(sx) else sx, [
        ("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("format", lambda r: r.format),
        ("smaller than dense from", lambda r: fmt_pct(r.crossover) if r.crossover is not None
         and not pd.isna(r.crossover) else "never"),
        ("break-even", lambda r: fmt_pct(r.break_even))])))
    out.append((TABLES["accuracy"], T.markdown_rows(D.accuracy_table(d), [
        ("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("accuracy", lambda r: f"{fmt_pct(r.acc_mean)} ± {100 * r.acc_std:.1f}"),
        ("before FT", lambda r: fmt_pct(r.before_mean)), ("seeds", lambda r: int(r.n))])))
    out.append((TABLES["controls"], T.markdown_rows(D.controls_table(d), [
        ("model", lambda r: r.model),
        ("pruned", lambda r: f"{r.method_label} {fmt_pct(r.sparsity)}"),
        ("pruned accuracy", lambda r: fmt_pct(r.pruned_mean)),
        ("matched dense", lambda r: f"{r.control} ({fmt_num(r.control_params)} params)"),
        ("its accuracy", lambda r: fmt_pct(r.control_mean)),
        ("difference", lambda r: f"{100 * r.difference:+.1f} pts")])))
    tm = D.task_metrics_table(d)
    if len(tm):
        out.append((TABLES["tasks"], T.markdown_rows(tm, T.task_columns(tm))))
    out.append((TABLES["quant"], T.markdown_rows(D.quant_table(d), [
        ("model", lambda r: r.model), ("accuracy", lambda r: fmt_pct(r.acc_mean)),
        ("dense", lambda r: fmt_pct(r.dense_mean)),
        ("size ratio", lambda r: fmt_num(r.size_ratio))])))
    return out


def build_markdown(d: D.StudyData, findings: list[Finding], title: str, html_name: str,
                   conclusions: list[C.Conclusion] | None = None) -> str:
    """The Markdown summary: the conclusions, the decision table, the findings and the main
    tables (no figures; ``html_name`` is the page that has them)."""
    conclusions = C.compute(d) if conclusions is None else conclusions
    ctx = {"title": title, "db": d.db, "html_name": html_name, "question": C.QUESTION,
           "conclusions": conclusions, "TABLES": TABLES,
           "decision": T.markdown_rows(C.decision_table(d), decision_columns(d)),
           "latency_only": _latency_only_models(d), "findings": findings,
           "tables": _markdown_tables(d), "machines": _machines(d)}
    return environment().get_template("report.md.j2").render(ctx)
