"""Helpers for browser tests that start their own Streamlit server: as `make run` starts it, with
every socket the server opens logged, optionally inside a network namespace that has only
loopback (the network cable unplugged)."""
from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs before Streamlit is imported: every DNS lookup, connect and sendto of the server process
# goes to a JSON-lines log through Python's audit hooks (PEP 578), including attempts that fail.
_HOOK = """
import json, os, sys
_log = open(os.environ["TRAINSCOPE_NET_LOG"], "a", buffering=1)
def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.bind"):
        _log.write(json.dumps({"event": event, "address": repr(args[-1])}) + "\\n")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        _log.write(json.dumps({"event": event, "host": repr(args[0])}) + "\\n")
sys.addaudithook(_hook)
from streamlit.web.cli import main
sys.argv[0] = "streamlit"
sys.exit(main())
"""


def make_run_args() -> list[str]:
    """The arguments `make run` gives `streamlit` (read from `make -n run`, so the Makefile decides)."""
    out = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if "streamlit run " in ln)
    words = shlex.split(line)
    return words[words.index("run"):]


def server_command(args: list[str], net_log: Path) -> tuple[list[str], dict]:
    """A command line that runs `streamlit <args>` with the socket log, and its environment."""
    env = {**os.environ, "TRAINSCOPE_NET_LOG": str(net_log), "TRAINSCOPE_TORCH_THREADS": "1"}
    return [sys.executable, "-c", _HOOK, *args], env


def wait_healthy(url: str, prefix: list[str] | None = None, timeout: float = 90.0, proc=None) -> None:
    """Poll `url`/_stcore/health until it answers ok (from inside the namespace when `prefix`)."""
    probe = ("import sys, urllib.request; "
             "sys.exit(urllib.request.urlopen(sys.argv[1] + '/_stcore/health', timeout=1).read() != b'ok')")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Streamlit server exited with code {proc.returncode}")
        done = subprocess.run([*(prefix or []), sys.executable, "-c", probe, url], capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the Streamlit server did not answer {url}/_stcore/health within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server we started (terminate, then kill after 10 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def offline_namespace():
    """Yield a command prefix that runs a program in a network namespace with only loopback up,
    or None where this machine cannot make one (no unshare/nsenter/ip, or not permitted)."""
    tools = all(shutil.which(t) for t in ("unshare", "nsenter", "ip"))
    holder = None
    prefix = None
    # As root a plain network namespace; otherwise one inside a user namespace.
    for unshare, enter in (([], []), (["-r"], ["-U", "--preserve-credentials"])) if tools else ():
        holder = subprocess.Popen(["unshare", *unshare, "-n", "sh", "-c", "ip link set lo up && echo ready && exec sleep 3600"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if holder.stdout.readline().strip() == b"ready":
            prefix = ["nsenter", "-t", str(holder.pid), "-n", *enter]
            if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
                break
        stop(holder)
        holder, prefix = None, None
    try:
        yield prefix
    finally:
        if holder is not None:
            stop(holder)


def read_net_log(path: Path) -> list[dict]:
    """The socket events the server logged."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_loopback_host(text: str) -> bool:
    """True for localhost, 127.0.0.0/8, ::1, a Unix socket path, or no host at all (a wildcard bind)."""
    host = text.strip("'\"[]")
    if host in ("None", "", "localhost") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_address(text: str) -> bool:
    """True for a socket address (repr of a tuple, or a Unix path) on the loopback interface."""
    text = text.strip()
    if not text.startswith("("):
        return True  # AF_UNIX path
    host = text[1:].split(",")[0]
    return is_loopback_host(host)
