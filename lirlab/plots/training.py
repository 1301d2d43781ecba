"""Figures of a training run (:class:`lirlab.train.TrainResult`); they compute nothing of their own.

Examples
--------
>>> import pandas as pd
>>> log = pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.2]})
>>> figure = plot_training_loss(log)
>>> [tick for tick in figure.axes[0].get_xticks().tolist() if 1 <= tick <= 3]
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lirlab.plots import SCREEN_DPI

if TYPE_CHECKING:
    import pandas as pd

#: Steps averaged by the loss curve's running mean.
MEAN_OVER = 5


def plot_training_loss(log: pd.DataFrame, title: str | None = None) -> Figure:
    """Each step's loss and its running mean over :data:`MEAN_OVER` steps, against whole-number steps.

    Parameters
    ----------
    log : pandas.DataFrame
        A run's log (``TrainResult.log``): columns ``step`` and ``loss``; rows without a loss (the
        evaluation rows) are left out.
    title : str, optional
        Default: "training loss".

    Returns
    -------
    matplotlib.figure.Figure
        700 × 320 px at :data:`~lirlab.plots.SCREEN_DPI`.

    Raises
    ------
    ValueError
        The log has no ``step`` and ``loss`` columns, or no step with a loss.
    """
    if not {"step", "loss"} <= set(log.columns):
        raise ValueError(f"a training log needs columns 'step' and 'loss', got {list(log.columns)}")
    steps = log[log["loss"].notna()]
    if steps.empty:
        raise ValueError("the training log has no step with a loss: train at least one step")
    figure = Figure(figsize=(7, 3.2), dpi=SCREEN_DPI, layout="constrained")
    ax = figure.add_subplot()
    ax.plot(steps.step, steps.loss, ".", alpha=0.5, label="loss of the step's batch")
    running = steps.loss.rolling(MEAN_OVER, min_periods=1).mean()
    ax.plot(steps.step, running, "-", label=f"mean of the last {MEAN_OVER} steps")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a step is a whole number
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    ax.set_title(title or "training loss", fontsize=10)
    return figure
