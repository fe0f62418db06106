"""``prunebench report DB --figures DIR``: every figure of the report as PDF and SVG, every
table as CSV (raw numbers) and LaTeX (booktabs, formatted), for a thesis or a paper.

Examples
--------
>>> from prunebench.report import load                            # doctest: +SKIP
>>> export(load("runs/results.sqlite"), "figs")["tables"][:1]      # doctest: +SKIP
[PosixPath('figs/decision.csv')]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError
from . import conclusions as C
from . import data as D
from . import figures as F
from .findings import TABLES

TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "\\": r"\textbackslash{}", "±": r"$\pm$"}


def check_dir(path: str | os.PathLike) -> Path:
    """The folder ``--figures`` names: created when missing (its parent must exist)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise BadInputError(f"--figures: {str(p)!r} is a file, expected a folder")
    if not p.exists() and not p.parent.exists():
        raise BadInputError(f"--figures: folder {str(p.parent)!r} does not exist")
    target = p if p.exists() else p.parent
    if not os.access(target, os.W_OK):
        raise BadInputError(f"--figures: folder {str(target)!r} is not writable")
    return p


def tex(x: object) -> str:
    return "".join(TEX_SPECIAL.get(ch, ch) for ch in str(x))


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}".replace(",", "{,}")
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return tex(v)


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (``\\toprule``, ``\\midrule``, ``\\bottomrule``; needs
    ``\\usepackage{booktabs}``): numbers to 3 significant digits, text escaped."""
    cols = list(df.columns)
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in cols)
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{tex(caption)}}}",
             rf"\label{{tab:{label}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex(c) for c in cols) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(_cell(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """The columns that hold plain values (no dicts or lists: extra, spec, layers, ...)."""
    keep = [c for c in df.columns
            if not df[c].map(lambda v: isinstance(v, (dict, list, tuple))).any()]
    return df[keep]


def tables(d: D.StudyData) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """{name: (raw table for CSV, display table for LaTeX)} of every table of the report."""
    from .tables import decision_columns

    dt = C.decision_table(d)
    shown = pd.DataFrame({h: [f(r) for _, r in dt.iterrows()] for h, f in decision_columns(d)})
    lat = D.latency_table(d)
    lat_cols = ["model", "method_label", "sparsity", "engine", "format", "value_encoding",
                "batch", "threads", "p50_ms", "p90_ms", "speedup", "speedup_best",
                "best_dense"]
    fail_cols = ["kind", "model", "method_label", "sparsity", "engine", "format", "batch",
                 "reason"]
    out = {"decision": (dt, shown)}
    for key, df in (("accuracy", D.accuracy_table(d)), ("dense", D.dense_engines_table(d)),
                    ("crossover", D.crossover_table(d)), ("size", D.size_crossover_table(d)),
                    ("layer-size", D.layer_size_crossover(d)), ("controls", D.controls_table(d)),
                    ("quant", D.quant_table(d)), ("profile", D.profile_table(d)),
                    ("failures", d.failed[[c for c in fail_cols if c in d.failed]]),
                    ("latency", lat[[c for c in lat_cols if c in lat]]),
                    ("tasks", D.task_metrics_table(d)), ("dead-units", D.dead_units_table(d))):
        df = _plain(df.reset_index(drop=True))
        out[key] = (df, df)
    return out


def _figures(d: D.StudyData):
    """(file stem, matplotlib figure or None) of every figure, built one at a time."""
    yield "accuracy", lambda: F.accuracy_fig(d)
    for model in d.models:
        m = "".join(c if c.isalnum() or c in "-_" else "-" for c in model)
        yield f"latency-{m}", lambda model=model: F.latency_best_fig(d, model)
        yield f"latency-{m}-full", lambda model=model: F.latency_fig(d, model)
        yield f"size-{m}", lambda model=model: F.size_best_fig(d, model)
        yield f"size-{m}-full", lambda model=model: F.size_fig(d, model)
        yield f"pareto-{m}", lambda model=model: F.pareto_fig(d, model)
        yield f"profile-{m}", lambda model=model: F.profile_fig(d, model)
        p = d.prune[(d.prune.model == model) & (d.prune.method_label != "dense")]
        if len(p) and not d.is_control(model):
            ss = sorted(p.sparsity.astype(float).unique())
            s = 0.9 if any(np.isclose(ss, 0.9)) else ss[-1]
            yield f"sparsity-{m}", lambda model=model, s=s: F.sparsity_bars_fig(d, model, s)
            yield f"masks-{m}", lambda model=model, s=s: F.masks_fig(d, model, s)


def export(d: D.StudyData, folder: str | os.PathLike) -> dict:
    """Write every figure (``NAME.pdf``, ``NAME.svg``) and table (``NAME.csv``, ``NAME.tex``)
    of the report into ``folder``. Returns ``{"figures": [paths], "tables": [paths]}``."""
    out = check_dir(folder)
    out.mkdir(exist_ok=True)
    plt = F.pyplot()
    figs, tabs = [], []
    for stem, build in _figures(d):
        fig = build()
        if fig is None:
            continue
        for ext in ("pdf", "svg"):
            path = out / f"{stem}.{ext}"
            fig.savefig(path, format=ext)
            figs.append(path)
        plt.close(fig)
    for key, (raw, shown) in tables(d).items():
        if raw.empty:
            continue
        raw.to_csv(out / f"{key}.csv", index=False)
        (out / f"{key}.tex").write_text(to_latex(shown, TABLES[key], key), encoding="utf-8")
        tabs += [out / f"{key}.csv", out / f"{key}.tex"]
    return {"figures": figs, "tables": tabs}
