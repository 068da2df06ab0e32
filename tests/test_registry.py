"""The diagnosis registry (issue 12): a diagnosis is one module, one chart file, one page, one test
file and one registry entry, and nothing is left out of it."""
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import core.diagnoses
from core.registry import REGISTRY
from ui.pages import DIAGNOSES

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"findings", "words", "registry"}  # the shared kit, not diagnoses


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda d: d.key)
def test_every_entry_names_files_that_exist(entry):
    assert (ROOT / "app_pages" / f"{entry.key}.py").is_file()
    assert (ROOT / "core" / "charts" / f"{entry.key}.py").is_file()
    assert list((ROOT / "tests").glob(f"test_{entry.key}*.py")) or any(
        (ROOT / "tests" / f"test_{m}.py").is_file() for m in entry.modules)
    for name in entry.modules:
        module = importlib.import_module(f"core.diagnoses.{name}")
        assert callable(getattr(module, "run", None)), name


def test_no_diagnosis_module_is_left_out_and_the_navigation_follows_the_registry():
    listed = {m for d in REGISTRY for m in d.modules}
    present = {i.name for i in pkgutil.iter_modules(core.diagnoses.__path__)
               if not i.name.startswith("_") and i.name not in SHARED}
    assert present == listed
    assert [p.path for p in DIAGNOSES] == [f"app_pages/{d.key}.py" for d in REGISTRY]
    assert len({d.key for d in REGISTRY}) == len(REGISTRY)


def test_page_files_read_like_ui_and_hold_no_training():
    # Pages never hold math: no torch import and no backward pass in a page's code (a snippet shown
    # to the user as text is fine).
    import ast

    for entry in REGISTRY:
        tree = ast.parse((ROOT / "app_pages" / f"{entry.key}.py").read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "torch" not in imported, entry.key
        assert not any(isinstance(n, ast.Attribute) and n.attr == "backward" for n in ast.walk(tree)), entry.key
