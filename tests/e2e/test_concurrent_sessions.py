"""Five browser sessions at once, each with its own dataset and page: none sees another's setup."""
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import wait_idle

LAB_FIRST = (None, "Loss function", "Batch size")  # pages whose first chart shows the lab data
SESSIONS = [("iris", None), ("wine", "Loss function"), ("circles", "Feature scaling"),
            ("xor", "Saddle escape"), ("blobs", "Batch size")]


def test_five_sessions_keep_their_own_setup(browser, app_url, tmp_path: Path):
    sessions = SESSIONS
    contexts = [browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True) for _ in sessions]
    pages = [ctx.new_page() for ctx in contexts]
    try:
        # Arrive and pick a dataset in every session before any of them finishes its work.
        for page in pages:
            page.goto(app_url)
        for page, (dataset, _) in zip(pages, sessions):
            expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=90_000)
            page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name=dataset, exact=True).click()
        for page, (_, title) in zip(pages, sessions):
            if title:
                page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        for page, (dataset, title) in zip(pages, sessions):
            wait_idle(page, timeout=240_000)
            assert page.get_by_test_id("stException").count() == 0
            chosen = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first
            assert f'combobox "Dataset": {dataset}' in chosen.aria_snapshot()
            if title is None:
                expect(page.get_by_text(f"Dataset: {dataset}")).to_be_visible()
            # What the page exports never carries another session's dataset; a chart of the lab data
            # is named after this session's own (a toy surface's chart is named after the surface).
            with page.expect_download(timeout=60_000) as info:
                page.get_by_test_id("stDownloadButton").filter(has_text="CSV").first.click()
            name = info.value.suggested_filename
            assert not any(f"_{other}_" in name for other, _ in sessions if other != dataset), (dataset, name)
            if title in LAB_FIRST:
                assert f"_{dataset}_seed0" in name, (dataset, name)
            for other, _ in sessions:
                if other != dataset:
                    expect(page.get_by_text(f"Dataset: {other}")).to_have_count(0)
    finally:
        for ctx in contexts:
            ctx.close()
