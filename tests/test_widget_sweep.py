"""SweepExplorer driven programmatically: sliders from the declarations, results that follow them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import lirlab.widgets.sweep as sweep_widget
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.plaid import SEARCH_PARAMS, PlaidIndex
from lirlab.widgets import png_size
from lirlab.widgets.sweep import SweepExplorer

N_CENTROIDS = 8
N_DOCS = 30
PNG = b"\x89PNG"


def random_encoding(n: int, seed: int, kind: str, prefix: str) -> Encoding:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 10, (n,), generator=g)
    total = int(lengths.sum())
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(n)),
        vectors=torch.nn.functional.normalize(torch.randn(total, 16, generator=g), dim=1),
        token_ids=torch.zeros(total, dtype=torch.long),
        offsets=offsets_from_lengths(lengths),
        vocab=("tok",),
        kind=kind,
    )


@pytest.fixture(scope="module")
def index() -> PlaidIndex:
    return PlaidIndex.from_encoding(
        random_encoding(N_DOCS, 5, "document", "d"), nbits=2, n_centroids=N_CENTROIDS
    )


@pytest.fixture(scope="module")
def queries() -> Encoding:
    return random_encoding(3, 6, "query", "q")


@pytest.fixture(scope="module")
def qrels(queries) -> pd.DataFrame:
    return pd.DataFrame({"query_id": list(queries.ids), "doc_id": ["d1", "d2", "d3"], "relevance": 1})


def test_sliders_follow_the_knob_declarations(index, queries):
    explorer = SweepExplorer(index, queries, k=5)
    assert "lirlab-knob-n_probe" in explorer.n_probe._dom_classes
    assert "lirlab-knob-ndocs" in explorer.ndocs._dom_classes
    assert "lirlab-knob-centroid_score_threshold" in explorer.centroid_score_threshold._dom_classes
    steps = list(explorer.n_probe.options)
    assert steps[0] == SEARCH_PARAMS["n_probe"].low and steps[-1] >= N_CENTROIDS, (
        "n_probe reaches every centroid"
    )
    assert all(b > a for a, b in zip(steps, steps[1:])) and {1, 2, 4, 8} <= set(steps), "powers of two"
    threshold = SEARCH_PARAMS["centroid_score_threshold"]
    assert (explorer.centroid_score_threshold.min, explorer.centroid_score_threshold.max) == (
        threshold.low,
        threshold.high,
    )
    assert max(explorer.ndocs.options) >= 4 * N_DOCS, "the slider must reach the exhaustive setting"
    assert (explorer.n_probe.value, explorer.ndocs.value, explorer.centroid_score_threshold.value) == (
        1,
        256,
        0.5,
    )
    assert all(not slider.continuous_update for slider in explorer.sliders.values())
    assert "lirlab-sweep-result" in explorer.result._dom_classes
    assert "lirlab-sweep-plot" in explorer.plot._dom_classes
    assert "lirlab-message" in explorer.message._dom_classes
    assert "nDCG@10" not in explorer.result.value, "no judgments, no nDCG"
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_moving_a_slider_measures_and_redraws(index, queries, qrels):
    explorer = SweepExplorer(index, queries, qrels=qrels, k=5)
    first_result, first_plot = explorer.result.value, bytes(explorer.plot.value)
    assert (
        "p50 latency" in first_result
        and "nDCG@10" in first_result
        and "recall of the exhaustive top-5" in first_result
    )
    assert first_plot.startswith(PNG) and len(explorer.history) == 1

    explorer.n_probe.value = N_CENTROIDS
    explorer.centroid_score_threshold.value = -1.0
    explorer.ndocs.value = max(explorer.ndocs.options)
    assert explorer.result.value != first_result and bytes(explorer.plot.value) != first_plot
    assert bytes(explorer.plot.value).startswith(PNG)
    assert len(explorer.history) == 4
    current = explorer.history.iloc[-1]
    assert (current.n_probe, current.centroid_score_threshold, current.ndocs) == (
        N_CENTROIDS,
        -1.0,
        max(explorer.ndocs.options),
    )
    assert current["exhaustive_recall@5"] == 1.0, "every centroid probed and nothing pruned: exhaustive"
    assert "1.0000" in explorer.result.value

    explorer.ndocs.value = 256  # a setting tried before is measured again, not listed twice
    assert len(explorer.history) == 4 and explorer.history.iloc[-1].ndocs == 256


def test_errors_are_shown_as_messages(index, queries, monkeypatch):
    explorer = SweepExplorer(index, queries, k=5)

    def refuse(*args, **kwargs):
        raise ValueError("ndocs is out of reach")

    monkeypatch.setattr(sweep_widget, "measure_setting", refuse)
    before = explorer.result.value
    explorer.n_probe.value = 2
    assert "ndocs is out of reach" in explorer.message.value
    assert explorer.result.value == before


def test_bad_arguments_are_value_errors(index, queries):
    with pytest.raises(ValueError, match="needs a lirlab index"):
        SweepExplorer("index", queries)
    with pytest.raises(ValueError, match="k must be"):
        SweepExplorer(index, queries, k=0)
    with pytest.raises(ValueError, match="no encoder"):
        SweepExplorer(index, ["a text query"])


def test_the_plot_shows_a_quality_that_moves_and_readable_labels(index, queries, qrels, monkeypatch):
    drawn = []
    real_png = sweep_widget.figure_png

    def capture(figure, dpi=100):
        drawn.append((figure, dpi))
        return real_png(figure, dpi=dpi)

    monkeypatch.setattr(sweep_widget, "figure_png", capture)
    explorer = SweepExplorer(index, queries, qrels=qrels, k=5)
    explorer.n_probe.value = N_CENTROIDS
    figure, dpi = drawn[-1]
    ax = figure.axes[0]
    # judged or not, the plot's quality is the recall of the exhaustive top-k: nDCG@10 may not move at all
    assert explorer.quality == "exhaustive_recall@5" and ax.get_ylabel() == "exhaustive_recall@5"
    assert "nDCG@10" in explorer.result.value, "nDCG@10 still shows in the result table"
    sizes = [t.get_fontsize() * dpi / 72 for t in ax.texts]
    assert sizes and min(sizes) >= 10, f"labels of {min(sizes):.1f} px"
    width, height = png_size(bytes(explorer.plot.value))
    assert width <= 993 and height <= 757
    latency = SweepExplorer(index, queries, qrels=qrels, k=5, quality="nDCG@10")
    assert latency.quality == "nDCG@10"
    with pytest.raises(ValueError, match="quality must be one of"):
        SweepExplorer(index, queries, k=5, quality="MAP")


def test_the_explorer_times_on_the_threads_it_is_given(index, queries, monkeypatch):
    seen = []
    measure = sweep_widget.measure_setting

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return measure(*args, **kwargs)

    monkeypatch.setattr(sweep_widget, "measure_setting", recording)
    before = torch.get_num_threads()
    explorer = SweepExplorer(index, queries, k=5, threads=1)
    explorer.n_probe.value = 2
    assert seen == [1, 1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        SweepExplorer(index, queries, k=5, threads=0)
