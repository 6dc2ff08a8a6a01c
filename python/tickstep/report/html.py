"""The HTML tear sheet: one self-contained file that works offline.

Plotly's JavaScript is embedded once, gzip-compressed and base64-encoded (1.9 MB instead
of 4.8 MB) and unpacked by the browser's own ``DecompressionStream``; each figure's data
sits in a ``<script type="application/json">`` block and is drawn once Plotly is loaded.
Nothing is fetched from the network. Tables are plain HTML, so the numbers read (and
copy) without JavaScript.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError
from tickstep.metrics import format_stat
from tickstep.report import figures as charts
from tickstep.report._deps import plotly_offline
from tickstep.report.downsample import DEFAULT_POINTS
from tickstep.report.tables import (
    Result,
    margin_calls,
    position_values,
    rejected_orders,
    sector_breakdown,
    symbol_breakdown,
)

__all__ = ["write_optimization_report", "write_report", "write_walk_forward_report"]

#: Rejected orders listed one by one in the report (all are counted by reason).
REJECTED_SHOWN = 200

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 1em 2em;
       color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.subtitle { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td.label { text-align: left; }
thead th { background: #f4f4f4; }
.columns { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.figure { width: 100%; }
.note { color: #666; font-size: 0.85em; }
"""

# Unpacks Plotly, then draws every figure; failures reach the console (tests watch it).
_LOADER = """
(async () => {
  const packed = document.getElementById("plotly-js-gzip").textContent.trim();
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = await new Response(stream).text();
  const script = document.createElement("script");
  script.textContent = code;
  document.head.appendChild(script);
  for (const div of document.querySelectorAll("div.figure")) {
    const spec = JSON.parse(document.getElementById(div.id + "-data").textContent);
    await Plotly.newPlot(div, spec.data, spec.layout,
                         {responsive: true, displaylogo: false});
    div.dataset.rendered = "true";
  }
  document.body.dataset.figuresRendered = "true";
})().catch(error => {
  document.body.dataset.figuresError = String(error);
  console.error("tickstep report: " + error);
});
"""


@cache
def _packed_plotly_js() -> str:
    get_plotlyjs = plotly_offline().get_plotlyjs

    # mtime=0: the same report bytes for the same result.
    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), 6, mtime=0)).decode("ascii")


def _typed_array(a: np.ndarray) -> Any:
    """A numpy array as plotly.js's typed-array form (base64 of the raw bytes)."""
    if a.dtype.kind == "f":
        return {"dtype": "f8", "bdata": base64.b64encode(np.ascontiguousarray(a, "<f8")).decode()}
    if a.dtype.kind in "iub":
        return {"dtype": "i4", "bdata": base64.b64encode(np.ascontiguousarray(a, "<i4")).decode()}
    return a.tolist()


def _figure_json(spec: dict[str, Any]) -> str:
    def plain(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return _typed_array(obj)
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"cannot put {type(obj).__name__} in a figure")

    text = json.dumps(spec, default=plain, separators=(",", ":"), allow_nan=False)
    # "</" would end the <script> block early; "<\/" reads the same in JSON.
    return text.replace("</", "<\\/")


def _table(frame: pd.DataFrame, table_id: str, index_label: str | None = None) -> str:
    """A DataFrame as an HTML table; numbers formatted the way the stats are."""
    index_label = index_label or (frame.index.name or "")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [index_label, *frame.columns])
    rows = []
    for label, row in zip(frame.index, frame.itertuples(index=False)):
        cells = "".join(
            f"<td>{html.escape(_cell(str(col), value))}</td>" for col, value in zip(frame.columns, row)
        )
        rows.append(f'<tr><td class="label">{html.escape(str(label))}</td>{cells}</tr>')
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _rolling(sharpe: pd.Series | None) -> str:
    """What a figure's heading adds for the rolling Sharpe Ratio drawn in it."""
    return f", Sharpe Ratio over {charts.ROLLING_DAYS} days" if sharpe is not None else ""


