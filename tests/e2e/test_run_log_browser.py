"""Open 'Your training run' in chromium, upload two logs (a TensorBoard event file and a
trainer_state.json of the same real run), see them compared, and download a chart."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.runlog import load_log
from core.runlog_examples import run_scenario, trainer_state
from tests.e2e.conftest import wait_idle


@pytest.fixture(scope="module")
def log_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    sc = run_scenario("spikes")
    events = folder / "events.out.tfevents.1700000000.host.1.0"
    events.write_bytes(sc.events)
    state = folder / "trainer_state.json"
    state.write_bytes(trainer_state(load_log(sc.events, events.name).steps))
    return events, state


def test_upload_two_logs_compare_and_download_a_chart(page, app_url, log_files, tmp_path: Path):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Your training run", exact=True).click()
    expect(page.get_by_role("heading", name="Your training run")).to_be_visible(timeout=60_000)
    wait_idle(page, timeout=180_000)  # the example log trains a small model first
    main = page.get_by_test_id("stMain")
    main.get_by_test_id("stFileUploaderDropzoneInput").set_input_files([str(p) for p in log_files])
    expect(main.get_by_text("2 runs side by side")).to_be_visible(timeout=120_000)
    wait_idle(page, timeout=120_000)
    expect(main.get_by_text("3 loss spikes (at steps 500, 900, 1,300)").first).to_be_visible()
    charts = main.locator('[data-testid="stVegaLiteChart"]')
    expect(charts.first).to_be_visible()
    assert charts.count() >= 3

    with page.expect_download() as info:
        main.get_by_test_id("stDownloadButton").filter(has_text="CSV").first.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    assert info.value.suggested_filename.startswith("trainscope_run-log_runs-loss")
    lines = target.read_text().splitlines()
    assert lines[0].split(",") == ["step", "run", "value"]
    runs = {line.split(",")[1] for line in lines[1:]}
    assert runs == {"events.out.tfevents.1700000000.host.1.0", "trainer_state.json"}

    with page.expect_download() as info:
        main.get_by_test_id("stDownloadButton").filter(has_text="PNG").first.click()
    png = tmp_path / info.value.suggested_filename
    info.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not page.get_by_test_id("stException").count()
