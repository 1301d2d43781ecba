"""``lirlab bench core``: encoding speed, query latency and exhaustive MaxSim, in one run.

Reports, on a dataset (SciFact test by default) with one encoder:

* nDCG@10 (and RR@10, R@100) of exhaustive MaxSim over every query;
* document encoding throughput against a bare transformers forward pass over the same texts
  (tokenize, pad to the longest in the batch, run the model, in corpus order), on a seeded sample;
* query encoding latency, one query at a time, against the bare forward pass and the transformers
  forward, in blocks (the figure) and interleaved (:func:`lirlab.bench.query_encoding.query_encoding_latency`);
* exhaustive MaxSim latency per query against one torch matrix multiply of the same size
  (``[query_tokens, dim] @ [dim, corpus_tokens]``), the floor any fp32 engine sits on, and against the
  same multiply cut into the kernel's blocks (what the kernel's max-reduce adds to its GEMM);
* the blocked multiply against the same multiplies over one block that stays in cache: what streaming
  the vectors from memory costs (the share that varies when other work on the machine uses the
  memory bus);
* the int8 first pass with its error bound (:meth:`~lirlab.maxsim.LengthGroupedDocs.top_k`), by each
  int8 route (:mod:`lirlab.int8_products`), against the fp32 kernel alone, all timed query by query in
  the same loop: p50s, documents rescored in fp32, and whether the top-k and scores equal fp32's;
* exhaustive MaxSim time per query when the timed queries are searched in batches (one pass over
  the corpus serves a whole batch, so the multiply runs compute-bound instead of memory-bound).
"""

from __future__ import annotations

import functools
import importlib.util
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lirlab.bench.query_encoding import query_encoding_latency
from lirlab.bench.record import cached_flat_index, peak_rss_mib, percentiles, save_results
from lirlab.data import Dataset
from lirlab.evaluate import evaluate
from lirlab.int8_products import int8_route
from lirlab.maxsim import LengthGroupedDocs, pad_queries

WARMUP = 5


def _timed(fn, repeat: int) -> list[float]:
    for _ in range(min(WARMUP, repeat)):
        fn()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def int8_routes_to_time() -> list[str]:
    """This CPU's int8 route first, then ONNX Runtime's where installed; torch's route only where it is
    this CPU's (elsewhere a plain loop, seconds a query)."""
    fastest = int8_route()
    routes = [fastest] if fastest else []
    if "onnxruntime" not in routes and importlib.util.find_spec("onnxruntime") is not None:
        routes.append("onnxruntime")
    return routes