def _paid_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The breakdown without its payment columns where the run had none (most runs: two
    columns of zeros)."""
    paid = ["Dividends [$]", "Carrying Costs [$]"]
    return frame.drop(columns=[c for c in paid if (frame[c] == 0).all()])


def _cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)):
        if column.endswith(("[$]", "[%]")) or column.startswith("#"):
            return format_stat(column, float(value))
        return f"{value:.6g}"
    return str(value)


def _stats_table(stats: pd.Series) -> str:
    rows = "".join(
        f'<tr><td class="label">{html.escape(str(label))}</td>'
        f"<td>{html.escape(format_stat(str(label), value))}</td></tr>"
        for label, value in stats.items()
    )
    return f'<table id="stats"><tbody>{rows}</tbody></table>'


def _pairs_table(values: dict[str, Any], table_id: str) -> str:
    if not values:
        return '<p class="note">none</p>'
    rows = "".join(
        f'<tr><td class="label">{html.escape(str(k))}</td><td>{html.escape(repr(v) if isinstance(v, str) else str(v))}</td></tr>'
        for k, v in values.items()
    )
    return f'<table id="{table_id}"><tbody>{rows}</tbody></table>'


def _figures(result: Result, symbols: list[str], max_points: int,
             breakdown: pd.DataFrame) -> list[tuple[str, str, charts.Canvas]]:
    """(id, heading, canvas) for every figure of the report, in order."""
    out = []
    sharpe = charts.rolling_sharpe_of(result)
    out.append(("fig-equity", f"Equity, drawdown and exposure{_rolling(sharpe)}",
                charts.account_figure(result, max_points, sharpe=sharpe)))

    if symbols:
        rows = charts.symbol_rows(result, symbols, 1.0)
        canvas = charts.Canvas(rows, height=int(120 + 220 * sum(h for h, _ in rows)))
        cell = 1
        for symbol in symbols:
            for drawn in charts.add_symbol(canvas, cell, result, symbol, max_points):
                canvas.time_axis(drawn, first=1)
                cell = drawn + 1
        out.append(("fig-prices", "Prices, fills and indicators: " + ", ".join(symbols), canvas))

    years = len(set(result.equity.index.year))
    canvas = charts.Canvas([(1.0, 1)], height=140 + 28 * years)
    charts.add_monthly_returns(canvas, 1, result)
    out.append(("fig-monthly", "Monthly returns [%]", canvas))

    canvas = charts.Canvas([(1.0, 2)], height=380)
    charts.add_trade_returns(canvas, 1, result)
    canvas.caption(1, "trade returns")
    charts.add_symbol_pnl(canvas, 2, result, breakdown)
    canvas.caption(2, "P&L by symbol")
    canvas.layout["hovermode"] = "closest"
    out.append(("fig-trades", "Trades", canvas))
    return out


def _luck(result: Any, bootstrap: int | None) -> list[str]:
    """The section "Is it luck?": the probabilistic Sharpe Ratio, and with ``bootstrap``
    the 5%, 50% and 95% quantiles of that many histories drawn from the daily returns
    (seed 0: the same report every time), of a run or a walk-forward's stitched one."""
    parts = ["<h2>Is it luck?</h2>"]
    try:
        psr = result.probabilistic_sharpe()
    except ValueError:  # fewer than two daily returns
        psr = None
    if psr is None:
        parts.append('<p class="note" id="luck">Fewer than two daily returns: no '
                     "probability to give.</p>")
    else:
        shown = "undefined (the daily returns do not vary)" if psr != psr else f"{psr:.4f}"
        parts.append(f'<p class="note" id="luck">Probabilistic Sharpe Ratio: {shown}: the '
                     "probability that the strategy's true Sharpe Ratio is above zero, from "
                     "its daily returns' number, skewness and kurtosis. A set chosen as the "
                     "best of many is partly luck: see Result.deflated_sharpe.</p>")
    if bootstrap:
        drawn = result.bootstrap(bootstrap, seed=0)
        table = drawn.quantile([0.05, 0.5, 0.95]).T
        table.columns = ["5%", "50%", "95%"]
        parts += [f'<p class="note">{bootstrap} histories drawn from the daily returns in '
                  f"blocks of {drawn.attrs['block']} days on average (the stationary "
                  "bootstrap, seed 0): the ranges the figures could have had.</p>",
                  _table(table, "bootstrap", "statistic")]
    return parts


