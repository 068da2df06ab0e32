"""The verdict box every page ends with, and the escaping that keeps its text literal."""
from __future__ import annotations

import re

import streamlit as st

from core.diagnoses import Verdict

_BOX = {"good": st.success, "info": st.info, "warning": st.warning, "problem": st.error}
_ICON = {"good": ":material/check_circle:", "info": ":material/info:", "warning": ":material/warning:",
         "problem": ":material/error:"}

# CommonMark lets a backslash escape any ASCII punctuation, so escaping all of it switches off
# every Markdown construct: emphasis, links and autolinks, HTML, headings, lists, code, KaTeX ($),
# and Streamlit's :color[...] directives.
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
# Streamlit rewrites some text *after* parsing, where escapes no longer count: ":name:" emoji and
# ":material/name:" icon shortcodes, " -> ", " <- ", " -- ", " >= " ... typographic arrows, and GFM
# autolinks (http://..., www.x.y, a@b.c). An invisible word joiner (U+2060) after such a colon or
# "@", between such symbols, and between "www" and "." breaks them.
_SHORTCODE = re.compile(r":(?=[^\s:])")
_SYMBOL_PAIR = re.compile(r"(?<=[-<>~=])(?=[-<>~=])")
_AUTOLINK = re.compile(r"(?<=@)|(?<=[wW]{3})(?=\.)")
WORD_JOINER = "\u2060"


def escape_markdown(text: str) -> str:
    """`text` as Markdown that Streamlit shows literally, on one line.

    Line breaks and tabs become spaces (a name with a newline would start a new block).

    >>> escape_markdown("**x** [a](b) $y$")
    '\\\\*\\\\*x\\\\*\\\\* \\\\[a\\\\]\\\\(b\\\\) \\\\$y\\\\$'
    """
    text = re.sub(r"[\r\n\t\v\f]+", " ", str(text))
    text = _SYMBOL_PAIR.sub(WORD_JOINER, text)
    text = _SHORTCODE.sub(":" + WORD_JOINER, text)
    text = _AUTOLINK.sub(WORD_JOINER, text)
    return _PUNCT.sub(r"\\\1", text)


def shown_text(markdown: str) -> str:
    """What a reader sees of `escape_markdown` output: escapes resolved, word joiners dropped.

    For tests that read a box's Markdown body (AppTest) and look for the sentence in it.

    >>> shown_text(escape_markdown("lr 0.01 -> 0.1 (x10)"))
    'lr 0.01 -> 0.1 (x10)'
    """
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def show_verdict(verdict: Verdict) -> None:
    """A coloured box with the verdict sentence and, below it, what to try next.

    The sentences may quote file, column and class names, so they are shown as literal text.
    """
    # Paragraphs (blank-line separated) stay paragraphs; each is escaped on its own.
    text = "\n\n".join(escape_markdown(part) for part in verdict.text.split("\n\n") if part.strip())
    if verdict.advice:
        text += f"\n\n**Try next:** {escape_markdown(verdict.advice)}"
    _BOX.get(verdict.kind, st.info)(text, icon=_ICON.get(verdict.kind))