def exhaustive_kernels(docs, padded_queries: torch.Tensor, k: int = 10) -> dict:
    """The fp32 kernel, the int8 two-pass search by each int8 route and the plain multiplies, query by
    query in one loop.

    Each query is timed once per variant in turn, so the machine's noise falls on all of them alike.
    When Mixedbread's ``maxsim-cpu`` is installed (a peer, not a dependency), it is timed in the same
    loop on the same vectors (its scores, then ``numpy.argpartition`` for the top k); it picks its own
    thread count. Every int8 variant's top k and scores are checked against the fp32 kernel's.
    """
    fp32 = LengthGroupedDocs(docs.vectors, docs.lengths, first_pass="none")
    two_pass = {
        route: LengthGroupedDocs(docs.vectors, docs.lengths, first_pass=f"int8-{route}")
        for route in int8_routes_to_time()
    }
    flat_vectors = docs.vectors
    variants = {
        "fp32_kernel": lambda q: fp32.top_k(q, k),
        **{f"int8_{route}": functools.partial(engine.top_k, k=k) for route, engine in two_pass.items()},
        "same_size_matmul": lambda q: q[0] @ flat_vectors.T,
        "blocked_matmul": lambda q: [
            fp32.vectors[first_row : first_row + n * length] @ q[0].T
            for _, n, length, first_row in fp32.blocks
        ],
        "cached_block_matmul": lambda q: [
            fp32.vectors[: n * length] @ q[0].T for _, n, length, _ in fp32.blocks
        ],
    }
    peer = _maxsim_cpu_top_k(docs, k)
    if peer is not None:
        variants["maxsim_cpu"] = peer
    for fn in variants.values():
        for i in range(min(WARMUP, padded_queries.shape[0])):
            fn(padded_queries[i : i + 1])
    seconds = {name: [] for name in variants}
    same_top_k = {route: [] for route in two_pass}
    worst_score_gap = dict.fromkeys(two_pass, 0.0)
    rescored = {route: [] for route in two_pass}
    for i in tqdm(range(padded_queries.shape[0]), desc="exhaustive kernels", unit="query"):
        query = padded_queries[i : i + 1]
        results = {}
        for name, fn in variants.items():
            start = time.perf_counter()
            results[name] = fn(query)
            seconds[name].append(time.perf_counter() - start)
        exact_scores, exact_positions, _ = results["fp32_kernel"]
        for route in two_pass:
            rough_scores, rough_positions, info = results[f"int8_{route}"]
            same_top_k[route].append(exact_positions.tolist() == rough_positions.tolist())
            gap = float((exact_scores - rough_scores).abs().max())
            worst_score_gap[route] = max(worst_score_gap[route], gap)
            rescored[route].extend(info["rescored"])
    p50 = {name: percentiles(times)["p50_ms"] for name, times in seconds.items()}
    return {
        "queries": padded_queries.shape[0],
        "k": k,
        "int8_route": int8_route(),
        **{name: percentiles(times) for name, times in seconds.items()},
        "kernel_rows": int(fp32.vectors.shape[0]),
        "corpus_rows": int(flat_vectors.shape[0]),
        "fp32_kernel_share_of_blocked_matmul_speed": p50["blocked_matmul"] / p50["fp32_kernel"],
        "fp32_kernel_to_same_size_matmul": p50["fp32_kernel"] / p50["same_size_matmul"],
        "blocked_matmul_to_cached_block_matmul": p50["blocked_matmul"] / p50["cached_block_matmul"],
        "fp32_kernel_to_maxsim_cpu": p50["fp32_kernel"] / p50["maxsim_cpu"] if peer else None,
        "int8_routes": {
            route: {
                "to_fp32_kernel": p50[f"int8_{route}"] / p50["fp32_kernel"],
                "to_maxsim_cpu": p50[f"int8_{route}"] / p50["maxsim_cpu"] if peer else None,
                "rescored_documents": _spread(rescored[route], len(docs)),
                "same_top_k_fraction": sum(same_top_k[route]) / len(same_top_k[route]),
                "worst_score_gap": worst_score_gap[route],
            }
            for route in two_pass
        },
    }


