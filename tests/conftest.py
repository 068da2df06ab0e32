"""Shared test setup: one torch thread (see core/__init__.py) and small helpers."""
import os

os.environ.setdefault("TRAINSCOPE_TORCH_THREADS", "1")

import core  # noqa: E402,F401  (pins torch threads before any test imports torch)

import re  # noqa: E402


def plain(text) -> str:
    """What a user reads in a box whose text ui.verdict.escape_markdown escaped: the Markdown
    backslash escapes and invisible word joiners removed (AppTest returns the escaped source)."""
    return re.sub(r"\\(.)", r"\1", str(text)).replace("\u2060", "")
