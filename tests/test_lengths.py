"""Query length effects: whole and cut queries, padded or not."""

from __future__ import annotations

import pytest

from lirlab import data
from lirlab.analysis.lengths import by_length, cut_query, query_length_effect
from lirlab.evaluate import per_query_scores
from lirlab.index.flat import FlatIndex


@pytest.fixture(scope="module")
def demo():
    return data.load("demo").slice(max_queries=12, max_docs=60)


@pytest.fixture(scope="module")
def index(demo, stanford):
    return FlatIndex.build(demo.docs, stanford, progress=False)


@pytest.fixture(scope="module")
def effect(stanford, demo, index):
    return query_length_effect(stanford, demo, index, cuts=(4, 8), progress=False)


def test_rows_cover_every_query_variant_and_padding(effect, demo, stanford):
    assert len(effect) == len(demo.queries) * 3 * 2
    assert set(effect.variant) == {"whole", "first 4", "first 8"}
    whole = effect[(effect.variant == "whole") & ~effect.padded].set_index("qid")
    pieces = {
        q.qid: len(stanford.tokenizer(q.text, add_special_tokens=False)["input_ids"]) for q in demo.queries
    }
    assert whole.query_tokens.to_dict() == pieces
    assert (whole.kept_tokens == whole.query_tokens).all()
    cut = effect[effect.variant == "first 4"]
    assert (cut.kept_tokens == cut.query_tokens.clip(upper=4)).all()
    assert effect["nDCG@10"].between(0, 1).all() and (effect.score_spread >= 0).all()


def test_a_cut_query_scores_as_the_encoder_cutting_it_at_the_same_length(effect, stanford, demo, index):
    """Decoding the first pieces and encoding them again is what the encoder's own truncation gives."""
    specials = len(stanford.with_config(query_maxlen=0).tokenize_queries(["a"])[0]) - 1
    truncating = stanford.with_config(query_maxlen=4 + specials, query_augmentation=False)
    direct = per_query_scores(index.search(truncating.encode_queries(demo.queries), k=60), demo, ["nDCG@10"])
    ours = effect[(effect.variant == "first 4") & ~effect.padded].set_index("qid")["nDCG@10"]
    for qid, value in direct.set_index("qid")["value"].items():
        assert ours[qid] == pytest.approx(value, abs=1e-9)
    long_query = max(demo.queries, key=lambda q: len(q.text))
    assert (
        len(
            stanford.tokenizer(cut_query(stanford, long_query, 4).text, add_special_tokens=False)["input_ids"]
        )
        == 4
    )


def test_bins_average_the_rows(effect):
    binned = by_length(effect, bins=(0, 6, 512))
    assert binned.queries.sum() == len(effect)
    row = binned[(binned.variant == "whole") & binned.padded & (binned.length_bin == "(6, 512]")]
    rows = effect[(effect.variant == "whole") & effect.padded & (effect.query_tokens > 6)]
    assert row["nDCG@10"].iloc[0] == pytest.approx(rows["nDCG@10"].mean())
    assert row.queries.iloc[0] == len(rows)