def _spread(counts: list[int], documents: int) -> dict:
    ordered = sorted(counts)
    return {
        "documents": documents,
        "p50": ordered[len(ordered) // 2],
        "max": ordered[-1],
        "mean": sum(counts) / len(counts),
    }


def _maxsim_cpu_top_k(docs, k: int):
    try:
        import maxsim_cpu
    except ImportError:
        return None
    import numpy as np

    vectors = docs.vectors.float().numpy()
    offsets = docs.offsets.tolist()
    per_doc = [vectors[start:end] for start, end in zip(offsets[:-1], offsets[1:])]

    def top_k(query):
        scores = maxsim_cpu.maxsim_scores_variable(query[0].float().numpy(), per_doc)
        return np.argpartition(-scores, min(k, len(scores) - 1))[:k]

    return top_k


@torch.inference_mode()
def bare_forward_seconds(encoder, texts: list[str], batch_size: int) -> float:
    """Seconds for plain ``tokenizer(...)`` + ``model(...)`` over ``texts`` in their given order."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        batch = encoder.tokenizer(
            texts[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=encoder.config.doc_maxlen,
            return_tensors="pt",
        ).to(encoder.device)
        encoder.model(**batch)
    return time.perf_counter() - start


def run_core_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    n_queries: int = 100,
    encode_sample: int = 1000,
    batch_size: int = 32,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Path:
    """Measure and save ``core.json`` (+ CSV) under ``out_dir``; returns the JSON path."""
    docs = list(dataset.docs)
    sample = random.Random(seed).sample(docs, min(encode_sample, len(docs)))
    texts = [d.full_text for d in sample]

    bare = bare_forward_seconds(encoder, texts, batch_size)
    start = time.perf_counter()
    encoder.encode_documents(sample, batch_size=batch_size, progress=False)
    ours = time.perf_counter() - start

    cached = Path(cache_dir, f"{dataset.name}-flat", "metadata.json") if cache_dir is not None else None
    stamp_before = cached.stat().st_mtime_ns if cached is not None and cached.is_file() else None
    start = time.perf_counter()
    index = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    corpus_seconds = time.perf_counter() - start
    reused = stamp_before is not None and cached.stat().st_mtime_ns == stamp_before
    n_tokens = int(index.docs.vectors.shape[0])

    queries = list(dataset.queries)
    timed = queries[:n_queries]
    query_encoding = query_encoding_latency(encoder, timed)
    query_encoding["interleaved"] = query_encoding_latency(encoder, timed, order="interleaved")
    encoded = encoder.encode_queries(queries)

    maxsim_seconds = []
    for i in tqdm(range(len(timed)), desc="exhaustive MaxSim", unit="query"):
        one = encoded.select([i])
        start = time.perf_counter()
        index.search_encoded(one, k=10)
        maxsim_seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    index.search_encoded(encoded.select(range(len(timed))), k=10)
    batched_ms_per_query = (time.perf_counter() - start) * 1000 / len(timed)
    padded = pad_queries(encoded.select([0]))[0].to(index.scorer.device, index.scorer.vectors.dtype)
    corpus = index.docs.vectors
    matmul_seconds = _timed(lambda: padded @ corpus.T, len(timed))
    kernels = exhaustive_kernels(index.docs, pad_queries(encoded.select(range(len(timed)))))

    run = index.search(encoded, k=100)
    quality = evaluate(run, dataset, ["nDCG@10", "RR@10", "R@100"]).set_index("measure")["value"].to_dict()
    first = index.search(encoded.select(range(len(timed))), k=10)
    quality_first = evaluate(first, dataset.qrels[dataset.qrels.query_id.isin(set(first.qid))], ["nDCG@10"])

    gemm_flops = 2 * padded.shape[0] * padded.shape[1] * n_tokens
    maxsim_p50 = percentiles(maxsim_seconds)["p50_ms"]
    matmul_p50 = percentiles(matmul_seconds)["p50_ms"]
    results = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "corpus": {
            "documents": len(docs),
            "token_vectors": n_tokens,
            "truncated": int(sum(index.docs.truncated)),
        },
        "quality_all_queries": {"queries": len(queries), **quality},
        "quality_timed_queries": {"queries": len(timed), "nDCG@10": float(quality_first.value.iloc[0])},
        "document_encoding": {
            "sample_documents": len(sample),
            "batch_size": batch_size,
            "lirlab_docs_per_s": len(sample) / ours,
            "bare_forward_docs_per_s": len(sample) / bare,
            "ratio_lirlab_to_bare": bare / ours,
            "whole_corpus_seconds": None if reused else corpus_seconds,
            "whole_corpus_vectors_from_cache": reused,
        },
        "query_encoding": query_encoding,
        "exhaustive_maxsim": {
            "queries": len(timed),
            "k": 10,
            **percentiles(maxsim_seconds),
            "same_size_matmul": {"gflop": gemm_flops / 1e9, **percentiles(matmul_seconds)},
            "ratio_maxsim_to_matmul_p50": maxsim_p50 / matmul_p50,
            "batched_ms_per_query": batched_ms_per_query,
            "batch_size": index.query_batch,
            "effective_gflop_per_s": gemm_flops / 1e9 / (maxsim_p50 / 1000),
            "vector_gb_per_s": corpus.numel() * corpus.element_size() / 1e9 / (maxsim_p50 / 1000),
            "int8_route": index.scorer.int8_route,
        },
        "exhaustive_kernels": kernels,
        "peak_rss_mib": peak_rss_mib(),
    }
    return save_results("core", results, out_dir, device=encoder.device)
