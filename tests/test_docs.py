"""The documentation site holds together without building it: every page in the navigation, every
link and figure found, every API page naming a module that exists. ``.ci/run`` builds the site itself
with warnings as errors (``mkdocs build --strict``)."""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from .conftest import REPO

DOCS = REPO / "docs"
#: Folders the site serves figures from under a short name (docs/hooks.py), never copied into docs/.
SERVED = {"figures": REPO / "notebooks" / "figures", "results": REPO / "benchmarks" / "results"}


def config() -> dict:
    return yaml.safe_load((REPO / "mkdocs.yml").read_text())


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page():
    listed = nav_pages(config()["nav"])
    present = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == present, "mkdocs.yml's nav and the pages under docs/ differ"


def test_every_link_and_figure_of_the_pages_is_found():
    for page in DOCS.rglob("*.md"):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"\w+://", target):
                continue
            prefix, _, name = target.partition("/")
            found = (SERVED[prefix] / name) if prefix in SERVED else (page.parent / target)
            assert found.exists(), f"{page.relative_to(REPO)} links to {target}, which is not there"


def test_every_api_page_names_a_module_of_lirlab():
    for page in (DOCS / "api").glob("*.md"):
        for module in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M):
            assert importlib.util.find_spec(module) is not None, f"{page.name}: no module {module}"


def test_the_api_reference_reads_numpy_docstrings():
    handler = next(
        p["mkdocstrings"] for p in config()["plugins"] if isinstance(p, dict) and "mkdocstrings" in p
    )
    assert handler["handlers"]["python"]["options"]["docstring_style"] == "numpy"


def test_doctests_in_docstring_prose_are_fenced_and_examples_sections_are_left_to_griffe():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_doctests", DOCS / "griffe_doctests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prose = "Reciprocal.\n\n>>> [1 / r for r in (1, 2)]\n[1.0, 0.5]\n\nThen more prose."
    assert module.fence_prose_doctests(prose).splitlines() == [
        "Reciprocal.",
        "",
        "```pycon",
        ">>> [1 / r for r in (1, 2)]",
        "[1.0, 0.5]",
        "```",
        "",
        "Then more prose.",
    ]
    examples = "Summary.\n\nExamples\n--------\n>>> 1 + 1\n2"
    assert module.fence_prose_doctests(examples) == examples
