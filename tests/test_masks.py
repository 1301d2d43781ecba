"""[MASK] term weighting, the query_maxlen curve, their figures and the mask benchmark, against direct computation."""

from __future__ import annotations

import inspect
import json
import math

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from lirlab.analysis.masks import (
    DEFAULT_QUERY_MAXLENS,
    TermStatistics,
    drop_masks,
    mask_weighting,
    padding_gap,
    query_maxlen_curve,
    special_token_ids,
    term_statistics,
    weigh_masks,
)
from lirlab.bench.masks import run_mask_benchmark
from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.plots.masks import (
    figure_png,
    plot_mask_assignment,
    plot_mask_overview,
    plot_query_maxlen_curve,
    plot_term_weights,
)

from .synthetic import demo_slice

QUERY = "how does a caldera form"
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def small_demo() -> Dataset:
    return demo_slice(n_docs=30, n_queries=3)


@pytest.fixture(scope="module")
def index(small_demo, stanford) -> FlatIndex:
    return FlatIndex.build(small_demo.docs, stanford, progress=False)


@pytest.fixture(scope="module")
def curve(small_demo, stanford, index) -> pd.DataFrame:
    return query_maxlen_curve(stanford, small_demo, index, measures=["nDCG@10", "RR@10"], progress=False)


def hand_maxsim(query: torch.Tensor, doc: torch.Tensor) -> float:
    return float(sum(max(float(q @ d) for d in doc) for q in query))


def doc_sets(docs: Encoding) -> list[set[int]]:
    return [set(docs.token_ids_of(i).tolist()) for i in range(len(docs))]


# --------------------------------------------------------------------------------------- IDF


def test_idf_matches_a_hand_count_on_a_toy_corpus():
    token_ids = [[0, 5, 5, 7], [0, 7], [0, 6, 5], [0]]
    docs = Encoding(
        ids=("a", "b", "c", "d"),
        vectors=torch.zeros(sum(map(len, token_ids)), 4),
        token_ids=torch.tensor([t for doc in token_ids for t in doc]),
        offsets=torch.tensor([0, 4, 6, 9, 10]),
        vocab=tuple(f"t{i}" for i in range(9)),
    )
    stats = term_statistics(docs)
    expected_df = [sum(t in set(doc) for doc in token_ids) for t in range(9)]
    assert stats.n_docs == 4
    assert stats.document_frequency.tolist() == expected_df == [4, 0, 0, 0, 0, 2, 1, 2, 0]
    expected_idf = [math.log(1 + (4 - df + 0.5) / (df + 0.5)) for df in expected_df]
    assert stats.idf(range(9)).tolist() == pytest.approx(expected_idf)
    assert term_statistics(FlatIndex(docs)).document_frequency.tolist() == expected_df


def test_plaid_statistics_count_stored_token_ids_and_skip_deleted_documents(index):
    plaid = PlaidIndex.from_encoding(index.docs, nbits=2, n_centroids=8)
    assert torch.equal(term_statistics(plaid).document_frequency, term_statistics(index).document_frequency)
    gone = index.docnos[3]
    plaid.delete(gone)
    stats = term_statistics(plaid)
    live = [s for docno, s in zip(index.docnos, doc_sets(index.docs)) if docno != gone]
    assert stats.n_docs == len(index.docnos) - 1
    for token_id in set().union(*doc_sets(index.docs)):
        assert int(stats.document_frequency[token_id]) == sum(token_id in s for s in live)


def test_term_statistics_reject_queries_and_other_objects(stanford):
    with pytest.raises(ValueError, match="queries"):
        term_statistics(stanford.encode_queries(["bees"]))
    with pytest.raises(ValueError, match="an Encoding or an index"):
        term_statistics(["some", "texts"])
    with pytest.raises(ValueError, match="token ids"):
        TermStatistics(2, torch.tensor([1, 2])).idf([5])


# --------------------------------------------------------------------------------------- ablation


def test_a_query_without_masks_scores_the_same_with_and_without_the_ablation(stanford, index):
    unpadded = stanford.with_config(query_maxlen=0).encode_queries([QUERY, "what do bees eat"])
    assert not bool((unpadded.token_ids == unpadded.mask_token_id).any())
    assert torch.equal(index.scores(drop_masks(unpadded)), index.scores(unpadded))


