"""The README's tour runs as written, on the demo corpus with the offline weights."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO


def test_readme_tour_runs(minilm_dir, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    tour, analysis = blocks[0], next(b for b in blocks if "align_hit" in b)
    methods = next(b for b in blocks if "methods=" in b)
    efficiency = next(b for b in blocks if "plot_pareto" in b)
    lexical = next(b for b in blocks if "BM25Index.build" in b)
    pipelines = next(b for b in blocks if "pt.Experiment" in b)
    engine = next(b for b in blocks if "QdrantIndex.from_encoding" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(tour, "README.md", "exec"), namespace)
    exec(compile(analysis, "README.md", "exec"), namespace)
    exec(compile(methods, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert table.method.tolist() == ["flat", "plaid", "plaid"]
    assert table["exhaustive_recall@10"].iloc[0] == 1.0 and table.on_front.any()
    exec(compile(efficiency, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert set(table.method) == {"flat", "plaid", "warp", "muvera", "bm25_rerank"} and table.on_front.any()
    exec(compile(lexical, "README.md", "exec"), namespace)
    assert len(namespace["bm25"].docnos) == 200
    exec(compile(engine, "README.md", "exec"), namespace)
    assert len(namespace["qdrant"]) == 200
    pytest.importorskip("pyterrier")
    exec(compile(pipelines, "README.md", "exec"), namespace)
    hit = namespace["hit"]
    assert hit.docno == "printing-01" and hit.score == pytest.approx(float(hit.contributions.sum()), abs=1e-4)
    why = namespace["why"]
    assert why.query_tokens[:2] == ["[CLS]", "how"] and why.doc_tokens[0] == "[CLS]"
    assert why.score == pytest.approx(float(why.contributions.sum()), abs=1e-4)
    assert list(namespace["run"].columns) == ["qid", "query", "docno", "score", "rank"]
    assert len(namespace["run"]) == 30 * 10
    assert (tmp_path / "demo-index" / "metadata.json").is_file()


@pytest.mark.parametrize(
    "marker, module_attr", [("search-knobs", "SEARCH_PARAMS"), ("build-knobs", "BUILD_PARAMS")]
)
def test_readme_knob_tables_are_generated_from_the_declarations(marker, module_attr):
    from lirlab.index import plaid
    from lirlab.params import markdown_table

    text = (REPO / "README.md").read_text()
    table = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S).group(1)
    assert table == markdown_table(getattr(plaid, module_attr)), (
        "regenerate with lirlab.params.markdown_table"
    )


def declared_for(marker: str):
    """The declarations a ``<!-- knobs:KIND:search|build -->`` (or ``knobs:pooling``) table shows."""
    from lirlab.index import index_kind
    from lirlab.index.pooling import POOL_FACTOR

    if marker == "knobs:pooling":
        return {"pool_factor": POOL_FACTOR}
    _, kind, which = marker.split(":")
    return getattr(index_kind(kind), f"{which.upper()}_PARAMS")


def knob_markers(text: str) -> list[str]:
    return re.findall(r"<!-- (knobs:[\w:]+) -->", text)


def test_every_method_knob_table_is_generated_from_its_declarations():
    from lirlab.params import markdown_table

    text = (REPO / "README.md").read_text()
    markers = knob_markers(text)
    assert {"knobs:pooling", "knobs:warp:search", "knobs:muvera:build"} <= set(markers)
    for marker in markers:
        table = re.search(rf"<!-- {marker} -->\n(.*?)\n?<!-- /{marker} -->", text, re.S).group(1)
        assert table == markdown_table(declared_for(marker)), (
            f"README {marker}: regenerate with python -m tests.test_readme"
        )


def regenerate() -> None:
    """Rewrite every generated knob table of the README from the declarations."""
    from lirlab.index import plaid
    from lirlab.params import markdown_table

    path = REPO / "README.md"
    text = path.read_text()
    tables = {marker: markdown_table(declared_for(marker)) for marker in knob_markers(text)}
    tables["search-knobs"], tables["build-knobs"] = (
        markdown_table(plaid.SEARCH_PARAMS),
        markdown_table(plaid.BUILD_PARAMS),
    )
    for marker, table in tables.items():
        text = re.sub(
            rf"(<!-- {marker} -->\n).*?\n?(<!-- /{marker} -->)",
            lambda m, table=table: m.group(1) + table + "\n" + m.group(2),
            text,
            flags=re.S,
        )
    path.write_text(text)


if __name__ == "__main__":
    regenerate()
