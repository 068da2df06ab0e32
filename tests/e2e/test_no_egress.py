"""A desktop app stays on the desktop: with the network unplugged (a namespace with only loopback),
a walkthrough of every page sends no request past 127.0.0.1, the server process tries no outside
address or DNS name, the server started as `make run` starts it listens on loopback only, and an
error box links to no search engine."""
from __future__ import annotations

import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARGS, CHROMIUM, _free_port, wait_idle
from tests.e2e.serve import (ROOT, is_loopback_address, is_loopback_host, make_run_args, offline_namespace,
                             read_net_log, server_command, stop, wait_healthy)
from ui.pages import DIAGNOSES

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Resources a page may load from outside: icons, styles, scripts, images, frames, media.
RESOURCE_URLS_JS = """() => [...document.querySelectorAll(
    'link[href], script[src], img[src], iframe[src], source[src], video[src], audio[src], object[data]')]
    .map(e => e.href || e.src || e.data).concat(performance.getEntriesByType('resource').map(e => e.name))"""


def _host(url: str) -> str | None:
    """The host of an http(s)/ws(s) URL; None for data:, blob: and other in-page URLs."""
    parts = urllib.parse.urlsplit(url)
    return parts.hostname if parts.scheme in ("http", "https", "ws", "wss", "ftp") else None


def _outside(urls) -> list[str]:
    return sorted({u for u in urls if _host(u) is not None and _host(u) not in LOCAL_HOSTS | {"::1"}})


@pytest.fixture(scope="module")
def offline():
    with offline_namespace() as prefix:
        yield prefix


@pytest.fixture()
def offline_browser(playwright, offline, tmp_path):
    """Chromium running inside the offline namespace (or on this machine's network if none)."""
    executable = CHROMIUM
    if offline is not None:
        wrapper = tmp_path / "chromium-offline"
        wrapper.write_text("#!/bin/sh\nexec " + " ".join(offline) + f' "{CHROMIUM}" "$@"\n')
        wrapper.chmod(0o755)
        executable = str(wrapper)
    browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
    yield browser
    browser.close()


def _start(args: list[str], tmp_path: Path, prefix: list[str] | None, cwd: Path = ROOT):
    port = _free_port()
    log = tmp_path / "net.jsonl"
    cmd, env = server_command([*args, "--server.port", str(port)], log)
    out = open(tmp_path / "server.out", "w")
    proc = subprocess.Popen([*(prefix or []), *cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        wait_healthy(url, prefix, proc=proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, url, log, port


def test_walkthrough_offline_sends_nothing_past_loopback(offline, offline_browser, tmp_path):
    proc, url, log, _ = _start(make_run_args(), tmp_path, offline)
    requests: list[str] = []
    try:
        context = offline_browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        context.on("request", lambda r: requests.append(r.url))
        # Without a namespace, outside requests are refused here instead of by the missing route.
        context.route(lambda u: _host(u) is not None and _host(u) not in LOCAL_HOSTS, lambda route: route.abort())
        page = context.new_page()
        seen: list[str] = []
        page.goto(url)
        expect(page.get_by_role("heading", name="TrainScope", exact=True)).to_be_visible(timeout=90_000)
        wait_idle(page)
        seen += page.evaluate(RESOURCE_URLS_JS)
        icons = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(e => e.href)")
        assert icons and all(_host(u) in LOCAL_HOSTS for u in icons), icons
        failed = []  # pages that showed an error box (checked last: egress is this test's subject)
        for info in DIAGNOSES:
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=info.title, exact=True).click()
            wait_idle(page, timeout=180_000)
            if page.get_by_test_id("stException").count():
                failed.append(info.title)
            elif info.path.endswith("lr_batch_grid.py"):  # opt-in: nothing runs (or draws) before Run
                expect(page.get_by_role("button", name="Run the grid", exact=True)).to_be_visible(timeout=60_000)
            else:
                expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible(timeout=60_000)
            seen += page.evaluate(RESOURCE_URLS_JS)
        with page.expect_download(timeout=60_000) as download:
            page.get_by_test_id("stDownloadButton").filter(has_text="PNG").first.click()
        assert download.value.failure() is None
        seen += page.evaluate(RESOURCE_URLS_JS)
        context.close()
    finally:
        stop(proc)
    assert len(requests) > 20  # the log did record the walkthrough
    assert _outside(requests) == [], "the browser asked the outside world for these"
    assert _outside(seen) == [], "pages reference outside resources"
    events = read_net_log(log)
    assert any(e["event"] == "socket.bind" for e in events)  # the hook was listening
    leaks = [e for e in events if not (is_loopback_address(e["address"]) if "address" in e else is_loopback_host(e["host"]))]
    assert leaks == [], "the server process tried to reach the outside world"
    server_log = (tmp_path / "server.out").read_text()[-3000:]
    assert failed == [], f"pages with an error box: {failed}\n{server_log}"
    if offline is None:
        pytest.xfail("no network namespace on this machine: checked with outside requests refused, not unplugged")


def _local_non_loopback_ipv4() -> str | None:
    """This machine's address on its default route (no packet is sent), or None when offline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _listening(port: int) -> list[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp and tcp6."""
    found = []
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw))
    return found


def test_make_run_server_listens_on_localhost_only(tmp_path):
    proc, url, log, port = _start(make_run_args(), tmp_path, None)
    try:
        addresses = _listening(port) if Path("/proc/net/tcp").exists() else None
        outside = _local_non_loopback_ipv4()
        refused = None
        if outside is not None:
            with socket.socket() as s:
                s.settimeout(2)
                refused = s.connect_ex((outside, port)) != 0
    finally:
        stop(proc)
    printed = (tmp_path / "server.out").read_text()
    assert f"URL: http://localhost:{port}" in printed
    assert "Network URL" not in printed and "External URL" not in printed
    if addresses is not None:
        assert addresses and all(is_loopback_host(a) for a in addresses), addresses
    if outside is not None:
        assert refused, f"the server answered on {outside}:{port}"
    # Start-up did not look up this machine's external address (checkip.amazonaws.com).
    events = read_net_log(log)
    assert not [e for e in events if "host" in e and not is_loopback_host(e["host"])]


def test_lan_switch_is_documented_and_works():
    out = subprocess.run(["make", "-n", "run", "ADDRESS=0.0.0.0"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "--server.address 0.0.0.0" in out
    assert "ADDRESS=0.0.0.0" in (ROOT / ".streamlit" / "config.toml").read_text()


def test_error_box_offers_no_search_links(offline, offline_browser, tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("raise RuntimeError('boom')\n")
    # cwd = the repository, so the app's .streamlit/config.toml applies.
    proc, url, _, _ = _start(["run", str(script)], tmp_path, offline)
    try:
        page = offline_browser.new_page()
        page.goto(url)
        box = page.get_by_test_id("stException")
        expect(box).to_be_visible(timeout=60_000)
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        text = box.inner_text()
        page.close()
    finally:
        stop(proc)
    assert not [h for h in hrefs if "google" in h or "chatgpt" in h], hrefs
    assert "Traceback" not in text and "boom" not in text  # no details either (showErrorDetails = none)