def test_ablated_scores_equal_maxsim_over_the_rows_that_are_not_masks(stanford, index):
    queries = stanford.encode_queries([QUERY, "what do bees eat"])
    ablated = drop_masks(queries)
    scores, full = index.scores(ablated), index.scores(queries)
    for i in range(len(queries)):
        mask = queries.mask_positions(i)
        assert int(mask.sum()) > 0 and ablated.tokens(i) == [
            t for t, m in zip(queries.tokens(i), mask) if not m
        ]
        for j in range(0, len(index.docnos), 7):
            doc = index.docs.vectors_of(j)
            assert float(scores[i, j]) == pytest.approx(
                hand_maxsim(queries.vectors_of(i)[~mask], doc), abs=1e-4
            )
            assert float(full[i, j]) == pytest.approx(hand_maxsim(queries.vectors_of(i), doc), abs=1e-4)


# ------------------------------------------------------------------------------------ one query


def test_effective_weights_sum_to_the_score_of_one_document(stanford, index):
    docno = "volcano-03"
    weighting = mask_weighting(stanford, QUERY, index, docno=docno)
    query = stanford.encode_queries([QUERY])
    doc = index.docs.item(docno)
    qv, dv, mask = query.vectors_of(0), doc.vectors_of(0), query.mask_positions(0)
    assert weighting.score == pytest.approx(hand_maxsim(qv, dv), abs=1e-4)
    assert weighting.terms.effective_weight.sum() == pytest.approx(weighting.score, abs=1e-4)
    assert weighting.score_without_masks == pytest.approx(hand_maxsim(qv[~mask], dv), abs=1e-4)
    real = [p for p in range(len(mask)) if not mask[p]]
    assert weighting.terms.position.tolist() == real
    hand_own = [float((qv[p] @ dv.T).max()) for p in real]
    assert weighting.terms.own.tolist() == pytest.approx(hand_own, abs=1e-5)
    assert int(weighting.terms.n_masks.sum()) == int(mask.sum()) == weighting.n_masks
    for p, row in weighting.matches.set_index("position").iterrows():
        best = int((qv[p] @ dv.T).argmax())
        assert row.doc_position == best and row.doc_token == doc.tokens(0)[best]


def test_each_mask_is_assigned_to_the_argmax_of_its_cosines(stanford, index):
    query = stanford.encode_queries([QUERY])
    vectors, tokens, mask = query.vectors_of(0), query.tokens(0), query.mask_positions(0)
    specials = special_token_ids(stanford)
    assert {"[CLS]", "[SEP]", "[unused0]"} <= {stanford.vocab[i] for i in specials}
    for assign_to_special in (True, False):
        weighting = mask_weighting(
            stanford, QUERY, index, docno="volcano-03", assign_to_special=assign_to_special
        )
        candidates = [
            p
            for p in range(len(tokens))
            if not mask[p] and (assign_to_special or int(query.token_ids_of(0)[p]) not in specials)
        ]
        rows = weighting.assignments.set_index("position")
        assert rows.index.tolist() == mask.nonzero().flatten().tolist()
        for m in rows.index:
            cosines = [
                float(vectors[m] @ vectors[c]) / float(vectors[m].norm() * vectors[c].norm())
                for c in candidates
            ]
            best = max(range(len(candidates)), key=cosines.__getitem__)
            assert rows.term_position[m] == candidates[best]
            assert rows.term_token[m] == tokens[candidates[best]]
            assert rows.cosine[m] == pytest.approx(cosines[best], abs=1e-5)
        assert weighting.terms.effective_weight.sum() == pytest.approx(weighting.score, abs=1e-4)


def test_weights_without_a_document_are_means_over_the_top_hits(stanford, index):
    weighting = mask_weighting(stanford, QUERY, index, top_k=3)
    top = index.search(QUERY, k=3)
    assert weighting.documents.docno.tolist() == top.docno.tolist()
    assert weighting.documents.score.tolist() == pytest.approx(top.score.tolist(), abs=1e-4)
    query = stanford.encode_queries([QUERY])
    per_doc = torch.stack(
        [(query.vectors_of(0) @ index.docs.item(d).vectors_of(0).T).amax(dim=1) for d in top.docno]
    ).mean(dim=0)
    real = weighting.terms.position.tolist()
    assert weighting.terms.own.tolist() == pytest.approx(per_doc[real].tolist(), abs=1e-5)
    assert weighting.terms.effective_weight.sum() == pytest.approx(float(top.score.mean()), abs=1e-4)


def test_idf_column_comes_from_the_corpus(stanford, index):
    weighting = mask_weighting(stanford, QUERY, index, docno="volcano-03")
    sets = doc_sets(index.docs)
    n = len(sets)
    for row in weighting.terms.itertuples():
        df = sum(row.token_id in s for s in sets)
        assert row.document_frequency == df
        assert row.idf == pytest.approx(math.log(1 + (n - df + 0.5) / (df + 0.5)))
    special = weighting.terms.set_index("token").special
    assert special["[CLS]"] and special["[SEP]"] and not special["form"]


