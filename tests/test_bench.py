"""The benchmark commands run end to end on a slice of the demo corpus and describe the machine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lirlab.bench.core import run_core_benchmark
from lirlab.bench.plaid import N_PROBES, run_plaid_benchmark
from lirlab.data import Dataset

from .synthetic import demo_slice


@pytest.fixture(scope="module")
def small_demo() -> Dataset:
    return demo_slice(n_docs=80, n_queries=6)


def test_core_benchmark_writes_its_figures(small_demo, stanford, tmp_path):
    path = run_core_benchmark(small_demo, stanford, tmp_path, n_queries=3, encode_sample=10)
    result = json.loads(path.read_text())
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["torch"]
    assert result["corpus"]["documents"] == 80
    assert 0 < result["quality_all_queries"]["nDCG@10"] <= 1
    assert result["document_encoding"]["lirlab_docs_per_s"] > 0
    assert (
        result["exhaustive_maxsim"]["p50_ms"] > 0
        and result["exhaustive_maxsim"]["same_size_matmul"]["gflop"] > 0
    )
    routes = result["exhaustive_kernels"]["int8_routes"]
    assert "onnxruntime" in routes
    for route in routes.values():
        assert route["same_top_k_fraction"] == 1.0 and route["worst_score_gap"] < 1e-4
        assert 10 <= route["rescored_documents"]["max"] <= 80


def test_plaid_benchmark_writes_its_tables(small_demo, stanford, tmp_path):
    path = run_plaid_benchmark(small_demo, stanford, tmp_path, n_queries=3)
    result = json.loads(path.read_text())
    codecs = result["codecs"]
    assert [(c["nbits"], c["centroid_dtype"]) for c in codecs] == [
        (1, "float32"),
        (2, "float32"),
        (2, "float16"),
        (4, "float32"),
    ]
    assert [c["bytes_per_vector"] for c in codecs] == [16 + 2, 32 + 2, 32 + 2, 64 + 2]
    assert all(0 <= c["top10_overlap_all"] <= 1 for c in codecs)
    assert codecs[1]["top10_overlap_with_default_build"] == 1.0
    # float16 centroids: smaller on disk (exactly half their bytes: pinned in test_plaid)
    assert codecs[2]["index_bytes_on_disk"] < codecs[1]["index_bytes_on_disk"]
    assert codecs[2]["bytes_per_vector_all_in"] < codecs[1]["bytes_per_vector_all_in"]
    sweep = pd.read_csv(tmp_path / "plaid.n_probe_sweep.csv")
    assert sweep.n_probe.tolist() == list(N_PROBES)
    assert {"p50_ms", "centroid_scoring_p50_ms", "exact_maxsim_p50_ms", "nDCG@10_all"} <= set(sweep.columns)
    assert result["build"]["seconds"] > 0 and result["build"]["peak_rss_mib"] > 0
    assert result["build"]["first_search_seconds"] > 0
    stages = result["build"]["stage_seconds"]
    assert (
        set(stages) == {"encoding", "kmeans", "compression"}
        and sum(stages.values()) <= result["build"]["seconds"]
    )
    capped = result["build"]["capped_kmeans"]
    assert capped["training_vectors"] <= 32 * result["build"]["n_centroids"]
    assert capped["seconds_with_this_run_encoding"] == pytest.approx(
        stages["encoding"] + capped["stage_seconds"]["kmeans"] + capped["stage_seconds"]["compression"]
    )
    routes = result["search_default_knobs_against_previous"]
    assert (
        routes["same_top_k_queries"] == routes["queries"] == 3 and routes["max_abs_score_difference"] < 1e-4
    )
    assert routes["p50_ratio_median"] > 0 and set(routes["ratio_of_medians"]) >= {"p50_ms", "pruning_p50_ms"}
    assert routes["fused_quality"]["nDCG@10_all"] == pytest.approx(routes["previous_quality"]["nDCG@10_all"])
    assert routes["torch_threads"] >= 1 and len(routes["load_average"]) == 3


def test_cached_flat_index_is_reused_only_for_the_same_model_and_documents(
    small_demo, stanford, tmp_path, monkeypatch
):
    from lirlab.bench.record import cached_flat_index
    from lirlab.index.flat import FlatIndex

    first = cached_flat_index(small_demo, stanford, tmp_path)
    assert (tmp_path / "demo-slice-flat" / "metadata.json").is_file()

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cached vectors should have been used")

    monkeypatch.setattr(FlatIndex, "build", no_encoding)
    again = cached_flat_index(small_demo, stanford, tmp_path)
    assert again.docnos == first.docnos
    assert (again.docs.vectors == first.docs.vectors).all()

    fewer = Dataset("demo-slice", small_demo.docs[:40], small_demo.queries, small_demo.qrels)
    with pytest.raises(AssertionError, match="cached vectors"):
        cached_flat_index(fewer, stanford, tmp_path)

    monkeypatch.undo()  # a stale cache (other documents) is encoded again and replaced, not an error
    replaced = cached_flat_index(fewer, stanford, tmp_path)
    assert len(replaced) == 40 and len(FlatIndex.load(tmp_path / "demo-slice-flat", encoder=stanford)) == 40


def test_methods_benchmark_puts_every_method_in_one_table_and_chart(small_demo, stanford, tmp_path):
    from lirlab.bench.methods import run_methods_benchmark

    path = run_methods_benchmark(
        small_demo,
        stanford,
        tmp_path,
        n_queries=2,
        threads=(1,),
        max_queries=4,
        pool_factors=(1, 2),
        plaid_build={"n_centroids": 32, "kmeans_iterations": 2},
        qdrant_grid={"prefetch": [0]},
    )
    result = json.loads(path.read_text())
    table = pd.DataFrame(result["sweep"])
    assert set(table.method) == {"flat", "plaid", "warp", "muvera", "qdrant", "flat+pool", "plaid+pool"}
    qdrant = table[table.method == "qdrant"].iloc[0]
    assert qdrant["exhaustive_recall@10"] == 1.0 and qdrant.build_s > 0 and qdrant["R@100"] == 1.0
    assert result["machine"]["cpu_count"] >= 1 and set(table.threads) == {1}
    assert table.on_front.any() and (table["exhaustive_recall@10"][table.method == "flat"] == 1.0).all()
    assert table["nDCG@10"].between(0, 1).all() and (table.p50_ms > 0).all()
    pooled = table[table.method == "flat+pool"].iloc[0]
    assert pooled.pool_factor == 2 and 0.3 < pooled.vectors_removed < 0.6
    assert -1 <= result["fde_rank_correlation"]["spearman_mean"] <= 1
    assert path.with_suffix(".png").stat().st_size > 1000
