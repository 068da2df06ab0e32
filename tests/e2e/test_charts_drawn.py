"""Every chart on every page, as a browser draws it at 1400 x 900 (issue 17).

For each `stVegaLiteChart` on the home page and every diagnosis (default run, each tab, and the
cheap opt-in sections switched on through their URL parameters), read the Vega view Streamlit
drew and check, in CSS pixels:

- plot area: every panel that holds data marks (the rectangle inside the axes; one per view of a
  concatenated or faceted chart) is at least MIN_PLOT tall;
- marks drawn: each such panel has at least one data-mark item (role "mark", not an axis, legend
  or title) whose bounds are finite, of non-zero width and height, and overlap the panel;
- titles: each chart title and subtitle lies inside the chart's drawing and is not cut short
  (Vega truncates a title longer than its `limit` with an ellipsis);
- legends lie inside the drawing, and the drawing (svg or canvas) inside the chart's element
  (a chart wider than its column is cut off or sticks out of the page).

The Vega view is the one Streamlit made with vega-embed: it is held in a React ref of the chart
component, reached from the element's React fiber. Both renderers (svg, and canvas for charts
with many points) expose the same scenegraph, so one check serves both.
"""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import wait_idle
from ui.pages import DIAGNOSES

VIEWPORT = {"width": 1400, "height": 900}
MIN_PLOT = 150  # px: the smallest plot-area height a reader can read values off
SLACK = 1.5  # px: rounding in Vega's text metrics and the browser's layout


MEASURE = r"""
(el) => {
  function findView(node) {
    const key = Object.keys(node).find(k => k.startsWith('__reactFiber$'));
    let fiber = key ? node[key] : null;
    for (let depth = 0; fiber && depth < 30; depth++, fiber = fiber.return) {
      for (let s = fiber.memoizedState, i = 0; s && i < 100; s = s.next, i++) {
        const m = s.memoizedState;
        for (const v of [m, m && m.current]) {
          if (v && typeof v === 'object' && typeof v.scenegraph === 'function') return v;
        }
      }
    }
    return null;
  }
  const box = el.getBoundingClientRect();
  const surface = el.querySelector('svg.marks, canvas.marks') || el.querySelector('svg, canvas');
  const out = {box: [box.width, box.height], surface: null, view: false, panels: [], titles: [], legends: [],
               renderer: surface ? surface.tagName.toLowerCase() : null};
  if (!surface) return out;
  const sb = surface.getBoundingClientRect();
  out.surface = [sb.x - box.x, sb.y - box.y, sb.width, sb.height];
  const view = findView(el) || findView(surface);
  if (!view) return out;
  out.view = true;
  const [ox, oy] = view.origin();
  const finite = b => b && [b.x1, b.x2, b.y1, b.y2].every(Number.isFinite);
  const ctx = document.createElement('canvas').getContext('2d');
  const panels = new Map();  // "x,y,w,h" -> panel: layers and colour groups share their view's rectangle
  function walk(mark, dx, dy, panel) {
    const role = mark.role || '';
    for (const it of mark.items || []) {
      const b = it.bounds;
      if (mark.marktype === 'text' && (role === 'title-text' || role === 'title-subtitle') && finite(b)) {
        const text = Array.isArray(it.text) ? it.text.join(' ') : String(it.text ?? '');
        ctx.font = `${it.fontStyle || 'normal'} ${it.fontWeight || 'normal'} ${it.fontSize || 11}px ${it.font || 'sans-serif'}`;
        out.titles.push({text, x1: b.x1 + dx, y1: b.y1 + dy, x2: b.x2 + dx, y2: b.y2 + dy,
                         limit: it.limit || 0, width: ctx.measureText(text).width});
      }
      if (role === 'legend' && finite(b)) out.legends.push([b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy]);
      if (role === 'mark' && panel) {
        panel.items++;
        if (finite(b) && b.x2 > b.x1 && b.y2 > b.y1 && b.x2 > 0 && b.y2 > 0 && b.x1 < panel.w && b.y1 < panel.h)
          panel.drawn++;
      }
      if (mark.marktype === 'group') {
        const x = dx + (it.x || 0), y = dy + (it.y || 0);
        let p = panel;
        if ((it.items || []).some(m => m.role === 'mark')) {
          const id = [x, y, it.width || 0, it.height || 0].map(Math.round).join(',');
          if (!panels.has(id)) panels.set(id, {name: mark.name || '', x, y, w: it.width || 0, h: it.height || 0,
                                               items: 0, drawn: 0});
          p = panels.get(id);
        }
        for (const child of it.items || []) walk(child, x, y, p);
      }
    }
  }
  walk(view.scenegraph().root, ox, oy, null);
  out.panels = Array.from(panels.values());
  return out;
}
"""


