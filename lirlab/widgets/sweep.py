"""SweepExplorer: move an index's search knobs and watch latency and quality move.

The sliders are built from the index kind's knob declarations (``SEARCH_PARAMS``): whole-number knobs
step through powers of two inside the declared range (useful values of ``n_probe`` or ``ndocs`` sit at
the small end), real-valued ones move linearly. Each
setting is measured by :func:`~lirlab.analysis.sweeps.measure_setting` (queries timed one at a time
after a warm-up, quality over every query) and added to the settings tried so far, drawn by
:func:`~lirlab.plots.sweeps.plot_pareto` with the current one ringed. The plot's quality axis is the
recall of the exhaustive top-k by default: it moves with every search knob, while nDCG@10 may not move at
all on a small corpus (it stays in the result table). A notebook cell ending in an explorer shows it.

Every element carries a CSS class (``lirlab-knob-n_probe``, ``lirlab-knob-ndocs``,
``lirlab-knob-centroid_score_threshold``, ``lirlab-sweep-result``, ``lirlab-sweep-plot``,
``lirlab-message``) so browser tests can find it.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(
...     ids=tuple(f"d{i}" for i in range(20)),
...     vectors=torch.nn.functional.normalize(torch.randn(100, 16, generator=g), dim=1),
...     token_ids=torch.zeros(100, dtype=torch.long),
...     offsets=offsets_from_lengths(torch.full((20,), 5)),
...     vocab=("tok",),
... )
>>> from lirlab.index.plaid import PlaidIndex
>>> explorer = SweepExplorer(PlaidIndex.from_encoding(docs, n_centroids=8), docs.select([2, 7]), k=3)
>>> explorer.n_probe.value = 8
>>> explorer.history.setting.tolist()
['n_probe=1', 'n_probe=8']
>>> bytes(explorer.plot.value[:4])
b'\x89PNG'
"""

from __future__ import annotations

import html
import warnings

import ipywidgets as widgets
import pandas as pd

from lirlab.analysis.sweeps import (
    THREADS,
    exhaustive_reference,
    measure_setting,
    torch_threads,
    with_frontier,
)
from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import judged
from lirlab.index.base import K_PARAM, Index
from lirlab.params import Param
from lirlab.plots import figure_png
from lirlab.plots.sweeps import plot_pareto
from lirlab.widgets import show_png

#: Queries timed per setting by default (quality always uses every query).
TIMED_QUERIES = 30

#: Step of the centroid score threshold slider.
THRESHOLD_STEP = 0.05

#: Resolution of the plot (the notebook's own figures are shown at 100 dpi too).
PLOT_DPI = 100


def knob_steps(low: int, high: int, value: int) -> list[int]:
    """Powers of two from ``low`` to ``high``, with ``low``, ``value`` and ``high`` among them.

    >>> knob_steps(1, 40, 3)
    [1, 2, 3, 4, 8, 16, 32, 40]
    >>> knob_steps(0, 5, 0)
    [0, 1, 2, 4, 5]
    """
    steps = {low, value, high}
    step = max(1, low)
    while step <= high:
        steps.add(step)
        step *= 2
    return sorted(v for v in steps if low <= v <= high)


def _slider(param: Param, value, maximum: int) -> widgets.SelectionSlider | widgets.FloatSlider:
    """A slider over ``param``'s declared range (``maximum`` where the declaration leaves it open)."""
    common = {
        "value": value,
        "description": param.name,
        "tooltip": param.description,
        "continuous_update": False,
        "style": {"description_width": "initial"},
        "layout": widgets.Layout(width="32%"),
    }
    if param.type is int:
        low = int(param.low) if param.low is not None else min(0, int(value))
        high = int(param.high) if param.high is not None else max(maximum, value)
        slider = widgets.SelectionSlider(options=knob_steps(low, high, value), **common)
    else:
        slider = widgets.FloatSlider(
            min=param.low, max=param.high, step=THRESHOLD_STEP, readout_format=".2f", **common
        )
    slider.add_class(f"lirlab-knob-{param.name}")
    return slider


