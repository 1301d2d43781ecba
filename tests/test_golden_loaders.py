"""Golden values of every loader: counts, and items 0, 9 and last (ir_datasets' habit).

The demo corpus ships with lirlab; SciFact, NFCorpus and Vaswani are read from ../shared/data (skipped
when absent). The values were read off the files themselves (the shared data's README gives the counts).
"""

from __future__ import annotations

import pytest

from lirlab import data

from .conftest import SHARED_DATA

#: name -> (documents, queries, judgments, {position: docno}, {position: qid}, {position: (qid, docno, relevance)})
GOLDEN = {
    "demo": (
        200,
        30,
        67,
        {0: "bees-01", 9: "bees-10", -1: "chess-20"},
        {0: "q01", 9: "q10", -1: "q30"},
        {0: ("q01", "printing-01", 2), 9: ("q05", "crypto-06", 2), -1: ("q30", "sourdough-12", 1)},
    ),
    "scifact": (
        5183,
        300,
        339,
        {0: "4983", 9: "70490", -1: "198309074"},
        {0: "1", 9: "51", -1: "1395"},
        {0: ("1", "31715818", 1), 9: ("50", "12580014", 1), -1: ("1395", "17717391", 1)},
    ),
    "nfcorpus": (
        3633,
        323,
        12334,
        {0: "MED-10", 9: "MED-1009", -1: "MED-999"},
        {0: "PLAIN-2", 9: "PLAIN-102", -1: "PLAIN-3472"},
        {0: ("PLAIN-2", "MED-2427", 2), 9: ("PLAIN-2", "MED-2434", 1), -1: ("PLAIN-3472", "MED-3627", 1)},
    ),
    "vaswani": (
        11429,
        93,
        2083,
        {0: "1", 9: "10", -1: "11429"},
        {0: "1", 9: "10", -1: "93"},
        {0: ("1", "1239", 1), 9: ("1", "6824", 1), -1: ("93", "11318", 1)},
    ),
}

TEXTS = {
    ("demo", 0): ("Colony structure", "A honeybee colony normally contains a si"),
    ("scifact", 9): ("Simplifying likelihood ratios", "Likelihood ratios are one of the best me"),
    ("nfcorpus", -1): ("Polybrominated diphenyl ethers", "Polybrominated diphenyl ethers (PBDEs) a"),
    ("vaswani", 0): ("", "compact memories have flexible capacitie"),
}


def _load(name: str) -> data.Dataset:
    if name == "demo":
        return data.load("demo")
    folder = SHARED_DATA / name
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{folder} is absent (../shared/data holds the real collections)")
    return data.load(str(folder), split="test")


@pytest.mark.parametrize("name", list(GOLDEN))
def test_counts_and_items_0_9_and_last(name):
    n_docs, n_queries, n_qrels, docnos, qids, qrels = GOLDEN[name]
    dataset = _load(name)
    assert (len(dataset.docs), len(dataset.queries), len(dataset.qrels)) == (n_docs, n_queries, n_qrels)
    assert {i: dataset.docs[i].docno for i in docnos} == docnos
    assert {i: dataset.queries[i].qid for i in qids} == qids
    got = {i: tuple(dataset.qrels.iloc[i][["query_id", "doc_id", "relevance"]]) for i in qrels}
    assert got == qrels


@pytest.mark.parametrize("name, position", list(TEXTS))
def test_titles_and_text_starts(name, position):
    title, start = TEXTS[(name, position)]
    doc = _load(name).docs[position]
    assert doc.title.startswith(title) and doc.text.startswith(start)
