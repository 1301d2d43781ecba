"""Latency/quality sweeps, the Pareto frontier and their plot, on a small random corpus."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from lirlab.analysis.sweeps import (
    available_devices,
    exhaustive_reference,
    frontier,
    index_costs,
    measure_setting,
    pareto_front,
    setting_labels,
    stage_times,
    sweep,
    timed_search,
    validate_grid,
    with_frontier,
)
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate, top_overlap
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import STAGES, PlaidIndex
from lirlab.plots.sweeps import plot_pareto

from . import synthetic

DIM = 16
N_CENTROIDS = 16
K = 5
N_DOCS = 40


def random_encoding(n: int, seed: int, kind: str = "document", prefix: str = "d") -> Encoding:
    return synthetic.random_encoding(n, seed, dim=DIM, kind=kind, prefix=prefix)


@pytest.fixture(scope="module")
def docs() -> Encoding:
    return random_encoding(N_DOCS, seed=3)


@pytest.fixture(scope="module")
def queries() -> Encoding:
    return random_encoding(4, seed=4, kind="query", prefix="q")


@pytest.fixture(scope="module")
def qrels(queries) -> pd.DataFrame:
    return pd.DataFrame(
        {"query_id": list(queries.ids), "doc_id": [f"d{i}" for i in (1, 5, 9, 13)], "relevance": 1}
    )


@pytest.fixture(scope="module")
def index(docs) -> PlaidIndex:
    return PlaidIndex.from_encoding(docs, nbits=2, n_centroids=N_CENTROIDS)


EXHAUSTIVE = {"n_probe": N_CENTROIDS, "centroid_score_threshold": -1.0, "ndocs": 4 * N_DOCS}


def test_sweep_has_one_row_per_setting_with_the_expected_columns(index, queries, qrels):
    grid = {"n_probe": [1, 4], "ndocs": [8, 4 * N_DOCS]}
    table = sweep(index, queries, grid, qrels=qrels, k=K, warmup=1, progress=False)
    assert len(table) == 2 * 2
    assert sorted(zip(table.n_probe, table.ndocs)) == sorted((p, n) for p in (1, 4) for n in (8, 4 * N_DOCS))
    assert (table.centroid_score_threshold == 0.5).all(), "unset knobs follow the defaults for k"
    expected = {
        "device",
        "device_name",
        "nbits",
        "n_centroids",
        "queries",
        "p50_ms",
        "p90_ms",
        "nDCG@10",
        f"exhaustive_recall@{K}",
        "setting",
    }
    expected |= {f"{stage}_{p}_ms" for stage in STAGES for p in ("p50", "p90")}
    assert expected <= set(table.columns)
    assert (table.device == "cpu").all() and (table.queries == len(queries)).all()
    assert (table.p90_ms >= table.p50_ms).all() and (table.p50_ms > 0).all()
    assert table.attrs["machines"]["cpu"]["cpu_count"] >= 1
    assert table.setting.iloc[0] == f"n_probe={table.n_probe.iloc[0]}, ndocs={table.ndocs.iloc[0]}"


def test_quality_columns_match_a_direct_computation(index, queries, qrels):
    table = sweep(index, queries, {"n_probe": [1]}, qrels=qrels, k=K, warmup=0, progress=False)
    run = index.search(queries, k=K, n_probe=1)
    reference = FlatIndex(index.documents()).search(queries, k=K)
    by_hand = np.mean(
        [
            len(set(run[run.qid == q].docno) & set(reference[reference.qid == q].docno)) / K
            for q in queries.ids
        ]
    )
    assert table[f"exhaustive_recall@{K}"].iloc[0] == pytest.approx(by_hand)
    assert table["nDCG@10"].iloc[0] == pytest.approx(float(evaluate(run, qrels, ["nDCG@10"]).value.iloc[0]))


def test_exhaustive_knobs_recall_the_whole_exhaustive_top_k(index, queries):
    table = sweep(index, queries, EXHAUSTIVE, k=K, warmup=0, progress=False)
    assert table[f"exhaustive_recall@{K}"].tolist() == [1.0]


def test_build_knobs_build_one_index_per_value(docs, queries):
    table = sweep(
        docs,
        queries,
        {"nbits": [1, 4], **EXHAUSTIVE},
        build={"n_centroids": N_CENTROIDS},
        k=K,
        warmup=0,
        progress=False,
    )
    assert table.nbits.tolist() == [1, 4]
    assert table.setting.tolist() == ["nbits=1", "nbits=4"]
    uncompressed = FlatIndex(docs).search(queries, k=K)
    for row in table.to_dict("records"):
        built = PlaidIndex.from_encoding(docs, nbits=row["nbits"], n_centroids=N_CENTROIDS)
        expected = top_overlap(built.search(queries, k=K, **EXHAUSTIVE), uncompressed, K)
        assert row[f"exhaustive_recall@{K}"] == pytest.approx(expected)


def test_warm_up_runs_are_not_timed(queries):
    class CountingIndex:
        calls = 0
        STAGES = STAGES

        def search_encoded(self, one, k=10, timings=None, **knobs):
            self.calls += 1
            if timings is not None:
                timings.append(dict.fromkeys(STAGES, 0.001))

    counting = CountingIndex()
    row = timed_search(counting, queries, k=K, warmup=2, stage_percentiles=("p50", "p90"))
    assert counting.calls == 2 + len(queries)
    assert row["queries"] == len(queries)
    assert row["exact_maxsim_p90_ms"] == pytest.approx(1.0)


def test_measure_setting_reports_resolved_knobs(index, queries):
    row = measure_setting(index, queries, k=K, warmup=0, n_timed=2, ndocs=64)
    assert (row["n_probe"], row["centroid_score_threshold"], row["ndocs"]) == (1, 0.5, 64)
    assert row["queries"] == 2 and "nDCG@10" not in row


def test_bad_grids_and_devices_are_value_errors(index, docs, queries):
    with pytest.raises(ValueError, match="takes n_probe.*got 'nprobe'"):
        sweep(index, queries, {"nprobe": [1]}, progress=False)
    with pytest.raises(ValueError, match="n_probe must be >= 1, got 0"):
        sweep(index, queries, {"n_probe": [1, 0]}, progress=False)
    with pytest.raises(ValueError, match="centroid_score_threshold must be <= 1"):
        validate_grid({"centroid_score_threshold": [2.0]})
    with pytest.raises(ValueError, match="nbits must be one of"):
        validate_grid({"nbits": [3]})
    with pytest.raises(ValueError, match="no value for 'ndocs'"):
        validate_grid({"ndocs": []})
    with pytest.raises(ValueError, match="needs the encoded documents"):
        sweep(index, queries, {"nbits": [1]}, progress=False)
    with pytest.raises(ValueError, match="'nbits' is both swept and fixed"):
        sweep(docs, queries, {"nbits": [1]}, build={"nbits": 2}, progress=False)
    with pytest.raises(ValueError, match="takes the build knob 'centroids'"):
        sweep(docs, queries, {}, build={"centroids": 8}, progress=False)
    with pytest.raises(ValueError, match="unsupported device 'meta'|unknown device"):
        sweep(index, queries, {}, devices=("meta",), progress=False)
    with pytest.raises(ValueError, match="no queries"):
        sweep(index, queries.select([]), {}, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        sweep(index, queries, {}, k=0, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the notice given where CUDA is absent")
def test_cuda_is_skipped_with_a_notice_when_absent(index, queries):
    with pytest.warns(UserWarning, match="CUDA is not available"):
        table = sweep(
            index, queries, {"n_probe": [1]}, devices=("cpu", "cuda"), k=K, warmup=0, progress=False
        )
    assert table.device.tolist() == ["cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="none of the devices"):
            sweep(index, queries, {}, devices=("cuda",), progress=False)


@pytest.mark.cuda
def test_cpu_and_cuda_rows_in_one_table(index, queries):
    table = sweep(index, queries, EXHAUSTIVE, devices=("cpu", "cuda"), k=K, warmup=1, progress=False)
    assert table.device.tolist() == ["cpu", "cuda"]
    assert table[f"exhaustive_recall@{K}"].tolist() == [1.0, 1.0]
    assert "gpu" in table.attrs["machines"]["cuda"]


def test_pareto_frontier_on_a_hand_made_table():
    table = pd.DataFrame(
        {
            "device": ["cpu"] * 6 + ["cuda"] * 2,
            "p50_ms": [1.0, 2.0, 2.0, 3.0, 4.0, np.nan, 9.0, 8.0],
            "nDCG@10": [0.50, 0.60, 0.55, 0.60, 0.90, 0.99, 0.1, 0.2],
        },
        index=list("abcdefgh"),
    )
    # c is beaten by b (as fast, better); d by b (faster, as good); f has no latency; g by h, h by a
    # unless each device gets its own frontier.
    assert pareto_front(table).tolist() == [True, True, False, False, True, False, False, False]
    assert pareto_front(table, by="device").tolist() == [True, True, False, False, True, False, False, True]
    twins = pd.DataFrame({"p50_ms": [1.0, 1.0], "nDCG@10": [0.5, 0.5]})
    assert pareto_front(twins).tolist() == [True, True], "equal points do not dominate each other"
    with pytest.raises(ValueError, match="no column 'latency'"):
        pareto_front(table, latency="latency")


def test_setting_labels_name_the_knobs_that_vary():
    table = pd.DataFrame(
        {
            "device": ["cpu", "cpu"],
            "n_probe": [1, 4],
            "ndocs": [256, 256],
            "centroid_score_threshold": [0.5, 0.45],
        }
    )
    assert setting_labels(table).tolist() == [
        "n_probe=1, centroid_score_threshold=0.5",
        "n_probe=4, centroid_score_threshold=0.45",
    ]
    assert setting_labels(table.iloc[:1]).tolist() == ["n_probe=1, centroid_score_threshold=0.5, ndocs=256"]


def test_pareto_plot_renders_with_labels_and_frontier():
    table = pd.DataFrame(
        {
            "n_probe": [1, 2, 4, 8],
            "p50_ms": [1.0, 2.0, 3.0, 2.5],
            "exhaustive_recall@10": [0.5, 0.7, 0.8, 0.6],
        }
    )
    table = with_frontier(table, "exhaustive_recall@10")
    figure = plot_pareto(table, highlight=3)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["n_probe=1", "n_probe=2", "n_probe=4", "n_probe=8"]
    frontier = ax.lines[0]
    assert frontier.get_xdata().tolist() == [1.0, 2.0, 3.0] and frontier.get_ydata().tolist() == [
        0.5,
        0.7,
        0.8,
    ]
    assert ax.get_ylabel() == "exhaustive_recall@10"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no row 7"):
        plot_pareto(table, highlight=7)
    with pytest.raises(ValueError, match="no rows"):
        plot_pareto(table.iloc[:0])


def test_exhaustive_reference_over_uncompressed_or_decompressed_vectors(docs, index, queries):
    exact = exhaustive_reference(docs, queries, k=K)
    decompressed = exhaustive_reference(index, queries, k=K)
    assert len(exact) == len(decompressed) == len(queries) * K
    query = queries.vectors_of(0)
    scores = [float((query @ docs.vectors_of(i).T).amax(dim=1).sum()) for i in range(len(docs))]
    top = [docs.ids[i] for i in np.argsort(scores)[::-1][:K]]
    assert exact[exact.qid == queries.ids[0]].docno.tolist() == top
    with pytest.raises(ValueError, match="an Encoding or an index"):
        exhaustive_reference(["text"], queries)


def two_fronts() -> pd.DataFrame:
    """Four settings whose nDCG@10 front and recall front differ (notebook 05's case: nDCG flat,
    recall climbing with latency)."""
    table = pd.DataFrame(
        {
            "device": "cpu",
            "n_probe": [1, 2, 4, 8],
            "p50_ms": [1.0, 2.0, 3.0, 4.0],
            "nDCG@10": [0.86, 0.86, 0.86, 0.86],
            "exhaustive_recall@10": [0.6, 0.8, 0.7, 0.9],
        }
    )
    return with_frontier(table, "nDCG@10")


def test_a_pareto_plot_marks_the_front_of_the_quality_it_draws():
    table = two_fronts()
    assert table.on_front.tolist() == [True, False, False, False], "sweep's front is against nDCG@10"
    ax = plot_pareto(table, quality="exhaustive_recall@10").axes[0]
    frontier = ax.lines[0]
    assert frontier.get_xdata().tolist() == [1.0, 2.0, 4.0]
    assert frontier.get_ydata().tolist() == [0.6, 0.8, 0.9]
    ax = plot_pareto(table, quality="nDCG@10").axes[0]
    assert ax.lines[0].get_xdata().tolist() == [1.0]


def test_frontier_is_one_definition_for_table_and_plot():
    table = two_fronts()
    assert frontier(table, "exhaustive_recall@10").tolist() == [True, True, False, True]
    assert frontier(table, "nDCG@10").tolist() == table.on_front.tolist()


class ScriptedClock:
    """A stand-in for ``time``: ``perf_counter`` reads a clock that a fake index advances."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_rounds_keep_each_querys_fastest_time_and_report_the_spread(queries, monkeypatch):
    import lirlab.analysis.sweeps as sweeps_module

    clock = ScriptedClock()
    monkeypatch.setattr(sweeps_module, "time", clock)
    # query i takes (i + 1) ms, except in round 0 where a burst of load adds 50 ms to every query
    n = len(queries)
    calls = []

    class ScriptedIndex:
        STAGES = ("exact_maxsim",)

        def search_encoded(self, one, k=10, timings=None, **knobs):
            calls.append(one.ids[0])
            if timings is None:
                return
            i = queries.ids.index(one.ids[0])
            timed_calls = len(calls) - 1  # warm-up 1 call
            burst = 50.0 if timed_calls < n else 0.0
            ms = i + 1 + burst
            clock.now += ms / 1000
            timings.append({"exact_maxsim": ms / 1000})

    row = timed_search(ScriptedIndex(), queries, k=K, warmup=1, rounds=3, stage_percentiles=("p10", "p50"))
    assert len(calls) == 1 + 3 * n
    best = np.arange(1, n + 1, dtype=float)
    assert row["p50_ms"] == pytest.approx(np.percentile(best, 50))
    assert row["p10_ms"] == pytest.approx(np.percentile(best, 10))
    assert row["p90_ms"] == pytest.approx(np.percentile(best, 90))
    assert row["exact_maxsim_p50_ms"] == pytest.approx(np.percentile(best, 50))
    assert row["exact_maxsim_p10_ms"] == pytest.approx(np.percentile(best, 10))
    assert row["rounds"] == 3 and row["queries"] == n
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        timed_search(ScriptedIndex(), queries, rounds=0)


