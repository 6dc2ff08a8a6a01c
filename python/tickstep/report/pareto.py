"""An optimisation over two objectives seen as the trade-off it is: every parameter set
that ran a point (the first objective across, the second up), the Pareto front drawn
through the sets no other beats by both (`tickstep.batch.objectives`), each set coloured
by its Pareto rank and named by its parameters on hover.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError
from tickstep.batch.objectives import PARETO_RANK, Objective
from tickstep.metrics import STAT_LABELS
from tickstep.report._deps import plotly_objects

__all__ = ["pareto_table", "plot_pareto"]

#: Columns of a batch's rows that are not parameters (what a hover leaves out).
_NOT_PARAMETERS = {"symbols", "score", PARETO_RANK, "run_time", "status", "error", "cached",
                   "run_id", "Daily Returns"}


def pareto_table(rows: pd.DataFrame, maximize: Any, symbols: str | None = None) -> pd.DataFrame:
    """The sets of one symbol group that ran, with their two objectives and Pareto rank.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of `tickstep.Backtest.optimize` or `tickstep.batch.run_batch` (or the
        service's results).
    maximize : list or dict
        Two objectives, as ``maximize=`` takes them (``["Return [%]", "Max. Drawdown
        [%]"]``, or ``{statistic: "max" or "min"}``).
    symbols : str, optional
        The group drawn (a ``symbols`` label); needed when the rows hold several.

    Returns
    -------
    pandas.DataFrame
        The parameters, both objectives and ``Pareto Rank`` (computed here over these two,
        whatever ranked the rows), best rank first, then by the first objective.
    """
    objective = Objective(maximize)
    if len(objective.columns) != 2 or objective.function is not None:
        raise ConfigError(f"maximize={maximize!r}: a Pareto plot has two axes; name two "
                          "statistics")
    rows = one_group(rows, symbols)
    status = rows["status"] if "status" in rows.columns else pd.Series("ok", index=rows.index)
    ok = rows[(status == "ok").to_numpy()]
    values = objective.values_of(ok.assign(status="ok"))
    ranks = objective.pareto_ranks(np.zeros(len(ok)), values)
    parameters = parameter_columns(ok)
    table = ok[parameters].assign(**{name: values[:, k] for k, name in enumerate(objective.columns)},
                                  **{PARETO_RANK: ranks})
    return table.iloc[objective.front_order(ranks, values, np.arange(len(table)))]


def parameter_columns(rows: pd.DataFrame) -> list[str]:
    """The columns of a batch's rows that are its parameters (neither a statistic nor
    one of the columns every row has)."""
    return [c for c in rows.columns if c not in _NOT_PARAMETERS and c not in STAT_LABELS]


def one_group(rows: pd.DataFrame, symbols: str | None) -> pd.DataFrame:
    """The rows of one symbol group: ``symbols`` names it, needed when there are several."""
    if "symbols" not in rows.columns:
        if symbols is not None:
            raise KeyError(f"symbols={symbols!r}: the rows have no 'symbols' column")
        return rows
    groups = list(dict.fromkeys(rows["symbols"]))
    if symbols is None and len(groups) > 1:
        raise ValueError(f"symbols=: the rows hold {len(groups)} symbol groups "
                         f"({', '.join(map(str, groups[:5]))}...); name the one to draw")
    if symbols is not None:
        if symbols not in groups:
            raise KeyError(f"symbols={symbols!r}: no such group in the rows "
                           f"({', '.join(map(str, groups[:5]))})")
        rows = rows[rows["symbols"] == symbols]
    return rows


def plot_pareto(rows: pd.DataFrame, maximize: Any, symbols: str | None = None) -> Any:
    """Every set of `pareto_table` as a point, the front drawn through its sets (Plotly
    figure; needs ``tickstep[plot]``).

    Examples
    --------
    >>> import tickstep
    >>> from tickstep.strategies import SmaCross
    >>> from tickstep.report import plot_pareto
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    >>> both = {"Return [%]": "max", "Volatility (Ann.) [%]": "min"}
    >>> rows = bt.optimize(fast=[5, 10, 20], slow=[30, 60], cache=False, maximize=both)
    >>> fig = plot_pareto(rows, both)
    >>> [trace.name for trace in fig.data]
    ['parameter sets', 'Pareto front']
    """
    go = plotly_objects()
    return go.Figure(pareto_spec(rows, maximize, symbols))


def pareto_spec(rows: pd.DataFrame, maximize: Any, symbols: str | None = None) -> dict[str, Any]:
    """`plot_pareto`'s figure as Plotly's plain spec (data and layout), which the HTML
    report embeds."""
    table = pareto_table(rows, maximize, symbols)
    x, y = Objective(maximize).columns
    parameters = [c for c in table.columns if c not in (x, y, PARETO_RANK)]
    hover = ["<br>".join([*(f"{p}={row[p]}" for p in parameters),
                          f"Pareto rank {row[PARETO_RANK]:.0f}"])
             for _, row in table.iterrows()]
    front = table[table[PARETO_RANK] == 1].sort_values([x, y])
    ranked = table[PARETO_RANK].to_numpy(dtype=float)
    spec = {
        "data": [
            {"type": "scatter", "mode": "markers", "name": "parameter sets",
             "x": table[x].tolist(), "y": table[y].tolist(), "text": hover,
             "marker": {"color": [None if np.isnan(r) else float(r) for r in ranked],
                        "colorscale": "Viridis", "reversescale": True, "size": 8,
                        "colorbar": {"title": {"text": PARETO_RANK}}},
             "hovertemplate": f"%{{text}}<br>{x}: %{{x:.4g}}<br>{y}: %{{y:.4g}}<extra></extra>"},
            {"type": "scatter", "mode": "lines+markers", "name": "Pareto front",
             "x": front[x].tolist(), "y": front[y].tolist(),
             "line": {"shape": "linear", "color": "crimson"},
             "marker": {"color": "crimson", "size": 10, "symbol": "diamond-open"},
             "hoverinfo": "skip"},
        ],
        "layout": {
            "template": "plotly_white", "height": 520,
            "title": {"text": f"{y} against {x}: {len(front)} of {len(table)} sets on the "
                              "Pareto front" + (f" ({symbols})" if symbols else "")},
            "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
        },
    }
    return spec
