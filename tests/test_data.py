"""Data loaders: BEIR folders, ir_datasets ids (served from local files), input normalization."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from lirlab.data import Document, Query, as_documents, as_queries, load

from .conftest import shared_dataset


def write_beir(folder, docs, queries, qrels, split="test"):
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for docno, title, text in docs:
            f.write(json.dumps({"_id": docno, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries:
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docno, grade in qrels:
            f.write(f"{qid}\t{docno}\t{grade}\n")
    return folder


@pytest.fixture
def tiny_beir(tmp_path):
    return write_beir(
        tmp_path / "tiny",
        [("d1", "Bees", "Bees make honey."), ("d2", "", "Volcanoes erupt."), (3, "T", "numeric id")],
        [("q1", "honey"), ("q2", "lava"), ("q9", "never judged")],
        [("q1", "d1", 2), ("q2", "d2", 1)],
    )


def test_beir_folder(tiny_beir):
    ds = load(tiny_beir)
    assert ds.name == "tiny"
    assert ds.docs[0] == Document("d1", "Bees make honey.", "Bees")
    assert ds.docs[0].full_text == "Bees Bees make honey."
    assert ds.docs[2].docno == "3"
    assert ds.queries == (Query("q1", "honey"), Query("q2", "lava"))
    assert ds.qrels.to_dict("records")[0] == {"query_id": "q1", "doc_id": "d1", "relevance": 2}


def test_missing_files_are_named(tiny_beir, tmp_path):
    with pytest.raises(FileNotFoundError, match="train.tsv: missing; splits here: \\['test'\\]"):
        load(tiny_beir, split="train")
    (tiny_beir / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="corpus.jsonl: missing"):
        load(tiny_beir)
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        load(tmp_path / "nowhere")


def test_broken_json_line_is_located(tiny_beir):
    with open(tiny_beir / "queries.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match="queries.jsonl:4: not valid JSON"):
        load(tiny_beir)


def test_unknown_ir_datasets_id():
    with pytest.raises(ValueError, match="unknown dataset 'beir/no-such-set'"):
        load("beir/no-such-set")


def test_queries_in_many_shapes():
    assert as_queries("bees") == [Query("1", "bees")]
    assert as_queries({"a": "x"}) == [Query("a", "x")]
    frame = pd.DataFrame({"qid": [7], "query": ["y"]})
    assert as_queries(frame) == [Query("7", "y")]
    with pytest.raises(ValueError, match="query '2' is empty"):
        as_queries(["ok", " \t"])
    with pytest.raises(ValueError, match="query '1' is not a string: int"):
        as_queries([5])
    with pytest.raises(ValueError, match="duplicate query id 'a'"):
        as_queries([Query("a", "x"), Query("a", "y")])
    with pytest.raises(ValueError, match="lacks column"):
        as_queries(pd.DataFrame({"text": ["x"]}))


def test_documents_in_many_shapes():
    assert as_documents(["x", ""]) == [Document("0", "x"), Document("1", "")]
    with pytest.raises(ValueError, match="duplicate document id 'a'"):
        as_documents([Document("a", "x"), Document("a", "y")])
    with pytest.raises(ValueError, match="document '1' is not a string: NoneType"):
        as_documents(["x", None])
    with pytest.raises(ValueError, match="not one string"):
        as_documents("just one text")


@pytest.mark.realdata
def test_scifact_golden_items():
    ds = load(shared_dataset("scifact"))
    assert (len(ds.docs), len(ds.queries), len(ds.qrels)) == (5183, 300, 339)
    assert ds.docs[0].docno == "4983"
    assert ds.docs[0].title.startswith("Microstructural development of human newborn cerebral white matter")
    assert ds.queries[0] == Query("1", "0-dimensional biomaterials show inductive properties.")
    assert ds.qrels.iloc[0].tolist() == ["1", "31715818", 1]


@pytest.mark.realdata
def test_ir_datasets_id_reads_the_same_scifact_from_its_local_cache(tmp_path):
    """The ir_datasets path, fed the BEIR archive it would download, as a user with internet gets it.

    Runs in a fresh interpreter: ir_datasets fixes its cache folder when first imported.
    """
    folder = shared_dataset("scifact")
    cache = tmp_path / "beir" / "scifact"
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "source.zip", "w") as archive:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
            archive.write(folder / name, f"scifact/{name}")
    script = (
        "import json; from lirlab.data import load; ds = load('beir/scifact/test');"
        "print(json.dumps([len(ds.docs), list(ds.docs[0]), [list(q) for q in ds.queries],"
        " sorted(map(list, ds.qrels.itertuples(index=False)))]))"
    )
    env = {**os.environ, "IR_DATASETS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n_docs, first_doc, queries, qrels = json.loads(out.stdout.strip().splitlines()[-1])
    expected = load(folder)
    assert n_docs == len(expected.docs) and first_doc == list(expected.docs[0])
    assert queries == [list(q) for q in expected.queries]
    assert qrels == sorted(map(list, expected.qrels.itertuples(index=False)))


def test_demo_corpus_golden_items():
    ds = load("demo")
    assert (ds.name, len(ds.docs), len(ds.queries), len(ds.qrels)) == ("demo", 200, 30, 67)
    assert ds.docs[0].docno == "bees-01" and ds.docs[0].title == "Colony structure"
    assert ds.queries[0] == Query("q01", "Gutenberg printing press invention")
    assert ds.qrels.iloc[0].tolist() == ["q01", "printing-01", 2]
    assert set(ds.qrels.doc_id) <= {d.docno for d in ds.docs}
    assert (ds.qrels.groupby("query_id").relevance.max() == 2).all()


def test_slice_keeps_judged_documents_and_fills_in_corpus_order():
    demo = load("demo")
    small = demo.slice(max_queries=2, max_docs=20)
    assert [q.qid for q in small.queries] == [q.qid for q in demo.queries[:2]]
    judged = set(demo.qrels[demo.qrels.query_id.isin({q.qid for q in small.queries})].doc_id)
    kept = [d.docno for d in small.docs]
    assert len(kept) == 20 and judged <= set(kept)
    unjudged = [d.docno for d in demo.docs if d.docno not in judged]
    assert [d for d in kept if d not in judged] == unjudged[: 20 - len(judged)]
    assert kept == [d.docno for d in demo.docs if d.docno in set(kept)], "corpus order is kept"
    assert set(small.qrels.query_id) == {q.qid for q in small.queries}
    assert len(demo.slice(max_docs=1).docs) == len(set(demo.qrels.doc_id)), "judged documents always stay"
    assert (len(demo.slice().docs), len(demo.slice().queries)) == (len(demo.docs), len(demo.queries))


@pytest.mark.parametrize(
    "bad", [{"max_queries": 0}, {"max_docs": -3}, {"max_docs": 2.5}, {"max_queries": True}]
)
def test_slice_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        load("demo").slice(**bad)
