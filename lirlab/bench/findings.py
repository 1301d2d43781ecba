"""``lirlab bench findings``: the findings studies of issue 30, one per run, saved with the machine described.

Each study is one entry of :data:`STUDIES`: a function whose keyword arguments are its knobs (their
defaults are the full run's, and each becomes a command-line option) and which returns the results as
JSON-able data, and a function drawing those results (fresh, or read back from the file). A run writes
``findings-<study>[-<dataset>][-<label>].json`` (the machine described, tables also as CSV) and the
figure beside it as PNG, by default under ``benchmarks/results/<this machine>`` (:func:`machine_folder`):

* ``limit`` — one LIMIT-style collection grown by distractors, recall at 2 and 100 of multi-vector
  MaxSim, the mean-pooled vector and MUVERA's FDEs, per model
  (:func:`lirlab.analysis.limits.single_vs_multi_vector`);
* ``query-length`` — whole queries against their first 4, 8 and 16 word pieces, padded with ``[MASK]``
  or not, per query and per length bin (:func:`lirlab.analysis.lengths.query_length_effect`);
* ``mask-gap`` — the ``[MASK]`` padding gap (padded - unpadded quality) of a training run's start model
  and of every snapshot (:func:`lirlab.analysis.masks.padding_gap`); the file is rewritten after each
  snapshot, so a partial run reports what it measured;
* ``xtr`` — XTR-trained against ColBERT-trained models: exhaustive and XTR-style quality, PLAID and
  WARP sweeps, centroid informativeness (:func:`lirlab.analysis.xtr.compare_models`);
* ``warp-knobs`` — WARP's ``nprobe`` and ``t_prime`` swept over collections, the defaults chosen on some
  and checked on the others (:func:`lirlab.analysis.xtr.choose_warp_defaults`);
* ``doc-length`` — every query against every document: MaxSim scores by document length, relevant or
  not, their rank correlation with length, and the quality of MeanMaxSim and MaxSim / doc_tokens^a
  against MaxSim (:mod:`lirlab.analysis.doc_lengths`);
* ``fixed-count`` — every document pooled to a fixed count of vectors beside pool factors, index size
  against quality (:func:`lirlab.analysis.fixed_count.fixed_count_quality`).

The full runs behind ``benchmarks/results/amd-zen3-avx2/findings-*.json``::

    lirlab bench findings --study limit
    lirlab bench findings --study query-length
    lirlab bench findings --study query-length --label trained \\
        --model benchmarks/cache/train/mask32/checkpoint-000170/stanford
    lirlab bench findings --study mask-gap --every 2
    lirlab bench findings --study doc-length
    lirlab bench findings --study doc-length --dataset ../shared/data/nfcorpus
    lirlab bench findings --study doc-length --label trained --doc-maxlen 180 \\
        --model benchmarks/cache/train/mask32/checkpoint-000170/stanford
    lirlab bench findings --study doc-length --label trained --doc-maxlen 180 \\
        --model benchmarks/cache/train/mask32/checkpoint-000170/stanford --dataset ../shared/data/nfcorpus
    lirlab bench findings --study doc-length --label trained-doc128 \\
        --model benchmarks/cache/train/mask32/checkpoint-000170/stanford
    lirlab bench findings --study fixed-count
    lirlab bench findings --study fixed-count --dataset ../shared/data/nfcorpus

(``doc-length`` at the untrained model's own ``doc_maxlen``, 180; the trained checkpoint's own is 128,
hence ``--doc-maxlen 180`` for the runs compared with the untrained ones.)

A new study is one more entry of STUDIES here (its run, its figure, its file name, its knobs' help)
and one figure in lirlab.plots.findings.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lirlab.benchmark_model import BENCH_MODEL, benchmark_model

#: The benchmark datasets' workplace copy: ``../shared/data`` beside this checkout.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
#: Where results go, relative to the repository root; each machine has a folder of its own in it.
RESULTS = Path("benchmarks") / "results"
#: The 20-minute ``[MASK]``-padded training run's last snapshot (``lirlab bench train``'s mask32 recipe).
TRAINED_20_MIN = "benchmarks/cache/train/mask32/checkpoint-000170/stanford"
#: The long ``[MASK]``-padded training run whose snapshots the padding gap follows.
LONG_RUN = "benchmarks/cache/train/mask32-long"


# --------------------------------------------------------------------------------------------- studies


def _load_dataset(dataset: str, split: str, max_queries: int, max_docs: int):
    from lirlab import data

    loaded = data.load(dataset, split=split)
    if max_queries or max_docs:
        loaded = loaded.slice(max_queries=max_queries or None, max_docs=max_docs or None)
    return loaded


def _named_models(models: Sequence[str]) -> dict[str, str]:
    """``["name=path", ...]`` (or bare paths, named by themselves) as ``{name: path}``."""
    named = {}
    for entry in models:
        name, _, path = entry.partition("=") if "=" in entry else (entry, "", entry)
        if not name or not path:
            raise ValueError(f"a model is NAME=PATH or PATH, got {entry!r}")
        if name in named:
            raise ValueError(f"two models are named {name!r}")
        named[name] = path
    if not named:
        raise ValueError("name at least one model")
    return named


def limit_study(
    models: Sequence[str] = (f"untrained={BENCH_MODEL}", f"trained (mask32, 20 min)={TRAINED_20_MIN}"),
    core: int = 46,
    sizes: Sequence[int] = (100, 300, 1000, 3000),
    fde_dims: Sequence[int] = (128, 512, 2048, 8192),
    seed: int = 0,
    doc_maxlen: int = 512,
) -> dict[str, Any]:
    """Study 2 (LIMIT): one collection of ``max(sizes)`` people around a core of ``core``, grown to each
    size by distractors; recall at 2 and 100 of each representation, per model.

    Documents are encoded at ``doc_maxlen`` (512: no liked thing is cut; 0: each model's own). Returns
    ``collection, queries, core, seed, doc_maxlen, models`` with, per model name, ``path, seconds, curve``
    (the rows of :func:`~lirlab.analysis.limits.single_vs_multi_vector`).
    """
    from lirlab.analysis.limits import limit_collection, single_vs_multi_vector
    from lirlab.encoder import ColBERT

    named = _named_models(models)
    collection = limit_collection(n_docs=max(sizes), n_core=core, seed=seed)
    results: dict[str, Any] = {
        "collection": collection.name,
        "queries": len(collection.queries),
        "core": core,
        "seed": seed,
        "doc_maxlen": doc_maxlen,
        "models": {},
    }
    for name, path in named.items():
        start = time.perf_counter()
        encoder = ColBERT.load(benchmark_model(path))
        if doc_maxlen:
            encoder = encoder.with_config(doc_maxlen=doc_maxlen)
        curve = single_vs_multi_vector(encoder, collection, sizes, fde_dims, progress=False)
        results["models"][name] = {
            "path": path,
            "seconds": time.perf_counter() - start,
            "curve": curve.to_dict("records"),
        }
        results["device"] = str(encoder.device)
    return results


def query_length_study(
    model: str = BENCH_MODEL,
    dataset: str = str(SHARED_DATA / "scifact"),
    split: str = "test",
    cuts: Sequence[int] = (4, 8, 16),
    padding_to: int = 32,
    measure: str = "nDCG@10",
    cache: str = "benchmarks/cache",
    max_queries: int = 0,
    max_docs: int = 0,
) -> dict[str, Any]:
    """Study 3 (query length): every query whole and cut to its first ``cuts`` word pieces, padded with
    ``[MASK]`` to ``padding_to`` or not, searched exhaustively.

    Returns ``dataset, model, queries, cuts, padding_to, measure`` and three tables: ``rows`` (one per
    query, variant and padding: :func:`~lirlab.analysis.lengths.query_length_effect`), ``by_length``
    (their means per length bin: :func:`~lirlab.analysis.lengths.by_length`) and ``by_variant`` (their
    means per variant and padding).
    """
    from lirlab.analysis.lengths import by_length, query_length_effect
    from lirlab.bench.record import cached_flat_index
    from lirlab.encoder import ColBERT

    encoder = ColBERT.load(benchmark_model(model))
    loaded = _load_dataset(dataset, split, max_queries, max_docs)
    index = cached_flat_index(loaded, encoder, cache or None)
    effect = query_length_effect(
        encoder, loaded, index, cuts=cuts, padding_to=padding_to, measure=measure, progress=False
    )
    means = effect.groupby(["variant", "padded"], sort=False)[[measure, "score_spread", "top_score"]].mean()
    return {
        "dataset": loaded.name,
        "model": model,
        "queries": len(loaded.queries),
        "cuts": list(cuts),
        "padding_to": padding_to,
        "measure": measure,
        "by_length": by_length(effect).to_dict("records"),
        "by_variant": means.reset_index().to_dict("records"),
        "rows": effect.to_dict("records"),
        "device": str(encoder.device),
    }


def mask_gap_study(
    run: str = LONG_RUN,
    start: str = BENCH_MODEL,
    dataset: str = str(SHARED_DATA / "nfcorpus"),
    split: str = "test",
    every: int = 1,
    steps: Sequence[int] = (),
    padding_to: int = 32,
    measures: Sequence[str] = ("nDCG@10", "R@100"),
    curve_maxlens: Sequence[int] = (8, 16, 32, 48, 64),
    max_queries: int = 0,
    max_docs: int = 0,
    save: Callable[[dict], object] | None = None,
) -> dict[str, Any]:
    """Study 4 (``[MASK]`` padding gap): the start model (step 0) and every ``every``-th
    ``checkpoint-<step>`` of training run ``run`` (``""``: the start model only), or only the snapshots
    of ``steps``, each scored with queries padded to ``padding_to`` and unpadded, documents re-encoded
    by each snapshot; and each snapshot's ``query_maxlen`` curve at ``curve_maxlens`` (``[MASK]``
    padding "fixed" and "min"), which shows whether the curve grows a rise and a plateau with training.

    Returns ``run, start, dataset, queries, every, padding_to, rows``: one row per snapshot, ``step,
    train_seconds_wall`` (the training time its checkpoint records), the
    :func:`~lirlab.analysis.masks.padding_gap` columns, ``curve`` (the rows of
    :func:`~lirlab.analysis.masks.query_maxlen_curve`; absent without ``curve_maxlens``) and ``seconds``
    (to measure it). ``save`` is called with the results after every snapshot.
    """
    from lirlab.analysis.masks import as_index, padding_gap, query_maxlen_curve
    from lirlab.encoder import ColBERT
    from lirlab.train.checkpoints import load_checkpoint
    from lirlab.train.loop import checkpoints

    if every < 1:
        raise ValueError(f"every must be at least 1 (every snapshot), got {every}")
    if run and not Path(run).is_dir():
        raise FileNotFoundError(f"{run}: no such training run folder (lirlab train --out writes one)")
    loaded = _load_dataset(dataset, split, max_queries, max_docs)
    saved = [(int(folder.name.split("-")[1]), folder) for folder in (checkpoints(run) if run else [])]
    if steps:
        wanted = {int(step) for step in steps}
        missing = sorted(wanted - {step for step, _ in saved} - {0})
        if missing:
            raise ValueError(
                f"{run} has no checkpoint of step(s) {missing}; it has {[step for step, _ in saved]}"
            )
        snapshots = [(0, None)] * (0 in wanted) + [(step, folder) for step, folder in saved if step in wanted]
    else:
        snapshots = [(0, None)] + saved[::every]
    results: dict[str, Any] = {
        "run": run,
        "start": start,
        "dataset": loaded.name,
        "queries": len(loaded.queries),
        "every": every,
        "padding_to": padding_to,
        "rows": [],
    }
    for step, folder in snapshots:
        began = time.perf_counter()
        encoder = ColBERT.load(benchmark_model(start)) if folder is None else load_checkpoint(folder)
        meta = {} if folder is None else json.loads((folder / "metadata.json").read_text())
        row = {"step": step, "train_seconds_wall": meta.get("trainer_state", {}).get("train_seconds", 0.0)}
        index = as_index(loaded, encoder, progress=False)
        row |= padding_gap(encoder, loaded, index, padding_to=padding_to, measures=measures)
        if curve_maxlens:
            curve = query_maxlen_curve(
                encoder,
                loaded,
                index,
                query_maxlens=curve_maxlens,
                attend=(False,),
                ablate_at=(),
                measures=measures,
                progress=False,
                padding=("fixed", "min"),
            )
            row["curve"] = curve.to_dict("records")
        row["seconds"] = time.perf_counter() - began
        results["rows"].append(row)
        results["device"] = str(encoder.device)
        if save is not None:
            save(results)
    return results


#: The XTR-trained counterpart of :data:`TRAINED_20_MIN`: the same start, data, schedule and steps.
XTR_20_MIN = "benchmarks/cache/train/xtr32/checkpoint-000170/stanford"


def xtr_study(
    models: Sequence[str] = (f"ColBERT={TRAINED_20_MIN}", f"XTR={XTR_20_MIN}"),
    dataset: str = str(SHARED_DATA / "nfcorpus"),
    split: str = "test",
    k_primes: Sequence[int] = (1000, 4000, 16000),
    n_timed: int = 100,
    cache: str = "benchmarks/cache",
    max_queries: int = 0,
    max_docs: int = 0,
) -> dict[str, Any]:
    """Study 1 (XTR against ColBERT): per model, exhaustive MaxSim and XTR-style scoring at each ``k'``,
    a PLAID and a WARP sweep on one index of the collection, and how informative its centroid-only
    scores are (:func:`lirlab.analysis.xtr.compare_models`).

    Returns ``dataset, queries, models`` (name → path), ``quality``, ``sweeps`` and ``centroids`` (rows),
    and ``centroid_means`` (per model: mean Spearman, recall of the exhaustive top 10 among the
    candidates and among those kept).
    """
    from lirlab.analysis.xtr import compare_models
    from lirlab.bench.record import cached_flat_index
    from lirlab.encoder import ColBERT

    named = _named_models(models)
    loaded = _load_dataset(dataset, split, max_queries, max_docs)
    encoders = {name: ColBERT.load(benchmark_model(path)) for name, path in named.items()}
    docs = {
        name: cached_flat_index(loaded, encoder, Path(cache, _slug(name)) if cache else None)
        for name, encoder in encoders.items()
    }
    tables = compare_models(
        encoders, loaded, docs=docs, k_primes=k_primes, n_timed=n_timed or None, progress=False
    )
    means = (
        tables["centroids"]
        .groupby("model", sort=False)[["spearman", "recall_candidates", "recall_kept"]]
        .mean()
    )
    return {
        "dataset": loaded.name,
        "queries": len(loaded.queries),
        "models": named,
        "quality": tables["quality"].to_dict("records"),
        "sweeps": tables["sweeps"].to_dict("records"),
        "centroids": tables["centroids"].to_dict("records"),
        "centroid_means": means.reset_index().to_dict("records"),
        "device": str(next(iter(encoders.values())).device),
    }


def warp_knobs_study(
    model: str = BENCH_MODEL,
    datasets: Sequence[str] = tuple(str(SHARED_DATA / name) for name in ("scifact", "nfcorpus", "vaswani")),
    chosen_on: Sequence[str] = ("scifact", "nfcorpus"),
    nprobes: Sequence[int] = (4, 8, 16, 32, 64),
    t_prime_shares: Sequence[float] = (0.0025, 0.01, 0.04),
    min_recall: float = 0.95,
    n_timed: int = 100,
    cache: str = "benchmarks/cache",
) -> dict[str, Any]:
    """WARP's defaults from data (study 1): every ``nprobe`` and ``t_prime`` share on each collection's
    PLAID index (:func:`lirlab.analysis.xtr.warp_knob_sweep`), the cheapest setting keeping
    ``min_recall`` of the exhaustive top 10 on the ``chosen_on`` collections, and how it does on the
    others (:func:`~lirlab.analysis.xtr.choose_warp_defaults`).

    The exhaustive top 10 is exact MaxSim over PLAID's reconstruction of the vectors, which WARP searches
    too: its knobs trade WARP's own pruning, not the codec's loss, which PLAID's build knobs set.

    Returns ``model, min_recall, chosen_on, rows, chosen`` (``nprobe, t_prime_share``; None when no
    setting reaches ``min_recall``, with ``error`` saying so) and ``check`` (the chosen setting's row on
    every collection, ``held_out`` marking the ones it was not chosen on).
    """
    from lirlab.analysis.xtr import choose_warp_defaults, warp_knob_sweep
    from lirlab.bench.record import cached_flat_index
    from lirlab.encoder import ColBERT
    from lirlab.index.plaid import PlaidIndex

    encoder = ColBERT.load(benchmark_model(model))
    collections = {}
    for path in datasets:
        loaded = _load_dataset(path, "test", 0, 0)
        flat = cached_flat_index(loaded, encoder, cache or None)
        plaid = PlaidIndex.from_encoding(flat.documents(), encoder=encoder)
        collections[loaded.name] = (plaid, encoder.encode_queries(loaded.queries), loaded)
    rows = warp_knob_sweep(collections, nprobes, t_prime_shares, n_timed=n_timed or None, progress=False)
    results = {
        "model": model,
        "min_recall": min_recall,
        "chosen_on": list(chosen_on),
        "rows": rows.to_dict("records"),
        "chosen": None,
        "check": [],
        "device": str(encoder.device),
    }
    try:
        chosen, check = choose_warp_defaults(rows, chosen_on, min_recall)
    except ValueError as error:  # the sweep is kept: it shows how far the collections are from the target
        results["error"] = str(error)
        return results
    return results | {"chosen": chosen, "check": check.to_dict("records")}


def _model_cache(cache: str, model: str, doc_maxlen: int = 0) -> Path | None:
    """Where :func:`~lirlab.bench.record.cached_flat_index` keeps a collection's vectors for ``model``:
    ``cache`` itself for :data:`~lirlab.benchmark_model.BENCH_MODEL` at its own ``doc_maxlen``, a
    subfolder per other model (and per ``doc_maxlen`` given), so that two encoders never take turns
    re-encoding into one folder; None without a cache (``''``).

    >>> str(_model_cache("benchmarks/cache", "runs/a/stanford", doc_maxlen=180))
    'benchmarks/cache/runs-a-stanford/doc-maxlen-180'
    >>> str(_model_cache("benchmarks/cache", BENCH_MODEL)), _model_cache("", "runs/a")
    ('benchmarks/cache', None)
    """
    if not cache:
        return None
    folder = Path(cache)
    if model != BENCH_MODEL:
        folder = folder / _slug(model)
    if doc_maxlen:
        folder = folder / f"doc-maxlen-{doc_maxlen}"
    return folder


#: :data:`lirlab.analysis.doc_lengths.DOC_LENGTH_ALPHAS` (copied: the help must not import torch).
DOC_LENGTH_ALPHAS = (0.02, 0.05, 0.1)
#: :data:`lirlab.analysis.fixed_count.DEFAULT_COUNTS` and ``DEFAULT_POOL_FACTORS`` (copied, likewise).
FIXED_COUNTS, POOL_FACTORS = (4, 8, 16, 32), (1, 2, 3, 4, 5, 10, 20, 40)


def doc_length_study(
    model: str = BENCH_MODEL,
    dataset: str = str(SHARED_DATA / "scifact"),
    split: str = "test",
    doc_maxlen: int = 0,
    alphas: Sequence[float] = DOC_LENGTH_ALPHAS,
    measures: Sequence[str] = ("nDCG@10", "R@100"),
    cache: str = "benchmarks/cache",
    max_queries: int = 0,
    max_docs: int = 0,
) -> dict[str, Any]:
    """Study 3 (document length): do longer documents score higher under MaxSim whatever their
    relevance, and does normalising for length (MeanMaxSim, MaxSim / doc_tokens^a) change the ranking?

    Every query scored against every document (:func:`lirlab.analysis.doc_lengths.doc_length_scores`
    with ``k=None``), documents encoded up to ``doc_maxlen`` tokens (0: the model's own). Returns
    ``dataset, model, doc_maxlen`` (what encoded the documents), ``queries, documents, doc_tokens``
    (mean, median, max, truncated share), ``query_tokens, alphas, measures`` and four tables:
    ``quality`` (:func:`~lirlab.analysis.doc_lengths.length_normalised_quality`), ``correlation``
    (:func:`~lirlab.analysis.doc_lengths.length_score_correlation`), ``by_length``
    (:func:`~lirlab.analysis.doc_lengths.score_by_doc_length`) and ``rows``: each query's top 10 and its
    relevant documents (the whole table is a million rows on SciFact).
    """
    from lirlab.analysis.doc_lengths import (
        doc_length_scores,
        length_normalised_quality,
        length_score_correlation,
        score_by_doc_length,
    )
    from lirlab.bench.record import cached_flat_index
    from lirlab.encoder import ColBERT

    encoder = ColBERT.load(benchmark_model(model))
    if doc_maxlen:
        encoder = encoder.with_config(doc_maxlen=doc_maxlen)
    loaded = _load_dataset(dataset, split, max_queries, max_docs)
    index = cached_flat_index(loaded, encoder, _model_cache(cache, model, doc_maxlen))
    rows = doc_length_scores(encoder, loaded, index, k=None, progress=False)
    per_doc = rows.drop_duplicates("docno")
    return {
        "dataset": loaded.name,
        "model": model,
        "doc_maxlen": index.model.get("doc_maxlen"),  # what encoded the documents
        "queries": int(rows.qid.nunique()),
        "documents": len(index),
        "doc_tokens": {
            "mean": float(per_doc.doc_tokens.mean()),
            "median": float(per_doc.doc_tokens.median()),
            "max": int(per_doc.doc_tokens.max()),
            "truncated_share": float(per_doc.truncated.mean()),
        },
        "query_tokens": sorted(int(n) for n in rows.query_tokens.unique()),
        "alphas": list(alphas),
        "measures": list(measures),
        "quality": length_normalised_quality(rows, loaded, alphas=alphas, measures=measures).to_dict(
            "records"
        ),
        "correlation": length_score_correlation(rows).to_dict("records"),
        "by_length": score_by_doc_length(rows).to_dict("records"),
        "rows": rows[(rows["rank"] <= 10) | rows.relevant].to_dict("records"),
        "device": str(encoder.device),
    }


def fixed_count_study(
    model: str = BENCH_MODEL,
    dataset: str = str(SHARED_DATA / "scifact"),
    split: str = "test",
    counts: Sequence[int] = FIXED_COUNTS,
    pool_factors: Sequence[int] = POOL_FACTORS,
    measures: Sequence[str] = ("nDCG@10", "R@100"),
    cache: str = "benchmarks/cache",
    max_queries: int = 0,
    max_docs: int = 0,
) -> dict[str, Any]:
    """Study 3 (fixed-count documents, ConstBERT's idea without its training): every document pooled to
    each of ``counts`` vectors, beside each pool factor (the larger ones reach the same index sizes),
    index size against quality, exact MaxSim over each pooled flat index.

    Returns ``dataset, model, doc_maxlen, queries, documents, measures`` and ``rows``
    (:func:`lirlab.analysis.fixed_count.fixed_count_quality`: one per setting).
    """
    from lirlab.analysis.fixed_count import fixed_count_quality
    from lirlab.bench.record import cached_flat_index
    from lirlab.encoder import ColBERT

    encoder = ColBERT.load(benchmark_model(model))
    loaded = _load_dataset(dataset, split, max_queries, max_docs)
    docs = cached_flat_index(loaded, encoder, _model_cache(cache, model))
    table = fixed_count_quality(
        encoder, loaded, docs, counts=counts, pool_factors=pool_factors, measures=measures, progress=False
    )
    return {
        "dataset": loaded.name,
        "model": model,
        "doc_maxlen": docs.model.get("doc_maxlen"),
        "queries": len(loaded.queries),
        "documents": len(loaded.docs),
        "measures": list(measures),
        "rows": table.to_dict("records"),
        "device": str(encoder.device),
    }


# --------------------------------------------------------------------------------------------- figures


def limit_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_limit` of a ``limit`` study's results, one row per model."""
    from lirlab.plots.findings import plot_limit

    return plot_limit({name: model["curve"] for name, model in results["models"].items()})


def query_length_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_query_length` of a ``query-length`` study's results."""
    from lirlab.plots.findings import plot_query_length

    figure = plot_query_length(
        results["by_length"],
        results["by_variant"],
        measure=results.get("measure", "nDCG@10"),
        padded_label=f"padded with [MASK] to {results.get('padding_to', 32)}",
    )
    figure.suptitle(
        f"{results['dataset']}, {results['queries']} queries, model {results['model']}", fontsize=10
    )
    return figure


def mask_gap_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_padding_gap` of a ``mask-gap`` study's rows."""
    from lirlab.plots.findings import plot_padding_gap

    figure = plot_padding_gap(results["rows"])
    figure.suptitle(
        f"{results['dataset']}, {results['queries']} queries, run {results['run'] or '(none)'}", fontsize=10
    )
    return figure


def xtr_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_xtr` of an ``xtr`` study's results."""
    from lirlab.plots.findings import plot_xtr

    figure = plot_xtr(results["quality"], results["sweeps"], results["centroids"])
    figure.suptitle(f"{results['dataset']}, {results['queries']} queries", fontsize=10)
    return figure


def warp_knobs_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_warp_knobs` of a ``warp-knobs`` study's results."""
    from lirlab.plots.findings import plot_warp_knobs

    figure = plot_warp_knobs(results["rows"], results["chosen"])
    figure.suptitle(
        f"WARP knobs, model {results['model']}; chosen on {', '.join(results['chosen_on'])}", fontsize=10
    )
    return figure


def _model_name(results: Mapping[str, Any]) -> str:
    model = results.get("model")
    return f"model {model}" + (" (untrained)" if model == BENCH_MODEL else "")


def doc_length_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_doc_length` of a ``doc-length`` study's results."""
    from lirlab.plots.findings import plot_doc_length

    figure = plot_doc_length(
        results["by_length"], results["quality"], measure=results.get("measures", ["nDCG@10"])[0]
    )
    figure.suptitle(
        f"{results['dataset']}, {results['queries']} queries, {results['documents']:,} documents encoded "
        f"at doc_maxlen {results.get('doc_maxlen')}\n{_model_name(results)}",
        fontsize=10,
    )
    return figure


def fixed_count_figure(results: Mapping[str, Any]):
    """:func:`lirlab.plots.findings.plot_fixed_count` of a ``fixed-count`` study's rows."""
    from lirlab.plots.findings import plot_fixed_count

    figure = plot_fixed_count(results["rows"], measures=results.get("measures"))
    figure.suptitle(
        f"{results['dataset']}, {results['queries']} queries, {results['documents']:,} documents\n"
        f"{_model_name(results)}",
        fontsize=10,
    )
    return figure


# -------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Study:
    """One findings study: what it runs, how its results are drawn, where they are written.

    Attributes
    ----------
    summary : str
        One line: what the study measures.
    run : callable
        Keyword arguments only, each a knob with the full run's default (``save``, if it takes one, is
        called with partial results); returns JSON-able results.
    figure : callable
        Results (as returned, or read back from the file) to a :class:`matplotlib.figure.Figure`.
    file : str
        The results' file name without suffix; ``{key}`` is filled with the results' string ``key``.
    knobs : mapping of str to str
        Every knob of ``run`` and its help (the command-line option ``--<knob>``).
    """

    summary: str
    run: Callable[..., dict]
    figure: Callable[[Mapping[str, Any]], Any]
    file: str
    knobs: Mapping[str, str]


_DATASET = "a BEIR folder, 'demo' or an ir_datasets id"
_SLICE = "keep the first N queries (0: all), with every document judged for them"
_CACHE = "where encoded corpora are kept between runs ('': encode every time)"
_DOC_MAXLEN = "document length (tokens) the models encode documents at (0: each model's own)"

#: The studies, by the name ``--study`` takes. A new study is one entry here and a figure in
#: :mod:`lirlab.plots.findings`.
STUDIES: dict[str, Study] = {
    "limit": Study(
        summary="LIMIT-style collections: multi-vector MaxSim against mean-pooled and MUVERA vectors as the "
        "collection grows",
        run=limit_study,
        figure=limit_figure,
        file="findings-limit",
        knobs={
            "models": "the models compared, each NAME=PATH (or a PATH)",
            "core": "people every pair of whom answers one query (LIMIT: 46, so 1,035 queries)",
            "sizes": "collection sizes (people), each at least the core",
            "fde_dims": "MUVERA dimensions (Count-Sketch d_final)",
            "seed": "seeds the collection's names, things and order",
            "doc_maxlen": _DOC_MAXLEN + "; limit's 512 cuts no liked thing",
        },
    ),
    "query-length": Study(
        summary="whole queries against their first n word pieces, padded with [MASK] or not",
        run=query_length_study,
        figure=query_length_figure,
        file="findings-query-length-{dataset}",
        knobs={
            "model": "the model",
            "dataset": _DATASET,
            "split": "qrels split of a BEIR folder",
            "cuts": "word pieces the cut variants keep",
            "padding_to": "query_maxlen the padded queries are padded with [MASK] to",
            "measure": "the ir_measures name of the quality measured",
            "cache": "where encoded corpora are kept between runs ('': encode every time)",
            "max_queries": _SLICE,
            "max_docs": "keep about N documents (0: all), the judged ones first",
        },
    ),
    "xtr": Study(
        summary="XTR-trained against ColBERT-trained: exhaustive and XTR-style quality, PLAID and WARP sweeps, "
        "centroid informativeness",
        run=xtr_study,
        figure=xtr_figure,
        file="findings-xtr-{dataset}",
        knobs={
            "models": "the models compared, each NAME=PATH (or a PATH)",
            "dataset": _DATASET,
            "split": "qrels split of a BEIR folder",
            "k_primes": "XTR's k' (tokens each query token retrieves) for XTR-style scoring",
            "n_timed": "queries timed per knob setting (0: all)",
            "cache": "where encoded corpora are kept between runs ('': encode every time)",
            "max_queries": _SLICE,
            "max_docs": "keep about N documents (0: all), the judged ones first",
        },
    ),
    "warp-knobs": Study(
        summary="WARP's nprobe and t_prime share swept over collections; the defaults chosen on some, checked "
        "on the others",
        run=warp_knobs_study,
        figure=warp_knobs_figure,
        file="findings-warp-knobs",
        knobs={
            "model": "the model",
            "datasets": "the collections (BEIR folders or ids), searched with their test split",
            "chosen_on": "the collections (by name) the defaults are chosen on; the others check them",
            "nprobes": "nprobe values",
            "t_prime_shares": "t_prime values as shares of the index's tokens",
            "min_recall": "least share of the exhaustive top 10 the chosen setting keeps on each collection",
            "n_timed": "queries timed per knob setting (0: all)",
            "cache": "where encoded corpora are kept between runs ('': encode every time)",
        },
    ),
    "doc-length": Study(
        summary="document length and MaxSim: scores by length, relevant or not, and MeanMaxSim and "
        "MaxSim / doc_tokens^a against MaxSim",
        run=doc_length_study,
        figure=doc_length_figure,
        file="findings-doc-length-{dataset}",
        knobs={
            "model": "the model",
            "dataset": _DATASET,
            "split": "qrels split of a BEIR folder",
            "doc_maxlen": _DOC_MAXLEN,
            "alphas": "exponents a of the normalisation MaxSim / doc_tokens^a (fixed before any run)",
            "measures": "ir_measures names",
            "cache": _CACHE,
            "max_queries": _SLICE,
            "max_docs": "keep about N documents (0: all), the judged ones first",
        },
    ),
    "fixed-count": Study(
        summary="every document pooled to a fixed count of vectors, beside pool factors: index size "
        "against quality",
        run=fixed_count_study,
        figure=fixed_count_figure,
        file="findings-fixed-count-{dataset}",
        knobs={
            "model": "the model",
            "dataset": _DATASET,
            "split": "qrels split of a BEIR folder",
            "counts": "vectors every document is pooled to (Ward clustering), one index each",
            "pool_factors": "token pooling factors (1: unpooled), one index each",
            "measures": "ir_measures names",
            "cache": _CACHE,
            "max_queries": _SLICE,
            "max_docs": "keep about N documents (0: all), the judged ones first",
        },
    ),
    "mask-gap": Study(
        summary="the [MASK] padding gap (padded - unpadded quality) across a training run's snapshots",
        run=mask_gap_study,
        figure=mask_gap_figure,
        file="findings-mask-gap",
        knobs={
            "run": "training run folder whose checkpoint-<step> snapshots are scored ('': the start model only)",
            "start": "the model the run started from (step 0)",
            "dataset": _DATASET,
            "split": "qrels split of a BEIR folder",
            "every": "score every n-th snapshot",
            "steps": "score only the snapshots of these steps (0: the start model; none given: every n-th)",
            "curve_maxlens": "query_maxlen values of each snapshot's curve (fixed and min padding)",
            "padding_to": "query_maxlen the padded queries are padded with [MASK] to",
            "measures": "ir_measures names, each with its gap",
            "max_queries": _SLICE,
            "max_docs": "keep about N documents (0: all), the judged ones first",
        },
    ),
}


def study_knobs(name: str) -> dict[str, Any]:
    """The knobs of study ``name`` and their defaults (the full run's).

    >>> study_knobs("limit")["sizes"]
    (100, 300, 1000, 3000)
    """
    study = _study(name)
    return {p.name: p.default for p in inspect.signature(study.run).parameters.values() if p.name != "save"}


def _study(name: str) -> Study:
    if name not in STUDIES:
        raise ValueError(f"no findings study {name!r}; the studies are {', '.join(STUDIES)}")
    return STUDIES[name]


# ------------------------------------------------------------------------------------- files, machines


def machine_folder(machine: Mapping[str, Any] | None = None) -> str:
    """The results folder name of a machine: vendor, core family where known, widest vector instructions.

    Parameters
    ----------
    machine : mapping, optional
        :func:`lirlab.machine.describe_machine`'s description (default: this machine's), with
        ``cpu_family`` and ``cpu_model`` where known (default: read from ``/proc/cpuinfo`` for this one).

    Examples
    --------
    >>> machine_folder({"processor": "AMD EPYC", "cpu_flags": ["avx", "avx2"], "cpu_family": 25, "cpu_model": 1})
    'amd-zen3-avx2'
    >>> machine_folder({"processor": "Intel(R) Xeon(R) Platinum", "cpu_flags": ["avx2", "avx512f"]})
    'intel-avx512'
    """
    if machine is None:
        from lirlab.machine import describe_machine

        machine = {**describe_machine(), **_cpu_family_model()}
    processor = str(machine.get("processor", "")).lower()
    vendor = "amd" if "amd" in processor else "intel" if "intel" in processor else None
    flags = set(machine.get("cpu_flags", ()))
    simd = next(
        (
            name
            for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("asimd", "neon"))
            if flag in flags
        ),
        None,
    )
    core = _amd_core(machine.get("cpu_family"), machine.get("cpu_model")) if vendor == "amd" else None
    parts = [vendor or platform.machine().lower() or "cpu", core, simd]
    return "-".join(p for p in parts if p)


def _amd_core(family, model) -> str | None:
    """AMD's core generation from ``cpu family`` and ``model`` (Zen 1 to 5), None where unknown."""
    if family is None or model is None:
        return None
    if family == 23:
        return "zen2" if model >= 0x30 else "zen"
    if family == 25:
        zen4 = 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF
        return "zen4" if zen4 else "zen3"
    if family == 26:
        return "zen5"
    return None


def _cpu_family_model() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("cpu family", "model") and value.strip().isdigit():
                    found.setdefault("cpu_family" if key == "cpu family" else "cpu_model", int(value))
                if len(found) == 2:
                    break
    except OSError:
        pass
    return found


def _slug(value: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(value).lower()).strip("-")


def findings_name(name: str, results: Mapping[str, Any], label: str | None = None) -> str:
    """The file name (without suffix) of study ``name``'s results.

    >>> findings_name("query-length", {"dataset": "scifact"}, label="trained")
    'findings-query-length-scifact-trained'
    """
    fields = {k: _slug(v) for k, v in results.items() if isinstance(v, str)}
    return _study(name).file.format(**fields) + (f"-{_slug(label)}" if label else "")


def _save(stem: str, results: Mapping[str, Any], out: Path) -> Path:
    """Write ``<out>/<stem>.json`` (+ CSV tables) with the machine described; each file is replaced
    whole, so a reader never sees half of one."""
    from lirlab.bench.record import save_results

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".findings-") as staging:
        save_results(stem, dict(results), staging, device=results.get("device", "cpu"))
        for written in Path(staging).iterdir():
            os.replace(written, out / written.name)
    return out / f"{stem}.json"


def read_findings(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """The results a findings run saved: ``path`` itself, or ``<path>/<name>.json`` with ``name``.

    Raises
    ------
    FileNotFoundError
        No such file (one line saying which command writes it).
    """
    path = Path(path) / f"{name}.json" if name is not None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no saved findings there ('lirlab bench findings --study ...' writes them)"
        )
    return json.loads(path.read_text())


def findings_figure(name: str, results: Mapping[str, Any]):
    """The figure of study ``name``'s results, as returned by its run or read by :func:`read_findings`."""
    return _study(name).figure(results)


def run_study(name: str, out: str | os.PathLike | None = None, label: str | None = None, **knobs) -> Path:
    """Run study ``name`` with ``knobs`` (the others at the full run's defaults); write its results and
    figure under ``out`` (default ``benchmarks/results/<machine_folder()>``). Returns the JSON path.

    Raises
    ------
    ValueError
        An unknown study, or a knob it does not take.
    """
    study = _study(name)
    foreign = sorted(set(knobs) - set(study_knobs(name)))
    if foreign:
        raise ValueError(
            f"study {name} takes no {', '.join(foreign)}; its knobs are {', '.join(study_knobs(name))}"
        )
    folder = Path(out) if out is not None else RESULTS / machine_folder()
    if "save" in inspect.signature(study.run).parameters:
        knobs["save"] = lambda partial: _save(findings_name(name, partial, label), partial, folder)
    results = study.run(**knobs)
    path = _save(findings_name(name, results, label), results, folder)
    from lirlab.plots import SCREEN_DPI, figure_png

    path.with_suffix(".png").write_bytes(figure_png(study.figure(read_findings(path)), dpi=SCREEN_DPI))
    return path


# ------------------------------------------------------------------------------------------ command line


def _flag(knob: str) -> str:
    return "--" + knob.replace("_", "-")


def _option(default: Any) -> dict[str, Any]:
    """argparse keywords of a knob, from its default's type."""
    if isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(default, tuple | list):
        return {"nargs": "+", "type": type(default[0]) if default else str}
    return {"type": type(default) if default is not None else str}


def knob_options() -> dict[str, dict[str, Any]]:
    """Every study's knobs as argparse options: knob -> keywords (its help names the studies taking it
    and their defaults). A knob several studies take must parse the same way for each.

    Raises
    ------
    ValueError
        A knob without a help, or parsed differently by two studies.
    """
    options: dict[str, dict[str, Any]] = {}
    defaults: dict[str, dict[str, str]] = {}
    helps: dict[str, str] = {}
    for name, study in STUDIES.items():
        for knob, default in study_knobs(name).items():
            if not study.knobs.get(knob):
                raise ValueError(f"study {name}: knob {knob!r} has no help in STUDIES")
            option = _option(default)
            if options.setdefault(knob, option) != option:
                raise ValueError(f"knob {knob!r} parses differently in study {name} than in another study")
            helps.setdefault(knob, study.knobs[knob])
            shown = " ".join(map(str, default)) if isinstance(default, tuple | list) else str(default)
            defaults.setdefault(knob, {})[name] = shown or "''"
    for knob, option in options.items():
        by_study = defaults[knob]
        shown = "; ".join(f"{name}: {value}" for name, value in by_study.items())
        default = next(iter(by_study.values())) if len(set(by_study.values())) == 1 else shown
        option["help"] = f"[{', '.join(by_study)}] {helps[knob]} (default: {default})".replace("%", "%%")
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lirlab bench findings`` (and ``python -m lirlab.bench.findings``)."""
    parser.add_argument(
        "--study",
        required=True,
        choices=list(STUDIES),
        help="; ".join(f"{name}: {study.summary}" for name, study in STUDIES.items()),
    )
    parser.add_argument(
        "--out",
        default=None,
        help="results folder (default: benchmarks/results/<this machine>, e.g. amd-zen3-avx2: vendor, core "
        "family, widest vector instructions)",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="added to the file name: --label trained writes findings-...-trained.json",
    )
    group = parser.add_argument_group(
        "the studies' knobs (each study takes its own; defaults are the full run's)"
    )
    for knob, option in knob_options().items():
        group.add_argument(_flag(knob), dest=knob, default=None, **option)


def run_from_args(args: argparse.Namespace) -> Path:
    """Run ``args.study`` with the knobs given on the command line; print and return the JSON path."""
    given = {knob: getattr(args, knob) for knob in knob_options() if getattr(args, knob, None) is not None}
    foreign = [knob for knob in given if knob not in study_knobs(args.study)]
    if foreign:
        takers = {k: [n for n in STUDIES if k in study_knobs(n)] for k in foreign}
        raise ValueError(
            "; ".join(f"{_flag(k)} is a knob of {', '.join(takers[k])}, not of {args.study}" for k in foreign)
        )
    path = run_study(args.study, out=args.out, label=args.label, **given)
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lirlab.bench.findings",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