def check_bootstrap(bootstrap: Any) -> None:
    """``report(bootstrap=)``: a number of histories, or None."""
    if bootstrap is not None and (isinstance(bootstrap, bool) or not isinstance(bootstrap, int)
                                  or bootstrap < 1):
        raise ConfigError(f"report(bootstrap={bootstrap!r}): how many histories to draw, a "
                          "whole number >= 1 (or None for none)")


def write_report(result: Result, path: str | Path, *, symbols: list[str] | None = None,
                 max_points: int = DEFAULT_POINTS, title: str | None = None,
                 bootstrap: int | None = None) -> Path:
    """Write the HTML report of ``result`` (see :meth:`tickstep.Result.report`)."""
    check_bootstrap(bootstrap)
    path = Path(path)
    plotly_offline()  # first: a missing extra is named before any work
    plotly_js = _packed_plotly_js()
    values = position_values(result)
    breakdown = symbol_breakdown(result, values)
    symbols = charts.check_symbols(result, symbols, breakdown)
    sectors = sector_breakdown(result, values)
    rejected = rejected_orders(result)
    called = margin_calls(result)
    figures = _figures(result, symbols, max_points, breakdown)

    title = title or f"{result.strategy_name} on {len(result.symbols)} symbols"
    stats = result.stats
    parts = _head(title, "backtest", f"{stats.get('Start', '')} to {stats.get('End', '')}")
    parts += [
        '<div class="columns"><section><h2>Statistics</h2>', _stats_table(stats), "</section>",
        "<section><h2>Parameters</h2>", _pairs_table(result.params, "params"),
        "<h2>Engine options</h2>", _pairs_table(result.options, "options"), "</section></div>",
        *_luck(result, bootstrap),
    ]
    for fig_id, heading, _ in figures:
        parts.append(f'<h2>{html.escape(heading)}</h2>')
        if fig_id == "fig-prices":
            parts.append('<p class="note">&#9650; buy, &#9660; sell short, &#9675; exit, '
                         "&#10006; stop-loss fill, &#9733; take-profit fill; dotted: working "
                         "stop-loss (red) and take-profit (green) levels.</p>")
        parts.append(f'<div class="figure" id="{fig_id}"></div>')
    parts += ["<h2>By symbol</h2>", _table(_paid_only(breakdown), "by-symbol", "symbol")]
    interest = result.interest
    if interest != 0:
        # The rest of the run's P&L, so that the table's sums and this line add up to it.
        parts.append(f'<p class="note" id="interest">Interest on the account\'s cash, no '
                     f"symbol's (paid on money borrowed, net of that earned): "
                     f"{html.escape(format_stat('Carrying Costs [$]', -interest))} in the P&amp;L "
                     "besides the symbols'.</p>")
    if sectors is not None:
        parts += ["<h2>By sector</h2>", _table(_paid_only(sectors), "by-sector", "sector")]
    parts.append("<h2>Rejected orders</h2>")
    if len(rejected) == 0:
        parts.append('<p class="note" id="rejected-none">No order was rejected.</p>')
    else:
        counts = rejected["reason"].value_counts().rename("orders").to_frame()
        shown = rejected.head(REJECTED_SHOWN).set_index("order_id")
        parts += [
            f'<p class="note">{len(rejected)} orders rejected'
            + (f", the first {REJECTED_SHOWN} listed" if len(rejected) > REJECTED_SHOWN else "")
            + ".</p>",
            _table(counts, "rejected-reasons", "reason"),
            _table(shown, "rejected", "order"),
        ]
    parts.append("<h2>Margin calls</h2>")
    if len(called) == 0:
        parts.append('<p class="note" id="margin-calls-none">No margin call.</p>')
    else:
        calls = called["time"].nunique()
        parts += [
            f'<p class="note">{calls} margin call(s): every working order cancelled and '
            f"every position closed at its latest close ({len(called)} fill(s)).</p>",
            _table(called.set_index("time"), "margin-calls", "time"),
        ]
    _finish(parts, figures, plotly_js)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _head(title: str, kind: str, span: str) -> list[str]:
    """The page's opening: its title and the subtitle naming what report it is."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="subtitle">tickstep {kind} report &middot; {html.escape(span)}</p>',
    ]


def _finish(parts: list[str], figures: list[tuple[str, str, charts.Canvas]], plotly_js: str) -> None:
    """The figures' data, Plotly (packed) and the loader that draws them."""
    for fig_id, _, fig in figures:
        parts.append(f'<script type="application/json" id="{fig_id}-data">{_figure_json(fig.spec())}</script>')
    parts.append(f'<script type="application/octet-stream" id="plotly-js-gzip">{plotly_js}</script>')
    parts.append(f"<script>{_LOADER}</script></body></html>")


