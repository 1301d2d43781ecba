"""Time PyLate 1.6.0: PLAID search (Stanford backend, use_fast=False, PyLate's default knobs) + query encoding on SciFact, CPU, 2 threads.
(PyLate's default PLAID backend, fast-plaid 1.4.6.2110, segfaults in fast_plaid_rust.create with torch 2.13.0: its wheel is built for torch==2.11.0.)

Run:  OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 /tmp/peers/pylate-venv/bin/python /tmp/peers/pylate_time.py
Prints one JSON object on the last stdout line. PEER_SMOKE=1 runs a quick functional check only.

The script, scifact_data.py and pylate_index.py are expected in /tmp/peers (sys.path and paths below).
Setup (from /tmp/peers/REPORT.md): pylate-venv has torch 2.13.0+cpu, pylate 1.6.0, sentence-transformers 5.3.0,
transformers 5.3.0, fastkmeans 0.5.0, ninja 1.11.1.4, fast-plaid 1.4.6.2110 (installed, not usable), numpy 2.4.6,
ir_measures 0.4.3. pylate and fast-plaid go in with --no-deps, from wheels in /tmp/peers/dl, because pip cannot
resolve pylate 1.6 with torch 2.13.0:

    /root/.pyenv/versions/3.11.7/bin/python -m venv /tmp/peers/pylate-venv
    /tmp/peers/pylate-venv/bin/pip install torch==2.13.0
    /tmp/peers/pylate-venv/bin/pip install torch==2.13.0 "sentence-transformers==5.3.0" "transformers<=5.3.0,>=4.41.0" "datasets>=2.20.0" \
        "accelerate>=0.31.0" "pandas>=2.2.1" "ujson==5.12.0" "ninja==1.11.1.4" "fastkmeans==0.5.0" joblib usearch filelock numpy ir_measures
    /tmp/peers/pylate-venv/bin/pip install --no-deps /tmp/peers/dl/pylate-1.6.0-py3-none-any.whl /tmp/peers/dl/fast_plaid-1.4.6.2110-cp311-cp311-manylinux_2_28_x86_64.whl

The model (/tmp/peers/minilm-pylate, the PyLate layout of benchmarks/models/minilm-colbert) and the index
(/tmp/peers/pylate-index/scifact, built by /tmp/peers/pylate_index.py run with /tmp/peers/pylate-venv/bin/python):

    /root/.pyenv/versions/3.11.7/bin/python /work/shared/tools/build_minilm_colbert.py /tmp/peers/minilm-pylate --layout pylate
"""

import contextlib
import io
import json
import logging
import os
import sys
import time
from importlib.metadata import version

# own JIT-extension cache (colbert-ai and PyLate vendored code share extension names)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", "/tmp/peers/torch_ext_pylate")
sys.path.insert(0, "/tmp/peers")
import torch

torch.set_num_threads(2)
import scifact_data as sd  # noqa: E402
import sentence_transformers  # noqa: E402
import transformers  # noqa: E402
from pylate import indexes, models  # noqa: E402

N_TIME, N_WARM, ROUNDS, K = 100, 5, 3, 10
# quick functional check only: 3 queries, 1 round, nDCG over 8 queries (value meaningless)
SMOKE = os.environ.get("PEER_SMOKE") == "1"
if SMOKE:
    N_TIME, ROUNDS = 3, 1
logging.disable(logging.WARNING)


def timed_rounds(fn, items):
    """p50 in ms over items of each item's fastest fn(item) call in ROUNDS rounds."""
    best = [float("inf")] * len(items)
    for _ in range(ROUNDS):
        for i, x in enumerate(items):
            t0 = time.perf_counter()
            fn(x)
            best[i] = min(best[i], time.perf_counter() - t0)
    return 1e3 * sd.p50(best)


def main():
    qids, qtexts, qrels = sd.load_test_queries()
    if SMOKE:
        qtexts = qtexts[:N_TIME] + qtexts[100:105]
        qids = qids[:N_TIME] + qids[100:105]
    model = models.ColBERT(model_name_or_path="/tmp/peers/minilm-pylate", device="cpu")

    def enc(q):
        return model.encode([q], is_query=True, batch_size=1, show_progress_bar=False)

    with contextlib.redirect_stdout(io.StringIO()):
        index = indexes.PLAID(
            index_folder="/tmp/peers/pylate-index",
            index_name="scifact",
            override=False,
            nbits=2,
            use_fast=False,
        )
    st = index._index  # StanfordPLAID
    searcher = st.searcher
    cfg = searcher.config
    knobs = dict(ncells=cfg.ncells, centroid_score_threshold=cfg.centroid_score_threshold, ndocs=cfg.ndocs)
    t_q, warm = qtexts[:N_TIME], qtexts[N_TIME : N_TIME + N_WARM]
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for q in warm:
            index(enc(q), k=K)
        Qs = [enc(q) for q in t_q]
        out["query_encode_p50_ms"] = timed_rounds(enc, t_q)
        # PyLate API call (reloads its id-mapping pickle per call, as PyLate does)
        out["search_from_embedding_p50_ms"] = timed_rounds(lambda Q: index(Q, k=K), Qs)
        # the vendored Stanford searcher alone (no pickle load / id mapping)
        Qt = [Q[0] for Q in Qs]  # numpy [32,128], as StanfordPLAID passes it
        out["search_core_searcher_p50_ms"] = timed_rounds(lambda Q: searcher.search(Q, k=K), Qt)
        out["search_end_to_end_p50_ms"] = timed_rounds(lambda q: index(enc(q), k=K), t_q)

        run = {}
        for qid, q in zip(qids, qtexts):
            res = index(enc(q), k=K)[0]
            run[qid] = {r["id"]: float(K - i) for i, r in enumerate(res)}
        ndcg, how = sd.ndcg10(run, qrels)

        # secondary: same index at colbert-ai's k<=10 defaults (ncells=1, thr=0.5, ndocs=256)
        searcher.configure(ncells=1, centroid_score_threshold=0.5, ndocs=256)
        out["search_core_at_colbertai_k10_knobs_p50_ms"] = timed_rounds(lambda Q: searcher.search(Q, k=K), Qt)
        run2, m = {}, st._load_plaid_ids_to_documents_ids()
        for qid, q in zip(qids, qtexts):
            pids, ranks, _ = searcher.search(enc(q)[0], k=K)
            run2[qid] = {m[p]: float(K - r) for p, r in zip(pids, ranks)}
        out["ndcg@10_at_colbertai_k10_knobs"] = sd.ndcg10(run2, qrels)[0]
    meta = json.load(open("/tmp/peers/pylate-index/scifact/metadata.json"))
    plan = json.load(open("/tmp/peers/pylate-index/scifact/plan.json"))
    res = {
        "tool": "PyLate PLAID, Stanford backend (use_fast=False)",
        "pylate_version": version("pylate"),
        "fast_plaid_version_installed_unusable": version("fast-plaid"),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "sentence_transformers_version": sentence_transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_num_threads": torch.get_num_threads(),
        "index": "/tmp/peers/pylate-index/scifact",
        "nbits": cfg.nbits,
        "kmeans_niters": cfg.kmeans_niters,
        "num_partitions": plan.get("num_partitions"),
        "num_embeddings": meta.get("num_embeddings"),
        "k": K,
        **knobs,
        "n_timed_queries": N_TIME,
        "warmup_queries": N_WARM,
        "rounds": ROUNDS,
        **out,
        "ndcg@10": ndcg,
        "ndcg_queries": len(qrels),
        "ndcg_method": how + ", from k=10 search",
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
