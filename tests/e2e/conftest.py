"""Real-browser tests: a Streamlit server on a free loopback port, driven by Debian's chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    # This hook sees the whole session's items: touch only the ones in this folder.
    here = Path(__file__).parent
    items = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in items:
        item.add_marker(pytest.mark.e2e)
    if items and not Path(CHROMIUM).exists():
        if os.environ.get("TRAINSCOPE_REQUIRE_BROWSER"):
            raise pytest.UsageError(f"Browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium).")
        skip = pytest.mark.skip(reason="chromium is not installed (apt-get install chromium)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """Start `streamlit run app.py` on a free loopback port; yield its URL; stop it after."""
    port = _free_port()
    env = {**os.environ, "TRAINSCOPE_TORCH_THREADS": "1"}
    log = open(ROOT / "test-results-server.log", "w") if os.environ.get("TRAINSCOPE_SERVER_LOG") else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("the Streamlit server did not answer /_stcore/health within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_idle(page, timeout: float = 90_000) -> None:
    """Wait until Streamlit has finished running the script (the status widget is gone)."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout)
    # Elements still being drawn show as grey skeletons for a moment after the run ends.
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout)
    page.wait_for_timeout(200)


def upload_csv(page, path: Path) -> None:
    """Pick "Upload CSV" in the sidebar, upload `path`, and wait for the home page to show it."""
    from playwright.sync_api import expect

    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="Upload CSV").click()
    wait_idle(page)
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    expect(page.get_by_text(f"Dataset: {path.stem}")).to_be_visible(timeout=60_000)
    wait_idle(page)
