"""Plots and the HTML report of backtest results.

``result.plot()`` (one interactive Plotly figure), ``result.report("report.html")`` (one
self-contained file that works offline), `plot_heatmap` over an optimisation's
parameters, `plot_pareto` over two objectives, and the tables behind them (`symbol_breakdown`, `sector_breakdown`,
`rejected_orders`, `margin_calls`), which need nothing beyond pandas.

Drawing needs the ``plot`` extra (``pip install 'tickstep[plot]'``: plotly and
tsdownsample); it is imported on first use, and a missing one is named with the command
that installs it.
"""

from __future__ import annotations

from tickstep.report.figures import plot
from tickstep.report.heatmap import heatmap_table, plot_heatmap
from tickstep.report.html import write_optimization_report, write_report
from tickstep.report.pareto import pareto_table, plot_pareto
from tickstep.report.tables import (
    margin_calls,
    position_values,
    rejected_orders,
    sector_breakdown,
    symbol_breakdown,
)

__all__ = [
    "heatmap_table",
    "margin_calls",
    "pareto_table",
    "plot",
    "plot_heatmap",
    "plot_pareto",
    "position_values",
    "rejected_orders",
    "sector_breakdown",
    "symbol_breakdown",
    "write_optimization_report",
    "write_report",
]
