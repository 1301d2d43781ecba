"""The code of the README and of the documentation pages runs as written (on the demo corpus with the
offline weights), and their knob tables are the declarations'.

Run ``python -m tests.test_readme`` to regenerate every knob table from the declarations.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from .conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
#: Python blocks of the docs that no test here runs, by (page, a string the block holds): why not.
NOT_RUN = {
    ("plaid.md", "plaid.add(new_docs)"): "a sketch of updates: tests/test_plaid.py runs add/delete/compact",
    ("foreign-indexes.md", "read_stanford_index"): "needs indexes colbert-ai and fast-plaid built: "
    "tests/test_stanford.py and tests/test_fast_plaid.py read tests/fixtures",
    ("qdrant-ray.md", "RayEncoder"): "starts a local Ray cluster: tests/test_ray.py runs it",
    (
        "pages.md",
        "vidore/colqwen2-v1.0-hf",
    ): "loads a trained ColQwen2 from the hub and files of the reader's: "
    "tests/test_page_models.py makes the same calls (image paths, PDF pages, PIL images, regions, is_patch, "
    "global_view) on the tiny random fixtures of each family",
    ("pages.md", "plot_page_heatmaps(heatmap, image)"): "loads a trained ColPali from the hub: notebook 09 "
    "makes the same calls on the tiny random fixture (tests/test_notebooks.py runs it)",
}


def pages() -> list[Path]:
    """The README and every documentation page."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path, language: str = "python") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def block_holding(page: str, needle: str, language: str = "python") -> str:
    """The one ``language`` block of ``docs/page`` (or ``README.md``) that contains ``needle``."""
    path = README if page == "README.md" else DOCS / page
    found = [b for b in blocks(path, language) if needle in b]
    assert len(found) == 1, (
        f"{path.name}: expected one {language} block holding {needle!r}, found {len(found)}"
    )
    return found[0]


class Runner:
    """Executes blocks in one namespace, as a reader going from page to page would, noting which ran."""

    def __init__(self):
        self.namespace: dict = {}
        self.ran: set[str] = set()

    def run(self, page: str, needle: str) -> dict:
        code = block_holding(page, needle)
        exec(compile(code, page, "exec"), self.namespace)
        self.ran.add(code)
        return self.namespace


def test_readme_and_docs_code_runs(minilm_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tour = blocks(README)[0]
    assert blocks(DOCS / "tour.md")[0] == tour, "README.md's tour and docs/tour.md's must be the same code"
    runner = Runner()
    ns = runner.run("README.md", "FlatIndex.build")
    runner.ran.add(tour)
    assert list(ns["run"].columns) == ["qid", "query", "docno", "score", "rank"]
    assert len(ns["run"]) == 30 * 10
    assert (tmp_path / "demo-index" / "metadata.json").is_file()
    why = ns["why"]
    assert why.query_tokens[:2] == ["[CLS]", "how"] and why.doc_tokens[0] == "[CLS]"
    assert why.score == pytest.approx(float(why.contributions.sum()), abs=1e-4)

    ns = runner.run("analysis.md", "align_hit")
    hit = ns["hit"]
    assert hit.docno == "printing-01" and hit.score == pytest.approx(float(hit.contributions.sum()), abs=1e-4)

    table = runner.run("protocol.md", "methods=")["table"]
    assert table.method.tolist() == ["flat", "plaid", "plaid"]
    assert table["exhaustive_recall@10"].iloc[0] == 1.0 and table.on_front.any()

    table = runner.run("methods.md", "plot_pareto")["table"]
    assert set(table.method) == {"flat", "plaid", "warp", "muvera", "bm25_rerank"} and table.on_front.any()

    table = runner.run("evaluation.md", "compare_systems")["table"]
    assert table.index.tolist() == ["exact", "PLAID nbits=1", "PLAID nbits=2"]
    assert table.loc["exact", "overlap@10"] == 1.0 and not table["nDCG@10 reject"]["exact"]
    assert table.loc["PLAID nbits=2", ["nDCG@10 +", "nDCG@10 -"]].sum() <= 30

    assert len(runner.run("bm25-pyterrier.md", "bm25.search(dataset")["bm25"].docnos) == 200
    assert len(runner.run("qdrant-ray.md", "QdrantIndex.from_encoding")["qdrant"]) == 200

    not_run = {block_holding(page, needle) for page, needle in NOT_RUN}
    pipelines = block_holding("bm25-pyterrier.md", "pt.Experiment")
    everything = {b for path in pages() for b in blocks(path)}
    assert everything - runner.ran - not_run - {pipelines} == set(), (
        "a python block of the README or docs that no test runs: run it here or say why in NOT_RUN"
    )
    pytest.importorskip("pyterrier")
    runner.run("bm25-pyterrier.md", "pt.Experiment")


def test_readme_command_line_tour_runs(minilm_dir, tmp_path, monkeypatch, capsys):
    from lirlab.cli import main

    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line) for line in block_holding("README.md", "lirlab index", "bash").splitlines()]
    for argv in commands:
        assert argv[0] == "lirlab"
        assert main(argv[1:]) in (0, None), f"README command failed: {shlex.join(argv)}"
    shown = capsys.readouterr().out
    assert "nDCG@10" in shown and (tmp_path / "run.trec").is_file()


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "README.md is a front door: move details to docs/"
    assert "../shared" not in text and "build_minilm_colbert" not in text, (
        "README.md names what a plain clone lacks: say it in docs/contributing.md"
    )
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (REPO / target).exists(), f"README.md links to {target}, which is not in the repository"


