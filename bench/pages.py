"""Each page's default diagnosis, cold (empty cache) and cached, in one table.

Run: .venv/bin/python bench/pages.py            (lab defaults: moons, MLP 16-16 tanh)
     .venv/bin/python bench/pages.py --largest  (digits and the largest model the controls allow;
                                                 target: every page within 30 s)
Every page is driven through Streamlit's AppTest exactly as a browser session would run it. The
server-wide one-off costs (importing torch, the first optimizer step) are paid first, as the
app's warm-up thread does while a user reads the home page. Baseline: the home page's own rerun,
measured in the same process; the last column is each page's cold time over that baseline.
Targets: cold within ~3 s, cached within ~0.3 s on 2 cores.
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import core  # noqa: E402,F401
from core.models import MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH  # noqa: E402
from ui.pages import DIAGNOSES  # noqa: E402
from ui.warmup import _first_optimizer_step  # noqa: E402


def timed_run(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


def configure(at: AppTest, largest: bool) -> None:
    """Optionally switch the sidebar to the largest model the controls allow, on digits."""
    if largest:
        widest = ", ".join([str(MAX_HIDDEN_WIDTH)] * MAX_HIDDEN_LAYERS)
        at.sidebar.selectbox(key="lab_dataset").set_value("digits").run()
        at.sidebar.text_input(key="lab_hidden").set_value(widest).run()


def main() -> None:
    largest = "--largest" in sys.argv
    _first_optimizer_step()
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=300)
    at.run()
    home = min(timed_run(at) for _ in range(3))
    rows = []
    for info in DIAGNOSES:
        if not os.path.exists(info.path):
            rows.append((info.title, float("nan"), float("nan"), "missing"))
            continue
        st.cache_data.clear()
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=300)
        at.run()  # home page first, as a user arrives
        configure(at, largest)
        at.switch_page(info.path)
        cold = timed_run(at)
        problem = "exception" if at.exception else ""
        cached = min(timed_run(at) for _ in range(3))
        rows.append((info.title, cold, cached, problem))
    setup = "digits, largest model" if largest else "lab defaults"
    print(f"setup: {setup}; home page rerun (baseline): {home:.3f} s; torch threads: {os.environ.get('TRAINSCOPE_TORCH_THREADS', '1')}")
    print(f"{'page':<18}{'cold s':>9}{'cached s':>10}{'cold/baseline':>15}  note")
    for title, cold, cached, note in rows:
        print(f"{title:<18}{cold:>9.2f}{cached:>10.3f}{cold / home:>15.1f}  {note}")


if __name__ == "__main__":
    main()
