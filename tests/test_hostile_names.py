"""Hostile file, column and class names through load, every shared chart builder, every export
format and the verdict box: no exception, every chart draws its marks, names appear literally.

Charts are checked on the scene graph Vega itself lays out (vl-convert, offline): how many marks
were drawn, where, and the exact text of titles, legends and tooltips.
"""
import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
from streamlit.testing.v1 import AppTest

from core import charts
from core.data import DataError, load_csv
from core.diagnoses import Verdict
from core.export import FORMULA_STARTS, chart_bytes, chart_data
from core.overview import project_2d
from ui.verdict import WORD_JOINER, escape_markdown, shown_text

HOSTILE = [
    "time:s",                                   # Altair shorthand "field:type"
    "outcome: yes/no",                          # the ValueError
    "Sepal.Length",                             # Vega-Lite nested field
    "price[$]",                                 # Vega-Lite array access
    "it's",                                     # quote: broke the PNG export
    'say "hi"',
    "back\\slash\\",
    "datum['x'].y[0]",
    "**bold** _it_ [link](https://evil.example) <https://evil.example>",
    "see www.evil.example, http://evil.example or me@evil.example",  # GFM autolinks
    "$x^2$ \\frac{1}{2} $$y$$",                 # KaTeX
    "<b>html</b><script>alert(1)</script>",
    "</script><!--",
    "=cmd|' /C calc'!A0",                       # spreadsheet formula
    "@SUM(A1)",
    "-2+3",
    "🤖 emoji ✓ 数据",
    ":smile: :material/home: :red[x] a -> b",    # Streamlit shortcodes and typographic arrows
    "x" * 300,
    "_f0",                                      # looks like a safe field name
    "undefined",
    "two\nlines\ttab",                        # a quoted CSV header may hold a line break
]
IDS = [re.sub(r"\W+", "_", n)[:20] or f"n{i}" for i, n in enumerate(HOSTILE)]


# ---------------------------------------------------------------- scene-graph helpers
def scene(chart) -> dict:
    return vlc.vegalite_to_scenegraph(chart.to_dict())["scenegraph"]


def _walk(node, out):
    if isinstance(node, dict):
        if "marktype" in node:
            out.append(node)
        for child in node.get("items", []) if isinstance(node.get("items"), list) else []:
            _walk(child, out)
    return out


def drawn(sg, marktype: str) -> list[dict]:
    """The items of every data mark (role "mark") of a type, with finite positions."""
    items = [it for m in _walk(sg, []) if m.get("role") == "mark" and m["marktype"] == marktype
             for it in m.get("items", [])]
    return [it for it in items if all(np.isfinite(float(it.get(k, 0.0))) for k in ("x", "y"))]


def texts(sg, role: str) -> list[str]:
    out = []
    for m in _walk(sg, []):
        if m.get("role") == role:
            for it in m.get("items", []):
                t = it.get("text")
                out.extend(t if isinstance(t, list) else [t])
    return [str(t) for t in out if t is not None]


def all_texts(sg) -> list[str]:
    return [str(it["text"]) for m in _walk(sg, []) if m["marktype"] == "text" for it in m.get("items", [])
            if it.get("text") is not None]


def descriptions(sg, marktype: str) -> list[str]:
    """ARIA descriptions Vega writes from the tooltip: "title: value; title: value"."""
    return [it.get("description", "") for it in drawn(sg, marktype)]


def no_undefined(sg, allowed=()):
    bad = [t for t in all_texts(sg) if "undefined" in t and t not in allowed]
    assert not bad, f"texts reading 'undefined': {bad[:3]}"


