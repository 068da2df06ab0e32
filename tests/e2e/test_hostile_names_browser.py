"""Hostile names in a real browser, through Streamlit's own Markdown renderer (KaTeX, emoji and
icon shortcodes, typographic arrows, GFM autolinks): the verdict box shows each name literally,
and a chart keyed on hostile names draws without an error."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

from playwright.sync_api import expect

from tests.e2e.conftest import _free_port
from tests.e2e.serve import ROOT, stop, wait_healthy
from tests.test_hostile_names import HOSTILE
from ui.verdict import WORD_JOINER

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
import pandas as pd
import streamlit as st
from core.charts import scatter_2d
from core.diagnoses import Verdict
from ui.verdict import show_verdict

names = json.load(open({names!r}))
for i, name in enumerate(names):
    show_verdict(Verdict(("good", "info", "warning", "problem")[i % 4], name))
x, y, target = names[2], names[4], names[1]
frame = pd.DataFrame({{x: [0.0, 1.0, 2.0, 3.0], y: [1.0, 0.0, 1.0, 0.0], target: [names[8], names[10], names[8], names[10]]}})
st.altair_chart(scatter_2d(frame, x, y, target, title=names[9]))
"""
# Markup the escaping must prevent: links, emphasis, code, maths, images and icons, headings, lists.
MARKUP = "a, strong, em, b, i, del, code, pre, .katex, img, script, [role=img], h1, h2, h3, h4, h5, h6, li, blockquote, table"


def _shown(text: str) -> str:
    """What a reader sees: joiners invisible, runs of white space as one space."""
    return " ".join(text.replace(WORD_JOINER, "").split())


def test_verdict_boxes_and_chart_show_hostile_names_literally(page, tmp_path):
    names = tmp_path / "names.json"
    names.write_text(json.dumps(HOSTILE))
    script = tmp_path / "hostile.py"
    script.write_text(SCRIPT.format(root=str(ROOT), names=str(names)))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc=proc)
        page.goto(url)
        boxes = page.get_by_test_id("stAlert")
        expect(boxes).to_have_count(len(HOSTILE), timeout=60_000)
        chart = page.locator('[data-testid="stVegaLiteChart"]')
        expect(chart.locator("canvas, svg").first).to_be_visible(timeout=60_000)
        texts = [boxes.nth(i).get_by_test_id("stMarkdownContainer").inner_text() for i in range(len(HOSTILE))]
        markup = page.evaluate(
            "(sel) => [...document.querySelectorAll('[data-testid=stAlert] [data-testid=stMarkdownContainer]')]"
            ".flatMap(box => [...box.querySelectorAll(sel)].map(e => e.outerHTML.slice(0, 120)))", MARKUP)
        errors = page.get_by_test_id("stException").count()
        chart_text = chart.first.inner_text()
    finally:
        stop(proc)
    assert errors == 0
    assert markup == []
    for name, text in zip(HOSTILE, texts):
        assert _shown(text) == _shown(name)
    assert not re.search(r"error", chart_text, re.IGNORECASE)


def test_uploaded_csv_with_hostile_columns_charts_and_exports(page, app_url, tmp_path):
    """The issue's cases in the app itself: a colon in the target crashed the home page, a quote
    made the PNG export fail, and a formula header went unchanged into the scatter's CSV."""
    from tests.e2e.conftest import upload_csv, wait_idle

    header = ["it's", "=cmd|' /C calc'!A0", "outcome: yes/no"]
    rows = [f"{(i * 37) % 100 / 10},{(i * 13) % 70 / 7},{'yes/no: yes' if (i * 37) % 100 > 50 else '<b>no</b>'}"
            for i in range(120)]
    path = tmp_path / "hostile.csv"
    path.write_text(",".join('"' + h.replace('"', '""') + '"' for h in header) + "\n" + "\n".join(rows) + "\n")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    upload_csv(page, path)
    assert page.get_by_test_id("stException").count() == 0
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts.nth(1).locator("canvas, svg").first).to_be_visible(timeout=60_000)
    files = {}
    for fmt in ("PNG", "CSV"):
        buttons = page.get_by_test_id("stDownloadButton").filter(has_text=fmt)
        for i in range(buttons.count()):
            with page.expect_download(timeout=60_000) as info:
                buttons.nth(i).click()
            target = tmp_path / info.value.suggested_filename
            info.value.save_as(target)
            files[info.value.suggested_filename] = target.read_bytes()
    pngs = [b for n, b in files.items() if n.endswith(".png")]
    assert len(pngs) == 2 and all(b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 5000 for b in pngs)
    scatter_csv = next(b for n, b in files.items() if "scatter" in n and n.endswith(".csv")).decode()
    assert next(csv.reader(io.StringIO(scatter_csv))) == ["it's", "'=cmd|' /C calc'!A0", "outcome: yes/no"]
