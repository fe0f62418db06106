"""The report page (one self-contained HTML file) and its Markdown summary."""
from __future__ import annotations

import html
import json
import time
from typing import Callable

import numpy as np
import pandas as pd

from . import conclusions as C
from . import data as D
from . import figures as F
from .findings import TABLES, Finding

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1.2em}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}caption{text-align:left;font-weight:600;padding:.3em 0}
figure{margin:.8em 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.lo{color:#8a5a00;font-weight:600}.findings li{margin:.35em 0}.muted{color:#666;font-size:.85em}
details{margin:.5em 0}code{background:#f4f4f4;padding:0 3px}
"""

CHECK_SCRIPT = """
<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); });
  window.addEventListener('load', function () {
    var imgs = document.images, bad = [];
    for (var i = 0; i < imgs.length; i++) {
      if (!(imgs[i].complete && imgs[i].naturalWidth > 0 && imgs[i].naturalHeight > 0)) {
        bad.push(imgs[i].alt);
      }
    }
    var d = document.createElement('div');
    d.id = 'pb-check';
    d.className = 'muted';
    d.setAttribute('data-images', String(imgs.length));
    d.setAttribute('data-broken', String(bad.length));
    d.setAttribute('data-errors', String(errors.length));
    d.textContent = bad.length ? ('figures that did not load: ' + bad.join(', '))
                               : ('all ' + imgs.length + ' figures loaded');
    document.body.appendChild(d);
  });
})();
</script>
"""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(name))


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def fmt_pct(x) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * float(x):.1f}%"


def fmt_num(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    return f"{float(x):.{digits}g}" if abs(float(x)) < 1e4 else f"{float(x):,.0f}"


def _table(df: pd.DataFrame, cols: list[tuple[str, Callable]], key: str | None = None,
           caption: str | None = None, left: int = 1) -> str:
    if df is None or df.empty:
        return f"<p class='muted' id='table-{key}'>{esc(caption or '')}: no rows.</p>" if key \
            else ""
    head = "".join(f"<th class='{'l' if i < left else ''}'>{esc(h)}</th>"
                   for i, (h, _) in enumerate(cols))
    body = []
    for _, r in df.iterrows():
        cells = []
        for i, (_, f) in enumerate(cols):
            v = f(r)
            cells.append(f"<td class='{'l' if i < left else ''}'>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    idattr = f" id='table-{key}'" if key else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{idattr}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _task_columns(tm: pd.DataFrame) -> list:
    cols = [("model", lambda r: esc(r.model)), ("method", lambda r: esc(r.method_label)),
            ("sparsity", lambda r: fmt_pct(r.sparsity))]
    for c in tm.columns:  # n_*: how many pairs / sentences a metric used, not a metric
        if c not in ("model", "method_label", "sparsity", "n") and not c.startswith("n_"):
            cols.append((c.replace("_", " "), lambda r, c=c: "" if pd.isna(r[c])
                         else f"{r[c]:.3f}"))
    return cols + [("seeds", lambda r: int(r.n))]


def _img(b64: str | None, alt: str, caption: str) -> str:
    if not b64:
        return ""
    return (f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def model_label(d: D.StudyData, model: str) -> str:
    if model in C.task_models(d):
        return f"{esc(model)} <span class='lo'>(pretrained: judged by task metrics)</span>"
    if d.latency_only(model):
        return f"{esc(model)} <span class='lo'>(latency-only: random weights, accuracy n/a)</span>"
    return esc(model)


def _acc_cell(d: D.StudyData, model: str, value) -> str:
    if d.latency_only(model):
        return "n/a (latency-only)"
    return fmt_pct(value)


def _accuracy_pivot(acc: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method), one column per sparsity: "mean ± std (before)"."""
    if acc.empty:
        return acc
    rows = []
    for (model, label), g in acc.groupby(["model", "method_label"], sort=True):
        r = {"model": model, "method_label": label, "n": int(g.n.max())}
        for _, x in g.iterrows():
            r[float(x.sparsity)] = (f"{100 * x.acc_mean:.1f} ± {100 * x.acc_std:.1f} "
                                    f"({100 * x.before_mean:.1f})")
        rows.append(r)
    out = pd.DataFrame(rows)
    cols = ["model", "method_label", "n"] + sorted(c for c in out.columns if isinstance(c, float))
    return out[cols].fillna("")