def test_plaid_index_documents_are_decompressed_for_the_weighting(stanford, index):
    plaid = PlaidIndex.from_encoding(index.docs, nbits=4, n_centroids=8)
    weighting = mask_weighting(stanford, QUERY, plaid, docno="volcano-03")
    vectors = plaid.document("volcano-03").vectors
    assert weighting.score == pytest.approx(
        hand_maxsim(stanford.encode_queries([QUERY]).vectors_of(0), vectors), abs=1e-4
    )
    assert weighting.terms.effective_weight.sum() == pytest.approx(weighting.score, abs=1e-4)


def test_weigh_masks_on_encodings_without_masks():
    vocab = ("[CLS]", "[MASK]", "sun")
    query = Encoding(
        ("q",), torch.eye(2), torch.tensor([0, 2]), torch.tensor([0, 2]), vocab, kind="query", mask_token_id=1
    )
    docs = Encoding(("d",), torch.tensor([[0.6, 0.8]]), torch.tensor([2]), torch.tensor([0, 1]), vocab)
    weighting = weigh_masks(query, docs, term_statistics(docs))
    assert weighting.n_masks == 0 and weighting.cosines.empty
    assert weighting.terms.own.tolist() == pytest.approx([0.6, 0.8])
    assert weighting.score == weighting.score_without_masks == pytest.approx(1.4)


def test_bad_inputs_name_the_problem(stanford, index):
    with pytest.raises(ValueError, match="empty"):
        mask_weighting(stanford, "   ", index)
    with pytest.raises(ValueError, match="nope"):
        mask_weighting(stanford, QUERY, index, docno="nope")
    with pytest.raises(ValueError, match="top_k"):
        mask_weighting(stanford, QUERY, index, top_k=0)
    with pytest.raises(ValueError, match="one query"):
        mask_weighting(stanford, stanford.encode_queries(["a", "b"]), index)
    with pytest.raises(ValueError, match="query must be"):
        mask_weighting(stanford, 42, index)
    other = Encoding(("d",), torch.eye(3), torch.tensor([0, 1, 2]), torch.tensor([0, 3]), ("a", "b", "c"))
    with pytest.raises(ValueError, match="dimensional"):
        mask_weighting(stanford, QUERY, other)
    with pytest.raises(ValueError, match="encoder"):
        mask_weighting(None, QUERY, ["some text"])
    with pytest.raises(ValueError, match="non-special"):
        vocab = ("[CLS]", "[MASK]")
        query = Encoding(
            ("q",),
            torch.eye(2),
            torch.tensor([0, 1]),
            torch.tensor([0, 2]),
            vocab,
            kind="query",
            mask_token_id=1,
        )
        weigh_masks(
            query,
            Encoding(("d",), torch.eye(2)[:1], torch.tensor([0]), torch.tensor([0, 1]), vocab),
            TermStatistics(1, torch.tensor([1, 0])),
            special_token_ids={0},
            assign_to_special=False,
        )


# ---------------------------------------------------------------------------------------- encoder


def test_with_config_shares_the_weights_and_changes_only_the_settings(stanford):
    longer = stanford.with_config(query_maxlen=48, attend_to_mask_tokens=True)
    assert longer.model is stanford.model and longer.projections[0] is stanford.projections[0]
    assert stanford.config.query_maxlen == 32 and not stanford.config.attend_to_mask_tokens
    assert len(longer.encode_queries([QUERY]).tokens(0)) == 48
    off = stanford.with_config(query_maxlen=0)
    assert not off.config.query_augmentation and "[MASK]" not in off.encode_queries([QUERY]).tokens(0)
    with pytest.raises(ValueError, match="unknown encoder setting"):
        stanford.with_config(query_max_len=8)


# ------------------------------------------------------------------------------------------ curve


def test_curve_rows_have_the_settings_asked_for(curve, small_demo):
    expected = []
    for length in DEFAULT_QUERY_MAXLENS:
        for attend in (False, True):
            expected.append((length, attend, length > 0))
            if length == 32:
                expected.append((32, attend, False))
    settings = list(zip(curve.query_maxlen, curve.attend_to_mask_tokens, curve.masks_used))
    assert settings == expected
    assert list(curve.columns) == [
        "query_maxlen",
        "padding",
        "attend_to_mask_tokens",
        "masks_used",
        "mean_masks",
        "truncated_queries",
        "nDCG@10",
        "RR@10",
    ]
    assert curve["nDCG@10"].between(0, 1).all()
    assert (curve[~curve.masks_used].mean_masks == 0).all()
    by_length = curve[curve.masks_used & ~curve.attend_to_mask_tokens].set_index("query_maxlen")
    assert (by_length.truncated_queries[[48, 64]] == 0).all()
    # queries are re-encoded per setting: 16 more positions, all [MASK], from 48 to 64
    assert by_length.mean_masks[64] - by_length.mean_masks[48] == 16


