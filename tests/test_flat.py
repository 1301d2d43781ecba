"""The exhaustive index: search contract, save/load, atomic writes, damaged folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lirlab.index.base import FewerResultsWarning
from lirlab.index.flat import FlatIndex
from lirlab.results import RUN_COLUMNS
from lirlab.storage import ArtifactError, ArtifactWriter

from .test_maxsim import brute_force, random_encoding


@pytest.fixture
def docs():
    enc = random_encoding([4, 9, 1, 6, 6, 12, 3], dim=8)
    return type(enc)(**{**enc.__dict__, "ids": ("doc-a", "doc b", "7", "ü", "x/y", "d5", "d6")})


@pytest.fixture
def queries():
    return random_encoding([3, 5], dim=8, seed=9, kind="query", prefix="q")


def test_search_returns_the_run_contract_ranked_by_exact_maxsim(docs, queries):
    run = FlatIndex(docs).search(queries, k=3)
    assert list(run.columns) == RUN_COLUMNS
    expected = brute_force(queries, docs)
    for i, qid in enumerate(queries.ids):
        rows = run[run.qid == qid]
        top = expected[i].topk(3)
        assert rows.docno.tolist() == [docs.ids[j] for j in top.indices]
        np.testing.assert_allclose(rows.score, top.values.numpy(), atol=1e-5)
        assert rows["rank"].tolist() == [1, 2, 3]


def test_k_larger_than_corpus_returns_everything_and_says_so(docs, queries):
    with pytest.warns(FewerResultsWarning, match="fewer than k=50"):
        run = FlatIndex(docs).search(queries, k=50)
    assert len(run) == 2 * len(docs)
    with pytest.raises(ValueError, match="k must be"):
        FlatIndex(docs).search(queries, k=0)


def test_text_search_needs_an_encoder(docs):
    with pytest.raises(ValueError, match="no encoder"):
        FlatIndex(docs).search("bees")


def test_save_load_round_trip(docs, queries, tmp_path):
    index = FlatIndex(docs, model={"name": "random"})
    index.save(tmp_path / "idx")
    loaded = FlatIndex.load(tmp_path / "idx")
    assert loaded.docnos == docs.ids and loaded.model == {"name": "random"}
    assert torch.equal(loaded.docs.vectors, docs.vectors) and torch.equal(
        loaded.docs.token_ids, docs.token_ids
    )
    pd.testing.assert_frame_equal(loaded.search(queries, k=4), index.search(queries, k=4))
    meta = json.loads((tmp_path / "idx" / "metadata.json").read_text())
    assert meta["type"] == "lirlab.flat" and meta["counts"] == {"documents": 7, "tokens": 41}


def test_failed_save_keeps_the_previous_index(docs, queries, tmp_path, monkeypatch):
    FlatIndex(docs).save(tmp_path / "idx")
    before = FlatIndex.load(tmp_path / "idx").search(queries, k=3)
    other = FlatIndex(random_encoding([2, 2], dim=8, seed=4))
    original = ArtifactWriter.save_json

    def crash(self, name, obj):
        if name == "vocab":
            raise OSError("disk full")
        original(self, name, obj)

    monkeypatch.setattr(ArtifactWriter, "save_json", crash)
    with pytest.raises(OSError, match="disk full"):
        other.save(tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    pd.testing.assert_frame_equal(FlatIndex.load(tmp_path / "idx").search(queries, k=3), before)


def flip_last_byte(folder):
    data = bytearray((folder / "vectors.npy").read_bytes())
    data[-1] ^= 0xFF
    (folder / "vectors.npy").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "vectors.npy").unlink(), "vectors.npy: missing"),
        (lambda f: (f / "vectors.npy").write_bytes((f / "vectors.npy").read_bytes()[:-8]), "truncated"),
        (flip_last_byte, "vectors.npy: checksum mismatch"),
        (lambda f: (f / "metadata.json").write_text("{"), "metadata.json: not valid JSON"),
        (
            lambda f: (f / "metadata.json").write_text(
                json.dumps({"type": "lirlab.flat", "format_version": 99})
            ),
            "format version 99 is newer",
        ),
        (
            lambda f: (f / "metadata.json").write_text(
                json.dumps({"type": "lirlab.plaid", "format_version": 1})
            ),
            "expected 'lirlab.flat'",
        ),
    ],
)
def test_damaged_folders_name_the_problem(docs, tmp_path, damage, message):
    FlatIndex(docs).save(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(ArtifactError, match=message):
        FlatIndex.load(tmp_path / "idx")


def test_loading_a_non_index_folder(tmp_path):
    with pytest.raises(ArtifactError, match="not a lirlab artifact"):
        FlatIndex.load(tmp_path)
    with pytest.raises(ArtifactError, match="no such index folder"):
        FlatIndex.load(tmp_path / "missing")


def test_build_from_text_with_an_encoder(stanford, tmp_path):
    texts = {"bee": "Honeybees make honey from nectar.", "lava": "Lava flows from the volcano.", "empty": " "}
    index = FlatIndex.build(texts, stanford, progress=False)
    run = index.search({"q": "Where does honey come from?"}, k=3)
    assert run.docno.iloc[0] == "bee" and run.docno.iloc[-1] == "empty"
    index.save(tmp_path / "idx")
    reloaded = FlatIndex.load(tmp_path / "idx", encoder=stanford)
    pd.testing.assert_frame_equal(reloaded.search({"q": "Where does honey come from?"}, k=3), run)
    assert reloaded.model["checkpoint_format"] == "stanford"