def _profile_pivot(pt: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """Per profiled model: rows = its most expensive layers (the rest summed), columns = engine
    / format pairs, cells = "ms (share)"."""
    rows = []
    for model, g in pt.groupby("model", sort=False):
        table = g.pivot_table(index="layer", columns="pair", values="ms", aggfunc="sum",
                              sort=False).fillna(0.0)
        totals = g.groupby("pair").total_ms.first()
        named = table.drop(index=["(other)"], errors="ignore")
        order = list(named.max(axis=1).sort_values(ascending=False).index)
        keep, rest = order[:top], order[top:]
        for layer in keep + (["(other layers)"] if rest else []) + \
                (["(other)"] if "(other)" in table.index else []):
            vals = table.loc[rest].sum() if layer == "(other layers)" else table.loc[layer]
            r = {"model": model, "layer": layer}
            for pair in table.columns:
                t = totals.get(pair) or 0.0
                r[pair] = f"{vals[pair]:.3g} ({100 * vals[pair] / t:.0f}%)" if t else ""
            rows.append(r)
        rows.append({"model": model, "layer": "total per call",
                     **{pair: f"{totals.get(pair, 0.0):.3g}" for pair in table.columns}})
    return pd.DataFrame(rows).fillna("")


def _skips_grouped(skipped: pd.DataFrame) -> pd.DataFrame:
    if skipped.empty:
        return skipped
    g = skipped.groupby(["kind", "engine", "format", "reason"], dropna=False).size()
    out = g.reset_index(name="jobs").sort_values("jobs", ascending=False)
    return out


def decision_columns(d: D.StudyData) -> list[tuple[str, Callable]]:
    """The decision table's columns (plain text; the HTML escapes them)."""
    return [
        ("model", lambda r: r.model), ("sparsity band", lambda r: r.band),
        ("best at", lambda r: fmt_pct(r.sparsity)),
        ("engine / format / values", lambda r: f"{r.engine} / {r.format} / {r['values']}"),
        ("speedup vs fastest dense", lambda r: f"{r.speedup_best:.2f}x {r.best_dense}"
         + ("" if r.beats else " (keep dense)")),
        ("file vs dense", lambda r: "" if pd.isna(r.size_ratio) else f"{r.size_ratio:.2f}x"),
        ("accuracy change", lambda r: C.accuracy_text(r))]


def conclusions_html(d: D.StudyData, conclusions: list) -> list[str]:
    """The Conclusions section: the question, the sentences, the decision table."""
    parts = ["<h2 id='conclusions'>Conclusions</h2>",
             f"<p><i>{esc(C.QUESTION)}</i></p><ol class='findings'>"]
    for c in conclusions:
        dep = "depends on the engine" if c.engine_dependent else "engine-independent"
        parts.append(f"<li>{esc(c.text)} <a href='#table-{c.table}'>({esc(TABLES[c.table])})"
                     f"</a> <span class='muted'>[{dep}]</span></li>")
    if not conclusions:
        parts.append("<li>Not enough rows to answer yet.</li>")
    parts.append("</ol>")
    dt = C.decision_table(d)
    parts.append("<p>Per model and sparsity band, the engine/format/values with the highest "
                 "speedup over the fastest dense engine (reference method, smallest batch), "
                 "its file against the dense fp32 file, and the accuracy change against each "
                 "seed's dense model (mean ± std over seeds; task metrics for task-judged "
                 "models).</p>")
    parts.append(_table(dt, [(h, lambda r, f=f: esc(f(r))) for h, f in decision_columns(d)],
                        "decision", TABLES["decision"], left=4))
    return parts


def build_html(d: D.StudyData, findings: list[Finding], title: str,
               conclusions: list | None = None) -> tuple[str, int]:
    """The page and the number of figures in it."""
    conclusions = C.compute(d) if conclusions is None else conclusions
    parts: list[str] = []
    nfig = 0

    def fig(b64, alt, caption):
        nonlocal nfig
        if b64:
            nfig += 1
        parts.append(_img(b64, alt, caption))

    machines = d.machines
    parts.append(f"<h1>{esc(title)}</h1>")
    parts.append(f"<p class='muted'>Database <code>{esc(d.db)}</code>; generated "
                 f"{esc(time.strftime('%Y-%m-%d %H:%M:%S %z'))}; {len(machines)} machine(s). "
                 "Every number below is computed from the stored rows.</p>")
    parts.extend(conclusions_html(d, conclusions))
    lo = [m for m in d.models if d.latency_only(m) and m not in C.task_models(d)]
    if lo:
        parts.append("<p>Latency-only models (random weights, no dataset; accuracy is n/a "
                     "everywhere): " + ", ".join(f"<span class='lo'>{esc(m)}</span>" for m in lo)
                     + ".</p>")

    parts.append("<h2 id='findings'>Findings</h2><ol class='findings'>")
    for f in findings:
        parts.append(f"<li>{esc(f.text)} <a href='#table-{f.table}'>({esc(f.where)})</a></li>")
    if not findings:
        parts.append("<li>Not enough rows for findings yet.</li>")
    parts.append("</ol>")

    # accuracy
    parts.append("<h2 id='accuracy'>Accuracy vs sparsity</h2>")
    fig(F.accuracy(d), "accuracy vs sparsity", "Mean ± std over seeds; dashed lines are "
        "before fine-tuning. Star: dense model with the parameter count the 90%-pruned model "
        "keeps. Diamond: int8 dynamic quantization (no pruning).")
    acc = D.accuracy_table(d)
    parts.append("<p>Each cell: top-1 accuracy after fine-tuning, mean ± std over seeds "
                 "(before fine-tuning in brackets).</p>")
    piv = _accuracy_pivot(acc)
    sp_cols = [c for c in piv.columns if isinstance(c, float)]
    parts.append(_table(piv, [("model", lambda r: esc(r.model)),
                              ("method", lambda r: esc(r.method_label)),
                              ("seeds", lambda r: str(int(r.n)))]
                        + [(fmt_pct(c), lambda r, c=c: r[c]) for c in sp_cols],
                        "accuracy", TABLES["accuracy"], left=2))
    du = D.dead_units_table(d)
    if len(du):
        parts.append("<p>Dead units: output neurons/channels of the pruned layers left with no "
                     "incoming weight (they pass only their bias on), and inputs no weight of "
                     "the layer reads any more; summed over pruned layers, mean over seeds.</p>")
        parts.append(_table(du, [
            ("model", lambda r: esc(r.model)), ("method", lambda r: esc(r.method_label)),
            ("sparsity", lambda r: fmt_pct(r.sparsity)),
            ("accuracy", lambda r: "n/a" if pd.isna(r.acc_mean) else
             f"{fmt_pct(r.acc_mean)} ± {100 * r.acc_std:.1f}"),
            ("dead outputs", lambda r: f"{r.dead_out:.3g} of {r.outputs:,} "
                                       f"({fmt_pct(r.dead_out / r.outputs)})"),
            ("unread inputs", lambda r: f"{r.dead_in:.3g} of {r.inputs:,} "
                                        f"({fmt_pct(r.dead_in / r.inputs)})"),
            ("most disconnected layer", lambda r: f"{esc(r.worst_layer)}: {r.worst_dead_out} of "
                                                  f"{r.worst_outputs}"),
            ("seeds", lambda r: str(int(r.n)))], "dead-units", TABLES["dead-units"], left=3))
    accv = D.accuracy_by_values(d)
    if len(accv) and accv.value_encoding.nunique() > 1:
        parts.append("<details><summary>Accuracy per value encoding (model loaded back from its "
                     "file)</summary>")
        parts.append(_table(accv, [
            ("model", lambda r: esc(r.model)), ("method", lambda r: esc(r.method_label)),
            ("sparsity", lambda r: fmt_pct(r.sparsity)),
            ("values", lambda r: esc(r.value_encoding)),
            ("accuracy", lambda r: f"{fmt_pct(r.acc_mean)} ± {100 * r.acc_std:.1f}"),
            ("seeds", lambda r: str(int(r.n)))], None, None, left=2))
        parts.append("</details>")

    # latency
    lat = D.latency_table(d)
    parts.append("<h2 id='latency'>Latency and speedup vs sparsity</h2>")
    parts.append("<p>Speedup is over the unpruned model run densely by PyTorch "
                 "(<code>torch-dense</code>) at the same batch size and thread count. Every "
                 "timed configuration was first verified against the dense fp32 outputs. "
                 + (f"{int(lat.side_by_side.sum())} of {len(lat)} timings were taken side by "
                    "side with that baseline (alternating blocks of calls in the same job), and "
                    "their speedup is the ratio of that one run, so a busy or quiet spell of "
                    "the machine between jobs does not bias it; the table's <i>dense PyTorch "
                    "beside</i> column is the baseline's median in that run."
                    if len(lat) and lat.side_by_side.any() else "") + "</p>")
    for model in dict.fromkeys(lat.model) if len(lat) else []:
        b64 = F.latency(d, model)
        if b64:
            parts.append(f"<h3>{model_label(d, model)}</h3>")
        short = F.latency_best(d, model)
        full_id = f"fig-latency-full-{_slug(model)}"
        fig(short, f"latency (best per engine) {model}", "Speedup over the fastest dense "
            "engine: each engine's best format (reference method); dashed: the fastest dense "
            "engine. Every pair: the full figure below.")
        if short:
            parts.append(f"<p class='muted'><a href='#{full_id}'>Full figure: every engine/"
                         "format pair</a></p>")
        parts.append(f"<details id='{full_id}'><summary>Full figure ({esc(model)}): every "
                     "engine/format pair</summary>" if b64 else "")
        fig(b64, f"latency {model}", "Median latency (top) and speedup (bottom); solid lines: "
            "the reference unstructured method, dashed: others; dotted horizontal lines: the "
            "unpruned model on each dense engine. A sparse format at 0% runs dense where the "
            "engine falls back (no zeros to skip).")
        parts.append("</details>" if b64 else "")
    if len(lat):
        show = lat.sort_values(["model", "method_label", "sparsity", "batch", "pair"])
        parts.append(f"<details><summary>{esc(TABLES['latency'])} ({len(show)} rows)</summary>")
        parts.append(_table(show, [
            ("model", lambda r: esc(r.model)), ("method", lambda r: esc(r.method_label)),
            ("sparsity", lambda r: fmt_pct(r.sparsity)), ("engine / format", lambda r: esc(r.pair)),
            ("batch", lambda r: str(int(r.batch))), ("threads", lambda r: str(int(r.threads))),
            ("p50 ms", lambda r: fmt_num(r.p50_ms)), ("p90 ms", lambda r: fmt_num(r.p90_ms)),
            ("dense PyTorch beside", lambda r: fmt_num(r.reference_ms)),
            ("speedup", lambda r: fmt_num(r.speedup)),
            ("vs fastest dense", lambda r: fmt_num(r.speedup_best)),
            ("layers in format", lambda r: "" if not isinstance((r.extra or {}).get("plan"), dict)
             else f"{r.extra['plan']['in_format']} (+{r.extra['plan']['fell_back']} dense)"),
            ("max rel. error", lambda r: fmt_num((r.verify or {}).get("rel_max"), 2)),
            ("noisy", lambda r: "yes" if r.noisy else "")], "latency", TABLES["latency"],
            left=4))
        parts.append("</details>")
    else:
        parts.append(_table(lat, [], "latency", TABLES["latency"]))

    xo = D.crossover_table(d)
    parts.append("<h2 id='crossover'>Crossover: where a format beats dense</h2>")
    parts.append(f"<p>Lowest measured sparsity at which a sparse engine/format pair is at least "
                 f"{round(100 * (D.BEATS - 1))}% faster than the fastest dense run of the unpruned "
                 "model (any engine), and than dense PyTorch. Points where the engine ran no "
                 "layer in the format (it fell back to dense, e.g. at 0%) are left out.</p>")
    never = lambda v, r: fmt_pct(v) if v is not None and not pd.isna(v) else \
        f"never (≤ {fmt_pct(r.max_sparsity)})"  # noqa: E731
    parts.append(_table(xo, [
        ("model", lambda r: model_label(d, r.model)), ("method", lambda r: esc(r.method_label)),
        ("batch", lambda r: str(int(r.batch))), ("engine / format", lambda r: esc(r.pair)),
        ("fastest dense", lambda r: f"{esc(r.best_dense)} {fmt_num(r.best_dense_ms)} ms"),
        ("beats it from", lambda r: never(r.crossover, r)),
        ("speedup there", lambda r: fmt_num(r.speedup_at_crossover)),
        ("beats dense PyTorch from", lambda r: never(r.crossover_torch, r)),
        ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")],
        "crossover", TABLES["crossover"], left=5))
    de = D.dense_engines_table(d)
    if len(de):
        parts.append(_table(de, [
            ("model", lambda r: model_label(d, r.model)), ("batch", lambda r: str(int(r.batch))),
            ("engine (dense)", lambda r: esc(r.engine)), ("p50 ms", lambda r: fmt_num(r.p50_ms)),
            ("speedup over PyTorch", lambda r: fmt_num(r.speedup))], "dense",
            TABLES["dense"], left=3))

    # size
    parts.append("<h2 id='size'>Model size vs sparsity</h2>")
    st = D.size_table(d)
    for model in dict.fromkeys(st.model) if len(st) else []:
        full = F.size(d, model)
        full_id = f"fig-size-full-{_slug(model)}"
        short = F.size_best(d, model)
        fig(short, f"size (smallest per values) {model}", f"{model}: the smallest format per "
            "value encoding against the dense fp32 file (dashed).")
        if short and full:
            parts.append(f"<p class='muted'><a href='#{full_id}'>Full figure: every format"
                         "</a></p>")
        parts.append(f"<details id='{full_id}'><summary>Full figure ({esc(model)}): every "
                     "format</summary>" if full else "")
        fig(full, f"size {model}", f"{model}: compressed model file relative to "
            "the dense fp32 file; | marks the interpolated break-even of each fp32 format.")
        parts.append("</details>" if full else "")
    sx = D.size_crossover_table(d)
    parts.append(_table(sx, [
        ("model", lambda r: model_label(d, r.model)), ("method", lambda r: esc(r.method_label)),
        ("format", lambda r: esc(r.format)), ("values", lambda r: esc(r["values"])),
        ("smaller than dense (same values) from", lambda r: fmt_pct(r.crossover)
         if r.crossover is not None and not pd.isna(r.crossover) else "never"),
        ("break-even (interpolated)", lambda r: fmt_pct(r.break_even)),
        ("size vs dense at max sparsity", lambda r: f"{fmt_num(r.ratio_at_max)}x at "
                                                    f"{fmt_pct(r.max_sparsity)}")],
        "size", TABLES["size"], left=4))
    ls = D.layer_size_crossover(d)
    parts.append(_table(ls, [
        ("model", lambda r: esc(r.model)), ("shape", lambda r: esc(r["shape"])),
        ("layers", lambda r: esc(r.layer)), ("format", lambda r: esc(r.format)),
        ("measured: smaller from", lambda r: fmt_pct(r.crossover) if r.crossover is not None
         and not pd.isna(r.crossover) else "never"),
        ("cost model break-even", lambda r: fmt_pct(r.break_even_model)),
        ("measured points", lambda r: str(int(r.points))),
        ("agree", lambda r: "" if r.agrees is None or pd.isna(r.agrees)
         else ("yes" if r.agrees else "no"))],
        "layer-size", TABLES["layer-size"], left=4))

    # pareto
    parts.append("<h2 id='pareto'>Pareto fronts</h2>")
    for model in d.accuracy_models:
        fig(F.pareto(d, model), f"pareto {model}", f"{model}: every measured configuration "
            "(grey) and the non-dominated ones (red).")

    # controls
    parts.append("<h2 id='controls'>Controls</h2>")
    ctl = D.controls_table(d)
    parts.append(_table(ctl, [
        ("model", lambda r: esc(r.model)), ("pruned with", lambda r: esc(r.method_label)),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("pruned: nonzeros", lambda r: fmt_num(r.pruned_nonzero)),
        ("pruned: accuracy", lambda r: f"{fmt_pct(r.pruned_mean)} ± {100 * r.pruned_std:.1f}"),
        ("matched dense model", lambda r: esc(r.control)),
        ("its params", lambda r: fmt_num(r.control_params)),
        ("its accuracy", lambda r: f"{fmt_pct(r.control_mean)} ± {100 * r.control_std:.1f}"),
        ("pruned − matched", lambda r: f"{100 * r.difference:+.1f} pts")],
        "controls", TABLES["controls"], left=2))
    qt = D.quant_table(d)
    qcols = [("model", lambda r: esc(r.model)),
             ("accuracy", lambda r: f"{fmt_pct(r.acc_mean)} ± {100 * r.acc_std:.1f}"),
             ("dense accuracy", lambda r: fmt_pct(r.dense_mean)),
             ("top-1 agreement", lambda r: fmt_pct(r.top1_agreement)),
             ("max rel. output error", lambda r: fmt_num(r.rel_error, 2)
              + ("" if r.within_tolerance else " (above the int8 tolerance)")),
             ("file bytes", lambda r: fmt_num(int(r.file_bytes))),
             ("dense file bytes", lambda r: fmt_num(int(r.dense_file_bytes))),
             ("size ratio", lambda r: fmt_num(r.size_ratio))]
    for c in [c for c in qt.columns if c.startswith("latency_b")]:
        b = c[len("latency_b"):-3]
        qcols.append((f"b{b} ms (dense)", lambda r, c=c, b=b:
                      f"{fmt_num(r[c])} ({fmt_num(r.get(f'dense_b{b}_ms'))})"))
    parts.append(_table(qt, qcols, "quant", TABLES["quant"]))

    tm = D.task_metrics_table(d)
    if len(tm):
        parts.append("<h2 id='tasks'>Task metrics</h2>")
        parts.append("<p>Models judged by a task rather than test accuracy, per sparsity "
                     "(mean over seeds): MiniLM's Spearman/Pearson correlation with the human "
                     "Lee similarity ratings, its polarity probe accuracy and the cosine of its "
                     "embeddings to the dense model's; the char-LSTM's bits per character.</p>")
        parts.append(_table(tm, _task_columns(tm), "tasks", TABLES["tasks"], left=2))

    # sparsity pictures
    parts.append("<h2 id='pictures'>Weight sparsity</h2>")
    for model in d.models:
        if d.is_control(model):
            continue
        p = d.prune[(d.prune.model == model) & (d.prune.method_label != "dense")]
        if p.empty:
            continue
        ss = sorted(p.sparsity.astype(float).unique())
        s = 0.9 if any(np.isclose(ss, 0.9)) else ss[-1]
        parts.append(f"<h3>{model_label(d, model)}</h3>")
        fig(F.sparsity_bars(d, model, s), f"sparsity bars {model}",
            f"Per-layer sparsity of each method at {100 * s:.0f}% requested (first seed).")
        fig(F.masks(d, model, s), f"masks {model}", "Each pruned layer's weight matrix "
            "(rows x fan-in, gates stacked for RNNs), downsampled; darker = more nonzeros.")

    # profile
    parts.append("<h2 id='profile'>Per-layer time</h2>")
    pt = D.profile_table(d)
    for model in dict.fromkeys(pt.model) if len(pt) else []:
        fig(F.profile(d, model), f"profile {model}", "Time per layer from forward hooks; "
            "(other) is time outside the hooked layers.")
    pp = _profile_pivot(pt) if len(pt) else pt
    pcols = [c for c in pp.columns if c not in ("model", "layer")]
    parts.append(_table(pp, [("model", lambda r: esc(r.model)), ("layer", lambda r: esc(r.layer))]
                        + [(c, lambda r, c=c: esc(r[c])) for c in pcols],
                        "profile", TABLES["profile"] + " (ms per call and share)", left=2))

    # failures
    parts.append("<h2 id='failures'>Failed and skipped jobs</h2>")
    parts.append(f"<p>{len(d.failed)} failed job(s) (stored with the reason, never timed) and "
                 f"{len(d.skipped)} skipped as not applicable.</p>")
    f = d.failed.head(200)
    parts.append(_table(f, [
        ("kind", lambda r: esc(r.kind)), ("model", lambda r: esc(r.model)),
        ("method", lambda r: esc(r.method_label or "")),
        ("sparsity", lambda r: fmt_pct(r.sparsity)),
        ("engine", lambda r: esc(r.engine or "")), ("format", lambda r: esc(r.format or "")),
        ("batch", lambda r: "" if r.batch is None or pd.isna(r.batch) else str(int(r.batch))),
        ("reason", lambda r: esc(r.reason))], "failures", TABLES["failures"], left=8))
    sk = _skips_grouped(d.skipped)
    parts.append(_table(sk, [
        ("kind", lambda r: esc(r.kind)), ("engine", lambda r: esc(r.engine or "")),
        ("format", lambda r: esc(r.format or "")), ("reason", lambda r: esc(r.reason)),
        ("jobs", lambda r: str(int(r.jobs)))], None, "Skipped jobs, by reason", left=4))

    # machine
    parts.append("<h2 id='machine'>Machine and versions</h2>")
    mt = D.machine_table(d)
    if len(mt):  # a fleet or merged databases: the same grid on each machine
        parts.append(_table(mt, [
            ("model", lambda r: model_label(d, r.model)), ("batch", lambda r: str(int(r.batch))),
            ("engine / format", lambda r: esc(r.pair)), ("machine", lambda r: esc(r.hostname)),
            ("beats the fastest dense from", lambda r: never(r.crossover, r)),
            ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")],
            None, "Machines compared: crossover and best speedup over the machine's own "
            "fastest dense run", left=4))
    pt = D.run_profile_table(d)
    if len(pt):  # one machine measured in both run profiles
        parts.append(_table(pt, [
            ("machine", lambda r: esc(r.hostname)), ("model", lambda r: model_label(d, r.model)),
            ("method", lambda r: esc(r.method_label)), ("sparsity", lambda r: fmt_pct(r.sparsity)),
            ("engine / format", lambda r: esc(f"{r.engine}/{r.format}")),
            ("values", lambda r: esc(r.value_encoding)), ("batch", lambda r: str(int(r.batch))),
            ("default ms", lambda r: fmt_num(r.default_ms)), ("edge ms", lambda r: fmt_num(r.edge_ms)),
            ("edge / default", lambda r: f"{fmt_num(r.edge_vs_default)}x")],
            None, "Run profiles compared on one machine: default vs edge (1 thread, 128-bit "
            "SIMD code; a proxy for a Cortex-A class board, not a measurement of one)", left=5))
    for mid, fp in machines.items():
        libs = ", ".join(f"{k} {v}" for k, v in (fp.get("libraries") or {}).items() if v)
        prof = fp.get("profile", "default")
        parts.append(f"<h3>machine {esc(mid)}"
                     + (f" ({esc(prof)} profile of {esc(fp.get('host_id'))})" if prof != "default" else "")
                     + "</h3><ul>"
                     f"<li>CPU: {esc(fp.get('cpu'))} ({esc(fp.get('arch'))}, {esc(fp.get('cores'))}"
                     f" cores; SIMD: {esc(' '.join(fp.get('simd') or []))})</li>"
                     f"<li>memory: {fmt_num((fp.get('memory_bytes') or 0) / 2**30)} GiB; OS: "
                     f"{esc(fp.get('os'))}; Python {esc(fp.get('python'))}</li>"
                     f"<li>libraries: {esc(libs)}</li>"
                     f"<li>git commit: {esc(fp.get('git_commit'))}; env: "
                     f"{esc(json.dumps(fp.get('env') or {}))}</li></ul>")
    body = "\n".join(p for p in parts if p)
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            f"{CHECK_SCRIPT}</body></html>\n")
    return page, nfig


def build_markdown(d: D.StudyData, findings: list[Finding], title: str, html_name: str,
                   conclusions: list | None = None) -> str:
    lines = [f"# {title}", "", f"Database `{d.db}`; full report with figures: `{html_name}`.", ""]
    conclusions = C.compute(d) if conclusions is None else conclusions
    lines += ["## Conclusions", "", f"*{C.QUESTION}*", ""]
    for i, c in enumerate(conclusions, 1):
        dep = "depends on the engine" if c.engine_dependent else "engine-independent"
        lines.append(f"{i}. {c.text} ({TABLES[c.table]}; {dep})")
    lines.append("")
    dt = C.decision_table(d)
    lines += [f"### {TABLES['decision']}", ""]
    if dt.empty:
        lines += ["(no rows)", ""]
    else:
        cols = decision_columns(d)
        lines.append("| " + " | ".join(h for h, _ in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for _, r in dt.iterrows():
            lines.append("| " + " | ".join(str(f(r)).replace("|", "/") for _, f in cols) + " |")
        lines.append("")
    lo = [m for m in d.models if d.latency_only(m) and m not in C.task_models(d)]
    if lo:
        lines += [f"Latency-only models (random weights; accuracy n/a): {', '.join(lo)}.", ""]
    lines += ["## Findings", ""]
    for i, f in enumerate(findings, 1):
        lines.append(f"{i}. {f.text} ({f.where})")
    lines.append("")

    def md(df: pd.DataFrame, cols: list[tuple[str, Callable]], caption: str) -> None:
        lines.extend([f"### {caption}", ""])
        if df is None or df.empty:
            lines.extend(["(no rows)", ""])
            return
        lines.append("| " + " | ".join(h for h, _ in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for _, r in df.iterrows():
            lines.append("| " + " | ".join(str(f(r)).replace("|", "/") for _, f in cols) + " |")
        lines.append("")

    xo = D.crossover_table(d)
    md(xo, [("model", lambda r: r.model + (" (latency-only)" if r.latency_only else "")),
            ("method", lambda r: r.method_label), ("batch", lambda r: int(r.batch)),
            ("engine / format", lambda r: r.pair),
            ("fastest dense", lambda r: f"{r.best_dense} {fmt_num(r.best_dense_ms)} ms"),
            ("beats it from", lambda r: fmt_pct(r.crossover) if r.crossover is not None
             and not pd.isna(r.crossover) else f"never (≤ {fmt_pct(r.max_sparsity)})"),
            ("best speedup", lambda r: f"{fmt_num(r.best_speedup)} at {fmt_pct(r.best_at)}")],
       TABLES["crossover"])
    sx = D.size_crossover_table(d)
    md(sx[sx["values"] == "fp32"] if len(sx) else sx,
       [("model", lambda r: r.model), ("method", lambda r: r.method_label),
        ("format", lambda r: r.format),
        ("smaller than dense from", lambda r: fmt_pct(r.crossover) if r.crossover is not None
         and not pd.isna(r.crossover) else "never"),
        ("break-even", lambda r: fmt_pct(r.break_even))], TABLES["size"])
    acc = D.accuracy_table(d)
    md(acc, [("model", lambda r: r.model), ("method", lambda r: r.method_label),
             ("sparsity", lambda r: fmt_pct(r.sparsity)),
             ("accuracy", lambda r: f"{fmt_pct(r.acc_mean)} ± {100 * r.acc_std:.1f}"),
             ("before FT", lambda r: fmt_pct(r.before_mean)), ("seeds", lambda r: int(r.n))],
       TABLES["accuracy"])
    ctl = D.controls_table(d)
    md(ctl, [("model", lambda r: r.model), ("pruned", lambda r: f"{r.method_label} "
                                                               f"{fmt_pct(r.sparsity)}"),
             ("pruned accuracy", lambda r: fmt_pct(r.pruned_mean)),
             ("matched dense", lambda r: f"{r.control} ({fmt_num(r.control_params)} params)"),
             ("its accuracy", lambda r: fmt_pct(r.control_mean)),
             ("difference", lambda r: f"{100 * r.difference:+.1f} pts")], TABLES["controls"])
    tm = D.task_metrics_table(d)
    if len(tm):
        md(tm, [(h, f) for h, f in _task_columns(tm)], TABLES["tasks"])
    qt = D.quant_table(d)
    md(qt, [("model", lambda r: r.model), ("accuracy", lambda r: fmt_pct(r.acc_mean)),
            ("dense", lambda r: fmt_pct(r.dense_mean)),
            ("size ratio", lambda r: fmt_num(r.size_ratio))], TABLES["quant"])
    lines += ["## Machine", ""]
    for mid, fp in d.machines.items():
        libs = ", ".join(f"{k} {v}" for k, v in (fp.get("libraries") or {}).items() if v)
        lines.append(f"- `{mid}`: {fp.get('cpu')}, {fp.get('cores')} cores, {fp.get('os')}, "
                     f"Python {fp.get('python')}; {libs}; commit {fp.get('git_commit')}")
    lines.append("")
    return "\n".join(lines)
