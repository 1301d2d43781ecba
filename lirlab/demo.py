"""``lirlab demo``: the quickstart, headless, on the bundled demo corpus.

Loads the default model (or, offline, the bundled MiniLM weights with a visible notice), indexes the
demo corpus exhaustively, searches its 30 queries, evaluates them, and writes into one folder: the run
(``run.tsv``), the measures (``metrics.csv``, ``per_query.csv``), the token alignment of the first
query's best hit (``alignment.csv`` and ``alignment.png``), how well 1-, 2- and 4-bit residuals
reconstruct the token vectors (``compression.png``), and how nDCG@10 follows ``[MASK]`` query
augmentation (``masks.csv``, ``masks.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lirlab import data
from lirlab.analysis.alignment import align_hit, merge_word_pieces, window
from lirlab.analysis.compression import compressed_indexes, cosine_distributions
from lirlab.analysis.masks import query_maxlen_curve
from lirlab.encoder import DEFAULT_MODEL, ColBERT
from lirlab.evaluate import evaluate, per_query_scores
from lirlab.index.flat import FlatIndex
from lirlab.plots import figure_png
from lirlab.plots.alignment import plot_alignment
from lirlab.plots.compression import plot_cosine_histograms
from lirlab.plots.masks import plot_query_maxlen_curve
from lirlab.results import write_run

MEASURES = ["nDCG@10", "RR@10", "R@100"]
QUERY_MAXLENS = (0, 16, 32, 64)
FIGURE_DPI = 110


def run_demo(model: str | None = None, out: str | Path = "lirlab-demo", device: str | None = None) -> Path:
    """Run the quickstart end to end; returns the output folder."""
    out = Path(out)
    encoder = ColBERT.load(model or DEFAULT_MODEL, device=device, fallback_to_minilm=model is None)
    print(f"model: {encoder}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)  # once the model loaded: a refused one leaves no empty folder
    dataset = data.load("demo")
    index = FlatIndex.build(dataset.docs, encoder)
    run = index.search(dataset.queries, k=100)
    write_run(run, out / "run.tsv", format="tsv")
    metrics = evaluate(run, dataset, MEASURES)
    metrics.to_csv(out / "metrics.csv", index=False)
    per_query_scores(run, dataset, MEASURES).to_csv(out / "per_query.csv", index=False)
    first = run.iloc[0]
    text = next(d.full_text for d in dataset.docs if d.docno == first.docno)
    hit = align_hit(index, first.query, first.docno, doc_text=text)  # labelled as written
    hit.matches().to_csv(out / "alignment.csv", index=False)
    figure = plot_alignment(window(merge_word_pieces(hit)), title=f"{first.query!r} → {first.docno}")
    (out / "alignment.png").write_bytes(figure_png(figure, dpi=FIGURE_DPI))

    indexes = compressed_indexes(index.docs, nbits=(1, 2, 4))
    cosines = cosine_distributions(index.docs, indexes)
    (out / "compression.png").write_bytes(figure_png(plot_cosine_histograms(cosines), dpi=FIGURE_DPI))

    curve = query_maxlen_curve(encoder, dataset, index, query_maxlens=QUERY_MAXLENS, progress=False)
    curve.to_csv(out / "masks.csv", index=False)
    (out / "masks.png").write_bytes(figure_png(plot_query_maxlen_curve(curve), dpi=FIGURE_DPI))

    print(f"{dataset} with {encoder.name}:")
    print(metrics.to_string(index=False))
    print(
        f"wrote the run, measures, alignment of {first.qid!r} -> {first.docno!r}, compression and [MASK] figures to {out}/"
    )
    return out
