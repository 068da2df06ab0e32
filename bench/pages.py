"""Each page's default diagnosis, cold (empty cache) and cached, in one table.

Run: .venv/bin/python bench/pages.py            (lab defaults: moons, MLP 16-16 tanh)
     .venv/bin/python bench/pages.py --largest  (digits and the largest model the controls allow;
                                                 target: every page within 30 s)
     .venv/bin/python bench/pages.py --csv PATH [--target COL]
                                                (moons, then PATH uploaded as a user would; target:
                                                 every page's cold time on the file within 4x its
                                                 cold time on moons, issue 16. A 53,940-row file:
                                                 bench/make_diamonds_like.py, then --target price)
Every page is driven through Streamlit's AppTest exactly as a browser session would run it. The
server-wide one-off costs (importing torch, the first optimizer step) are paid first, as the
app's warm-up thread does while a user reads the home page. A cold run starts from an empty cache
with the home page already drawn (so the file is loaded before the page opens, as when a user
uploads on the home page); "cold" is the best of --repeat (2) such runs, "cached" the best of three
reruns. Baselines, measured in the same process: the home page's own rerun, and with --csv each
page's cold time on moons.
Targets: cold within ~3 s, cached within ~0.3 s on 2 cores.
The machine's load average is printed with the figures: on shared cores, compare runs taken at
similar load.
"""
from __future__ import annotations

import argparse
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

APP = os.path.join(ROOT, "app.py")


def timed_run(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


def configure(at: AppTest, largest: bool, csv: tuple[str, bytes, str | None] | None = None) -> None:
    """Set the sidebar: an uploaded CSV (and its target) or digits with --largest; the largest model."""
    if csv is not None:
        name, blob, target = csv
        at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
        at.sidebar.file_uploader(key="upload").set_value((name, blob, "text/csv")).run()
        if target is not None:
            at.sidebar.selectbox(key="lab_target").set_value(target).run()
    elif largest:
        at.sidebar.selectbox(key="lab_dataset").set_value("digits").run()
    if largest:
        widest = ", ".join([str(MAX_HIDDEN_WIDTH)] * MAX_HIDDEN_LAYERS)
        at.sidebar.text_input(key="lab_hidden").set_value(widest).run()


def cold_run(path: str, largest: bool, csv=None) -> tuple[AppTest, float]:
    """A fresh session on an empty cache: the home page, the sidebar set, then the page (timed)."""
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()  # home page first, as a user arrives
    configure(at, largest, csv)
    problems = [str(e.value)[:80] for e in (*at.exception, *at.error)]
    if problems:
        raise RuntimeError("setup: " + problems[0])
    at.switch_page(path)
    return at, timed_run(at)


def measure(path: str, largest: bool, csv=None, repeat: int = 2) -> tuple[float, float, str]:
    """(cold seconds: best of `repeat` cold runs, cached seconds: best of 3 reruns, note) of one page."""
    try:
        runs = [cold_run(path, largest, csv) for _ in range(repeat)]
    except RuntimeError as exc:
        return float("nan"), float("nan"), str(exc)
    at, cold = runs[-1][0], min(seconds for _, seconds in runs)
    notes = [f"exception: {str(e.value)[:60]}" for e in at.exception] + [f"error: {str(e.value)[:60]}" for e in at.error]
    if not at.get("vega_lite_chart"):
        notes.append("no chart drawn")
    # A page that cannot use this data (the loss-function page on a regression target) offers a switch.
    notes += [f"did not train: offers '{b.label}'" for b in at.button if b.label.startswith("Switch to")]
    cached = min(timed_run(at) for _ in range(3))
    return cold, cached, "; ".join(notes)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description="Each page's default run, cold and cached, through AppTest.")
    parser.add_argument("--largest", action="store_true", help="digits and the largest model the controls allow")
    parser.add_argument("--csv", metavar="PATH", help="also time every page on this CSV, uploaded through the sidebar")
    parser.add_argument("--target", metavar="COL", help="the CSV's target column (default: its last column)")
    parser.add_argument("--repeat", type=int, default=2, metavar="N",
                        help="cold runs per page and dataset, the best one kept (shared cores are noisy; default 2)")
    args = parser.parse_args()
    csv = None
    if args.csv:
        with open(args.csv, "rb") as f:
            csv = (os.path.basename(args.csv), f.read(), args.target)

    print(f"start: {load()}")
    _first_optimizer_step()
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    home = min(timed_run(at) for _ in range(3))
    rows = []
    for info in DIAGNOSES:
        if not os.path.exists(info.path):
            rows.append((info.title, (float("nan"),) * 2, None, "missing"))
            continue
        cold, cached, note = measure(info.path, args.largest, repeat=args.repeat)
        upload = None
        if csv is not None:
            u_cold, u_cached, u_note = measure(info.path, args.largest, csv, args.repeat)
            upload = (u_cold, u_cached)
            note = "; ".join(n for n in (note, u_note and f"CSV: {u_note}") if n)
        rows.append((info.title, (cold, cached), upload, note))
        print(f"  {info.title}: done ({load()})", flush=True)

    setup = "digits, largest model" if args.largest and csv is None else "lab defaults"
    if args.largest and csv is not None:
        setup = "largest model"
    print(f"\nsetup: {setup}; home page rerun (baseline): {home:.3f} s; torch threads: "
          f"{os.environ.get('TRAINSCOPE_TORCH_THREADS', '1')}; end: {load()}")
    if csv is None:
        print(f"{'page':<20}{'cold s':>9}{'cached s':>10}{'cold/baseline':>15}  note")
        for title, (cold, cached), _, note in rows:
            print(f"{title:<20}{cold:>9.2f}{cached:>10.3f}{cold / home:>15.1f}  {note}")
        return
    print(f"CSV: {csv[0]} ({len(csv[1]) / 2**20:.1f} MB), target {csv[2] or 'its last column'}; "
          "target: CSV cold / moons cold within 4")
    print(f"{'page':<20}{'moons cold':>11}{'cached':>8}{'CSV cold':>10}{'cached':>8}{'CSV/moons':>11}  note")
    worst, left_out = 0.0, []
    for title, (cold, cached), upload, note in rows:
        u_cold, u_cached = upload or (float("nan"),) * 2
        ratio = u_cold / cold
        if ratio != ratio or "no chart drawn" in note or "did not train" in note:  # not the page's work
            left_out.append(title)
        else:
            worst = max(worst, ratio)
        print(f"{title:<20}{cold:>11.2f}{cached:>8.3f}{u_cold:>10.2f}{u_cached:>8.3f}{ratio:>11.1f}  {note}")
    print(f"largest ratio: {worst:.1f} ({'within' if worst <= 4 else 'OVER'} the 4x target)"
          + (f"; left out (see their notes): {', '.join(left_out)}" if left_out else ""))


if __name__ == "__main__":
    main()
