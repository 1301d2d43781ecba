"""Reading indexes that colbert-ai 0.2.22 itself built (tests/fixtures/colbert_ai, see make_fixtures.py).

Each fixture holds colbert-ai's own top-10 for the 30 demo queries under two settings: the defaults
colbert-ai derives from k=10 (ncells 1, centroid_score_threshold 0.5, ndocs 256) and every centroid
probed with nothing pruned. lirlab's PLAID search over the same folder, with the same knobs and
colbert-ai's own query vectors, must return the same documents in the same order with the same scores;
and lirlab's encoder, given the query texts, must produce colbert-ai's query vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.stanford import is_stanford_index, read_stanford_index

from .checkpoints import write_stanford

FIXTURES = Path(__file__).parent / "fixtures"
HERE = FIXTURES / "colbert_ai"
TOP = json.loads((HERE / "topk.json").read_text())
DOCNOS = json.loads((HERE / "docnos.json").read_text())
NBITS = (1, 2, 4)
SCORE_TOLERANCE = 1e-3


def colbert_ai_queries() -> Encoding:
    q = load_file(str(HERE / "queries.safetensors"))["Q"]
    n, length, dim = q.shape
    return Encoding(
        ids=tuple(TOP["queries"]),
        vectors=q.reshape(-1, dim),
        token_ids=torch.zeros(n * length, dtype=torch.long),
        offsets=offsets_from_lengths(torch.full((n,), length)),
        vocab=("t",),
        kind="query",
    )


def lirlab_knobs(setting: str, n_centroids: int) -> dict:
    if setting == "default_k10":
        return {}  # lirlab derives ColBERTv2's defaults from k as colbert-ai does
    knobs = TOP["settings"][setting]
    return {
        "n_probe": n_centroids,
        "centroid_score_threshold": knobs["centroid_score_threshold"],
        "ndocs": knobs["ndocs"],
    }


def assert_same_top10(run, expected: dict) -> None:
    assert sorted(run.qid.unique()) == sorted(expected)
    for qid, group in run.groupby("qid"):
        assert group.docno.tolist() == expected[qid]["docnos"], qid
        np.testing.assert_allclose(group.score, expected[qid]["scores"], atol=SCORE_TOLERANCE, rtol=0)


def test_the_fixtures_are_what_colbert_ai_writes_and_small():
    for nbits in NBITS:
        folder = HERE / f"nbits{nbits}"
        assert is_stanford_index(folder)
        assert json.loads((folder / "metadata.json").read_text())["config"]["nbits"] == nbits
    # colbert-ai pads ivf.pid.pt past its lists when the last list is shorter than the longest one
    padded = []
    for nbits in NBITS:
        pids, lengths = torch.load(HERE / f"nbits{nbits}" / "ivf.pid.pt", weights_only=True)
        padded.append(pids.numel() > int(lengths.sum()))
    assert any(padded), "no fixture has the padded ivf.pid.pt colbert-ai writes"
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert total < 5 * 2**20, f"tests/fixtures holds {total / 2**20:.1f} MiB"


@pytest.mark.parametrize("setting", ["default_k10", "exhaustive"])
@pytest.mark.parametrize("nbits", NBITS)
def test_search_gives_colbert_ai_s_own_top10(nbits, setting):
    index = read_stanford_index(HERE / f"nbits{nbits}", docnos=DOCNOS)
    recorded = TOP["indexes"][f"nbits{nbits}"]
    assert len(index) == len(DOCNOS) and index.codec.n_centroids == recorded["n_centroids"]
    run = index.search(colbert_ai_queries(), k=10, **lirlab_knobs(setting, recorded["n_centroids"]))
    assert_same_top10(run, recorded["top10"][setting])


@pytest.fixture(scope="module")
def benchmark_folder(minilm_dir, tmp_path_factory) -> Path:
    """benchmarks/models/minilm-colbert, rebuilt here the way shared/tools/build_minilm_colbert.py makes
    it: the offline MiniLM weights and a 384 -> 128 projection with orthonormal rows (QR of a seeded
    normal matrix, seed 12345)."""
    generator = torch.Generator().manual_seed(12345)
    q, r = torch.linalg.qr(torch.randn(384, 128, generator=generator, dtype=torch.float64))
    linear = (q * torch.sign(torch.diagonal(r)).unsqueeze(0)).T.contiguous().float()
    return write_stanford(minilm_dir, tmp_path_factory.mktemp("minilm-colbert"), linear)


@pytest.fixture(scope="module")
def benchmark_checkpoint(benchmark_folder):
    from lirlab import ColBERT

    return ColBERT.load(str(benchmark_folder), device="cpu")


@pytest.mark.parametrize("query_forward", ["auto", "onnxruntime", "packed", "lean", "transformers"])
def test_lirlab_encodes_the_queries_as_colbert_ai_did(benchmark_checkpoint, query_forward):
    """Every query forward, on any CPU, one query at a time as search encodes them."""
    encoder = benchmark_checkpoint.with_config()
    encoder.query_forward = query_forward
    ours = torch.cat([encoder.encode_queries([text]).vectors for text in TOP["queries"].values()])
    theirs = colbert_ai_queries()
    torch.testing.assert_close(ours, theirs.vectors, atol=2e-4, rtol=0)
    assert float((ours * theirs.vectors).sum(dim=1).min()) >= 0.9999


@pytest.mark.parametrize("nbits", NBITS)
def test_text_search_with_lirlab_s_encoder_gives_colbert_ai_s_top10(benchmark_checkpoint, nbits):
    index = read_stanford_index(HERE / f"nbits{nbits}", encoder=benchmark_checkpoint, docnos=DOCNOS)
    run = index.search(dict(TOP["queries"]), k=10)  # {qid: text}
    assert_same_top10(run, TOP["indexes"][f"nbits{nbits}"]["top10"]["default_k10"])


@pytest.mark.parametrize("tool", ["colbert_ai", "fast_plaid"])
def test_lirlab_search_reads_other_tools_indexes(benchmark_folder, tool, capsys):
    from lirlab import cli

    if tool == "colbert_ai":
        folder, expected = HERE / "nbits2", TOP["indexes"]["nbits2"]["top10"]["default_k10"]["q03"]["pids"]
        knobs = []
    else:
        fast = json.loads((FIXTURES / "fast_plaid" / "topk.json").read_text())
        folder, expected = FIXTURES / "fast_plaid" / "index", fast["top10"]["default"]["q03"]["pids"]
        knobs = ["--n-probe", "8", "--ndocs", "16384", "--centroid-score-threshold", "-1"]
    argv = ["search", "--index", str(folder), "--query", TOP["queries"]["q03"], "--out", "-", *knobs]
    assert cli.main(argv) == 2
    assert "pass --model" in capsys.readouterr().err
    assert cli.main([*argv, "--model", str(benchmark_folder)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [int(r[2]) for r in rows] == expected  # docno = the tool's passage id
