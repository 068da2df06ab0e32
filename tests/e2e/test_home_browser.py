"""Open the app in chromium, upload a CSV, see the summary change, download a PNG."""
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import upload_csv, wait_idle

CSV = "height,weight,colour,species\n" + "".join(
    f"{150 + i % 40},{50 + (i * 3) % 30},{'red' if i % 3 else 'blue'},{'cat' if i % 2 else 'dog'}\n" for i in range(80)
)


def test_upload_changes_summary_and_png_downloads(page, app_url, tmp_path: Path):
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("Dataset: moons")).to_be_visible()

    csv_path = tmp_path / "pets.csv"
    csv_path.write_text(CSV)
    upload_csv(page, csv_path)
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()

    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text="PNG").first.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    data = target.read_bytes()
    assert info.value.suggested_filename.startswith("trainscope_home_") and "pets" in info.value.suggested_filename
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not page.get_by_test_id("stException").count()
