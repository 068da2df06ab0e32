"""The app's pages: one entry per diagnosis in core.registry, in the lecture's order."""
from __future__ import annotations

from dataclasses import dataclass

from core.registry import REGISTRY


@dataclass(frozen=True)
class PageInfo:
    """A page file with its sidebar title, icon and the one line its home-page card shows."""

    path: str
    title: str
    icon: str
    description: str
    lecture: str  # the lecture section it follows


# The navigation comes from the core registry: a new diagnosis is one entry there.
DIAGNOSES = tuple(PageInfo(f"app_pages/{d.key}.py", d.title, d.icon, d.description, d.lecture) for d in REGISTRY)
