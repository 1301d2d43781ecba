"""Where one vector per document stops being enough: LIMIT-style collections and the curves on them.

Weller et al. (2025) show that a single ``d``-dimensional embedding per document cannot represent every
top-k set once the collection outgrows what ``d`` allows, and built LIMIT to show it: people who like
things, queries asking who likes one thing, and a core of people in which every pair is the answer to
some query. Their data is not bundled; :func:`limit_collection` writes a collection of the same
structure, offline and seeded, with its size as a knob, and :func:`single_vs_multi_vector` scores one
model's three ways of representing its documents on it as the collection grows:

* ``multi-vector``: every token vector, exhaustive MaxSim (the model as trained);
* ``mean-pooled``: the L2-normalized mean of a text's token vectors, one vector of the model's
  dimension per query and document, dot product;
* ``MUVERA``: the fixed-dimensional encodings of :class:`lirlab.index.muvera.FDE` at each requested
  dimension (Count-Sketch ``d_final``), dot product, no re-ranking.

Examples
--------
>>> collection = limit_collection(n_docs=12, n_core=4, seed=0)
>>> len(collection.docs), len(collection.queries)  # 4 core people: 6 pairs, one query each
(12, 6)
>>> collection.queries[0].text.startswith("Who likes ")
True
>>> sorted(collection.qrels.groupby("query_id").size().unique().tolist())  # two relevant people each
[2]
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.data import Dataset, Document, Query
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.muvera import FDE
from lirlab.params import Param
from lirlab.results import run_frame

N_DOCS = Param("n_docs", int, 1000, "People in the collection (the core and the distractors).", low=2)
N_CORE = Param(
    "n_core", int, 46, "People every pair of whom answers one query (LIMIT: 46, so 1,035 queries).", low=2
)
LIKES = Param(
    "likes", int, 0, "Things each distractor likes (0: as many as a core person, n_core - 1).", low=0
)
SEED = Param("seed", int, 0, "Seeds names, things and their order.")

#: Measures of the curves: LIMIT reports recall at 2 (both relevant people on top) and at 100.
MEASURES = ("R@2", "R@100")

#: Representations :func:`single_vs_multi_vector` compares, in its row order.
REPRESENTATIONS = ("multi-vector", "mean-pooled", "MUVERA")

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def _words(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct made-up words (capitalized), of as few syllables as leave room to draw them."""
    syllables = 2
    while len(_SYLLABLES) ** syllables < 4 * count:
        syllables += 1
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize())
    ordered = sorted(words)  # a set's order follows the per-process string hash: sort before shuffling
    rng.shuffle(ordered)
    return ordered


def limit_collection(
    n_docs: int = N_DOCS.default, n_core: int = N_CORE.default, likes: int = LIKES.default, seed: int = 0
) -> Dataset:
    """A LIMIT-style collection: ``n_docs`` people, of whom ``n_core`` form the core.

    Every pair of core people shares one thing nobody else likes, and one query asks who likes it
    ("Who likes Kalomi?"): its two relevant documents are that pair, so the queries' relevant sets are
    all ``n_core * (n_core - 1) / 2`` pairs of the core. A core person likes the ``n_core - 1`` things
    of their pairs; a distractor likes ``likes`` things no query asks for. Documents are in a seeded
    order; grow the collection with :meth:`~lirlab.data.Dataset.slice` (as :func:`single_vs_multi_vector`
    does), which keeps the core and the first distractors.

    Raises
    ------
    ValueError
        A knob outside its range, or a core larger than the collection.
    """
    n_docs, n_core, likes, seed = (
        N_DOCS.validate(n_docs),
        N_CORE.validate(n_core),
        LIKES.validate(likes),
        SEED.validate(seed),
    )
    if n_core > n_docs:
        raise ValueError(f"n_core ({n_core}) must be at most n_docs ({n_docs}): the core are people too")
    likes = likes or n_core - 1
    rng = random.Random(seed)
    pairs = list(itertools.combinations(range(n_core), 2))
    distractors = n_docs - n_core
    things = _words(rng, len(pairs) + max(likes * 2, likes + 1) * (distractors > 0))
    asked, unasked = things[: len(pairs)], things[len(pairs) :]
    names, surnames = _words(rng, n_docs), _words(rng, n_docs)
    liked: list[list[str]] = [[] for _ in range(n_docs)]
    for thing, (a, b) in zip(asked, pairs):
        liked[a].append(thing)
        liked[b].append(thing)
    for person in range(n_core, n_docs):
        liked[person] = rng.sample(unasked, likes)
    order = list(range(n_docs))
    rng.shuffle(order)
    docno = {person: f"p{rank:06d}" for rank, person in enumerate(order)}
    docs = []
    for person in order:
        rng.shuffle(liked[person])
        things_text = ", ".join(liked[person][:-1]) + f" and {liked[person][-1]}"
        docs.append(Document(docno[person], f"{names[person]} {surnames[person]} likes {things_text}."))
    queries = tuple(Query(f"q{i:05d}", f"Who likes {thing}?") for i, thing in enumerate(asked))
    qrels = pd.DataFrame(
        [(q.qid, docno[person], 1) for q, pair in zip(queries, pairs) for person in pair],
        columns=["query_id", "doc_id", "relevance"],
    )
    return Dataset(f"limit-{n_docs}-{n_core}-seed{seed}", tuple(docs), queries, qrels)