def chart_problems(m: dict) -> list[str]:
    """What is wrong with one measured chart (an empty list when it is readable and drawn)."""
    if m["surface"] is None:
        return ["no svg or canvas was drawn"]
    if not m["view"]:
        return ["the Vega view behind the chart could not be reached (Streamlit's chart component changed?)"]
    problems = []
    left, top, width, height = m["surface"]
    box_w, box_h = m["box"]
    if left < -SLACK or top < -SLACK or left + width > box_w + SLACK or top + height > box_h + SLACK:
        problems.append(f"the drawing ({width:.0f} x {height:.0f} px) does not fit its element "
                        f"({box_w:.0f} x {box_h:.0f} px)")
    if not m["panels"]:
        problems.append("no plot area holds data marks")
    for p in m["panels"]:
        if p["h"] < MIN_PLOT:
            problems.append(f"plot area {p['name']!r} is {p['h']:.0f} px tall (< {MIN_PLOT})")
        if p["drawn"] == 0:
            problems.append(f"plot area {p['name']!r} has no mark of non-zero size inside it "
                            f"({p['items']} mark items)")
    for t in m["titles"]:
        if t["x1"] < -SLACK or t["y1"] < -SLACK or t["x2"] > width + SLACK or t["y2"] > height + SLACK:
            problems.append(f"title {t['text']!r} at x {t['x1']:.0f}..{t['x2']:.0f}, y {t['y1']:.0f}..{t['y2']:.0f} "
                            f"leaves the {width:.0f} x {height:.0f} px drawing")
        if t["limit"] and t["width"] > t["limit"] + SLACK:
            problems.append(f"title {t['text']!r} ({t['width']:.0f} px) is cut to its {t['limit']:.0f} px limit")
    for x1, y1, x2, y2 in m["legends"]:
        if x1 < -SLACK or y1 < -SLACK or x2 > width + SLACK or y2 > height + SLACK:
            problems.append(f"a legend at x {x1:.0f}..{x2:.0f}, y {y1:.0f}..{y2:.0f} leaves the drawing")
    return problems


def settle(page) -> None:
    """Wait for the run to finish and every chart to be drawn, until the page stops changing."""
    last = None
    for _ in range(40):
        wait_idle(page, timeout=240_000)
        state = page.evaluate("""() => {
            const charts = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
            return [document.body.scrollHeight, charts.length,
                    charts.filter(c => c.querySelector('svg.marks, canvas.marks')).length];
        }""")
        if state == last and state[1] == state[2]:
            return
        last = state
        page.wait_for_timeout(500)
    raise AssertionError(f"the page kept changing: {last}")


def measure_visible(page, where: str) -> tuple[list[str], list[str]]:
    """Check every visible chart; returns the titles of the charts checked and the problems found."""
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    titles, problems = [], []
    for i in range(charts.count()):
        chart = charts.nth(i)
        if not chart.is_visible():  # a closed tab or expander: visited on its own
            continue
        m = chart.evaluate(MEASURE)
        title = " / ".join(t["text"] for t in m["titles"]) or f"chart {i + 1}"
        titles.append(title)
        problems += [f"{where}: {title!r}: {p}" for p in chart_problems(m)]
    return titles, problems


