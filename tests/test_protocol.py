"""The retriever protocol proven by an index kind defined here and nowhere else.

``SubsetIndex`` scores exact MaxSim over a seeded random subset of the documents (a knob says how
large), plus every document it must add to return k results. Nothing outside this file knows it, yet
every analysis, the sweep, the explorers and persistence work through it: that is what makes a new
method a change in ``lirlab/index/`` alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab import data
from lirlab.analysis.alignment import align_hit, explain_hit, search_text
from lirlab.analysis.compare import compare_runs
from lirlab.analysis.masks import mask_weighting, query_maxlen_curve, term_statistics
from lirlab.analysis.sweeps import exhaustive_reference, sweep
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import Index, StageTimer, UnknownKnobError, index_kind, load_index
from lirlab.index.flat import FlatIndex
from lirlab.maxsim import maxsim_pair
from lirlab.params import Param
from lirlab.plots.sweeps import plot_pareto
from lirlab.storage import ArtifactWriter, read_artifact
from lirlab.widgets.masks import MaskExplorer
from lirlab.widgets.search import SearchExplorer
from lirlab.widgets.sweep import SweepExplorer

QUERY = "how does a caldera form"


class SubsetIndex(Index):
    """Exact MaxSim over a seeded random share of the documents (the test's own index kind)."""

    KIND = "subset"
    TYPE = "tests.subset"
    SEARCH_PARAMS = {
        "share": Param("share", float, 0.5, "Share of the documents scored.", low=0.01, high=1.0),
        "seed": Param("seed", int, 0, "Seeds the subset."),
    }
    STAGES = ("sample", "score")

    def __init__(self, docs: Encoding, encoder=None, model=None):
        super().__init__(docs.ids, encoder=encoder, model=model)
        self.docs = docs

    @classmethod
    def from_encoding(cls, docs, *, encoder=None, model=None, device=None, progress=False, **build):
        cls.resolve_build_knobs(build)
        return cls(docs, encoder=encoder, model=model)

    @property
    def dim(self) -> int:
        return self.docs.dim

    def documents(self, positions=None) -> Encoding:
        return self.docs.select(self.positions_or_live(positions).tolist())

    def to(self, device):
        return self

    def subset(self, share: float, seed: int, k: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        n = max(min(k, len(self)), round(share * len(self)))
        return torch.randperm(len(self), generator=g)[:n].sort().values

    def _search(self, queries, k, knobs, timer: StageTimer):
        timer.start()
        chosen = self.subset(knobs["share"], knobs["seed"], k)
        timer.lap("sample")
        hits = []
        for q in range(len(queries)):
            scores = torch.stack(
                [maxsim_pair(queries.vectors_of(q), self.docs.vectors_of(int(d))) for d in chosen]
            )
            top = scores.topk(min(k, len(chosen)))
            hits.append((chosen[top.indices], top.values))
        timer.lap("score")
        return hits

    def save(self, path, overwrite: bool = False) -> None:
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION) as w:
            w.save_array("vectors", self.docs.vectors.numpy())
            w.save_array("token_ids", self.docs.token_ids.numpy())
            w.save_array("offsets", self.docs.offsets.numpy())
            w.save_json("docnos", list(self.docnos))
            w.save_json("vocab", list(self.docs.vocab))
            w.metadata["model"] = self.model

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True) -> SubsetIndex:
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        docs = Encoding(
            ids=tuple(art.json("docnos")),
            vectors=torch.from_numpy(art.array("vectors")),
            token_ids=torch.from_numpy(art.array("token_ids")),
            offsets=torch.from_numpy(art.array("offsets")),
            vocab=tuple(art.json("vocab")),
        )
        return cls(docs, encoder=encoder, model=art.metadata.get("model"))


@pytest.fixture(scope="module")
def demo():
    return data.load("demo").slice(max_queries=6, max_docs=40)


@pytest.fixture(scope="module")
def docs(stanford, demo) -> Encoding:
    return stanford.encode_documents(demo.docs, progress=False)


@pytest.fixture(scope="module")
def index(stanford, docs) -> SubsetIndex:
    return SubsetIndex(docs, encoder=stanford)


@pytest.fixture(scope="module")
def queries(stanford, demo) -> Encoding:
    return stanford.encode_queries(demo.queries)


def brute_force(queries: Encoding, docs: Encoding, positions) -> list[list[int]]:
    """Per query, the positions of ``positions`` by exact MaxSim, best first, computed directly."""
    out = []
    for q in range(len(queries)):
        scores = {
            int(p): float((queries.vectors_of(q) @ docs.vectors_of(int(p)).T).amax(dim=1).sum())
            for p in positions
        }
        out.append(sorted(scores, key=lambda p: -scores[p]))
    return out


def test_search_is_exact_maxsim_over_the_subset(index, queries, docs):
    hits = index.search_encoded(queries, k=5, share=0.5, seed=3)
    subset = index.subset(0.5, 3, 5)
    assert len(subset) == 20
    for (positions, _), expected in zip(hits, brute_force(queries, docs, subset)):
        assert positions.tolist() == expected[:5]
    everything = index.search(queries, k=5, share=1.0)
    assert everything.docno.tolist() == FlatIndex(docs).search(queries, k=5).docno.tolist()


def test_knobs_are_validated_by_their_declarations(index, queries):
    with pytest.raises(UnknownKnobError, match="a subset index takes share, seed, got 'n_probe'"):
        index.search(queries, k=3, n_probe=2)
    with pytest.raises(ValueError, match="share must be <= 1"):
        index.search(queries, k=3, share=2.0)
    with pytest.raises(ValueError, match="share must be"):
        index.search(queries, k=3, share=float("nan"))
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(queries, k=0)