def mean_pooled(encoding: Encoding) -> torch.Tensor:
    """``[n, dim]`` the L2-normalized mean of each text's vectors (zeros for a text without any)."""
    lengths = encoding.lengths
    owner = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    sums = torch.zeros(len(lengths), encoding.vectors.shape[1]).index_add_(0, owner, encoding.vectors.float())
    return torch.nn.functional.normalize(sums, dim=-1)


def _single_vector_run(queries: Encoding, query_vectors, doc_vectors, docnos, texts, k: int) -> pd.DataFrame:
    scores = query_vectors @ doc_vectors.T
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    hits = list(zip(top.indices, top.values))
    return run_frame(list(queries.ids), texts, hits, docnos)


def single_vs_multi_vector(
    encoder,
    collection: Dataset,
    sizes: Sequence[int],
    fde_dims: Sequence[int] = (512, 2048, 8192),
    k: int = 100,
    progress: bool = True,
) -> pd.DataFrame:
    """Recall at 2 and 100 of three representations of the same model's vectors as the collection grows.

    The core's documents are always kept; the first ``size - n_core`` distractors (collection order)
    join them at each size (:meth:`~lirlab.data.Dataset.slice`). Documents and queries are encoded
    once.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
    collection : Dataset
        From :func:`limit_collection` (any collection whose relevant documents are all judged works).
    sizes : sequence of int
        Collection sizes, each at least the number of judged documents and at most the collection's.
    fde_dims : sequence of int
        MUVERA dimensions (Count-Sketch ``d_final``).
    k : int
        Depth of every run (at least 100 for ``R@100`` to mean what it says).
    progress : bool
        Show a progress bar over the sizes.

    Returns
    -------
    pandas.DataFrame
        ``n_docs, representation, dim, R@2, R@100, truncated_docs``: one row per size and
        representation (and MUVERA dimension); ``truncated_docs`` counts the documents the encoder cut
        at ``doc_maxlen`` (raise it with ``encoder.with_config(doc_maxlen=...)`` when not 0: a cut
        document may lose the thing a query asks for).
    """
    judged = set(collection.qrels.doc_id)
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < len(judged) or sizes[-1] > len(collection.docs):
        raise ValueError(
            f"sizes must lie between the judged documents ({len(judged)}) and the collection's "
            f"({len(collection.docs)}), got {sizes}"
        )
    texts = [q.text for q in collection.queries]
    queries = encoder.encode_queries(collection.queries)
    docs = encoder.encode_documents(collection.docs, progress=progress)
    position = {docno: i for i, docno in enumerate(docs.ids)}
    query_means, doc_means = mean_pooled(queries), mean_pooled(docs)
    fdes = {d: FDE(docs.vectors.shape[1], r_reps=20, k_sim=5, d_proj=16, d_final=d) for d in fde_dims}
    fde_queries = {d: fde.encode(queries, "query") for d, fde in fdes.items()}
    fde_docs = {d: fde.encode(docs, "document") for d, fde in fdes.items()}
    rows = []
    for size in tqdm(sizes, desc="collection sizes", unit="size", disable=not progress):
        subset = collection.slice(max_docs=size)
        keep = torch.tensor([position[d.docno] for d in subset.docs])
        docnos = [docs.ids[i] for i in keep.tolist()]
        exact = FlatIndex(docs.select(keep.tolist())).search(queries, k=min(k, size))
        runs = {("multi-vector", docs.vectors.shape[1]): exact}
        runs["mean-pooled", doc_means.shape[1]] = _single_vector_run(
            queries, query_means, doc_means[keep], docnos, texts, k
        )
        for d in fde_dims:
            runs["MUVERA", d] = _single_vector_run(
                queries, fde_queries[d], fde_docs[d][keep], docnos, texts, k
            )
        truncated = sum(docs.truncated[i] for i in keep.tolist())
        for (representation, dim), run in runs.items():
            quality = evaluate(run, subset, list(MEASURES)).set_index("measure")["value"]
            rows.append(
                {"n_docs": size, "representation": representation, "dim": dim}
                | {m: float(quality[m]) for m in MEASURES}
                | {"truncated_docs": truncated}
            )
    return pd.DataFrame(rows)