def _slug(path: str) -> str:
    return path.split("/")[-1][:-3]


# Pages whose charts wait for a button: the button's label and the URL parameters that keep the
# run small. A page added later without an entry here is opened with its defaults.
PRESS = {"lr_batch_grid": ("Run the grid", "lr_batch_grid_n_rates=3&lr_batch_grid_seeds=1&lr_batch_grid_updates=60")}

# Each case: (id, address after the app's URL, a button to press first or None, words a chart
# title must contain: the opt-in section really opened).
CASES = [("home", "", None, "")] + [
    (slug, slug + ("?" + PRESS[slug][1] if slug in PRESS else ""), PRESS.get(slug, (None,))[0], "")
    for slug in map(_slug, (p.path for p in DIAGNOSES))
] + [
    # Opt-in sections switched on through their URL parameters: the stall page's built-in scenario
    # (its saddle brings the escape-direction chart) and its minimum-ratio experiment made small
    # (two widths x two seeds instead of tens of seconds), the race from exactly the saddle, and the
    # classes-as-numbers demonstration.
    ("stall_scenario", "stall?stall_source=scenario", None, "escape direction"),
    ("stall_minimum_ratio", "stall?stall_mr_run=true&stall_mr_seeds=2&stall_mr_widths=2&stall_mr_widths=4", None,
     "Minimum ratio vs training loss"),
    ("saddle_exact", "saddle?saddle_view=exact", None, "Steps to escape, from exactly the saddle"),
    ("loss_function_codes", "loss_function?loss_function_codes=true", None, "classes coded as numbers"),
]


@pytest.mark.parametrize(("case_id", "address", "press", "must_show"), [pytest.param(*c, id=c[0]) for c in CASES])
def test_every_chart_has_a_tall_plot_drawn_marks_and_whole_titles(page, app_url, case_id, address, press, must_show):
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{app_url}/{address}")
    expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=60_000)
    settle(page)
    if press:
        page.get_by_role("button", name=press, exact=True).click()
        settle(page)
    assert page.get_by_test_id("stException").count() == 0, f"{case_id}: the page shows an exception"
    titles, problems = measure_visible(page, case_id)
    tabs = page.get_by_test_id("stMain").get_by_role("tab")
    for i in range(1, tabs.count()):  # the first tab is open already
        name = tabs.nth(i).inner_text()
        tabs.nth(i).click()
        settle(page)
        more, found = measure_visible(page, f"{case_id} / {name}")
        assert more, f"{case_id}: the tab {name!r} shows no chart"
        titles += more
        problems += found
    assert titles, f"{case_id}: no chart was shown"
    assert any(must_show in t for t in titles), f"{case_id}: no chart titled '...{must_show}...' among {titles}"
    assert not problems, "\n".join(problems)


def test_the_measure_sees_a_squashed_chart_and_a_cut_title(page, app_url):
    """The check itself can fail: a chart with a plot area too short and a title past its limit."""
    page.set_viewport_size(VIEWPORT)
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    settle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    m = chart.evaluate(MEASURE)
    assert m["view"] and m["panels"] and all(p["drawn"] for p in m["panels"])
    squashed = json.loads(json.dumps(m))
    squashed["panels"][0]["h"] = MIN_PLOT - 1
    squashed["panels"][0]["drawn"] = 0
    squashed["titles"] = [{"text": "t", "x1": 0, "y1": -12, "x2": 50, "y2": 4, "limit": 40, "width": 50}]
    problems = chart_problems(squashed)
    assert any("px tall" in p for p in problems) and any("no mark" in p for p in problems)
    assert any("leaves the" in p for p in problems) and any("cut to its" in p for p in problems)