def test_curve_values_match_a_direct_search(curve, small_demo, stanford, index):
    for length, attend, ablate in ((16, True, False), (32, True, True), (0, False, False)):
        variant = stanford.with_config(
            query_maxlen=length, query_augmentation=length > 0, attend_to_mask_tokens=attend
        )
        encoded = variant.encode_queries(small_demo.queries)
        if ablate:
            encoded = drop_masks(encoded)
        direct = evaluate(index.search(encoded, k=30), small_demo, ["nDCG@10"]).value.iloc[0]
        row = curve[
            (curve.query_maxlen == length)
            & (curve.attend_to_mask_tokens == attend)
            & (curve.masks_used == (length > 0 and not ablate))
        ]
        assert len(row) == 1 and row["nDCG@10"].iloc[0] == pytest.approx(direct)


def test_dropping_masks_that_nothing_attended_gives_back_the_unpadded_queries(curve):
    unpadded = curve[curve.query_maxlen == 0]["nDCG@10"].iloc[0]
    ablated = curve[(curve.query_maxlen == 32) & ~curve.masks_used & ~curve.attend_to_mask_tokens][
        "nDCG@10"
    ].iloc[0]
    assert ablated == pytest.approx(unpadded, abs=1e-6)


def test_curve_rejects_bad_settings(stanford, small_demo, index):
    for kwargs, message in (
        ({"query_maxlens": (0, -8)}, "query_maxlen must be >= 0"),
        ({"query_maxlens": (0, 16, 16)}, "repeats"),
        ({"query_maxlens": ()}, "empty"),
        ({"ablate_at": (40,)}, "ablate_at"),
        ({"ablate_at": (0,), "query_maxlens": (0, 16)}, "ablate_at"),
        ({"attend": ("yes",)}, "attend"),
        ({"measures": ["nDCG@ten"]}, "measure"),
        ({"k": 0}, "k must"),
    ):
        with pytest.raises(ValueError, match=message):
            query_maxlen_curve(stanford, small_demo, index, progress=False, **kwargs)
    with pytest.raises(ValueError, match="room for the special tokens"):
        query_maxlen_curve(stanford, small_demo, index, query_maxlens=(2,), ablate_at=(), progress=False)
    with pytest.raises(ValueError, match="Dataset"):
        query_maxlen_curve(stanford, {"1": "bees"}, index, progress=False)


# ----------------------------------------------------------------------------------------- figures


def test_figures_draw_the_analysis(stanford, index, curve):
    weighting = mask_weighting(stanford, QUERY, index, docno="volcano-03")
    weights = plot_term_weights(weighting)
    bars = weights.axes[0].patches
    n = len(weighting.terms)
    assert len(bars) == 2 * n
    assert [b.get_height() for b in bars[:n]] == pytest.approx(weighting.terms.own.tolist())
    assert [b.get_height() for b in bars[n:]] == pytest.approx(weighting.terms.mask_share.tolist())
    assert [b.get_y() for b in bars[n:]] == pytest.approx(weighting.terms.own.tolist())
    assignment = plot_mask_assignment(weighting)
    image = assignment.axes[0].images[0].get_array()
    assert image.shape == (weighting.n_masks, n)
    # "→" has one meaning in the picture: a [MASK]'s nearest query token (the title); rows name the
    # document token matched
    rows = [t.get_text() for t in assignment.axes[0].get_yticklabels()]
    assert rows and all("→" not in r and " · matches " in r for r in rows)
    assert assignment.axes[0].get_title().startswith("[MASK] → nearest query token")
    for figure in (
        weights,
        assignment,
        plot_mask_overview(weighting),
        plot_query_maxlen_curve(curve, "RR@10"),
    ):
        assert isinstance(figure, Figure) and figure_png(figure).startswith(PNG)
    lines = plot_query_maxlen_curve(curve).axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines] == [5, 1, 5, 1, 2]


