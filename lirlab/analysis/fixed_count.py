"""Fixed-count documents: every document pooled to the same number of vectors, beside token pooling.

ConstBERT (MacAvaney et al., 2025) trains a model to write every document as a fixed number of vectors,
so an index's size no longer depends on its documents' lengths. :func:`pool_to_count` gets the
fixed count without that training, from an ordinary checkpoint: each document's token vectors are
clustered with the same Ward clustering as token pooling (:func:`lirlab.index.pooling.ward_clusters`)
into ``count`` clusters, and each cluster kept as the re-normalized mean of its members; a document with
fewer tokens keeps them all. :func:`fixed_count_quality` puts fixed counts beside pool factors (size of
the index against quality).

Unlike a pool factor, a fixed count clusters every token, the ``[CLS]``, document marker and ``[SEP]``
vectors included: protecting the three markers would leave one vector for a document's words at a
count of 4, and a document must come out with exactly ``min(count, tokens)`` vectors.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding
>>> vectors = torch.nn.functional.normalize(torch.tensor(
...     [[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
>>> docs = Encoding(ids=("long", "short"), vectors=vectors, token_ids=torch.tensor([0, 1, 2, 3, 4, 2]),
...                 offsets=torch.tensor([0, 5, 6]), vocab=("[CLS]", "cat", "dog", "pup", "[SEP]"))
>>> pooled = pool_to_count(docs, 2)
>>> pooled.lengths.tolist(), pooled.tokens(0), pooled.tokens(1)  # [CLS] cat [SEP] | dog pup, and dog
([2, 1], ['cat', 'dog'], ['dog'])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.analysis.masks import as_index
from lirlab.data import Dataset
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.pooling import ward_clusters
from lirlab.params import Param

COUNT = Param("count", int, 32, "Vectors every document keeps (fewer only if it has fewer tokens).", low=1)

#: Fixed counts and pool factors :func:`fixed_count_quality` compares by default (factor 1: unpooled).
#: Factors past 4 reach the fixed counts' sizes on 150-token documents (5: about 34 vectors, 10: 19,
#: 20: 11, 40: 7 with the three markers), so the two can be compared at the same index size.
DEFAULT_COUNTS = (4, 8, 16, 32)
DEFAULT_POOL_FACTORS = (1, 2, 3, 4, 5, 10, 20, 40)

#: Measures of :func:`fixed_count_quality`.
MEASURES = ("nDCG@10", "R@100")


def pool_to_count(docs: Encoding, count: int, progress: bool = False) -> Encoding:
    """Every document of ``docs`` as exactly ``min(count, tokens)`` vectors, by Ward clustering.

    Parameters
    ----------
    docs : Encoding
        Encoded text documents (unit vectors).
    count : int
        Vectors each document keeps.
    progress : bool
        Show a progress bar over documents.

    Returns
    -------
    Encoding
        Same ids and order; each vector the normalized mean of one cluster of the document's token
        vectors (every token clustered, markers too), carrying the token id of the member closest to it;
        vectors ordered by their cluster's first token. Documents of at most ``count`` tokens are kept
        as they are. ``exact`` is False when any document was pooled.

    Raises
    ------
    ValueError
        ``count`` below 1, or page images (their patch boxes are not pooled here).
    """
    count = COUNT.validate(count)
    if not isinstance(docs, Encoding):
        raise ValueError(f"pool_to_count needs an Encoding of documents, got {type(docs).__name__}")
    if docs.regions is not None:
        raise ValueError("pool_to_count pools text documents; page images keep patch boxes it does not pool")
    vectors = docs.vectors.detach().float().cpu()
    token_ids = docs.token_ids.cpu()
    offsets = docs.offsets.cpu().tolist()
    out_vectors, out_ids, out_lengths = [], [], []
    pooled_any = False
    for d in tqdm(range(len(docs)), desc=f"pooling to {count}", unit="doc", disable=not progress):
        start, stop = offsets[d], offsets[d + 1]
        n = stop - start
        if n <= count:
            out_vectors.append(vectors[start:stop])
            out_ids.append(token_ids[start:stop])
            out_lengths.append(n)
            continue
        pooled_any = True
        labels = torch.from_numpy(ward_clusters(vectors[start:stop].numpy(), count).astype(np.int64))
        sums = torch.zeros(count, docs.dim).index_add_(0, labels, vectors[start:stop])
        means = torch.nn.functional.normalize(sums, dim=1)
        cosines = (vectors[start:stop] * means[labels]).sum(dim=1)
        # the member closest to its pooled vector names it (ties: the first)
        best = torch.full((count,), -2.0).scatter_reduce(0, labels, cosines, "amax")
        is_best = cosines == best[labels]
        representative = torch.zeros(count, dtype=torch.long)
        rows = torch.arange(n)
        representative.scatter_reduce_(0, labels[is_best], rows[is_best], "amin", include_self=False)
        out_vectors.append(means)
        out_ids.append(token_ids[start:stop][representative])
        out_lengths.append(count)
    return replace(
        docs,
        vectors=(torch.cat(out_vectors) if out_vectors else vectors[:0]).to(docs.vectors.dtype),
        token_ids=torch.cat(out_ids) if out_ids else token_ids[:0],
        offsets=offsets_from_lengths(torch.tensor(out_lengths, dtype=torch.long)),
        exact=docs.exact and not pooled_any,
    )


def fixed_count_quality(
    encoder,
    dataset: Dataset,
    docs=None,
    counts: Sequence[int] = DEFAULT_COUNTS,
    pool_factors: Sequence[int] = DEFAULT_POOL_FACTORS,
    measures: Sequence[str] = MEASURES,
    k: int = 100,
    queries: Encoding | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Index size against quality for pool factors and fixed counts of vectors per document.

    Every row searches a :class:`~lirlab.index.flat.FlatIndex` (exact MaxSim) of the same documents:
    pooled at a factor (:func:`lirlab.index.pooling.pool_encoding`, markers kept) or to a fixed count
    (:func:`pool_to_count`). Queries are encoded once.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT or None
        Encodes the queries (and the documents when ``docs`` holds texts).
    dataset : Dataset
        Queries and qrels (its documents too when ``docs`` is None).
    docs : Index, Encoding or documents, optional
        The corpus already indexed or encoded with ``encoder`` (an index gives its :meth:`documents`:
        the encoded vectors for an exact kind).
    counts, pool_factors : sequence of int
        Fixed counts and pool factors to compare (factor 1: the unpooled index; a factor above the
        longest document's length is refused by :func:`~lirlab.index.pooling.pool_encoding`).
    measures : sequence of str
        ir_measures names.
    k : int
        Results per query.
    queries : Encoding, optional
        ``dataset``'s queries already encoded.
    progress : bool
        Show progress bars over the settings and documents.

    Returns
    -------
    pandas.DataFrame
        ``method, setting, vectors_per_doc, vectors, index_bytes, <measures>..., pooling_seconds``: one row
        per setting, ``method`` ``"pool factor f"`` or ``"fixed count n"`` (``setting`` the number),
        ``vectors_per_doc`` the mean vectors a document keeps, ``index_bytes`` what the flat index keeps
        for search (:meth:`~lirlab.index.base.Index.size_bytes`: fp32 vectors and their token ids),
        ``pooling_seconds`` the wall time of pooling the documents and building the index on them.
    """
    index = as_index(dataset if docs is None else docs, encoder, progress=progress)
    encoded = index.documents()
    if queries is None:
        if encoder is None:
            raise ValueError("an encoder is needed to encode the queries (or pass queries=)")
        queries = encoder.encode_queries(dataset.queries)
    settings = [("pool factor", f) for f in pool_factors] + [("fixed count", n) for n in counts]
    rows = []
    for method, value in tqdm(settings, desc="pooling settings", unit="setting", disable=not progress):
        started = time.perf_counter()
        if method == "pool factor":
            pooled = FlatIndex.from_encoding(encoded, pool_factor=value, progress=progress)
        else:
            pooled = FlatIndex(pool_to_count(encoded, value, progress=progress))
        seconds = time.perf_counter() - started
        run = pooled.search(queries, k=min(k, len(pooled)))
        quality = evaluate(run, dataset, list(measures)).set_index("measure")["value"]
        rows.append(
            {
                "method": f"{method} {value}",
                "setting": value,
                "vectors_per_doc": pooled.n_vectors() / max(len(pooled), 1),
                "vectors": pooled.n_vectors(),
                "index_bytes": pooled.size_bytes(),
            }
            | {m: float(quality[m]) for m in measures}
            | {"pooling_seconds": seconds}
        )
        del pooled
    return pd.DataFrame(rows)
