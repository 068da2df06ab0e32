"""The Lab setup lives in the URL: a reload or a shared link restores it; a lost upload is named."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from tests.e2e.conftest import upload_csv, wait_idle

CSV = "height,weight,colour,species\n" + "".join(
    f"{150 + i % 40},{50 + (i * 3) % 30},{'red' if i % 3 else 'blue'},{'cat' if i % 2 else 'dog'}\n" for i in range(80)
)


def params(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def open_home(page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)


def sidebar_select(page, label: str):
    return page.get_by_test_id("stSidebar").get_by_role("combobox", name=label, exact=True)


def test_url_parameters_restore_the_sidebar_and_survive_a_reload(page, app_url):
    open_home(page, f"{app_url}/?lab_dataset=iris&lab_seed=7&lab_hidden=8%2C+4&lab_activation=relu")
    sidebar = page.get_by_test_id("stSidebar")
    expect(page.get_by_text("Dataset: iris")).to_be_visible()
    expect(sidebar_select(page, "Dataset")).to_have_value("iris")
    expect(sidebar_select(page, "Activation")).to_have_value("relu")
    expect(sidebar.get_by_label("Seed", exact=True).and_(page.locator("input"))).to_have_value("7")
    expect(sidebar.get_by_label("Hidden layers", exact=True).and_(page.locator("input"))).to_have_value("8, 4")

    # A change made in the page goes into the URL, and a reload brings it back.
    seed = sidebar.get_by_label("Seed", exact=True).and_(page.locator("input"))
    seed.fill("3")
    seed.press("Enter")
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"lab_seed=3"))
    page.reload()
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(sidebar.get_by_label("Seed", exact=True).and_(page.locator("input"))).to_have_value("3")
    expect(page.get_by_text("Dataset: iris")).to_be_visible()
    assert params(page)["lab_dataset"] == ["iris"] and params(page)["lab_hidden"] == ["8, 4"]

    # Opening a diagnosis keeps the setup in its address too, so that page can be shared as well.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Loss function", exact=True).click()
    expect(page.get_by_role("heading", level=1).first).not_to_have_text("TrainScope", timeout=60_000)
    expect(page).to_have_url(re.compile(r"lab_dataset=iris"))
    assert params(page)["lab_seed"] == ["3"]


def test_a_reload_after_an_upload_names_the_lost_file_and_a_new_upload_restores_the_view(page, app_url, tmp_path: Path):
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_home(page, app_url)
    csv_path = tmp_path / "pets.csv"
    csv_path.write_text(CSV)
    upload_csv(page, csv_path)
    target = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Target column")
    target.scroll_into_view_if_needed()
    target.click()
    page.get_by_role("option", name="colour", exact=True).click()
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"lab_target=colour"))
    assert params(page)["lab_file"] == ["pets.csv"] and params(page)["lab_dataset"] == ["Upload CSV"]

    page.reload()
    expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("The file 'pets.csv' named in this page's address is no longer loaded")).to_be_visible()
    assert page.get_by_text("Dataset:").count() == 0  # no other data shown in its place
    expect(sidebar_select(page, "Dataset")).to_have_value("Upload CSV")
    assert params(page)["lab_target"] == ["colour"]  # kept, waiting for the file

    upload_csv(page, csv_path)
    expect(sidebar_select(page, "Target column")).to_have_value("colour")
    assert page.get_by_test_id("stException").count() == 0


def test_an_oversize_upload_is_explained_on_the_page_with_the_limit(page, app_url, tmp_path: Path):
    open_home(page, f"{app_url}/?lab_dataset=Upload+CSV")
    big = tmp_path / "huge.csv"
    big.write_bytes(b"a,b\n" + b"1,2\n" * (51 * 2**20 // 4))  # 51 MB: over the 50 MB cap
    page.get_by_test_id("stSidebar").get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(big))
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("No file is loaded yet")).to_be_visible()
    expect(main.get_by_text("up to 50 MB")).to_be_visible()
    assert main.get_by_text("Dataset:").count() == 0


def test_a_link_naming_an_option_by_its_value_opens_that_option(page, app_url):
    """Streamlit's binding reads only the label it writes itself (?stall_source=Stall+scenario+%28built-in
    %29) and drops anything else: a hand-written link with the option's value opened the lab setup."""
    page.goto(f"{app_url}/stall?stall_source=scenario")
    expect(page.get_by_role("heading", name="Gradient stall", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page, timeout=180_000)
    source = page.get_by_test_id("stMain").get_by_test_id("stRadio").first
    expect(source.get_by_role("radio", name="Stall scenario (built-in)")).to_be_checked()
    expect(page.get_by_text("Stall scenario (ignores the sidebar)")).to_be_visible()
    assert page.get_by_text("Lab setup:").count() == 0

    # Streamlit takes the unknown value out of the address; the label is written back at once, so a
    # link copied before touching anything keeps the view, and later changes keep it too.
    assert params(page)["stall_source"] == ["Stall scenario (built-in)"]
    page.get_by_text("Log scale (loss and gradient norm)", exact=True).click()
    wait_idle(page)
    assert params(page)["stall_source"] == ["Stall scenario (built-in)"] and params(page)["stall_log"] == ["false"]
    page.reload()
    expect(page.get_by_role("heading", name="Gradient stall", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page, timeout=180_000)
    expect(page.get_by_text("Stall scenario (ignores the sidebar)")).to_be_visible()

    # The link's choice does not stick: the reader can still pick the lab setup.
    source.get_by_text("Lab setup (sidebar)", exact=True).click()
    wait_idle(page, timeout=180_000)
    expect(page.get_by_text("Lab setup:", exact=False).first).to_be_visible()
    assert page.get_by_text("Stall scenario (ignores the sidebar)").count() == 0
    assert "stall_source" not in params(page)

    # The same for the sidebar (a dataset whose label differs from its name) and another page's radio.
    page.goto(f"{app_url}/saddle?saddle_view=exact&lab_dataset=breast_cancer")
    expect(page.get_by_role("heading", name="Saddle escape", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page, timeout=180_000)
    expect(sidebar_select(page, "Dataset")).to_have_value("breast cancer")
    view = page.get_by_test_id("stMain").get_by_test_id("stRadio").filter(has_text="Show the race from")
    expect(view.get_by_role("radio", name="exactly the saddle")).to_be_checked()
    # Both written back as labels at once, with the link's other parameters kept.
    written = params(page)
    assert written["lab_dataset"] == ["breast cancer"], written
    assert len(written["saddle_view"]) == 1 and written["saddle_view"][0] != "exact", written


def test_the_learning_rate_pages_open_tab_is_in_the_link(page, app_url):
    """Review D: '?learning_rate_tab=Train+with+schedules' did not open that tab; clicking a tab
    now writes it to the address and a link opens it."""
    page.goto(f"{app_url}/learning_rate?learning_rate_tab=Train+with+schedules")
    expect(page.get_by_role("heading", name="Learning rate", exact=True)).to_be_visible(timeout=60_000)
    wait_idle(page, timeout=180_000)
    expect(page.get_by_role("tab", name="Train with schedules")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Adaptive optimizers").click()
    wait_idle(page, timeout=180_000)
    assert params(page)["learning_rate_tab"] == ["Adaptive optimizers"]