def test_figures_without_masks_and_bad_measure(stanford, index, curve):
    plain = mask_weighting(stanford.with_config(query_maxlen=0), QUERY, index, top_k=2)
    assert plain.n_masks == 0
    assert figure_png(plot_mask_overview(plain)).startswith(PNG)
    with pytest.raises(ValueError, match="AP"):
        plot_query_maxlen_curve(curve, "AP")


# --------------------------------------------------------------------------------------- benchmark


def test_mask_benchmark_writes_the_curve(small_demo, stanford, tmp_path):
    path = run_mask_benchmark(small_demo.head(2), stanford, tmp_path, query_maxlens=(0, 32))
    result = json.loads(path.read_text())
    assert path.name == "masks.json" and result["machine"]["cpu_count"] >= 1
    assert result["corpus"]["documents"] == 30 and result["queries"] == 2
    rows = [(r["query_maxlen"], r["attend_to_mask_tokens"], r["masks_used"]) for r in result["curve"]]
    assert rows == [
        (0, False, False),
        (0, True, False),
        (32, False, True),
        (32, False, False),
        (32, True, True),
        (32, True, False),
    ]
    table = pd.read_csv(tmp_path / "masks.curve.csv")
    assert {"nDCG@10", "RR@10", "R@100", "mean_masks"} <= set(table.columns) and len(table) == 6
    assert table["nDCG@10"].tolist() == pytest.approx([r["nDCG@10"] for r in result["curve"]])
    defaults = inspect.signature(run_mask_benchmark).parameters
    assert defaults["query_maxlens"].default == (0, 8, 16, 32, 48, 64) and defaults["ablate_at"].default == (
        32,
    )


def test_min_padding_pads_short_queries_and_keeps_long_ones_whole(stanford, small_demo, index):
    curve = query_maxlen_curve(
        stanford,
        small_demo,
        index,
        query_maxlens=(0, 8, 64),
        ablate_at=(),
        padding=("fixed", "min"),
        attend=(False,),
        progress=False,
    )
    assert list(zip(curve.query_maxlen, curve.padding)) == [
        (0, "fixed"),
        (8, "fixed"),
        (8, "min"),
        (64, "fixed"),
        (64, "min"),
    ]
    rows = curve.set_index(["query_maxlen", "padding"])
    lengths = stanford.with_config(query_maxlen=0).encode_queries(small_demo.queries).lengths
    assert bool((lengths > 8).any()) and bool((lengths < 64).all())
    # at 8 the fixed rows cut long queries, the min rows cut none and pad the short ones to 8
    assert rows.truncated_queries[8, "fixed"] == int((lengths > 8).sum())
    assert rows.truncated_queries[8, "min"] == 0
    assert rows.mean_masks[8, "min"] == pytest.approx(float((8 - lengths).clamp_min(0).float().mean()))
    by_hand = stanford.with_config(
        query_maxlen=stanford.position_limit, query_minlen=8, query_augmentation=True
    )
    direct = evaluate(index.search(by_hand.encode_queries(small_demo.queries), k=30), small_demo, ["nDCG@10"])
    assert rows.loc[(8, "min"), "nDCG@10"] == pytest.approx(direct.value.iloc[0])
    # no query reaches 64: padded to 64 either way, the same encodings
    assert rows.loc[(64, "min"), "nDCG@10"] == pytest.approx(rows.loc[(64, "fixed"), "nDCG@10"])
    with pytest.raises(ValueError, match="padding must hold"):
        query_maxlen_curve(stanford, small_demo, index, padding=("max",), progress=False)
    figure = plot_query_maxlen_curve(curve)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "not attending to [MASK], long queries kept whole (min)" in labels


def test_padding_gap_is_padded_minus_unpadded_quality(stanford, small_demo, index):
    gap = padding_gap(stanford, small_demo, index, padding_to=16, measures=["nDCG@10", "RR@10"], k=30)
    assert set(gap) == {f"{m} {v}" for m in ("nDCG@10", "RR@10") for v in ("pad16", "nopad", "gap")}
    for overrides, key in (
        ({"query_maxlen": 16, "query_augmentation": True}, "nDCG@10 pad16"),
        ({"query_maxlen": 0}, "nDCG@10 nopad"),
    ):
        run = index.search(stanford.with_config(**overrides).encode_queries(small_demo.queries), k=30)
        assert gap[key] == pytest.approx(evaluate(run, small_demo, ["nDCG@10"]).value.iloc[0])
    assert gap["RR@10 gap"] == pytest.approx(gap["RR@10 pad16"] - gap["RR@10 nopad"])
    # MiniLM never saw [MASK] padding: it hurts here (the starting point)
    assert gap["nDCG@10 gap"] < 0
