"""Query length and quality: how MaxSim fares as queries grow, and when they are cut short.

A 2026 reproduction of ConstBERT found ColBERT-style models lose most of their quality on long,
narrative queries. The collections here have no narrative queries, so :func:`query_length_effect`
measures what they allow: per query, the quality of the whole query and of its first ``n`` word
pieces (re-encoded, so the cut query is what the model would see had the user typed only that), with
and without ``[MASK]`` padding, beside the query's length and the spread of its scores (MaxSim sums one
maximum per query token, so scores grow with the number of tokens). :func:`by_length` bins the rows.

Examples
--------
>>> effect = query_length_effect(encoder, data.load("demo"))  # doctest: +SKIP
>>> by_length(effect).pivot_table("nDCG@10", "length_bin", ["variant", "padded"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tqdm.auto import tqdm

from lirlab.analysis.masks import as_index
from lirlab.data import Dataset, Query
from lirlab.evaluate import per_query_scores
from lirlab.params import Param

#: Query lengths (word pieces) the cut variants keep.
DEFAULT_CUTS = (4, 8, 16)

#: Edges of the length bins of :func:`by_length` (word pieces; each bin is ``(low, high]``).
DEFAULT_BINS = (0, 8, 12, 16, 24, 32, 64, 512)

CUT = Param("cut", int, 8, "Word pieces a cut query keeps (its first ones).", low=1, high=512)


def _pieces(encoder, text: str) -> list[int]:
    return encoder.tokenizer(text, add_special_tokens=False)["input_ids"]


def cut_query(encoder, query: Query, n: int) -> Query:
    """``query`` with only its first ``n`` word pieces, as text (decoded by the model's tokenizer)."""
    pieces = _pieces(encoder, query.text)
    if len(pieces) <= n:
        return query
    return Query(query.qid, encoder.tokenizer.decode(pieces[:n]))


def query_length_effect(
    encoder,
    dataset: Dataset,
    docs=None,
    cuts: Sequence[int] = DEFAULT_CUTS,
    padding_to: int = 32,
    measure: str = "nDCG@10",
    k: int = 100,
    progress: bool = True,
) -> pd.DataFrame:
    """Per-query quality of whole and cut queries, with and without ``[MASK]`` padding.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
    dataset : Dataset
        Queries and qrels; its documents too when ``docs`` is None.
    docs : Index, Encoding or documents, optional
        The corpus already indexed or encoded with ``encoder``.
    cuts : sequence of int
        Word pieces the cut variants keep (a query no longer than a cut is searched whole).
    padding_to : int
        ``query_maxlen`` of the padded rows; a query longer than that is cut there, as ColBERT does,
        so whole queries are searched padded only up to it (see ``kept_tokens``).
    measure : str
        The ir_measures name of the quality column.
    k : int
        Results per query.
    progress : bool
        Show a progress bar over the variants.

    Returns
    -------
    pandas.DataFrame
        ``qid, query_tokens, variant, padded, kept_tokens, <measure>, top_score, score_spread``: one row
        per query and variant (``"whole"``, ``"first 4"``...) and padding; ``query_tokens`` is the whole
        query's length in word pieces, ``kept_tokens`` what the encoder kept of the variant,
        ``score_spread`` the standard deviation of the query's ``k`` best scores.
    """
    cuts = tuple(CUT.validate(n) for n in cuts)
    index = as_index(dataset if docs is None else docs, encoder, progress=progress)
    k = min(k, len(index))
    lengths = {q.qid: len(_pieces(encoder, q.text)) for q in dataset.queries}
    variants = {"whole": dataset.queries} | {
        f"first {n}": tuple(cut_query(encoder, q, n) for q in dataset.queries) for n in cuts
    }
    settings = [(name, padded) for name in variants for padded in (False, True)]
    frames = []
    for name, padded in tqdm(settings, desc="query length variants", unit="variant", disable=not progress):
        variant = encoder.with_config(
            query_maxlen=padding_to if padded else 0, query_augmentation=padded, attend_to_mask_tokens=False
        )
        queries = variant.encode_queries(variants[name])
        run = index.search(queries, k=k)
        quality = per_query_scores(run, dataset, [measure]).set_index("qid")["value"]
        scores = run.groupby("qid").score
        top, spread = scores.max(), scores.std(ddof=0)
        specials = _special_count(variant)
        frames.append(
            pd.DataFrame(
                {
                    "qid": list(queries.ids),
                    "query_tokens": [lengths[q] for q in queries.ids],
                    "variant": name,
                    "padded": padded,
                    "kept_tokens": [
                        int(n) - specials - int(m)
                        for n, m in zip(queries.lengths.tolist(), _mask_counts(queries))
                    ],
                    measure: [float(quality.get(q, 0.0)) for q in queries.ids],
                    "top_score": [float(top.get(q, float("nan"))) for q in queries.ids],
                    "score_spread": [float(spread.get(q, float("nan"))) for q in queries.ids],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _special_count(encoder) -> int:
    """Tokens the encoder adds around a query's pieces ([CLS], the marker, [SEP])."""
    unpadded = encoder.with_config(query_maxlen=0)
    return len(unpadded.tokenize_queries(["a"])[0]) - len(_pieces(encoder, "a"))


def _mask_counts(queries) -> list[int]:
    return [int((queries.token_ids_of(i) == queries.mask_token_id).sum()) for i in range(len(queries))]


def by_length(effect: pd.DataFrame, bins: Sequence[int] = DEFAULT_BINS) -> pd.DataFrame:
    """Mean of every numeric column of :func:`query_length_effect` per whole-query length bin, variant
    and padding, with the number of queries in each bin (``queries``)."""
    binned = effect.assign(length_bin=pd.cut(effect.query_tokens, list(bins)).astype(str))
    grouped = binned.groupby(["length_bin", "variant", "padded"], sort=False)
    numeric = [c for c in effect.columns if c not in ("qid", "variant", "padded")]
    return grouped[numeric].mean().join(grouped.size().rename("queries")).reset_index()