def test_notebooks_readme_lists_every_notebook():
    listed = set(re.findall(r"`(\d\d_\w+\.ipynb)`", (REPO / "notebooks" / "README.md").read_text()))
    assert listed == {p.name for p in (REPO / "notebooks").glob("*.ipynb")}, (
        "notebooks/README.md must list every notebook, and only those"
    )


def declared_for(marker: str):
    """The declarations a ``<!-- knobs:KIND:search|build -->`` (or ``knobs:pooling``) table shows, read
    from the registry of index kinds."""
    from lirlab.index import registry
    from lirlab.index.knobs.pooling import POOL_FACTOR

    if marker == "knobs:pooling":
        return {"pool_factor": POOL_FACTOR}
    _, kind, which = marker.split(":")
    return registry.search_params(kind) if which == "search" else registry.build_params(kind)


def generated_table(marker: str) -> str:
    """The table a knob marker should hold: the registry's rendering of the kind's knobs."""
    from lirlab.index import registry
    from lirlab.params import markdown_table

    if marker == "knobs:pooling":
        return markdown_table(declared_for(marker))
    _, kind, which = marker.split(":")
    return registry.knob_table(kind, which)


def knob_markers(text: str) -> list[str]:
    return re.findall(r"^<!-- (knobs:[\w:]+) -->$", text, re.M)


def knob_table(text: str, marker: str) -> str:
    return re.search(rf"<!-- {marker} -->\n(.*?)\n?<!-- /{marker} -->", text, re.S).group(1)


def test_every_knob_table_is_generated_from_its_declarations():
    seen = set()
    for path in pages():
        text = path.read_text()
        for marker in knob_markers(text):
            seen.add(marker)
            assert knob_table(text, marker) == generated_table(marker), (
                f"{path.relative_to(REPO)} {marker}: regenerate with python -m tests.test_readme"
            )
    assert {"knobs:plaid:search", "knobs:plaid:build", "knobs:pooling", "knobs:warp:search"} <= seen


def test_every_knob_of_every_kind_is_in_a_table_of_the_docs():
    from lirlab.index import registry

    shown = [
        (name, p)
        for path in pages()
        for marker in knob_markers(path.read_text())
        for name, p in declared_for(marker).items()
    ]
    for kind in registry.kind_names():
        for which, declared in (
            ("search", registry.search_params(kind)),
            ("build", registry.build_params(kind)),
        ):
            missing = [name for name, p in declared.items() if (name, p) not in shown]
            assert not missing, (
                f"{kind} {which} knobs {missing} are in no table of docs/: add a <!-- knobs:{kind}:{which} --> "
                "table where the kind is described and run python -m tests.test_readme"
            )


def regenerate() -> None:
    """Rewrite every generated knob table of the README and the docs from the registry."""
    for path in pages():
        text = path.read_text()
        for marker in knob_markers(text):
            table = generated_table(marker)
            text = re.sub(
                rf"(<!-- {marker} -->\n).*?\n?(<!-- /{marker} -->)",
                lambda m, table=table: m.group(1) + table + "\n" + m.group(2),
                text,
                flags=re.S,
            )
        path.write_text(text)


if __name__ == "__main__":
    regenerate()
