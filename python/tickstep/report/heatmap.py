"""An optimisation seen over two of its parameters: one statistic as a heatmap.

The rows of `Backtest.optimize` / `tickstep.batch.run_batch` (one per parameter set and
symbol group) are reduced to one value per ``(x, y)`` pair: rows that failed are left
out, then every other parameter (and symbol group) is aggregated by ``agg`` — by default
``"max"``, the best value reachable at that pair when the other parameters are free to
take their best values (as backtesting.py's heatmaps do). ``"mean"`` or ``"median"``
show how robust a pair is across the rest of the grid instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tickstep.hints import did_you_mean
from tickstep.report._deps import plotly_objects

__all__ = ["heatmap_table", "plot_heatmap"]

_AGGREGATIONS = ("max", "min", "mean", "median")


def _metric(results: pd.DataFrame, metric: str | None) -> str:
    if metric is None:
        # A custom `maximize` leaves its value in "score"; otherwise optimize's default.
        metric = "score" if "score" in results.columns else "Sharpe Ratio"
    if metric not in results.columns:
        raise KeyError(f"no column {metric!r} in the results{did_you_mean(metric, results.columns)}")
    return metric


def agg_name(agg: str | Callable[[pd.Series], float]) -> str:
    """How the other parameters were aggregated, as a title says it."""
    return agg if isinstance(agg, str) else getattr(agg, "__name__", "agg")


def heatmap_cells(table: pd.DataFrame) -> list[list[float | None]]:
    """A `heatmap_table` as Plotly's ``z``: its values by row, None where there is none."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in table.to_numpy(dtype=float)]


def heatmap_table(results: pd.DataFrame, x: str, y: str, metric: str | None = None,
                  agg: str | Callable[[pd.Series], float] = "max") -> pd.DataFrame:
    """``metric`` by ``y`` (rows) and ``x`` (columns), other parameters aggregated by ``agg``.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of `tickstep.Backtest.optimize` or `tickstep.batch.run_batch`, or the table of
        `tickstep.Backtest.run_signal_grid` (its sets named by levels of its index).
    x, y : str
        Two parameters (different ones): columns, or levels of the index by name.
    metric : str, optional
        A statistic column (default ``"score"`` when present, else ``"Sharpe Ratio"``).
    agg : {"max", "min", "mean", "median"} or callable, default "max"
        How the rows sharing an ``(x, y)`` pair become one value; NaN values are skipped.

    Returns
    -------
    pandas.DataFrame
        Index: the values of ``y``, columns: the values of ``x``, both sorted; NaN where
        no successful run had that pair.

    Examples
    --------
    >>> rows = pd.DataFrame({"fast": [5, 5, 10, 10], "slow": [20, 20, 20, 40],
    ...                      "stop": [1, 2, 1, 1], "Return [%]": [3.0, 5.0, -1.0, 2.0],
    ...                      "status": "ok"})
    >>> heatmap_table(rows, x="fast", y="slow", metric="Return [%]").to_numpy().tolist()
    [[5.0, -1.0], [nan, 2.0]]
    """
    # A grid's table names its sets by the levels of its index (e.g. fast, slow).
    levels = [n for n in dict.fromkeys((x, y))
              if n not in results.columns and n is not None and n in results.index.names]
    if levels:
        results = results.reset_index(levels)
    for name in (x, y):
        if name not in results.columns:
            raise KeyError(
                f"no parameter {name!r} in the results{did_you_mean(name, results.columns)}"
            )
    if x == y:
        raise ValueError(f"x and y must be two different parameters, got {x!r} twice")
    metric = _metric(results, metric)
    if isinstance(agg, str) and agg not in _AGGREGATIONS:
        raise ValueError(f"agg={agg!r}: must be one of {', '.join(_AGGREGATIONS)} or a callable")
    ok = results["status"] == "ok" if "status" in results.columns else np.ones(len(results), bool)
    rows = results.loc[np.asarray(ok), [x, y, metric]]
    values = pd.to_numeric(rows[metric], errors="raise").astype(float)
    table = values.groupby([rows[y], rows[x]], sort=True).agg(agg).unstack(x)
    table.index.name, table.columns.name = y, x
    return table


def plot_heatmap(results: pd.DataFrame, x: str, y: str, metric: str | None = None,
                 agg: str | Callable[[pd.Series], float] = "max") -> Any:
    """A heatmap of `heatmap_table` (Plotly figure; needs ``tickstep[plot]``).

    Examples
    --------
    >>> import tickstep
    >>> from tickstep.strategies import SmaCross
    >>> from tickstep.report.heatmap import plot_heatmap
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    >>> rows = bt.optimize(fast=[5, 10], slow=[20, 40], cache=False, executor="sequential")
    >>> fig = plot_heatmap(rows, x="fast", y="slow", metric="Return [%]")
    >>> fig.data[0].type
    'heatmap'
    """
    go = plotly_objects()
    return go.Figure(heatmap_spec(results, x, y, metric, agg))


def heatmap_spec(results: pd.DataFrame, x: str, y: str, metric: str | None = None,
                 agg: str | Callable[[pd.Series], float] = "max") -> dict[str, Any]:
    """`plot_heatmap`'s figure as Plotly's plain spec (data and layout), which the HTML
    report embeds."""
    table = heatmap_table(results, x, y, metric, agg)
    metric = _metric(results, metric)
    z = table.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in z]
    how = agg_name(agg)
    spec = {
        "data": [{
            "type": "heatmap", "z": heatmap_cells(table),
            "x": [str(v) for v in table.columns], "y": [str(v) for v in table.index],
            "text": text, "texttemplate": "%{text}", "colorscale": "Viridis",
            "colorbar": {"title": {"text": metric}},
            "hovertemplate": f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric} ({how}): %{{z:.4g}}<extra></extra>",
        }],
        "layout": {
            "template": "plotly_white", "height": 200 + 30 * len(table.index),
            "title": {"text": f"{metric} by {x} and {y} (other parameters: {how})"},
            "xaxis": {"title": {"text": x}, "type": "category"},
            "yaxis": {"title": {"text": y}, "type": "category"},
        },
    }
    return spec
