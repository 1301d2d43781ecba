"""Pinned retrieval quality: numbers a change must not move without saying why.

The demo corpus with the bundled MiniLM weights (a plain encoder: no projection, no [MASK] padding),
and SciFact test with the MiniLM-ColBERT checkpoint that every peer figure in the issues used
(../shared/tools/build_minilm_colbert.py, 128-d, queries padded with [MASK] to 32): exhaustive MaxSim
nDCG@10 0.6106 over the 300 test queries (PyLate reports 0.611 for the same checkpoint padded to 32).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lirlab import ColBERT, FlatIndex, data, evaluate

from .conftest import REPO, SHARED_DATA

BUILD_TOOL = SHARED_DATA.parent / "tools" / "build_minilm_colbert.py"


def test_demo_corpus_quality_with_the_minilm_weights():
    encoder = ColBERT.load("minilm", device="cpu")
    dataset = data.load("demo")
    run = FlatIndex.build(dataset.docs, encoder, progress=False).search(dataset, k=10)
    measures = evaluate(run, dataset, ["nDCG@10", "RR@10"]).set_index("measure")["value"]
    assert round(measures["nDCG@10"], 4) == 0.8726
    assert round(measures["RR@10"], 4) == 0.9667
    assert run.docno.iloc[0] == "printing-01" and round(run.score.iloc[0], 3) == 5.343


@pytest.mark.realdata
def test_scifact_exhaustive_ndcg_with_the_minilm_colbert_checkpoint(tmp_path):
    if not (SHARED_DATA / "scifact" / "corpus.jsonl").is_file() or not BUILD_TOOL.is_file():
        pytest.skip("needs ../shared/data/scifact and ../shared/tools/build_minilm_colbert.py")
    model = REPO / "benchmarks" / "models" / "minilm-colbert"
    if not (model / "config.json").is_file():
        model = tmp_path / "minilm-colbert"
        subprocess.run([sys.executable, str(BUILD_TOOL), str(model), "--layout", "stanford"], check=True)
    encoder = ColBERT.load(str(model), device="cpu")
    dataset = data.load(str(SHARED_DATA / "scifact"), split="test")
    run = FlatIndex.build(dataset.docs, encoder, progress=False).search(dataset, k=10)
    ndcg = float(evaluate(run, dataset, ["nDCG@10"]).value.iloc[0])
    assert round(ndcg, 4) == 0.6106
