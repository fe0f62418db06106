"""``prunebench report DB --figures DIR``: figures as PDF and SVG, tables as CSV and LaTeX,
each opened by an independent reader; the short figures hold a few lines with direct labels."""
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from .synthetic import add_conclusion_rows, make_db

from prunebench.errors import BadInputError  # noqa: E402
from prunebench.report import figures as F  # noqa: E402
from prunebench.report import load  # noqa: E402
from prunebench.cli.results import report_command  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "results.sqlite"
    make_db(db)
    add_conclusion_rows(db)
    doc = report_command(str(db), str(tmp / "report.html"), figures=str(tmp / "figs"))
    return tmp / "figs", doc, db


def _pdf_pages(data: bytes) -> int:
    """Pages of a PDF by its object dictionaries (/Type /Page, not /Pages)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


@pytest.mark.slow
def test_every_figure_as_pdf_and_svg(exported):
    folder, doc, _ = exported
    figs = [Path(p) for p in doc["exported"]["figures"]]
    stems = {p.stem for p in figs}
    assert {"accuracy", "latency-digits-lenet300", "latency-digits-lenet300-full",
            "size-digits-lenet300", "size-digits-lenet300-full", "latency-minilm"} <= stems
    for stem in stems:
        svg, pdf = folder / f"{stem}.svg", folder / f"{stem}.pdf"
        root = ET.parse(svg).getroot()                 # well-formed XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert b"trailer" in data or b"/Root" in data
        assert _pdf_pages(data) == 1
        try:
            import pypdf
        except ImportError:
            continue
        assert len(pypdf.PdfReader(str(pdf)).pages) == 1


def test_every_table_as_csv_and_booktabs(exported):
    folder, doc, db = exported
    tabs = {Path(p).name for p in doc["exported"]["tables"]}
    for key in ("decision", "accuracy", "crossover", "size", "controls", "latency", "tasks"):
        assert {f"{key}.csv", f"{key}.tex"} <= tabs
        texed = (folder / f"{key}.tex").read_text()
        assert texed.index(r"\toprule") < texed.index(r"\midrule") < texed.index(r"\bottomrule")
        assert texed.count(r"\begin{tabular}") == texed.count(r"\end{tabular}") == 1
    acc = pd.read_csv(folder / "accuracy.csv")
    r = acc[(acc.method_label == "magnitude") & (acc.sparsity == 0.9)].iloc[0]
    assert r.acc_mean == pytest.approx(0.96) and r.acc_std == pytest.approx(0.01)
    dec = pd.read_csv(folder / "decision.csv")
    r = dec[(dec.model == "digits-lenet300") & (dec.band == "80%-90%")].iloc[0]
    assert r.speedup_best == pytest.approx(1.25) and r.size_ratio == pytest.approx(0.49202)
    # the LaTeX of the decision table: formatted cells, escaped underscores and ±
    texed = (folder / "decision.tex").read_text()
    assert r"digits-lenet300 & 80\%-90\% & 90.0\% & native / csr / fp32 & 1.25x onnxruntime " \
           r"& 0.49x & -1.6 $\pm$ 0.9 pts (n=3) \\" in texed
    acc_tex = (folder / "accuracy.tex").read_text()
    assert r"method\_label" in acc_tex and "_" not in acc_tex.replace(r"\_", "")


def test_short_latency_figure_best_per_engine_with_direct_labels(exported):
    _, _, db = exported
    d = load(db)
    fig = F.latency_best_fig(d, "digits-lenet300")
    ax = fig.axes[0]
    # native and scipy each have one csr line: two lines, no legend, a label per line + dense
    assert len(ax.lines) == 3                       # 2 engines + the dashed reference
    assert ax.get_legend() is None
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["dense: onnxruntime", "native / csr", "scipy / csr"]
    # speedups 0.5-2.0x over ONNX Runtime: within 10x, so a linear axis from 0
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert F.axis_scale([0.2, 1.0, 1.9]) == "linear" and F.axis_scale([0.2, 6.0]) == "log"


def test_figures_folder_bad_input(exported, tmp_path):
    _, _, db = exported
    a_file = tmp_path / "x.txt"
    a_file.write_text("")
    with pytest.raises(BadInputError, match="--figures: .* is a file"):
        report_command(str(db), str(tmp_path / "r.html"), figures=str(a_file))
    with pytest.raises(BadInputError, match="--figures: folder .* does not exist"):
        report_command(str(db), str(tmp_path / "r.html"), figures=str(tmp_path / "no" / "d"))
    assert not (tmp_path / "r.html").exists()     # refused before anything is written
