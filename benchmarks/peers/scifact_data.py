"""Shared SciFact (BEIR layout) loading for the peer timing scripts (stdlib only).

The data folder is /work/shared/data/scifact unless the environment variable LIRLAB_SCIFACT names another.
"""

import json
import math
import os

DATA = os.environ.get("LIRLAB_SCIFACT", "/work/shared/data/scifact")


def load_corpus():
    """Returns (doc_ids, doc_texts) in corpus.jsonl order; text = title + " " + text (BEIR)."""
    ids, texts = [], []
    with open(os.path.join(DATA, "corpus.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            ids.append(str(d["_id"]))
            texts.append(d.get("title", "") + " " + d.get("text", ""))
    return ids, texts


def load_test_queries():
    """Returns (qids, qtexts, qrels) for the test split, qids in qrels/test.tsv order of first appearance."""
    qtext = {}
    with open(os.path.join(DATA, "queries.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            qtext[str(d["_id"])] = d["text"]
    qids, qrels = [], {}
    with open(os.path.join(DATA, "qrels", "test.tsv")) as f:
        next(f)  # header
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if q not in qrels:
                qids.append(q)
                qrels[q] = {}
            qrels[q][d] = int(s)
    return qids, [qtext[q] for q in qids], qrels


def ndcg10(run, qrels):
    """run: {qid: {docid: score}}. Returns (ndcg@10 mean over all qrels queries, method string)."""
    try:
        import ir_measures
        from ir_measures import nDCG

        qr = [ir_measures.Qrel(q, d, r) for q, ds in qrels.items() for d, r in ds.items()]
        rn = [ir_measures.ScoredDoc(q, d, float(s)) for q, ds in run.items() for d, s in ds.items()]
        # mean over all qrels queries (queries missing from run count 0): ir_measures' calc_aggregate
        # averages over queries in run only, so compute per-query and average over qrels queries.
        per = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qr, rn)}
        method = f"ir_measures {ir_measures.__version__} (nDCG@10, trec_eval-style)"
        return sum(per.get(q, 0.0) for q in qrels) / len(qrels), method
    except ImportError:
        tot = 0.0
        for q, rel in qrels.items():
            ranked = sorted(run.get(q, {}).items(), key=lambda x: -x[1])[:10]
            dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
            ideal = sorted(rel.values(), reverse=True)[:10]
            idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
            tot += dcg / idcg if idcg > 0 else 0.0
        return tot / len(qrels), "self-computed nDCG@10 (ir_measures not installed)"


def p50(xs):
    """Median of xs (mean of the two middle values when len(xs) is even)."""
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