def write_walk_forward_report(wf: Any, path: str | Path, *, max_points: int = DEFAULT_POINTS,
                              title: str | None = None, bootstrap: int | None = None) -> Path:
    """Write the HTML report of a walk-forward (see
    :meth:`tickstep.walkforward.WalkForwardResult.report`)."""
    check_bootstrap(bootstrap)
    path = Path(path)
    plotly_offline()
    plotly_js = _packed_plotly_js()
    sharpe = charts.rolling_sharpe_of(wf)
    figures = [
        ("fig-equity", f"Out-of-sample equity, drawdown and exposure{_rolling(sharpe)} (dotted: "
         "each test window's start)",
         charts.walk_forward_equity(wf, max_points, exposure=True, sharpe=sharpe)),
        ("fig-windows", "Each window", charts.walk_forward_windows(wf, wf.objective)),
    ]
    strategy = wf.results[0].strategy_name if wf.results else "strategy"
    symbols = sorted({s for r in wf.results for s in r.symbols})
    title = title or f"{strategy} walked forward on {len(symbols)} symbols"
    stats = wf.stats
    windows = wf.windows.copy()
    for column in ("train_start", "train_end", "test_start", "test_end"):
        windows[column] = windows[column].dt.strftime("%Y-%m-%d %H:%M")
    parts = _head(title, "walk-forward", f"{stats.get('Start', '')} to {stats.get('End', '')}")
    parts += [
        '<div class="columns"><section><h2>Statistics (out of sample, stitched)</h2>',
        _stats_table(stats), "</section>",
        "<section><h2>Walk-forward</h2>",
        _pairs_table({"windows": len(wf.windows), "maximized": wf.objective,
                      "parameters": ", ".join(wf.parameters), "initial cash": wf.initial_cash},
                     "walk"),
        "</section></div>",
        *_luck(wf, bootstrap),
        "<h2>Windows</h2>",
        '<p class="note">Train on [train_start, train_end), trade the parameters chosen there '
        "on [test_start, test_end) (UTC).</p>",
        _table(windows, "windows", "window"),
    ]
    for fig_id, heading, _ in figures:
        parts += [f"<h2>{html.escape(heading)}</h2>", f'<div class="figure" id="{fig_id}"></div>']
    _finish(parts, figures, plotly_js)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


