"""Every page in a real browser: default run, no exception, charts drawn, a PNG per page,
a screenshot per page for the README; then a CSV uploaded on the home page reaches a diagnosis."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, upload_csv, wait_idle
from ui.pages import DIAGNOSES

SHOTS = ROOT / "docs" / "screenshots"
PAGES = list(DIAGNOSES)
# Opt-in pages draw nothing until a button is pressed: its label and URL settings that keep it small.
PRESS = {"lr_batch_grid": ("Run the grid", "lr_batch_grid_n_rates=3&lr_batch_grid_seeds=2&lr_batch_grid_updates=60")}


def open_page(page, app_url, title: str) -> None:
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    wait_idle(page, timeout=180_000)


def download_png(page, tmp_path: Path) -> tuple[str, bytes]:
    with page.expect_download(timeout=60_000) as info:
        page.get_by_test_id("stDownloadButton").filter(has_text="PNG").first.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return info.value.suggested_filename, target.read_bytes()


@pytest.mark.parametrize("info", PAGES, ids=[p.path.split("/")[-1][:-3] for p in PAGES])
def test_page_default_run_in_browser(page, app_url, tmp_path, info):
    page.set_viewport_size({"width": 1400, "height": 1000})
    slug = info.path.split("/")[-1][:-3]
    if slug in PRESS:
        label, params = PRESS[slug]
        page.goto(f"{app_url}/{slug}?{params}")
        expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=60_000)
        wait_idle(page)
        page.get_by_role("button", name=label, exact=True).click()
        wait_idle(page, timeout=180_000)
    else:
        open_page(page, app_url, info.title)
    assert page.get_by_test_id("stException").count() == 0
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts.first).to_be_visible(timeout=60_000)
    expect(charts.first.locator("canvas, svg").first).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("heading", level=1).first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{info.path.split('/')[-1][:-3]}.png"), full_page=False)
    name, png = download_png(page, tmp_path)
    assert name.endswith(".png") and png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert 300 <= width <= 6000 and 150 <= height <= 6000


def test_home_screenshot_and_uploaded_csv_reaches_a_diagnosis(page, app_url, tmp_path):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("Dataset: moons")).to_be_visible()
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stPageLink").first).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "home.png"))

    rows = "".join(f"{(i * 37) % 100 / 10},{(i * 13) % 70 / 7},{'yes' if (i * 37) % 100 > 50 else 'no'}\n" for i in range(120))
    csv = tmp_path / "clinic.csv"
    csv.write_text("dose,age,response\n" + rows)
    upload_csv(page, csv)
    target = PAGES[-1]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=target.title, exact=True).click()
    wait_idle(page, timeout=180_000)
    assert page.get_by_test_id("stException").count() == 0
    name, png = download_png(page, tmp_path)
    assert "clinic" in name, f"the page exported {name}: it did not use the uploaded CSV"
