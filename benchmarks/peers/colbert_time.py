"""Time colbert-ai (Stanford) PLAID search + query encoding on SciFact, CPU, 2 threads.

Run (``--serve``: the worker of ``paired.py``):  CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 /tmp/peers/colbert-venv/bin/python /tmp/peers/colbert_time.py
Prints one JSON object on the last stdout line. PEER_SMOKE=1 runs a quick functional check only.

The script, scifact_data.py and colbert_index.py are expected in /tmp/peers (sys.path and paths below).
Setup (from /tmp/peers/REPORT.md): colbert-venv has torch 2.13.0+cpu, colbert-ai 0.2.22, transformers 4.49.0,
faiss-cpu 1.15.1, ninja 1.13.2, numpy 2.4.6, ir_measures 0.4.3 (+ pytrec_eval-terrier 0.5.11):

    /root/.pyenv/versions/3.11.7/bin/python -m venv /tmp/peers/colbert-venv
    /tmp/peers/colbert-venv/bin/pip install torch==2.13.0
    /tmp/peers/colbert-venv/bin/pip install torch==2.13.0 colbert-ai "transformers<4.50" faiss-cpu ninja ir_measures

The index (/tmp/peers/colbert-index, from /work/main/benchmarks/models/minilm-colbert) is built by
/tmp/peers/colbert_index.py run with /tmp/peers/colbert-venv/bin/python.
"""

import contextlib
import io
import json
import os
import sys
import time

# own JIT-extension cache (colbert-ai and PyLate vendored code share extension names)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", "/tmp/peers/torch_ext_colbert")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, "/tmp/peers")
import torch

torch.set_num_threads(2)
import scifact_data as sd  # noqa: E402
import transformers  # noqa: E402
from colbert import Searcher  # noqa: E402
from colbert.infra import ColBERTConfig, Run, RunConfig  # noqa: E402
from colbert.infra.config.settings import RunSettings  # noqa: E402

INDEX_ROOT, INDEX_NAME = "/tmp/peers", "colbert-index"
N_TIME, N_WARM, ROUNDS, K = 100, 5, 3, 10
# quick functional check only: 3 queries, 1 round, nDCG over 8 queries (value meaningless)
SMOKE = os.environ.get("PEER_SMOKE") == "1"
if SMOKE:
    N_TIME, ROUNDS = 3, 1


def main():
    assert RunSettings.total_visible_gpus == 0
    doc_ids, doc_texts = sd.load_corpus()
    qids, qtexts, qrels = sd.load_test_queries()
    if SMOKE:
        qtexts = qtexts[:N_TIME] + qtexts[100:105]
        qids = qids[:N_TIME] + qids[100:105]
    with Run().context(RunConfig(nranks=1, gpus=0, experiment="scifact", root="/tmp/peers/colbert-exp")):
        with contextlib.redirect_stdout(io.StringIO()):
            searcher = _searcher(doc_texts)
            t_q, warm = qtexts[:N_TIME], qtexts[N_TIME : N_TIME + N_WARM]
            # warm-up (also fixes colbert-ai's k<=10 defaults: ncells=1, thr=0.5, ndocs=256)
            for q in warm:
                searcher.search(q, k=K)
            assert (
                searcher.config.ncells,
                searcher.config.centroid_score_threshold,
                searcher.config.ndocs,
            ) == (1, 0.5, 256)

            Qs = [searcher.encode(q) for q in t_q]
            enc = [float("inf")] * N_TIME
            srch = [float("inf")] * N_TIME
            e2e = [float("inf")] * N_TIME
            for _ in range(ROUNDS):
                for i, q in enumerate(t_q):
                    t0 = time.perf_counter()
                    searcher.encode(q)
                    enc[i] = min(enc[i], time.perf_counter() - t0)
                for i, Q in enumerate(Qs):
                    t0 = time.perf_counter()
                    searcher.dense_search(Q, k=K)
                    srch[i] = min(srch[i], time.perf_counter() - t0)
                for i, q in enumerate(t_q):
                    t0 = time.perf_counter()
                    searcher.search(q, k=K)
                    e2e[i] = min(e2e[i], time.perf_counter() - t0)

            run = {}
            for qid, q in zip(qids, qtexts):
                pids, ranks, scores = searcher.search(q, k=K)
                run[qid] = {doc_ids[p]: float(K - r) for p, r in zip(pids, ranks)}
    ndcg, how = sd.ndcg10(run, qrels)
    meta = json.load(open(os.path.join(INDEX_ROOT, INDEX_NAME, "metadata.json")))
    plan = json.load(open(os.path.join(INDEX_ROOT, INDEX_NAME, "plan.json")))
    out = {
        "tool": "colbert-ai (Stanford PLAID)",
        "colbert_ai_version": colbert_version(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_num_threads": torch.get_num_threads(),
        "index": os.path.join(INDEX_ROOT, INDEX_NAME),
        "nbits": searcher.config.nbits,
        "num_partitions": plan.get("num_partitions"),
        "num_embeddings": meta.get("num_embeddings"),
        "k": K,
        "ncells": searcher.config.ncells,
        "centroid_score_threshold": searcher.config.centroid_score_threshold,
        "ndocs": searcher.config.ndocs,
        "n_timed_queries": N_TIME,
        "warmup_queries": N_WARM,
        "rounds": ROUNDS,
        "search_from_embedding_p50_ms": 1e3 * sd.p50(srch),
        "search_end_to_end_p50_ms": 1e3 * sd.p50(e2e),
        "query_encode_p50_ms": 1e3 * sd.p50(enc),
        "ndcg@10": ndcg,
        "ndcg_queries": len(qrels),
        "ndcg_method": how + ", from k=10 search",
    }
    print(json.dumps(out))


def serve():
    """colbert-ai's side of ``paired.py``: load and warm up on the driver's queries, say so, then time
    what each request line asks for (every query alone) and answer one JSON line of seconds."""
    replies, sys.stdout = sys.stdout, sys.stderr
    _, doc_texts = sd.load_corpus()
    with Run().context(RunConfig(nranks=1, gpus=0, experiment="scifact", root="/tmp/peers/colbert-exp")):
        searcher = _searcher(doc_texts)
        for q in json.loads(os.environ["PAIRED_WARMUP"]):
            searcher.search(q, k=K)
        settings = (searcher.config.ncells, searcher.config.centroid_score_threshold, searcher.config.ndocs)
        assert settings == (1, 0.5, 256)
        replies.write(
            json.dumps({"tool": "colbert-ai", "version": colbert_version(), "knobs": settings}) + "\n"
        )
        replies.flush()
        for line in sys.stdin:
            request = json.loads(line)
            texts = request["texts"]
            encoded = [searcher.encode(q) for q in texts] if request["figure"] == "search" else None
            seconds = []
            for i, q in enumerate(texts):
                t0 = time.perf_counter()
                if request["figure"] == "encode":
                    searcher.encode(q)
                elif request["figure"] == "search":
                    searcher.dense_search(encoded[i], k=K)
                else:
                    searcher.search(q, k=K)
                seconds.append(time.perf_counter() - t0)
            replies.write(json.dumps({"seconds": seconds}) + "\n")
            replies.flush()


def _searcher(doc_texts):
    """colbert-ai's searcher over its SciFact index (inside a ``Run().context``)."""
    return Searcher(
        index=INDEX_NAME, index_root=INDEX_ROOT, collection=doc_texts, config=ColBERTConfig(gpus=0), verbose=0
    )


def colbert_version():
    return __import__("importlib.metadata").metadata.version("colbert-ai")


if __name__ == "__main__":
    serve() if "--serve" in sys.argv else main()
