"""BM25's knobs: all baked into its score matrix at build time; a search takes none."""

from __future__ import annotations

from lirlab.params import Param

#: The build knobs of BM25 (bm25s bakes them into its score matrix). Defaults: Lucene/Elasticsearch's
#: k1 = 1.2, b = 0.75 (what the BEIR paper's BM25 ran with) and Lucene's IDF.
BUILD_PARAMS: dict[str, Param] = {
    "k1": Param(
        "k1",
        float,
        1.2,
        "Term-frequency saturation: higher lets repeated terms count longer.",
        low=0.0,
        high=100.0,
        quality="",
        aliases="PyTerrier controls bm25.k_1, Anserini/Pyserini --bm25.k1 (default 0.9), bm25s k1",
    ),
    "b": Param(
        "b",
        float,
        0.75,
        "Document-length normalization: 0 none, 1 full.",
        low=0.0,
        high=1.0,
        aliases="PyTerrier controls bm25.b, Anserini/Pyserini --bm25.b (default 0.4), bm25s b",
    ),
    "variant": Param(
        "variant",
        str,
        "lucene",
        "BM25 variant (Kamphuis et al. 2020): its IDF and term-frequency formulas.",
        choices=("lucene", "robertson", "atire", "bm25l", "bm25+"),
        aliases="bm25s method (named variant here: a sweep's method column is the index kind)",
    ),
    "stopwords": Param(
        "stopwords",
        str,
        "english",
        "Stop-word list removed from documents and queries ('none' keeps every word).",
        choices=("english", "none"),
        aliases="PyTerrier stopwords, bm25s stopwords",
    ),
    "stemmer": Param(
        "stemmer",
        str,
        "english",
        "Snowball stemmer (PyStemmer) applied to words, or 'none'.",
        choices=("english", "porter", "none"),
        aliases="PyTerrier stemmer, Anserini -stemmer",
    ),
}

SEARCH_PARAMS: dict[str, Param] = {}