class SweepExplorer:
    """Try an index's search settings interactively: latency, quality and the settings tried so far.

    Parameters
    ----------
    index : lirlab.index.base.Index
        The index searched (on its own device), of any kind with numeric search knobs.
    queries : Encoding, Dataset or queries
        Encoded queries, a :class:`~lirlab.data.Dataset` (its queries, and its qrels unless ``qrels``
        is given), or anything the index's encoder takes.
    qrels : DataFrame or Dataset, optional
        Judgments: the result then shows nDCG@10.
    k : int
        Results per query; also sets the knobs' starting values (ColBERTv2's defaults for ``k``).
    n_timed : int, optional
        Queries timed per setting (default :data:`TIMED_QUERIES`; ``None`` times all).
    quality : str, optional
        The plot's quality axis: ``"exhaustive_recall@<k>"`` (the default) or, with judgments,
        ``"nDCG@10"``.
    threads : int, optional
        Torch threads to time with (``None``: as set); one is the steadiest on a busy machine, and a
        sweep timed with ``threads=[1]`` reads the same.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root box.
    sliders : dict of str to ipywidgets slider
        One per numeric search knob of the index kind (for PLAID also as attributes ``n_probe``,
        ``ndocs``, ``centroid_score_threshold``).
    result, plot, message :
        ``HTML`` with the current setting's figures, ``Image`` of the latency/quality plot, ``HTML``.
    history : pandas.DataFrame
        One row per setting measured (:func:`~lirlab.analysis.sweeps.measure_setting`), the last
        measured setting last.
    """

    def __init__(
        self,
        index,
        queries,
        qrels=None,
        k: int = 10,
        *,
        n_timed: int | None = TIMED_QUERIES,
        quality: str | None = None,
        threads: int | None = None,
    ):
        if not isinstance(index, Index):
            raise ValueError(f"SweepExplorer needs a lirlab index, got {type(index).__name__}")
        k = K_PARAM.validate(k)
        if isinstance(queries, Dataset):
            qrels = queries if qrels is None else qrels
            queries = queries.queries
        encoded = queries if isinstance(queries, Encoding) else index.encode_queries(queries)[1]
        self.index = index
        self.queries = encoded
        self.qrels = judged(qrels, encoded.ids)
        self.k = k
        qualities = [f"exhaustive_recall@{k}", *(["nDCG@10"] if self.qrels is not None else [])]
        if quality is not None and quality not in qualities:
            raise ValueError(f"quality must be one of {', '.join(qualities)}, got {quality!r}")
        self.quality = quality or qualities[0]
        self.threads = THREADS.validate(threads)
        self.n_timed = n_timed
        self.reference = exhaustive_reference(index, encoded, k)
        self.history = pd.DataFrame()

        start = index.resolve_knobs(k, {})
        numeric = {
            n: p for n, p in index.SEARCH_PARAMS.items() if p.type in (int, float) and p.choices is None
        }
        if not numeric:
            raise ValueError(f"a {index.KIND} index has no numeric search knob to explore")
        self.sliders = {
            name: _slider(param, start[name], max(4 * int(start[name]), len(index)))
            for name, param in numeric.items()
        }
        for name, slider in self.sliders.items():
            setattr(self, name, slider)
        self.message = widgets.HTML()
        self.message.add_class("lirlab-message")
        self.result = widgets.HTML()
        self.result.add_class("lirlab-sweep-result")
        self.plot = widgets.Image(format="png")
        self.plot.add_class("lirlab-sweep-plot")
        self.widget = widgets.VBox(
            [
                widgets.HBox(list(self.sliders.values())),
                self.message,
                self.result,
                self.plot,
            ]
        )
        for slider in self.sliders.values():
            slider.observe(self._on_knob, names="value")
        self.update()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_knob(self, change) -> None:
        self.update()

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#555555"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    @property
    def knobs(self) -> dict:
        """The search knobs the sliders are set to."""
        return {name: slider.value for name, slider in self.sliders.items()}

    def update(self) -> None:
        """Measure the sliders' setting and show it with every setting tried so far."""
        knobs = self.knobs
        try:
            with warnings.catch_warnings(record=True) as caught, torch_threads(self.threads):
                warnings.simplefilter("always")
                row = measure_setting(
                    self.index,
                    self.queries,
                    k=self.k,
                    reference=self.reference,
                    qrels=self.qrels,
                    n_timed=self.n_timed,
                    **knobs,
                )
        except ValueError as error:
            self._say(f"Cannot measure this setting: {error}", error=True)
            return
        tried = self.history
        if not tried.empty:
            same = (tried[list(knobs)] == pd.Series(knobs)).all(axis=1)
            tried = tried[~same]
        history = with_frontier(pd.concat([tried, pd.DataFrame([row])], ignore_index=True), self.quality)
        self.history = history
        self.result.value = self._result_html(row)
        try:
            figure = plot_pareto(history, quality=self.quality, highlight=history.index[-1])
            show_png(self.plot, figure_png(figure, dpi=PLOT_DPI))
        except ValueError as error:
            self._say(f"Cannot draw the settings: {error}", error=True)
            return
        self._say(" ".join(dict.fromkeys(str(w.message) for w in caught)))

    def _result_html(self, row: dict) -> str:
        recall = f"exhaustive_recall@{self.k}"
        cells = [
            ("p50 latency", f"{row['p50_ms']:.2f} ms"),
            ("p90 latency", f"{row['p90_ms']:.2f} ms"),
        ]
        if "nDCG@10" in row:
            cells.append(("nDCG@10", f"{row['nDCG@10']:.4f}"))
        cells.append((f"recall of the exhaustive top-{self.k}", f"{row[recall]:.4f}"))
        body = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in cells
        )
        setting = ", ".join(f"{name}={row[name]:g}" for name in self.sliders)
        return (
            f'<table class="lirlab-sweep-table"><caption>{html.escape(setting)} '
            f"({row['queries']} queries timed on {html.escape(row['device'])})</caption>"
            f"<tbody>{body}</tbody></table>"
        )