def test_stage_timings_use_the_kind_s_own_stage_names(index, queries):
    _, timings = index.search_timed(queries.select([0]), k=3)
    assert set(timings) == {"sample", "score"} and all(v >= 0 for v in timings.values())


def test_what_callers_ask(index, docs):
    assert (index.dim, len(index), index.position(docs.ids[9])) == (docs.dim, len(docs), 9)
    assert index.live_positions().tolist() == list(range(len(docs)))
    picked = index.documents([9, 0])
    assert picked.ids == (docs.ids[9], docs.ids[0]) and picked.exact
    assert torch.equal(picked.vectors_of(0), docs.vectors_of(9))
    token_ids, lengths, vocab = index.tokens()
    assert torch.equal(token_ids, docs.token_ids) and torch.equal(lengths, docs.lengths)
    described = index.describe()
    assert (described["kind"], described["documents"], described["vectors"]) == (
        "subset",
        40,
        docs.vectors.shape[0],
    )
    with pytest.raises(KeyError, match="no document 'nope'"):
        index.position("nope")


def test_alignment_through_the_protocol(index, stanford, queries):
    run, encoded = search_text(index, QUERY, k=3, encoder=stanford)
    assert run["query"].iloc[0] == QUERY and len(run) == 3
    alignment = align_hit(index, encoded, run.docno.iloc[0])
    assert alignment.score == pytest.approx(run.score.iloc[0], abs=1e-4)
    shown, note = explain_hit(index, encoded, run.docno.iloc[1], encoder=stanford)
    assert note == "" and len(shown.doc_tokens) > 0


def test_mask_analyses_through_the_protocol(index, stanford, docs, demo):
    stats = term_statistics(index)
    direct = term_statistics(docs)
    assert stats.n_docs == direct.n_docs and torch.equal(stats.document_frequency, direct.document_frequency)
    weighting = mask_weighting(stanford, QUERY, index, docno=docs.ids[0])
    assert weighting.score == pytest.approx(
        float(maxsim_pair(stanford.encode_queries([QUERY]).vectors, docs.vectors_of(0))), abs=1e-4
    )
    curve = query_maxlen_curve(stanford, demo, index, query_maxlens=(0, 32), k=5, progress=False)
    assert sorted(set(curve.query_maxlen)) == [0, 32] and curve["nDCG@10"].between(0, 1).all()


def test_sweep_and_its_chart_through_the_protocol(index, queries, docs, demo):
    table = sweep(index, queries, {"share": [0.25, 1.0]}, qrels=demo, k=5, warmup=0, progress=False)
    assert table.method.tolist() == ["subset", "subset"]
    assert table.setting.tolist() == ["share=0.25", "share=1"]
    assert {"sample_p50_ms", "score_p50_ms", "bytes_per_vector", "build_s", "threads"} <= set(table.columns)
    assert table["exhaustive_recall@5"].tolist()[1] == 1.0, "the whole corpus scored is exhaustive"
    both = sweep(
        docs, queries, methods=[("subset", {"share": [0.5]}), ("flat", {})], k=5, warmup=0, progress=False
    )
    assert both.method.tolist() == ["subset", "flat"] and index_kind("subset") is SubsetIndex
    assert plot_pareto(both).axes[0].get_xlabel().startswith("p50")


def test_run_comparison_through_the_protocol(index, queries, demo, docs):
    exact = exhaustive_reference(docs, queries, k=5)
    approx = index.search(queries, k=5, share=0.3)
    comparison = compare_runs(
        exact, approx, qrels=demo, k=5, exact=FlatIndex(docs), queries=queries, index_a=index, index_b=index
    )
    assert len(comparison.queries) == len(queries)
    left = comparison.documents[comparison.documents.change == "left"]
    entered = comparison.documents[comparison.documents.change == "entered"]
    assert len(left) == len(entered) == comparison.summary()["left"]


def test_explorers_through_the_protocol(index, stanford, demo, queries):
    search = SearchExplorer(index, texts=demo, k=3)
    search.query.value = QUERY
    assert search.run is not None and [t.type for t in search.heatmap.data] == ["bar", "heatmap", "scatter"]
    explorer = SweepExplorer(index, queries, k=3, n_timed=2)
    assert set(explorer.sliders) == {"share", "seed"}
    explorer.sliders["share"].value = 1.0
    assert explorer.history.iloc[-1]["exhaustive_recall@3"] == 1.0
    masks = MaskExplorer(stanford, index, query=QUERY, top_k=2)
    assert masks.result is not None


def test_save_and_load_by_metadata_type(index, queries, tmp_path, stanford):
    folder = tmp_path / "subset"
    index.save(folder)
    loaded = load_index(folder, encoder=stanford)
    assert type(loaded) is SubsetIndex
    before = index.search(queries, k=4, share=0.7)
    after = loaded.search(queries, k=4, share=0.7)
    assert after.docno.tolist() == before.docno.tolist()
    np.testing.assert_allclose(after.score, before.score, rtol=1e-6)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown index kind 'nope'; known: .*flat.*plaid"):
        index_kind("nope")


def test_an_encoding_of_random_vectors_builds_every_registered_method_the_same_way():
    g = torch.Generator().manual_seed(0)
    docs = Encoding(
        ids=tuple(f"d{i}" for i in range(12)),
        vectors=torch.nn.functional.normalize(torch.randn(60, 8, generator=g), dim=1),
        token_ids=torch.zeros(60, dtype=torch.long),
        offsets=offsets_from_lengths(torch.full((12,), 5)),
        vocab=("tok",),
    )
    built = index_kind("subset").from_encoding(docs)
    assert built.search(docs.select([4]), k=1, share=1.0).docno.tolist() == ["d4"]