# ---------------------------------------------------------------- load -> home scatter
def _csv(header, rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@pytest.mark.parametrize("i", range(len(HOSTILE)), ids=IDS)
def test_load_and_home_scatter_with_hostile_feature_target_and_class_names(i):
    x, y = HOSTILE[i], HOSTILE[(i + 1) % len(HOSTILE)]
    target = HOSTILE[(i + 2) % len(HOSTILE)]
    classes = [HOSTILE[(i + 3) % len(HOSTILE)], HOSTILE[(i + 4) % len(HOSTILE)]]
    rng = np.random.default_rng(i)
    rows = [(f"{a:.3f}", f"{b:.3f}", classes[k % 2]) for k, (a, b) in enumerate(rng.normal(size=(40, 2)))]
    data = load_csv(_csv([x, y, target], rows), name=f"{x}.csv")
    assert data.feature_names == (x, y) and data.target_name == target
    assert set(data.class_names) == set(classes)

    proj = project_2d(data, seed=0)
    chart = charts.scatter_2d(proj.frame, proj.x_name, proj.y_name, proj.frame.columns[2], title="The data")
    sg = scene(chart)
    points = drawn(sg, "symbol")
    assert len(points) == 40 and len({(p["x"], p["y"]) for p in points}) > 30
    assert sorted(texts(sg, "axis-title")) == sorted([x, y])
    assert texts(sg, "legend-title") == [target]
    assert sorted(texts(sg, "legend-label")) == sorted(classes)
    # Two colours for two classes: the colour field was read (an unread field draws one colour).
    assert len({p["fill"] for p in points}) == 2
    # Tooltip titles reach the marks' descriptions (Vega-Lite leaves out titles starting with "_").
    # Line breaks cannot sit in a Vega expression string: tooltips show them as spaces.
    x_tip, target_tip = (re.sub(r"[\r\n]+", " ", n) for n in (x, target))
    for d in descriptions(sg, "symbol"):
        assert x.startswith("_") or d.startswith(f"{x_tip}: ")
        assert target.startswith("_") or f"; {target_tip}: " in d
    no_undefined(sg, allowed=("undefined",))

    counts = charts.bars(data.class_counts(), "class", "count", title="Rows per class")
    sg = scene(counts)
    assert len(drawn(sg, "rect")) == 2 and sorted(texts(sg, "axis-label")[:2]) == sorted(classes)


def test_load_rejects_a_bad_file_with_a_sentence_not_a_crash():
    with pytest.raises(DataError):
        load_csv(_csv(["only: one"], [["1"]]))


# ---------------------------------------------------------------- every shared builder
@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_every_shared_builder_draws_with_a_hostile_name(name):
    steps = pd.DataFrame({"step": np.tile(np.arange(6), 2), name: np.r_[np.linspace(2, 1, 6), np.linspace(3, 2, 6)],
                          "run": np.repeat([name, "other"], 6)})
    sg = scene(charts.curves(steps, "step", name, color="run"))
    assert len(drawn(sg, "line")) == 12
    assert texts(sg, "axis-title") == ["step", name] and sorted(texts(sg, "legend-label")) == sorted([name, "other"])
    no_undefined(sg, allowed=("undefined",))
    # The name as the x column and as the colour column too.
    sg = scene(charts.curves(steps.rename(columns={"step": "x:" + name, "run": name + "."}), "x:" + name, name,
                             color=name + ".", log_y=True))
    assert len(drawn(sg, "line")) == 12 and texts(sg, "legend-title") == [name + "."]

    grid = pd.DataFrame([(a, b, a * b) for a in range(4) for b in range(3)], columns=[name + "[x]", "y.", name])
    sg = scene(charts.heatmap(grid, x=name + "[x]", y="y.", value=name))
    cells = drawn(sg, "rect")
    assert len(cells) == 12 and len({c["fill"] for c in cells}) > 5  # colours follow the value field
    assert texts(sg, "axis-title") == [name + "[x]", "y."]

    path = pd.DataFrame({"a.x": [0.0, 1, 2], "b'y": [0.0, 1, 0], name: [name] * 3, "step": [0, 1, 2], "loss": [3.0, 2, 1]})
    sg = scene(charts.paths(path, x="a.x", y="b'y", color=name))
    assert len(drawn(sg, "line")) == 3 and len(drawn(sg, "symbol")) == 3
    assert texts(sg, "legend-title") == [name] and texts(sg, "legend-label") == [name]

    points = pd.DataFrame({"x:": [0.0, 1.0], "y]": [1.0, 0.0], name: [name, "start"]})
    sg = scene(charts.markers(points, x="x:", y="y]", label=name))
    assert len(drawn(sg, "symbol")) == 2 and sorted(t["text"] for t in drawn(sg, "text")) == sorted([name, "start"])

    sg = scene(charts.bars(pd.DataFrame({name: ["a", name], "n:": [2, 5], "c.": ["p", "q"]}), name, "n:", color="c."))
    assert len(drawn(sg, "rect")) == 2 and texts(sg, "axis-title") == [name, "n:"]
    assert texts(sg, "axis-label")[:2] == ["a", name]

    sg = scene(charts.histogram(np.arange(50.0), x_title=name, bins=5))
    assert len(drawn(sg, "rect")) == 5 and texts(sg, "axis-title")[0] == name

    windows = pd.DataFrame({"from.": [1.0], "to[": [3.0], name: [name]})
    sg = scene(charts.shaded_windows(windows, start="from.", end="to[", label=name))
    assert len(drawn(sg, "rect")) == 1 and texts(sg, "legend-title") == [name]


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_scatter_with_hostile_names_has_distinct_positions_and_regression_colours(name):
    frame = pd.DataFrame({name: [0.0, 1.0, 2.0], name + " ": [2.0, 1.0, 0.0], "y:" + name: [0.5, 1.5, 2.5]})
    sg = scene(charts.scatter_2d(frame, name, name + " ", "y:" + name, quantitative_color=True))
    points = drawn(sg, "symbol")
    assert len(points) == 3
    # x grows while y falls: both fields were read (an unread field puts every point at 0).
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    assert xs == sorted(xs) and ys == sorted(ys) and len(set(xs)) == 3
    assert len({p["fill"] for p in points}) == 3


# ---------------------------------------------------------------- every export format
def _svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("text")]


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_every_export_format_with_hostile_names(name):
    frame = pd.DataFrame({name: [0.5, -1.0, 2.0], "y.": [1.0, 2.0, 3.0], "class": [name, "=1+1", "ok"]})
    chart = charts.scatter_2d(frame, name, "y.", "class", title=name) + charts.markers(
        pd.DataFrame({"x": [0.0], "y": [0.0], "label": [name]}))

    png = chart_bytes(chart, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 500 and len(png) > 5000

    found = _svg_texts(chart_bytes(chart, "svg"))
    assert name in found  # the x-axis title, in full, as text
    if len(name) < 25:  # legend labels are cut with "…" past 160 px, as Vega does for every label
        assert found.count(name) >= 3  # axis title, legend label, marker label

    html = chart_bytes(chart, "html").decode()
    # The spec sits in the page's one inline script; no name can end that script early.
    assert html.count("</script>") == 2 and "<!--" not in html.split("const spec")[1]
    start = html.index("const spec = ") + len("const spec = ")
    spec = json.loads(html[start:html.index(";\n", start)])
    assert spec["layer"][0]["title"] == name

    rows = list(csv.reader(io.StringIO(chart_bytes(chart, "csv").decode(), newline="")))
    expected = name if not name.startswith(FORMULA_STARTS) else "'" + name
    assert rows[0] == [expected, "y.", "class", "x", "y", "label"]
    assert [r[2] for r in rows[1:4]] == [expected, "'=1+1", "ok"]
    assert [r[0] for r in rows[1:4]] == ["0.5", "-1.0", "2.0"]  # plain negative numbers untouched
    assert list(chart_data(chart).columns) == [name, "y.", "class", "x", "y", "label"]


# ---------------------------------------------------------------- page texts
def _unescape(markdown: str) -> str:
    """What CommonMark shows for our escaped text, worked out here independently of ui.verdict:
    backslash escapes resolved (CommonMark 2.4), word joiners invisible."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def test_shown_text_inverts_the_escaping():
    for name in HOSTILE:
        assert shown_text(escape_markdown(name)) == _unescape(escape_markdown(name)) == name.replace("\n", " ").replace("\t", " ")


@pytest.mark.parametrize("name", HOSTILE + ["line\nbreak\r\n# heading\n    code", "1. list", "> quote", "| a | b |"],
                         ids=IDS + ["newlines", "list", "quote", "table"])
def test_escaped_markdown_reads_back_as_the_name(name):
    escaped = escape_markdown(name)
    assert _unescape(escaped) == re.sub(r"[\r\n\t]+", " ", name)
    # Every ASCII punctuation character is escaped: no Markdown construct can start.
    assert re.fullmatch(r"(?:\\[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~])*", escaped)
    assert "\n" not in escaped
    # Streamlit's after-parse rewrites (emoji/icon shortcodes, arrows, GFM autolinks) find nothing.
    plain = _unescape(escaped.replace(WORD_JOINER, "\x00")).replace("\x00", WORD_JOINER)
    assert not re.search(r":[\w+-]+:|:material/|(^|\s)(<->|->|<-|--|>=|<=|~=)(\s|$)", plain)
    assert not re.search(r"(?i)https?://|www\.|@[-\w]", plain)


def test_verdict_box_shows_hostile_names_literally():
    def script():
        from core.diagnoses import Verdict
        from tests.test_hostile_names import HOSTILE
        from ui.verdict import show_verdict

        for i, name in enumerate(HOSTILE):
            show_verdict(Verdict(("good", "info", "warning", "problem")[i % 4], f"Column {name} stalled.",
                                 advice=f"Rename {name}."))

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception
    boxes = list(at.success) + list(at.info) + list(at.warning) + list(at.error)
    assert len(boxes) == len(HOSTILE)
    bodies = {_unescape(b.body) for b in boxes}
    for name in HOSTILE:
        shown = re.sub(r"[\r\n\t]+", " ", name)  # one line: a line break would start a new block
        assert f"Column {shown} stalled.\n\n**Try next:** Rename {shown}." in bodies
    assert isinstance(Verdict("info", "x"), Verdict)
