"""Query encoding latency, one query at a time, against the bare forward pass and the transformers forward.

Two orders (``order``):

* ``"blocks"`` (the figure): each pass encodes all the timed queries with one variant, then all with the
  next, the variants' order rotated from pass to pass, so each variant is timed in the steady state a
  user sees (its own weights in cache) and every variant gets passes early and late;
* ``"interleaved"``: each query is encoded once per variant in turn, so short bursts of noise fall on all
  of them alike, but every call starts with caches the other variants filled (with MiniLM, lirlab's
  packed weights are evicted by the unpacked ones: 1.4-2.5 ms more per query on the 2-core machine).

The whole pass is repeated ``runs`` times and the median of the runs' p50s is the figure. The variants:

* ``lirlab``: ``encoder.encode_queries([q])`` as configured (``query_forward``: by default this CPU's
  fastest, :func:`~lirlab.onnx_forward.fastest_query_forward`);
* one per other :data:`~lirlab.encoder.QUERY_FORWARDS` value, with the same model and settings;
  ``"transformers"`` is the encoder's previous path (the model's own forward; the tokenization and
  bookkeeping around it are today's);
* ``bare_forward``: the floor any ColBERT encoder sits on, ``tokenizer(". " + q, padding="max_length",
  max_length=query_maxlen)`` and ``model(input_ids, attention_mask)``: the same number of tokens, no
  marker, projection, normalization or bookkeeping.

Run it alone (it takes a minute, not the corpus encoding of ``lirlab bench core``)::

    python -m lirlab.bench.query_encoding --model benchmarks/models/minilm-colbert \
        --dataset ../shared/data/scifact --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tqdm.auto import tqdm

from lirlab.encoder import QUERY_FORWARDS
from lirlab.machine import percentiles

WARMUP = 5


def _bare_forward(encoder):
    tokenizer, model, maxlen = encoder.tokenizer, encoder.model, encoder.config.query_maxlen

    @torch.inference_mode()
    def run(text: str) -> None:
        batch = tokenizer(
            [". " + text], padding="max_length", truncation=True, max_length=maxlen, return_tensors="pt"
        )
        model(
            input_ids=batch["input_ids"].to(encoder.device),
            attention_mask=batch["attention_mask"].to(encoder.device),
        )

    return run


ORDERS = ("blocks", "interleaved")


def query_encoding_latency(
    encoder, queries, n_queries: int = 100, runs: int | None = None, order: str = "blocks"
) -> dict:
    """One-query latencies of ``encoder`` and its baselines, in ``order`` (see the module notes).

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        The encoder measured; the other variants share its model.
    queries : sequence of lirlab.data.Query
        The first ``n_queries`` are timed.
    runs : int, optional
        Passes over the timed queries; each variant's figure is the median of its per-pass p50s. By
        default one per variant, so in ``"blocks"`` order every variant is timed once in every slot.
    order : str
        ``"blocks"`` or ``"interleaved"`` (see the module notes).

    Returns
    -------
    dict
        ``p50_ms`` (lirlab's, the headline), per-variant ``p50_ms_per_run``/``p50_ms``/``p90_ms``, the
        ratios of each variant to ``bare_forward`` and to ``transformers``, and the parity of lirlab's
        vectors with the transformers forward's on the timed queries (min cosine, max abs difference).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    timed = list(queries)[:n_queries]
    others = {encoder.query_forward: encoder}
    for name in QUERY_FORWARDS:
        if name not in (encoder.query_forward, "auto"):
            others[name] = encoder.with_config()
            others[name].query_forward = name
    variants = {"lirlab": lambda q: encoder.encode_queries([q])}
    for name, other in others.items():
        if other is not encoder:
            variants[name] = lambda q, other=other: other.encode_queries([q])
    bare = _bare_forward(encoder)
    variants["bare_forward"] = lambda q: bare(q.text)

    for q in timed[:WARMUP]:
        for fn in variants.values():
            fn(q)
    seconds = {name: [] for name in variants}
    per_run = {name: [] for name in variants}
    names = list(variants)
    runs = len(names) if runs is None else runs
    for run in range(runs):
        this_run = {name: [] for name in variants}
        rotated = names[run % len(names) :] + names[: run % len(names)]
        steps = (
            [(name, q) for name in rotated for q in timed]
            if order == "blocks"
            else [(name, q) for q in timed for name in names]
        )
        for name, q in tqdm(steps, desc=f"query encoding, pass {run + 1}/{runs}", unit="call", leave=False):
            start = time.perf_counter()
            variants[name](q)
            this_run[name].append(time.perf_counter() - start)
        for name, values in this_run.items():
            per_run[name].append(statistics.median(values) * 1000)
            seconds[name].extend(values)

    cosine, difference = 1.0, 0.0
    for q in timed:
        ours, theirs = encoder.encode_queries([q]), others["transformers"].encode_queries([q])
        if not torch.equal(ours.token_ids, theirs.token_ids):
            raise AssertionError(f"query {q.qid!r}: lirlab and transformers paths give different token ids")
        cosine = min(cosine, float((ours.vectors * theirs.vectors).sum(dim=1).min()))
        difference = max(difference, float((ours.vectors - theirs.vectors).abs().max()))

    p50 = {name: statistics.median(values) for name, values in per_run.items()}
    p50.setdefault(encoder.query_forward, p50["lirlab"])
    return {
        "queries": len(timed),
        "runs": runs,
        "order": order,
        "query_forward": encoder.query_forward,
        "threads": torch.get_num_threads(),
        "p50_ms": p50["lirlab"],
        "variants": {
            name: {
                "p50_ms": p50[name],
                "p50_ms_per_run": per_run[name],
                "p90_ms": percentiles(seconds[name])["p90_ms"],
                "ratio_to_bare_forward": p50[name] / p50["bare_forward"],
                "ratio_to_transformers": p50[name] / p50["transformers"],
            }
            for name in variants
        },
        "bare_forward_p50_ms": p50["bare_forward"],
        "transformers_p50_ms": p50["transformers"],
        "parity_with_transformers": {"min_cosine": cosine, "max_abs_difference": difference},
    }


def main(argv: list[str] | None = None) -> dict:
    """``python -m lirlab.bench.query_encoding``: print the figures as a small table."""
    from lirlab import data
    from lirlab.encoder import ColBERT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--runs", type=int, default=None, help="passes (default: one per variant)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--query-forward", default="packed", choices=QUERY_FORWARDS)
    parser.add_argument("--order", default="blocks", choices=ORDERS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoder = ColBERT.load(args.model, device="cpu", query_forward=args.query_forward)
    result = query_encoding_latency(
        encoder,
        data.load(args.dataset, split=args.split).queries,
        n_queries=args.queries,
        runs=args.runs,
        order=args.order,
    )
    print(f"{result['queries']} queries x {result['runs']} runs ({args.order}), {result['threads']} threads")
    for name, row in result["variants"].items():
        runs = " ".join(f"{v:.2f}" for v in row["p50_ms_per_run"])
        print(
            f"{name:13s} p50 {row['p50_ms']:7.2f} ms  (runs {runs})  "
            f"x bare {row['ratio_to_bare_forward']:.3f}  x transformers {row['ratio_to_transformers']:.3f}"
        )
    print("parity with transformers:", result["parity_with_transformers"])
    return result


if __name__ == "__main__":
    main()
