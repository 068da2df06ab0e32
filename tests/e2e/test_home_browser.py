"""Open the app in chromium, upload a CSV, see the summary change, download a PNG; names stay
literal; a leaking column is flagged and left out with one click."""
import re
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


HOSTILE = "**bold** [x](http:evil.example) $x^2$ <img src=x>"  # no "/": it names a file


def test_hostile_file_and_column_names_show_as_plain_text(page, app_url, tmp_path: Path):
    """Markdown in a file or column name must not become bold text, a link, math or HTML."""
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    rows = "".join(f"id{i},{i % 5},{i % 2}\n" for i in range(40))
    csv_path = tmp_path / f"{HOSTILE}.csv"
    csv_path.write_text(f"[click](https://evil.example),x,y\n{rows}")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="Upload CSV").click()
    wait_idle(page)
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(csv_path))
    heading = page.get_by_role("heading", name=re.compile("^Dataset:"))
    expect(heading).to_be_visible(timeout=60_000)
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    shown = heading.inner_text().replace("\u2060", "")  # word joiners keep ":" shortcodes inert
    assert shown == f"Dataset: {HOSTILE}.csv"
    note = main.get_by_text("like ids or names").inner_text().replace("\u2060", "")
    assert "'[click](https://evil.example)'" in note
    # Nothing in the page body became a link, bold text, math or markup from the names.
    assert main.locator("a[href*='evil.example']").count() == 0
    assert main.locator("strong", has_text="bold").count() == 0 and main.locator(".katex").count() == 0
    assert main.locator("img[src=x]").count() == 0
    assert not page.get_by_test_id("stException").count()


def test_a_leaking_column_is_flagged_and_left_out_with_one_click(page, app_url, tmp_path: Path):
    page.goto(app_url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    rows = "".join(f"{20 + (i * 7) % 50},{'yes' if i % 3 else 'no'},{1 if i % 3 else 0}\n" for i in range(90))
    csv_path = tmp_path / "survivors.csv"
    csv_path.write_text("age,alive,survived\n" + rows)
    upload_csv(page, csv_path)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("The column 'alive' alone predicts the target 'survived'")).to_be_visible()
    main.get_by_role("button", name="Leave out alive").click()
    wait_idle(page)
    expect(main.get_by_text("The column 'alive' alone predicts")).to_have_count(0)
    expect(main.get_by_text("Left out as you asked: 'alive'.")).to_be_visible()
    assert "lab_drop=alive" in page.url
