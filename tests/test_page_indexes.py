"""Every index kind over page-image vectors: built from an encoding with patch regions, each kind searches,
keeps the regions through ``documents(positions)`` and a save/load round trip (so an explanation after a
reload still maps a vector to its patch), and refuses a damaged regions file on load; a sweep puts page
indexes of several kinds in one table. No model is needed: the page vectors are seeded random unit
vectors with the geometry a page model gives them (prompt tokens without a box, then a grid of patches,
and for some pages a coarse global view as ColModernVBert adds).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from lirlab.analysis.sweeps import sweep
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import FewerResultsWarning
from lirlab.index.registry import kind_class, kind_names, load_index
from lirlab.storage import ArtifactError

DIM = 16
N_PAGES = 14
PROMPT = ("<bos>", "describe", "the", "page")
WORDS = (
    "bees",
    "honey",
    "volcano",
    "ash",
    "press",
    "type",
    "rail",
    "steam",
    "reef",
    "coral",
    "chess",
    "gambit",
)
VOCAB = (*PROMPT, "<image>", *WORDS)
IMAGE_TOKEN = VOCAB.index("<image>")

#: Build knobs that keep each kind quick on a few hundred vectors.
SMALL_BUILDS = {
    "plaid": {"nbits": 2, "n_centroids": 16, "seed": 3},
    "warp": {"nbits": 2, "n_centroids": 16, "seed": 3},
    "muvera": {"r_reps": 4, "k_sim": 3, "d_proj": 8, "seed": 5},
    "qdrant": {"m": 8},
    "bm25": {"stemmer": "none"},
    "bm25_rerank": {"stemmer": "none"},
}

#: Kinds that cannot hold page vectors, with the reason (none today: BM25 reads the pages' text layer).
CANNOT = {}


def grid_boxes(rows: int, columns: int) -> torch.Tensor:
    """``[rows * columns, 4]`` boxes of a row-major patch grid over the whole page."""
    y, x = torch.meshgrid(torch.arange(rows), torch.arange(columns), indexing="ij")
    x, y = x.flatten().float(), y.flatten().float()
    return torch.stack([x / columns, y / rows, (x + 1) / columns, (y + 1) / rows], dim=1)


def page_encoding(n_pages: int = N_PAGES, seed: int = 0, global_view: bool = True) -> Encoding:
    """Pages of 4 prompt tokens (no box) and a patch grid (4x3 portrait, 3x4 landscape); with
    ``global_view``, every third page also has a 2x2 global view of the whole page."""
    g = torch.Generator().manual_seed(seed)
    token_ids, boxes, views, lengths, texts = [], [], [], [], []
    for p in range(n_pages):
        grid = grid_boxes(3, 4) if p % 4 == 3 else grid_boxes(4, 3)
        coarse = grid_boxes(2, 2) if global_view and p % 3 == 0 else torch.zeros(0, 4)
        n_patch = grid.shape[0] + coarse.shape[0]
        token_ids.append(torch.cat([torch.arange(len(PROMPT)), torch.full((n_patch,), IMAGE_TOKEN)]))
        boxes.append(torch.cat([torch.full((len(PROMPT), 4), float("nan")), grid, coarse]))
        views.append(
            torch.cat(
                [
                    torch.zeros(len(PROMPT) + grid.shape[0], dtype=torch.bool),
                    torch.ones(coarse.shape[0], dtype=torch.bool),
                ]
            )
        )
        lengths.append(len(PROMPT) + n_patch)
        picked = torch.randint(0, len(WORDS), (6,), generator=g).tolist()
        texts.append(" ".join(WORDS[i] for i in picked))
    total = sum(lengths)
    return Encoding(
        ids=tuple(f"page-{p}" for p in range(n_pages)),
        vectors=torch.nn.functional.normalize(torch.randn(total, DIM, generator=g), dim=1),
        token_ids=torch.cat(token_ids),
        offsets=offsets_from_lengths(torch.tensor(lengths)),
        vocab=VOCAB,
        texts=tuple(texts),
        regions=torch.cat(boxes),
        global_view=torch.cat(views) if global_view else None,
    )


def query_encoding(seed: int = 1) -> Encoding:
    g = torch.Generator().manual_seed(seed)
    texts = ("bees honey", "volcano ash steam", "chess gambit press")
    lengths = torch.tensor([5, 6, 5])
    return Encoding(
        ids=("q1", "q2", "q3"),
        vectors=torch.nn.functional.normalize(torch.randn(int(lengths.sum()), DIM, generator=g), dim=1),
        token_ids=torch.full((int(lengths.sum()),), VOCAB.index(WORDS[0])),
        offsets=offsets_from_lengths(lengths),
        vocab=VOCAB,
        kind="query",
        texts=texts,
    )


def needs(kind: str) -> None:
    if kind in CANNOT:
        pytest.skip(CANNOT[kind])
    if kind == "qdrant":
        pytest.importorskip(
            "qdrant_edge", reason="qdrant-edge-py is not installed (pip install 'lirlab[qdrant]')"
        )
    if kind.startswith("bm25"):
        pytest.importorskip("bm25s", reason="bm25s is not installed (pip install 'lirlab[bm25]')")


def same_boxes(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal boxes, NaN rows included."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and torch.equal(a.float().nan_to_num(-7.0), b.float().nan_to_num(-7.0))


def top(hits, docnos, k: int = 10) -> list[list[str]]:
    return [[docnos[int(p)] for p in positions[:k]] for positions, _ in hits]


@pytest.fixture(scope="module")
def pages() -> Encoding:
    return page_encoding()


@pytest.fixture(scope="module")
def queries() -> Encoding:
    return query_encoding()


def test_the_synthetic_pages_have_the_geometry_of_a_page_model(pages):
    first = pages.select([0])
    assert first.tokens(0)[: len(PROMPT)] == list(PROMPT) and first.is_patch.sum() == 12 + 4
    assert first.global_view.sum() == 4 and not first.global_view[: len(PROMPT) + 12].any()
    assert pages.select([3]).regions[len(PROMPT) + 1].tolist() == pytest.approx(
        [0.25, 0.0, 0.5, 1 / 3]
    )  # 3x4


@pytest.mark.parametrize("kind", kind_names())
def test_every_kind_keeps_regions_through_documents_and_a_save_load_round_trip(
    kind, pages, queries, tmp_path
):
    needs(kind)
    index = kind_class(kind).from_encoding(pages, **SMALL_BUILDS.get(kind, {}))
    before = index.search_encoded(queries, k=10)
    positions = [0, 3, 5, N_PAGES - 1]
    docs = index.documents(positions)
    expected = pages.select(positions)
    assert docs.ids == expected.ids
    assert same_boxes(docs.regions, expected.regions) and same_boxes(docs.global_view, expected.global_view)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert type(loaded) is type(index)
    after = loaded.search_encoded(queries, k=10)
    assert top(after, loaded.docnos) == top(before, index.docnos)
    for (_, a), (_, b) in zip(after, before):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-4)
    reloaded = loaded.documents(positions)
    assert same_boxes(reloaded.regions, expected.regions)
    assert same_boxes(reloaded.global_view, expected.global_view)
    assert torch.allclose(reloaded.vectors.float(), docs.vectors.float(), atol=1e-5)
    if kind == "qdrant":
        loaded.close()
        index.close()


@pytest.mark.parametrize("kind", ["flat", "plaid"])
def test_pooled_page_indexes_keep_the_boxes_of_what_each_vector_merged(kind, pages, tmp_path):
    knobs = {**SMALL_BUILDS.get(kind, {}), "pool_factor": 3}
    index = kind_class(kind).from_encoding(pages, **knobs)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    for held in (index, loaded):
        docs = held.documents([0, 3])
        for d, page in enumerate((0, 3)):
            original = pages.regions_of(page)
            boxes = docs.regions_of(d)
            for vector, members in enumerate(held.pooling.groups(page)):
                merged = original[members]
                patches = merged[~merged.isnan().any(dim=1)]
                if not len(patches):
                    assert boxes[vector].isnan().all()
                    continue
                box = torch.cat([patches[:, :2].min(dim=0).values, patches[:, 2:].max(dim=0).values])
                assert torch.equal(boxes[vector], box), (kind, page, vector)
        assert same_boxes(held.pooling.original_regions, pages.regions)
    assert int(loaded.documents().vectors.shape[0]) < int(pages.vectors.shape[0]) * 0.5


def test_text_indexes_write_no_regions_file(tmp_path):
    from tests.synthetic import random_encoding

    index = kind_class("flat").from_encoding(random_encoding(5, seed=2, dim=DIM))
    index.save(tmp_path / "index")
    assert not (tmp_path / "index" / "regions.npy").exists()
    assert load_index(tmp_path / "index").documents().regions is None


@pytest.mark.parametrize("kind", ["flat", "plaid", "muvera", "bm25_rerank"])
@pytest.mark.parametrize(
    "damage",
    ["outside the page", "reversed box", "half a box", "wrong shape", "global view of a prompt token"],
)
def test_a_damaged_regions_file_is_refused_on_load_even_unverified(kind, damage, pages, tmp_path):
    needs(kind)
    index = kind_class(kind).from_encoding(pages, **SMALL_BUILDS.get(kind, {}))
    folder = tmp_path / "index"
    index.save(folder)
    regions = np.load(folder / "regions.npy")
    patch = len(PROMPT)
    name = "regions.npy"
    if damage == "outside the page":
        regions[patch, 2] = 1.5
    elif damage == "reversed box":
        regions[patch, [0, 2]] = regions[patch, [2, 0]]
    elif damage == "half a box":
        regions[patch, 3] = np.nan
    elif damage == "wrong shape":
        regions = regions[:-1]
    else:
        name = "global_view.npy"
        view = np.load(folder / name)
        view[0] = True
        np.save(folder / name, view)
    if name == "regions.npy":
        np.save(folder / name, regions)
    with pytest.raises(ArtifactError, match=name.removesuffix(".npy")) as refused:
        load_index(folder, verify=False)
    assert "\n" not in str(refused.value)


def test_adding_text_documents_to_a_page_plaid_index_is_refused(pages):
    from tests.synthetic import random_encoding

    index = kind_class("plaid").from_encoding(pages, **SMALL_BUILDS["plaid"])
    text = random_encoding(2, seed=9, dim=DIM, prefix="t")
    text = replace(text, vocab=VOCAB)
    with pytest.raises(ValueError, match="page images .* and of text"):
        index.add(text)
    assert len(index) == N_PAGES
    more = replace(page_encoding(2, seed=4), ids=("new-0", "new-1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random vectors drift from the centroids, as they may
        index.add(more)
    assert same_boxes(index.documents([N_PAGES + 1]).regions, more.regions_of(1))


def test_bm25_over_pages_reads_their_text_layer_and_refuses_pages_without_one(pages, queries):
    pytest.importorskip("bm25s")
    lexical = kind_class("bm25").from_encoding(pages, stemmer="none")
    best = int(lexical.search_encoded(queries.select([0]), k=1)[0][0][0])
    assert {"bees", "honey"} & set(pages.texts[best].split())
    rerank = kind_class("bm25_rerank").from_encoding(pages, stemmer="none")
    assert int(rerank.search_encoded(queries.select([0]), k=1, depth=1)[0][0][0]) == best
    assert same_boxes(rerank.documents([best]).regions, pages.regions_of(best))
    blank = replace(pages, texts=("",) * len(pages))
    for kind in ("bm25", "bm25_rerank"):
        with pytest.raises(ValueError, match="text layer"):
            kind_class(kind).from_encoding(blank)


def test_a_sweep_puts_page_indexes_of_several_kinds_in_one_table(pages, queries):
    qrels = {"query_id": ["q1", "q2", "q3"], "doc_id": ["page-1", "page-4", "page-7"], "relevance": [1, 1, 1]}
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewerResultsWarning)
        table = sweep(
            pages,
            queries,
            methods=[
                ("flat", {"pool_factor": [1, 3]}),
                ("plaid", {"nbits": [2], "n_centroids": [16], "n_probe": [1, 4]}),
                ("warp", {"nbits": [2], "n_centroids": [16]}),
                ("muvera", {"r_reps": [4], "k_sim": [3], "d_proj": [8]}),
            ],
            qrels=pd.DataFrame(qrels),
            k=5,
            warmup=0,
            rounds=1,
            progress=False,
        )
    assert sorted(set(table.method)) == ["flat", "muvera", "plaid", "warp"]
    assert len(table) == 2 + 2 + 1 + 1
    flat = table[table.method == "flat"].set_index("pool_factor")
    assert flat.loc[1, "exhaustive_recall@5"] == 1.0
    assert flat.loc[3, "vectors"] < flat.loc[1, "vectors"] / 2
    assert table["nDCG@10"].between(0, 1).all() and table.p50_ms.gt(0).all()
    from lirlab.plots.sweeps import plot_pareto

    legend = plot_pareto(table).axes[0].get_legend()  # one chart, one colour per kind
    assert sorted(t.get_text() for t in legend.get_texts()) == ["flat", "muvera", "plaid", "warp"]


def test_a_flat_index_over_the_demo_pages_with_the_tiny_colpali_fixture(tmp_path):
    """End to end: the bundled pages, encoded by the tiny random ColPali, indexed, searched with the demo
    queries, evaluated, saved and reloaded; the reloaded index still maps each vector to its patch."""
    from lirlab import data
    from lirlab.encoder import ColBERT
    from lirlab.evaluate import evaluate
    from lirlab.index.flat import FlatIndex

    from .conftest import REPO

    fixture = REPO / "tests" / "fixtures" / "pages" / "colpali"
    if not (fixture / "config.json").is_file():
        pytest.skip(f"{fixture} is missing (tests/fixtures/make_page_models.py writes it)")
    encoder = ColBERT.load(fixture)
    pages = data.load("demo-pages")
    index = FlatIndex.build(pages.docs, encoder, progress=False)
    assert index.docnos == tuple(d.docno for d in pages.docs)
    run = index.search(pages.queries, k=10)
    assert len(run) == 10 * len(pages.queries) and set(run.docno) <= set(index.docnos)
    assert 0.0 <= float(evaluate(run, pages.qrels, ["nDCG@10"]).value.iloc[0]) <= 1.0
    stored = index.documents()
    per_page = {int(stored.select([i]).is_patch.sum()) for i in range(len(pages.docs))}
    assert len(per_page) == 1 and per_page.pop() > 0  # ColPali: one fixed patch grid per page
    landscape = pages.docs.index(next(d for d in pages.docs if d.docno == "railway-p1"))
    boxes = stored.regions_of(landscape)[stored.select([landscape]).is_patch]
    assert boxes[:, :2].min(dim=0).values.tolist() == [0.0, 0.0] and boxes[:, 2:].max(
        dim=0
    ).values.tolist() == [1.0, 1.0]
    index.save(tmp_path / "pages")
    loaded = load_index(tmp_path / "pages", encoder=encoder)
    again = loaded.search(pages.queries, k=10)
    assert again[["qid", "docno", "rank"]].equals(run[["qid", "docno", "rank"]])
    assert same_boxes(loaded.documents([landscape, 0]).regions, stored.select([landscape, 0]).regions)


@pytest.mark.parametrize("with_encoder", [True, False])
def test_aligning_a_page_hit_as_text_names_the_page_heatmap_instead(with_encoder):
    """align_hit labels document tokens; a page's vectors are patches, which page_hit draws over the page.
    With the page encoder it failed inside the alignment with an AttributeError on the encoder's config."""
    from lirlab import data
    from lirlab.analysis.alignment import align_hit
    from lirlab.analysis.pages import page_hit
    from lirlab.encoder import ColBERT
    from lirlab.index.flat import FlatIndex

    from .conftest import REPO

    fixture = REPO / "tests" / "fixtures" / "pages" / "colpali"
    if not (fixture / "config.json").is_file():
        pytest.skip(f"{fixture} is missing (tests/fixtures/make_page_models.py writes it)")
    encoder = ColBERT.load(fixture)
    pages = data.load("demo-pages").docs[:2]
    index = FlatIndex.build(pages, encoder, progress=False)
    query = encoder.encode_queries(["how does a caldera form"])
    if not with_encoder:
        index = FlatIndex.from_encoding(index.documents())
    with pytest.raises(ValueError, match=r"page_hit\(index, query, docno\)") as refused:
        align_hit(index, query, pages[0].docno)
    assert "\n" not in str(refused.value)
    assert page_hit(index, query, pages[0].docno).docno == pages[0].docno
