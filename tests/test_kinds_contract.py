"""The retriever protocol's contract, held by every registered index kind alike.

One test per promise, each parametrised over the kinds: built on the demo corpus with a small encoder,
every kind describes itself, reports its settings, moves to the CPU, saves and reloads as itself with the
same top 10, answers a ``k`` larger than the corpus, refuses an unknown knob by name, searches a subset
exactly, times its stages, returns its documents, and refuses a damaged offsets (or lengths) array when
the folder is loaded, even with hashing off, instead of failing later inside a search.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from lirlab import data
from lirlab.index.base import FewerResultsWarning, Index, UnknownKnobError
from lirlab.index.registry import kind_class as index_kind
from lirlab.index.registry import kind_names, load_index
from lirlab.maxsim import maxsim_pair
from lirlab.storage import ArtifactError

#: Every registered kind: one added in ``lirlab/index/`` is held to the contract with no change here.
KINDS = kind_names()

#: Build knobs that keep each kind small and quick on 40 documents; each must show in ``settings()``. A
#: kind not named here is built with its defaults.
SMALL_BUILDS = {
    "plaid": {"nbits": 2, "n_centroids": 16, "seed": 3},
    "warp": {"nbits": 2, "n_centroids": 16, "seed": 3},
    "muvera": {"r_reps": 4, "k_sim": 3, "d_proj": 8, "seed": 5},
    "qdrant": {"m": 8},
    "bm25": {"k1": 1.1, "stemmer": "none"},
    "bm25_rerank": {"b": 0.7, "stemmer": "none"},
    "flat": {"pool_factor": 1},
}

#: The arrays that say where each document's rows begin (or how many it has): what the damaged-folder
#: case spoils.
ROW_ARRAYS = ("offsets.npy", "doc_offsets.npy", "lengths.npy", "bm25s.indptr.csc.index.npy")


def needs(kind: str) -> None:
    if kind == "qdrant":
        pytest.importorskip(
            "qdrant_edge", reason="qdrant-edge-py is not installed (pip install 'lirlab[qdrant]')"
        )


@pytest.fixture(scope="module")
def demo():
    return data.load("demo").slice(max_queries=6, max_docs=40)


@pytest.fixture(scope="module")
def docs(stanford, demo):
    encoded = stanford.encode_documents(demo.docs, progress=False)
    return replace(encoded, texts=tuple(d.full_text for d in demo.docs))


@pytest.fixture(scope="module")
def queries(stanford, demo):
    return replace(stanford.encode_queries(demo.queries), texts=tuple(q.text for q in demo.queries))


@pytest.fixture(scope="module")
def built(docs, stanford):
    """Each kind built once per module (on first use)."""
    cache: dict[str, Index] = {}

    def get(kind: str) -> Index:
        needs(kind)
        if kind not in cache:
            cls = index_kind(kind)
            cache[kind] = cls.from_encoding(docs, encoder=stanford, **SMALL_BUILDS.get(kind, {}))
        return cache[kind]

    return get


def top(run, k: int = 10) -> dict[str, list[str]]:
    return {qid: group.sort_values("rank").docno.tolist()[:k] for qid, group in run.groupby("qid")}


def flat_values(settings: dict) -> dict:
    """Every key of a nested settings dict with its value (nested dicts walked)."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(flat_values(value))
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_describe_and_settings_say_what_was_built(kind, built, docs):
    index = built(kind)
    settings = index.settings()
    described = index.describe()
    json.dumps(described)  # JSON-able, as the metadata stores it
    assert isinstance(settings, dict) and described["config"] == settings
    assert (described["kind"], described["type"]) == (index.KIND, index.TYPE) == (kind, index_kind(kind).TYPE)
    assert described["documents"] == described["live_documents"] == len(index) == len(docs)
    assert described["dim"] == index.dim == docs.dim and described["exact"] == index.exact
    recorded = flat_values(settings)
    for name, value in SMALL_BUILDS.get(kind, {}).items():
        assert recorded.get(name) == value, f"{kind}: settings() does not record {name}={value!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_to_cpu_searches_the_same(kind, built, queries):
    index = built(kind)
    moved = index.to("cpu")
    assert moved.device == torch.device("cpu")
    assert top(moved.search(queries, k=10)) == top(index.search(queries, k=10))


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_the_same_kind_and_top_10(kind, built, queries, stanford, tmp_path):
    index = built(kind)
    before = index.search(queries, k=10)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index", encoder=stanford)
    assert type(loaded) is type(index) and loaded.KIND == kind
    assert loaded.docnos == index.docnos and loaded.settings() == index.settings()
    after = loaded.search(queries, k=10)
    assert top(after) == top(before)
    assert np.allclose(after.score.to_numpy(), before.score.to_numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_k_larger_than_the_corpus_returns_what_there_is(kind, built, queries):
    index = built(kind)
    k = len(index) + 7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = index.search(queries, k=k)
    assert any(issubclass(w.category, FewerResultsWarning) for w in caught)
    for qid, group in run.groupby("qid"):
        assert 1 <= len(group) <= len(index) and group.docno.is_unique, qid
        assert sorted(group["rank"]) == list(range(1, len(group) + 1))


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_knob_is_refused_by_name(kind, built, queries, docs):
    index = built(kind)
    with pytest.raises(UnknownKnobError, match=f"a {kind} index .*got 'no_such_knob'"):
        index.search(queries, k=3, no_such_knob=1)
    with pytest.raises(UnknownKnobError, match=f"building a {kind} index .*got 'no_such_knob'"):
        type(index).from_encoding(docs, no_such_knob=1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_subset_search_ranks_the_subset_by_the_kinds_own_scores(kind, built, queries):
    index = built(kind)
    chosen = [index.docnos[p] for p in (1, 4, 9, 16, 25, 36)]
    run = index.search(queries, k=4, subset=set(chosen))
    positions = torch.tensor([index.position(d) for d in chosen])
    if type(index).score_positions is Index.score_positions:  # MaxSim over documents(), computed here
        stored = index.documents(positions)
        reference = torch.tensor(
            [
                [
                    float(maxsim_pair(queries.vectors_of(q).float(), stored.vectors_of(i).float()))
                    for i in range(len(chosen))
                ]
                for q in range(len(queries))
            ]
        )
    else:  # a kind scoring otherwise (BM25): its exhaustive search's scores
        full = index.search(queries, k=len(index))
        lookup = {(r.qid, r.docno): r.score for r in full.itertuples()}
        reference = torch.tensor([[lookup[(q, d)] for d in chosen] for q in queries.ids])
    for q, qid in enumerate(queries.ids):
        got = run[run.qid == qid].sort_values("rank")
        assert set(got.docno) <= set(chosen) and len(got) == 4
        expected = reference[q].sort(descending=True, stable=True)
        assert np.allclose(got.score.to_numpy(), expected.values[:4].numpy(), atol=1e-4), qid


@pytest.mark.parametrize("kind", KINDS)
def test_every_stage_is_timed(kind, built, queries):
    index = built(kind)
    _, timings = index.search_timed(queries, k=5)
    assert list(timings) == list(index.STAGES) and all(s >= 0 for s in timings.values())
    assert sum(timings.values()) > 0
    index.search(queries, k=5, record_timings=True)
    assert list(index.last_timings) == list(index.STAGES)


@pytest.mark.parametrize("kind", KINDS)
def test_documents_are_the_indexed_ones(kind, built, docs):
    index = built(kind)
    picked = index.documents([0, 7, 39])
    assert picked.ids == (index.docnos[0], index.docnos[7], index.docnos[39]) == docs.select([0, 7, 39]).ids
    assert picked.dim == index.dim and picked.exact == index.exact
    assert picked.lengths.tolist() == docs.select([0, 7, 39]).lengths.tolist()
    if index.exact:
        assert torch.equal(picked.vectors.float().cpu(), docs.select([0, 7, 39]).vectors.float())
    else:  # a reconstruction, near the encoded vectors
        cosines = torch.nn.functional.cosine_similarity(
            picked.vectors.float().cpu(), docs.select([0, 7, 39]).vectors.float()
        )
        assert float(cosines.mean()) > 0.5
    assert len(index.documents()) == len(index)


@pytest.mark.parametrize("damage", ["negative", "huge"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_offsets_array_fails_at_load_even_unverified(kind, damage, built, stanford, tmp_path):
    index = built(kind)
    folder = tmp_path / "index"
    index.save(folder)
    targets = [name for name in ROW_ARRAYS if (folder / name).is_file()]
    assert targets, f"a {kind} folder holds none of {', '.join(ROW_ARRAYS)}"
    for name in targets:
        values = np.load(folder / name)
        spoiled = values.copy()
        spoiled[len(values) // 2] = -3 if damage == "negative" else np.iinfo(values.dtype).max // 4
        np.save(folder / name, spoiled)
        with pytest.raises(ArtifactError, match=name.removesuffix(".npy")) as refused:
            load_index(folder, encoder=stanford, verify=False)
        assert "\n" not in str(refused.value)
        np.save(folder / name, values)
    load_index(folder, encoder=stanford, verify=False)  # restored, it loads again