def test_sweep_times_in_rounds_and_reports_p10_to_p90(index, queries):
    table = sweep(index, queries, {"n_probe": [1, 2]}, k=K, warmup=0, rounds=2, progress=False)
    assert (table.rounds == 2).all()
    assert (table.p10_ms <= table.p50_ms).all() and (table.p50_ms <= table.p90_ms).all()
    assert {f"{stage}_{p}_ms" for stage in STAGES for p in ("p10", "p50", "p90")} <= set(table.columns)


def test_stage_times_is_one_narrow_column_per_setting(index, queries):
    table = sweep(index, queries, {"n_probe": [1, 2, 4]}, k=K, warmup=0, progress=False)
    stages = stage_times(table, by=["device", "n_probe"])
    assert stages.index.tolist() == [*STAGES, "whole search"]
    assert stages.columns.tolist() == [("cpu", 1), ("cpu", 2), ("cpu", 4)]
    assert stages.loc["decompression", ("cpu", 2)] == table.decompression_p50_ms.iloc[1]
    assert stages.loc["whole search", ("cpu", 4)] == table.p50_ms.iloc[2]
    slow = stage_times(table, by=["device", "n_probe"], percentile="p90")
    assert slow.loc["exact_maxsim", ("cpu", 1)] == table.exact_maxsim_p90_ms.iloc[0]
    with pytest.raises(ValueError, match="no stage timings at p99"):
        stage_times(table, by=["n_probe"], percentile="p99")


