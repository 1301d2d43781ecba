"""Study 1's measurements (:mod:`lirlab.analysis.xtr`) against loops written another way."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from lirlab.analysis.xtr import centroid_informativeness, xtr_token_retrieval
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex


def encoding(prefix: str, lengths: list[int], seed: int) -> Encoding:
    g = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(sum(lengths), 8, generator=g), dim=1)
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(len(lengths))),
        vectors=vectors,
        token_ids=torch.zeros(sum(lengths), dtype=torch.long),
        offsets=offsets_from_lengths(torch.tensor(lengths)),
        vocab=("tok",),
    )


DOCS = encoding("d", [5, 3, 7, 1, 4, 6], seed=0)
QUERIES = encoding("q", [3, 4], seed=1)


def xtr_by_loops(docs: Encoding, queries: Encoding, k_prime: int) -> dict[str, dict[str, float]]:
    scores = {}
    for i, qid in enumerate(queries.ids):
        per_doc = {docno: 0.0 for docno in docs.ids}
        for token in queries.vectors_of(i):
            sims = sorted(
                (
                    (float(token @ vector), docno)
                    for j, docno in enumerate(docs.ids)
                    for vector in docs.vectors_of(j)
                ),
                reverse=True,
            )[:k_prime]
            missing = sims[-1][0]
            for docno in docs.ids:
                retrieved = [sim for sim, owner in sims if owner == docno]
                per_doc[docno] += max(retrieved) if retrieved else missing
        scores[qid] = per_doc
    return scores


@pytest.mark.parametrize("k_prime", [1, 3, 10])
def test_xtr_token_retrieval_matches_a_loop_over_retrieved_tokens(k_prime):
    run = xtr_token_retrieval(DOCS, QUERIES, k_primes=(k_prime,), k=len(DOCS), progress=False)
    expected = xtr_by_loops(DOCS, QUERIES, k_prime)
    assert set(run.k_prime) == {k_prime}
    for row in run.itertuples():
        assert row.score == pytest.approx(expected[row.qid][row.docno], abs=1e-5)
    for _, group in run.groupby("qid"):
        assert group.sort_values("rank").score.is_monotonic_decreasing
        assert len(group) == len(DOCS)


def test_xtr_token_retrieval_of_every_token_is_maxsim():
    run = xtr_token_retrieval(DOCS, QUERIES, k_primes=(1000, 2), k=3, progress=False)
    exact = FlatIndex(DOCS).search(QUERIES, k=3)
    every = run[run.k_prime == 1000].reset_index(drop=True)
    assert every.docno.tolist() == exact.docno.tolist()
    assert every.score.to_numpy() == pytest.approx(exact.score.to_numpy(), abs=1e-5)
    assert sorted(set(run.k_prime)) == [2, 1000]


def test_xtr_token_retrieval_refuses_a_bad_k_prime():
    with pytest.raises(ValueError, match="k_prime"):
        xtr_token_retrieval(DOCS, QUERIES, k_primes=(0,), progress=False)


def test_centroid_informativeness_against_scores_computed_from_the_index_arrays():
    docs = encoding("d", [4, 6, 3, 5, 7, 2, 6, 4, 5, 3] * 3, seed=2)
    queries = encoding("q", [3, 5, 4], seed=3)
    plaid = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=8)
    reference = FlatIndex(docs).search(queries, k=10)
    every = len(docs)
    rows = centroid_informativeness(plaid, queries, reference, n_probe=8, keep=every, progress=False)
    assert rows.candidates.tolist() == [every] * 3
    assert rows.recall_candidates.tolist() == [1.0] * 3 and rows.recall_kept.tolist() == [1.0] * 3

    centroids = plaid.codec.centroids.float()
    decompressed = plaid.documents()
    codes = plaid.codes.long()
    for i, qid in enumerate(queries.ids):
        query = queries.vectors_of(i)
        approximate, exact = [], []
        for j in range(every):
            span = docs.span(j)
            approximate.append(float((query @ centroids[codes[span]].T).max(dim=1).values.sum()))
            exact.append(float((query @ decompressed.vectors_of(j).T).max(dim=1).values.sum()))
        row = rows[rows.qid == qid].iloc[0]
        assert row.spearman == pytest.approx(spearmanr(approximate, exact).statistic, abs=1e-6)
        ranked = sorted(range(every), key=lambda j: -approximate[j])
        keep = next(n for n in range(5, every) if approximate[ranked[n - 1]] > approximate[ranked[n]] + 1e-4)
        top10 = set(reference[(reference.qid == qid) & (reference["rank"] <= 10)].docno)
        expected = len(top10 & {docs.ids[j] for j in ranked[:keep]}) / 10
        one = centroid_informativeness(
            plaid, queries.select([i]), reference, n_probe=8, keep=keep, progress=False
        )
        assert one.recall_kept.item() == pytest.approx(expected)


def test_compare_models_on_the_demo_agrees_with_its_parts(stanford):
    from lirlab import data
    from lirlab.analysis.xtr import compare_models
    from lirlab.evaluate import evaluate

    demo = data.load("demo").slice(max_queries=6, max_docs=40)
    flat = FlatIndex.build(demo.docs, stanford, progress=False)
    build = {"n_centroids": 16, "seed": 0}
    tables = compare_models(
        {"a": stanford},
        demo,
        docs={"a": flat},
        k_primes=(50, 100000),
        plaid_grid={"n_probe": [1, 16]},
        warp_grid={"nprobe": [2, 16]},
        build=build,
        progress=False,
    )
    quality = tables["quality"].set_index(["scoring", "k_prime"], drop=False)
    queries = stanford.encode_queries(demo.queries)
    exact = evaluate(flat.search(queries, k=40), demo, ["nDCG@10", "R@100"]).set_index("measure").value
    maxsim = quality[quality.scoring == "maxsim"].iloc[0]
    assert maxsim["nDCG@10"] == pytest.approx(exact["nDCG@10"]) and maxsim["R@100"] == pytest.approx(
        exact["R@100"]
    )
    every_token = quality[quality.k_prime == 100000].iloc[0]  # every token retrieved: XTR scoring is MaxSim
    assert every_token["nDCG@10"] == pytest.approx(exact["nDCG@10"], abs=1e-9)

    sweeps = tables["sweeps"]
    assert sorted(sweeps.method.unique()) == ["plaid", "warp"] and set(sweeps.model) == {"a"}
    assert len(sweeps) == 4
    # WARP probing every centroid scores exact MaxSim over PLAID's reconstruction
    warp_all = sweeps[(sweeps.method == "warp") & (sweeps.nprobe == 16)].iloc[0]
    plaid = PlaidIndex.from_encoding(flat.documents(), encoder=stanford, **build)
    reconstructed = evaluate(
        FlatIndex(plaid.documents()).search(queries, k=10), demo, ["nDCG@10"]
    ).value.item()
    assert warp_all["nDCG@10"] == pytest.approx(reconstructed, abs=1e-6)

    centroids = tables["centroids"]
    assert len(centroids) == len(demo.queries) and centroids.spearman.between(-1, 1).all()


def test_warp_knob_sweep_covers_the_grid_and_the_choice_holds_out_a_collection():
    from lirlab import data
    from lirlab.analysis.xtr import choose_warp_defaults, warp_knob_sweep

    demo = data.load("demo")
    collections, uncompressed = {}, {}
    for name, seed in (("first", 4), ("second", 5)):
        docs = encoding("d", [6, 4, 8, 5, 7, 3] * 5, seed=seed)
        queries = encoding("q", [4, 4], seed=seed + 10)
        qrels = demo.qrels.iloc[:0]
        collections[name] = (PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16), queries, qrels)
        uncompressed[name] = docs
    rows = warp_knob_sweep(
        collections, nprobes=(1, 16), t_prime_shares=(0.05, 0.5), reference_docs=uncompressed, progress=False
    )
    assert len(rows) == 2 * 2 * 2
    assert sorted(set(rows.t_prime_share)) == [0.05, 0.5]
    n_tokens = int(rows.n_tokens.iloc[0])
    assert sorted(set(rows.t_prime)) == [round(0.05 * n_tokens), round(0.5 * n_tokens)]
    # every centroid probed: exact MaxSim over PLAID's reconstruction, against the uncompressed top 10
    for name, (plaid, queries, _) in collections.items():
        every = rows[(rows.collection == name) & (rows.nprobe == 16)]
        reconstructed = FlatIndex(plaid.documents()).search(queries, k=10)
        exact = FlatIndex(uncompressed[name]).search(queries, k=10)
        shared = sum(
            len(set(reconstructed[reconstructed.qid == q].docno) & set(exact[exact.qid == q].docno))
            for q in queries.ids
        ) / (10 * len(queries))
        assert every["exhaustive_recall@10"].tolist() == pytest.approx([shared] * 2)
    # by default the reference is PLAID's reconstruction: probing every centroid finds its whole top 10
    against_reconstruction = warp_knob_sweep(
        collections, nprobes=(16,), t_prime_shares=(0.05,), progress=False
    )
    assert against_reconstruction["exhaustive_recall@10"].tolist() == [1.0, 1.0]
    chosen, check = choose_warp_defaults(rows, ["first"], min_recall=0.0)
    assert chosen["nprobe"] in (1, 16) and check.held_out.tolist() == [False, True]
    with pytest.raises(ValueError, match="lower min_recall"):
        choose_warp_defaults(rows, ["first"], min_recall=1.01)
    with pytest.raises(ValueError, match="no rows for collection"):
        choose_warp_defaults(rows, ["third"])