class _Spec:
    """A figure already made as Plotly's plain spec, drawn as the report's canvases are."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec

    def spec(self) -> dict[str, Any]:
        return self._spec


def _benchmark_label(benchmark: Any) -> str:
    """What a reality check's benchmark is called in a report: cash (a daily return of
    0), a daily return, or daily returns by their Series' name ("the benchmark" for a
    run's unrenamed ``daily_returns()``, named "return")."""
    if isinstance(benchmark, pd.Series):
        name = benchmark.name
        return name if isinstance(name, str) and name not in ("", "return") else "the benchmark"
    return "cash" if benchmark == 0 else f"a daily return of {benchmark:.4%}"


#: The statistics an optimisation report's table shows besides the objectives.
_OPTIMIZATION_STATS = ("Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades")


def write_optimization_report(rows: pd.DataFrame, path: str | Path, *,
                              maximize: Any = "Sharpe Ratio", x: str | None = None,
                              y: str | None = None, symbols: str | None = None, top: int = 20,
                              n_splits: int = 16, reps: int = 1000, benchmark: Any = 0.0,
                              title: str | None = None) -> Path:
    """Write the HTML report of an optimisation: the rows of `tickstep.Backtest.optimize`
    or `tickstep.batch.run_batch` (one symbol group: ``symbols`` names it when there are
    several), as one self-contained file that works offline.

    It holds the best ``top`` sets ranked by ``maximize`` (as ``optimize`` takes it; with
    two statistics or more, by Pareto front), the heatmap of the first objective over the
    parameters ``x`` and ``y`` (by default the first two that vary; the best value at each
    pair), the Pareto front when ``maximize`` names two statistics, and "Is it luck?":
    with the rows' daily returns (``optimize(..., returns=True)``) the probability of
    backtest overfitting (`tickstep.significance.backtest_overfitting`, ``n_splits``
    blocks) and the reality check against ``benchmark`` (`tickstep.significance.reality_check`,
    ``reps`` draws, seed 0: the same report every time): a daily return (0, the default:
    cash) or daily returns on the rows' days (a `tickstep.strategies.BuyAndHold` run's
    ``daily_returns()``; the report calls it by the Series' name, e.g.
    ``.rename("buy & hold")``). Needs ``pip install 'tickstep[plot]'`` (the reality check
    also ``tickstep[bootstrap]``).
    """
    from tickstep.batch.objectives import PARETO_RANK, Objective
    from tickstep.report.heatmap import heatmap_spec
    from tickstep.report.pareto import one_group, parameter_columns, pareto_spec
    from tickstep.significance import (
        DAILY_RETURNS,
        check_reality_options,
        check_reps,
        check_splits,
    )

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top={top!r}: how many sets to list, a whole number >= 1")
    # Refused here, not reported as a figure "not judged" (or unread without returns).
    check_splits(n_splits)
    check_reps(reps)
    check_reality_options(benchmark=benchmark)
    objective = Objective(maximize)
    path = Path(path)
    plotly_offline()
    plotly_js = _packed_plotly_js()
    rows = one_group(rows, symbols)
    missing = [c for c in objective.columns if c not in rows.columns]
    if missing:
        raise KeyError(f"maximize={maximize!r}: the rows have no column {missing[0]!r}")
    ranked = objective.rank(rows, objective.values_of(rows))
    parameters = parameter_columns(rows)
    varied = [p for p in parameters if rows[p].nunique() > 1]
    if (x is None) != (y is None):
        raise ValueError("x= and y=: give both parameters of the heatmap, or neither")
    if x is None and len(varied) >= 2:
        x, y = varied[0], varied[1]
    figures: list[tuple[str, str, Any]] = []
    if x is not None and y is not None:
        figures.append(("fig-heatmap", f"{objective.columns[0]} over {x} and {y}",
                        _Spec(heatmap_spec(rows, x, y, objective.columns[0]))))
    if len(objective.columns) == 2 and objective.function is None:
        figures.append(("fig-pareto", "The trade-off of the two objectives",
                        _Spec(pareto_spec(rows, maximize))))

    ok = ranked[ranked["status"] == "ok"] if "status" in ranked.columns else ranked
    shown = list(dict.fromkeys([*parameters, *objective.columns, *_OPTIMIZATION_STATS,
                                *([PARETO_RANK] if objective.several else [])]))
    best = ok[[c for c in shown if c in ok.columns]].head(top)
    label = symbols if symbols is not None else (
        str(rows["symbols"].iloc[0]) if "symbols" in rows.columns and len(rows) else "")
    sets = f"{len(rows)} parameter set" + ("" if len(rows) == 1 else "s")
    title = title or f"Optimisation of {sets}" + (f" on {label}" if label else "")
    parts = _head(title, "optimisation", f"ranked by {objective.describe()}")
    parts += [
        "<h2>The best sets</h2>",
        f'<p class="note">{len(ok)} of {len(rows)} sets ran; the best {len(best)} by '
        f"{html.escape(objective.describe())}"
        + (" (Pareto Rank 1: no other set is as good by every objective and better by one)"
           if objective.several else "") + ".</p>",
        _table(best, "best", "job"),
    ]
    for fig_id, heading, _ in figures:
        parts += [f"<h2>{html.escape(heading)}</h2>", f'<div class="figure" id="{fig_id}"></div>']
    parts += ["<h2>Is it luck?</h2>", *_optimization_luck(ok, parameters, n_splits, reps,
                                                          DAILY_RETURNS in rows.columns,
                                                          benchmark)]
    _finish(parts, figures, plotly_js)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _optimization_luck(ok: pd.DataFrame, parameters: list[str], n_splits: int, reps: int,
                       kept: bool, benchmark: Any = 0.0) -> list[str]:
    """An optimisation report's "Is it luck?": the probability of backtest overfitting
    and the reality check of the sets that ran against ``benchmark``, or why not."""
    from tickstep.significance import backtest_overfitting, reality_check

    beaten = _benchmark_label(benchmark)

    if not kept:
        return ['<p class="note" id="luck">The rows hold no daily returns: run '
                "optimize(..., returns=True) for the probability of backtest overfitting "
                "and the reality check.</p>"]
    found: dict[str, Any] = {}
    try:
        pbo = backtest_overfitting(ok, n_splits)
        found["probability of backtest overfitting"] = f"{pbo.probability:.3f}"
        found["splits"] = f"{len(pbo.logits):,} of {pbo.splits} blocks"
        found["chosen set's median Sharpe Ratio, in / out of sample"] = (
            f"{pbo.medians[0]:.2f} / {pbo.medians[1]:.2f}")
        found["chosen set's loss out of sample"] = f"{pbo.loss_probability:.0%} of splits"
    except ValueError as exc:
        found["probability of backtest overfitting"] = f"not judged: {exc}"
    try:
        checked = reality_check(ok, benchmark, reps=reps, seed=0)
        found[f"reality check p-value (no set beats {beaten})"] = f"{checked.pvalue:.3f}"
        named = [", ".join(f"{p}={ok.loc[job, p]}" for p in parameters)
                 for job in checked.superior]
        found[f"sets beating {beaten} (StepM, 5%)"] = "; ".join(named) if named else "none"
    except (ValueError, ImportError) as exc:
        found[f"reality check p-value (no set beats {beaten})"] = f"not made: {exc}"
    return ['<p class="note" id="luck">Choosing the best of many sets is partly luck: '
            "how often the set chosen in sample ranks in the lower half out of sample "
            f"(CSCV), and whether any set beats {html.escape(beaten)} at all once all were "
            "tried (Hansen's SPA test; Romano and Wolf's StepM names those that do).</p>",
            _table(pd.DataFrame({"found": list(found.values())}, index=list(found)),
                   "luck-table", "")]