def test_devices_default_to_what_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asking for nothing absent gives no notice
        assert available_devices(None) == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert available_devices(None) == ["cpu", "cuda"]


def test_labels_tell_apart_settings_of_one_method_that_differ_in_a_build_knob(docs, queries):
    flat = FlatIndex.from_encoding(docs)
    pooled = FlatIndex.from_encoding(docs, pool_factor=2)
    assert index_costs(pooled)["pool_factor"] == 2 and index_costs(flat)["pool_factor"] == 1
    plaid = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=N_CENTROIDS)
    table = sweep(
        docs,
        queries,
        methods=[(flat, {}), (plaid, {"n_probe": [1, 4]}), (pooled, {})],
        k=K,
        warmup=0,
        n_timed=1,
        progress=False,
    )
    assert table.setting.tolist() == [
        "method=flat, pool_factor=1",
        "method=plaid, n_probe=1",
        "method=plaid, n_probe=4",
        "method=flat, pool_factor=2",
    ]


def test_sweep_interleaves_the_rounds_of_its_settings(index, queries, monkeypatch):
    """Round 1 of every setting, then round 2 of every setting: a burst of load that lasts a while hits
    one round of several settings, not every round of one setting."""
    order = []
    search = index.search_encoded

    def recording(one, k=10, timings=None, **knobs):
        if timings is not None:
            order.append(knobs["n_probe"])
        return search(one, k=k, timings=timings, **knobs)

    monkeypatch.setattr(index, "search_encoded", recording)
    sweep(index, queries, {"n_probe": [1, 2]}, k=K, warmup=0, rounds=2, progress=False)
    n = len(queries)
    assert order == [1] * n + [2] * n + [1] * n + [2] * n
