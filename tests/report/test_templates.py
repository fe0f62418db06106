"""The report's jinja2 templates: found as package data, text escaped as the page always
escaped it (``html.escape``), markup of our own kept, one line per table, Markdown cells with
``|`` replaced. Fast: no database, no figures."""
import ast
import html
import re
from pathlib import Path

from markupsafe import Markup

from prunebench.report import page, tables

ROOT = Path(__file__).resolve().parents[2]


def _macro(name):
    return getattr(page.environment().get_template("macros.html.j2").module, name)


def test_table_escapes_text_keeps_markup_on_one_line():
    text = "can't encode: 'bsr' & <blocks> \"4x4\""
    t = tables.Table("failures", "Table 9: a & b", ["reason", "model"],
                     [[text, Markup("m <span class='lo'>(x)</span>")], [3, None]], left=1)
    out = str(_macro("table")(t))
    assert out == (
        "<table id='table-failures'><caption>Table 9: a &amp; b</caption><thead><tr>"
        "<th class='l'>reason</th><th class=''>model</th></tr></thead><tbody>"
        f"<tr><td class='l'>{html.escape(text, quote=True)}</td>"
        "<td class=''>m <span class='lo'>(x)</span></td></tr>"
        "<tr><td class='l'>3</td><td class=''>None</td></tr></tbody></table>")
    assert "&#x27;bsr&#x27; &amp; &lt;blocks&gt; &quot;4x4&quot;" in out   # not &#39; / &#34;
    empty = tables.Table("size", "Table 4: <size>", ["a"], [])
    assert str(_macro("table")(empty)) == \
        "<p class='muted' id='table-size'>Table 4: &lt;size&gt;: no rows.</p>"


def test_figure_and_model_label():
    f = page.Figure("AAAA", "size 'x'", "a < b")
    assert str(_macro("figure")(f)) == ("<figure><img alt='size &#x27;x&#x27;' src='data:image/"
                                        "png;base64,AAAA'><figcaption>a &lt; b</figcaption>"
                                        "</figure>")
    assert not page.Figure(None, "a", "b") and page.Figure("x", "a", "b")


def test_markdown_rows_replace_pipes():
    import pandas as pd

    df = pd.DataFrame({"a": ["x|y", "z"], "b": [1, 2]})
    t = tables.markdown_rows(df, [("a", lambda r: r.a), ("b", lambda r: r.b * 2)])
    assert t.headers == ["a", "b"] and t.rows == [["x/y", "2"], ["z", "4"]]


def test_templates_are_package_data():
    """An installed wheel carries the templates: pyproject declares them as package data."""
    text = (ROOT / "pyproject.toml").read_text()   # tomllib is Python 3.11+
    section = text.split("[tool.setuptools.package-data]", 1)[1]
    globs = ast.literal_eval(re.search(r"^prunebench = (\[.*?\])$", section, re.M).group(1))
    folder = ROOT / "src" / "prunebench"
    declared = {p for g in globs for p in folder.glob(g)}
    templates = set((folder / "report" / "templates").iterdir())
    assert templates and templates <= declared
    assert set(page.environment().list_templates()) == {p.name for p in templates}
