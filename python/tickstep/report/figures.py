"""The charts of a result, drawn as Plotly figure specifications.

A figure here is a plain Plotly spec (``{"data": [...], "layout": {...}}``) built by
`Canvas`, not a ``plotly.graph_objects.Figure``: plotly.py validates every property of
its objects in Python, which costs seconds for a handful of figures; the browser
(plotly.js) reads the spec directly. `plot` wraps the spec in a ``Figure`` once, for
notebooks. Each chart is one function ``add_*(canvas, cell, result, ...)``, so `plot`
and the HTML report draw the same charts.

Long series are downsampled for display (`tickstep.report.downsample`); statistics are
never computed from the downsampled points. Times are drawn in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickstep.metrics import drawdown, monthly_returns
from tickstep.report._deps import plotly_objects
from tickstep.report.downsample import DEFAULT_POINTS, downsample
from tickstep.report.tables import Result, shares_of_equity, symbol_breakdown

__all__ = ["Canvas", "default_symbols", "plot"]

GREEN, RED, BLUE, GREY = "#2e9e5b", "#d0433a", "#2f6db5", "#7f7f7f"
ORANGE = "#e08a1e"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# How each kind of fill is marked on a price line: (marker symbol, colour, label).
_FILL_MARKS = {
    ("entry", "buy"): ("triangle-up", GREEN, "buy"),
    ("entry", "sell"): ("triangle-down", RED, "sell short"),
    ("close", "buy"): ("circle-open", GREEN, "cover"),
    ("close", "sell"): ("circle-open", RED, "exit long"),
    ("stop_loss", "buy"): ("x", RED, "stop-loss"),
    ("stop_loss", "sell"): ("x", RED, "stop-loss"),
    ("take_profit", "buy"): ("star", GREEN, "take-profit"),
    ("take_profit", "sell"): ("star", GREEN, "take-profit"),
}
_GAP = 0.06  # vertical space between rows of cells, as a share of the figure


@dataclass
class Canvas:
    """A grid of cells (each with its own x and y axis) and the traces drawn in them.

    ``rows`` holds one entry per row, top to bottom: ``(relative height, cells in the
    row)`` with 1 or 2 cells. Cells are numbered 1.. left to right, top to bottom.
    """

    rows: list[tuple[float, int]]
    height: int = 600
    title: str | None = None
    data: list[dict[str, Any]] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = sum(h for h, _ in self.rows)
        gap = _GAP if len(self.rows) > 1 else 0.0
        usable = 1.0 - gap * (len(self.rows) - 1)
        top = 1.0
        cell = 0
        annotations: list[dict[str, Any]] = []
        self.layout.update(
            template="plotly_white", height=self.height, hovermode="x unified", showlegend=True,
            legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
            margin={"l": 70, "r": 20, "t": 50 if self.title else 30, "b": 40},
            annotations=annotations,
        )
        if self.title:
            self.layout["title"] = {"text": self.title}
        for height, cells in self.rows:
            bottom = top - usable * height / total
            for j in range(cells):
                cell += 1
                left = 0.0 if cells == 1 else (0.0 if j == 0 else 0.55)
                right = 1.0 if cells == 1 else (0.45 if j == 0 else 1.0)
                self.layout[self._axis("x", cell)] = {"domain": [left, right], "anchor": self._ref("y", cell)}
                self.layout[self._axis("y", cell)] = {"domain": [max(bottom, 0.0), top],
                                                      "anchor": self._ref("x", cell)}
            top = bottom - gap

    @staticmethod
    def _ref(letter: str, cell: int) -> str:
        return letter if cell == 1 else f"{letter}{cell}"

    @staticmethod
    def _axis(letter: str, cell: int) -> str:
        return f"{letter}axis" if cell == 1 else f"{letter}axis{cell}"

    def add(self, cell: int, trace: dict[str, Any]) -> None:
        self.data.append({**trace, "xaxis": self._ref("x", cell), "yaxis": self._ref("y", cell)})

    def x_axis(self, cell: int, **props: Any) -> None:
        self.layout[self._axis("x", cell)].update(props)

    def y_axis(self, cell: int, **props: Any) -> None:
        self.layout[self._axis("y", cell)].update(props)

    def time_axis(self, cell: int, first: int, labels: bool = True) -> None:
        """A date axis; every time axis after ``first`` zooms with it."""
        self.x_axis(cell, type="date", showticklabels=labels)
        if cell != first:
            self.x_axis(cell, matches=self._ref("x", first))

    def caption(self, cell: int, text: str) -> None:
        x = self.layout[self._axis("x", cell)]["domain"]
        y = self.layout[self._axis("y", cell)]["domain"]
        self.layout["annotations"].append(
            {"text": f"<b>{text}</b>", "x": x[0], "y": y[1], "xref": "paper", "yref": "paper",
             "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"size": 12}}
        )

    def spec(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}


def _ms(ns: np.ndarray) -> np.ndarray:
    # Plotly date axes read numbers as milliseconds since the epoch (UTC): 8 bytes a
    # point in the report instead of a 30-character date text.
    return np.asarray(ns, dtype=np.int64) / 1e6


def _line(x_ns: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    keep = downsample(x_ns, y, max_points)
    return _ms(np.asarray(x_ns)[keep]), np.asarray(y, dtype=float)[keep]


def default_symbols(result: Result, count: int = 3,
                    breakdown: pd.DataFrame | None = None) -> list[str]:
    """The ``count`` symbols whose P&L moved the account most (largest absolute P&L)."""
    pnl = (symbol_breakdown(result) if breakdown is None else breakdown)["P&L [$]"].abs()
    order = np.argsort(-pnl.to_numpy(), kind="stable")
    return [result.symbols[i] for i in order[:count]]


def add_equity(canvas: Canvas, cell: int, result: Result, max_points: int = DEFAULT_POINTS) -> None:
    """Equity, its running peak (dotted) and, for a run that kept its prices, the
    buy-and-hold basket of the same cash (dashed; `Result.buy_and_hold`), and the same
    cash held in its benchmark when it had one (`Result.benchmark_equity`)."""
    eq = result.equity
    x_ns = eq.index.asi8
    x, y = _line(x_ns, eq.to_numpy(), max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "equity",
                      "line": {"color": BLUE, "width": 1.5}})
    peak = np.maximum(np.maximum.accumulate(eq.to_numpy()), result.initial_cash)
    x, y = _line(x_ns, peak, max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "peak",
                      "line": {"color": GREY, "width": 1, "dash": "dot"}})
    basket = _held(result, "buy_and_hold")
    if basket is not None:
        x, y = _line(x_ns, basket.to_numpy(), max_points)
        canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "buy & hold",
                          "line": {"color": ORANGE, "width": 1, "dash": "dash"}})
    benchmark = _held(result, "benchmark_equity")
    if benchmark is not None:
        priced = benchmark.notna().to_numpy()  # NaN before the benchmark's first price
        x, y = _line(x_ns[priced], benchmark.to_numpy()[priced], max_points)
        name = "benchmark" + (f" ({benchmark.name})" if isinstance(benchmark.name, str) else "")
        canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": name,
                          "line": {"color": GREEN, "width": 1, "dash": "dashdot"}})
    canvas.y_axis(cell, title={"text": "equity"})


def _held(result: Any, curve: str) -> pd.Series | None:
    """A run's `Result.buy_and_hold` or `Result.benchmark_equity` (``curve``); None for a
    walk-forward (its windows' symbols and cash differ), a run that kept no prices or had
    no benchmark."""
    held = getattr(result, curve, None)
    if held is None:
        return None
    try:
        return held()
    except ValueError:  # no prices kept (a streamed run recording every bar), no benchmark
        return None


def add_drawdown(canvas: Canvas, cell: int, result: Result, max_points: int = DEFAULT_POINTS) -> None:
    """Drawdown from the running peak, in percent (a filled area under zero)."""
    dd = drawdown(result.equity, initial=result.initial_cash) * 100.0
    x, y = _line(dd.index.asi8, dd.to_numpy(), max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "drawdown [%]", "fill": "tozeroy",
                      "line": {"color": RED, "width": 1}})
    canvas.y_axis(cell, title={"text": "drawdown %"})


#: Days per window of the report's rolling Sharpe Ratio: about six months of exchange days.
ROLLING_DAYS = 126


def rolling_sharpe_of(result: Any, window: int = ROLLING_DAYS) -> pd.Series | None:
    """``result.rolling_sharpe(window)`` where the run had days for at least two windows
    (a shorter run's line would be a few points) and some window's returns varied (an
    idle run's are all NaN), else None."""
    if not hasattr(result, "rolling_sharpe"):
        return None
    sharpe = result.rolling_sharpe(window)  # a value a day
    return sharpe if len(sharpe) >= 2 * window and sharpe.notna().any() else None


def add_rolling_sharpe(canvas: Canvas, cell: int, sharpe: pd.Series,
                       max_points: int = DEFAULT_POINTS) -> None:
    """The rolling Sharpe Ratio (`Result.rolling_sharpe`), from its first whole window."""
    shown = sharpe.notna().to_numpy()
    x, y = _line(sharpe.index.asi8[shown], sharpe.to_numpy()[shown], max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "rolling Sharpe Ratio",
                      "line": {"color": BLUE, "width": 1}})
    canvas.y_axis(cell, title={"text": "Sharpe"})


def add_exposure(canvas: Canvas, cell: int, result: Result, max_points: int = DEFAULT_POINTS) -> None:
    """Gross exposure as a percentage of equity (100 = fully invested); a gap where the
    account has no equity (wiped out: no share of nothing)."""
    frame = result.equity_frame
    share = shares_of_equity(frame["gross_exposure"].to_numpy(), frame["equity"].to_numpy()) * 100.0
    x, y = _line(frame.index.asi8, share, max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": "exposure [%]", "fill": "tozeroy",
                      "line": {"color": GREY, "width": 1}})
    canvas.y_axis(cell, title={"text": "exposure %"})


def add_price(canvas: Canvas, cell: int, result: Result, symbol: str,
              max_points: int = DEFAULT_POINTS, trades: bool = True) -> None:
    """``symbol``'s closes with every fill marked at its price: entries, exits, stops
    (and each bracket's levels while working), unless ``trades`` is False."""
    prices = result.prices(symbol)
    x, y = _line(prices.index.asi8, prices.to_numpy(), max_points)
    canvas.add(cell, {"type": "scatter", "x": x, "y": y, "name": symbol,
                      "line": {"color": "#444", "width": 1}})
    canvas.y_axis(cell, title={"text": symbol})
    if not trades:
        return
    fills = result.fills
    mine = fills[(fills["symbol"] == symbol).to_numpy()]
    roles, sides = mine["role"].to_numpy(), mine["side"].to_numpy()
    times, fill_prices = pd.DatetimeIndex(mine["time"]).asi8, mine["price"].to_numpy()
    for (role, side), (marker, color, label) in _FILL_MARKS.items():
        rows = (roles == role) & (sides == side)
        if not rows.any():
            continue
        canvas.add(cell, {
            "type": "scatter", "mode": "markers", "x": _ms(times[rows]), "y": fill_prices[rows],
            "name": f"{symbol} {label}", "showlegend": False,
            "marker": {"symbol": marker, "color": color, "size": 8, "line": {"width": 1, "color": color}},
            "hovertemplate": f"{label} %{{y:.4g}}<extra>{symbol}</extra>",
        })
    _add_bracket_levels(canvas, cell, result, symbol, int(prices.index.asi8[-1]))


#: Colours of indicator lines given none, in turn.
_LINE_COLORS = ("#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#1f77b4")


def _overlays(values: np.ndarray, closes: np.ndarray) -> bool:
    """Whether an indicator whose overlay was left open (None) is drawn over the prices,
    as backtesting.py decides it: at more than 60% of the bars its value is within 40% of
    that bar's close (a bar without a value counts as not)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = values / closes
    return bool(((ratio > 0.6) & (ratio < 1.4)).mean() > 0.6) if len(ratio) else True


def indicator_panes(result: Result, symbol: str) -> tuple[list[tuple[Any, str]], list[tuple[Any, str]]]:
    """``symbol``'s indicators kept for the report (`Result.indicators`), each with its
    colour: those drawn over its prices, and those drawn in a pane of their own below."""
    lines = result._indicators
    if not lines:
        return [], []
    s = result.symbols.index(symbol)
    closes = result.prices(symbol).to_numpy()
    over: list[tuple[Any, str]] = []
    below: list[tuple[Any, str]] = []
    for k, line in enumerate(lines):
        color = line.color or _LINE_COLORS[k % len(_LINE_COLORS)]
        on_prices = line.overlay if line.overlay is not None else _overlays(line.values[s], closes)
        (over if on_prices else below).append((line, color))
    return over, below


def symbol_rows(result: Result, symbols: list[str], height: float) -> list[tuple[float, int]]:
    """The canvas rows of `add_symbol` for each of ``symbols``: its prices (``height``),
    and a pane of 40% of that below when it has indicators not drawn over them."""
    rows = []
    for symbol in symbols:
        rows.append((height, 1))
        if indicator_panes(result, symbol)[1]:
            rows.append((height * 0.4, 1))
    return rows


def add_symbol(canvas: Canvas, cell: int, result: Result, symbol: str,
               max_points: int = DEFAULT_POINTS, trades: bool = True) -> list[int]:
    """``symbol``'s prices and fills (`add_price`) with the indicators drawn over them in
    ``cell``, and its other indicators in the cell after it (as `symbol_rows` laid the
    rows out). Returns the cells drawn in."""
    add_price(canvas, cell, result, symbol, max_points, trades)
    over, below = indicator_panes(result, symbol)
    ts = result.prices(symbol).index.asi8
    s = result.symbols.index(symbol)
    cells = [cell]
    for lines, at in ((over, cell), (below, cell + 1)):
        for line, color in lines:
            x, y = _line(ts, line.values[s], max_points)
            trace = {"type": "scatter", "x": x, "y": y, "name": line.name, "showlegend": False,
                     "connectgaps": False, "hovertemplate": f"{line.name} %{{y:.4g}}<extra>{symbol}</extra>"}
            if line.scatter:
                trace.update(mode="markers", marker={"color": color, "size": 4})
            else:
                trace.update(mode="lines", line={"color": color, "width": 1.2})
            canvas.add(at, trace)
    if below:
        canvas.y_axis(cell + 1, title={"text": "indicators"})
        cells.append(cell + 1)
    return cells


def _add_bracket_levels(canvas: Canvas, cell: int, result: Result, symbol: str, last: int) -> None:
    """Each stop-loss and take-profit as a dotted level while it was working: from the
    entry's fill to its own fill or cancellation (or the end of the data)."""
    orders = result.orders
    mine = orders[(orders["symbol"] == symbol).to_numpy()]
    for role, price_column, color, label in (("stop_loss", "stop", RED, "stop-loss level"),
                                             ("take_profit", "limit", GREEN, "take-profit level")):
        legs = mine[(mine["role"] == role).to_numpy() & mine["placed_time"].notna().to_numpy()]
        if len(legs) == 0:
            continue
        start = pd.DatetimeIndex(legs["placed_time"]).asi8
        closed = legs["closed_time"]
        end = np.where(closed.notna().to_numpy(), pd.DatetimeIndex(closed.fillna(pd.Timestamp(0, tz="UTC"))).asi8, last)
        level = legs[price_column].to_numpy(dtype=float)
        # One trace: a segment per leg, NaN between segments so they do not join.
        x = np.column_stack([_ms(start), _ms(end), np.full(len(legs), np.nan)]).ravel()
        y = np.column_stack([level, level, np.full(len(legs), np.nan)]).ravel()
        canvas.add(cell, {"type": "scatter", "mode": "lines", "x": x, "y": y,
                          "name": f"{symbol} {label}", "showlegend": False, "hoverinfo": "skip",
                          "line": {"color": color, "width": 1, "dash": "dot"}})


def add_monthly_returns(canvas: Canvas, cell: int, result: Result) -> None:
    """Monthly returns (%) as a year x month heatmap (green gains, red losses)."""
    timezone = result.options.get("timezone", "UTC")
    months = monthly_returns(result.equity, result.initial_cash, timezone) * 100.0
    years = sorted(set(months.index.year))
    z = np.full((len(years), 12), np.nan)
    z[np.searchsorted(years, months.index.year), months.index.month - 1] = months.to_numpy()
    text = [["" if np.isnan(v) else f"{v:.1f}" for v in row] for row in z]
    canvas.add(cell, {
        "type": "heatmap", "z": [[None if np.isnan(v) else float(v) for v in row] for row in z],
        "x": list(MONTHS), "y": [str(y) for y in years], "zmid": 0.0, "text": text,
        "texttemplate": "%{text}", "colorscale": [[0.0, RED], [0.5, "#f7f7f7"], [1.0, GREEN]],
        "showscale": False,
        "hovertemplate": "%{y} %{x}: %{z:.2f}%<extra></extra>", "name": "monthly returns",
    })
    canvas.y_axis(cell, autorange="reversed", type="category")
    canvas.x_axis(cell, type="category")


def add_trade_returns(canvas: Canvas, cell: int, result: Result, bins: int = 60) -> None:
    """Distribution of closed trades' net returns (%): binned here, drawn as bars."""
    returns = result.trades["return_pct"].to_numpy(dtype=float) * 100.0
    if len(returns) == 0:
        x = canvas.layout[canvas._axis("x", cell)]["domain"]
        y = canvas.layout[canvas._axis("y", cell)]["domain"]
        canvas.layout["annotations"].append(
            {"text": "no closed trades", "showarrow": False, "xref": "paper", "yref": "paper",
             "x": sum(x) / 2, "y": sum(y) / 2})
        canvas.add(cell, {"type": "bar", "x": [0.0], "y": [0], "name": "trades"})
        return
    edges = np.histogram_bin_edges(returns, bins=min(bins, len(returns)))
    counts, edges = np.histogram(returns, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    canvas.add(cell, {
        "type": "bar", "x": centres, "y": counts.astype(float), "width": np.diff(edges),
        "name": "trade returns", "showlegend": False,
        "marker": {"color": np.where(centres >= 0, GREEN, RED).tolist()},
        "hovertemplate": "%{x:.2f}%: %{y} trades<extra></extra>",
    })
    canvas.x_axis(cell, title={"text": "trade return %"})
    canvas.y_axis(cell, title={"text": "trades"})


def add_symbol_pnl(canvas: Canvas, cell: int, result: Result,
                   breakdown: pd.DataFrame | None = None) -> None:
    """P&L by symbol (bars, largest first), coloured by sign."""
    pnl = (symbol_breakdown(result) if breakdown is None else breakdown)["P&L [$]"]
    pnl = pnl.iloc[np.argsort(-pnl.to_numpy(), kind="stable")]
    canvas.add(cell, {
        "type": "bar", "x": [str(s) for s in pnl.index], "y": pnl.to_numpy(),
        "name": "P&L by symbol", "showlegend": False,
        "marker": {"color": np.where(pnl.to_numpy() >= 0, GREEN, RED).tolist()},
    })
    canvas.x_axis(cell, type="category")
    canvas.y_axis(cell, title={"text": "P&L"})


#: The account's rows of the figure, in order: name, relative height, how it is drawn.
_ACCOUNT_ROWS = (("equity", 0.3, add_equity), ("drawdown", 0.1, add_drawdown), ("exposure", 0.1, add_exposure))


def plot_spec(result: Result, symbols: list[str], max_points: int = DEFAULT_POINTS, *,
              rows: tuple[str, ...] = ("equity", "drawdown", "exposure"), trades: bool = True) -> Canvas:
    """Everything in one canvas: the account's ``rows`` (equity, drawdown, exposure), the
    symbols' prices (their fills marked unless ``trades`` is False) and indicators, then
    monthly returns beside trade returns."""
    account = [(name, height, draw) for name, height, draw in _ACCOUNT_ROWS if name in rows]
    prices = symbol_rows(result, symbols, 0.2)
    layout = [(height, 1) for _, height, _ in account] + prices + [(0.25, 2)]
    canvas = Canvas(layout, height=int(300 + 180 * (len(account) + sum(h for h, _ in prices) / 0.2)),
                    title=result.strategy_name)
    for cell, (_, _, draw) in enumerate(account, start=1):
        draw(canvas, cell, result, max_points)
    cell = len(account) + 1
    for symbol in symbols:
        cells = add_symbol(canvas, cell, result, symbol, max_points, trades)
        canvas.caption(cell, f"{symbol}: close, fills and indicators")
        cell = cells[-1] + 1
    last = cell - 1
    for cell in range(1, last + 1):
        canvas.time_axis(cell, first=1, labels=cell == last)
    add_monthly_returns(canvas, last + 1, result)
    canvas.caption(last + 1, "monthly returns [%]")
    add_trade_returns(canvas, last + 2, result)
    canvas.caption(last + 2, "trade returns")
    return canvas


def check_symbols(result: Result, symbols: list[str] | None,
                  breakdown: pd.DataFrame | None = None) -> list[str]:
    if symbols is None:
        return default_symbols(result, breakdown=breakdown)
    symbols = [symbols] if isinstance(symbols, str) else list(symbols)
    for s in symbols:
        if s not in result.symbols:
            raise KeyError(f"no symbol {s!r} in this result (symbols: {result.symbols})")
    return symbols


def plot(result: Result, symbols: list[str] | None = None, *,
         max_points: int = DEFAULT_POINTS, rows: tuple[str, ...] = ("equity", "drawdown", "exposure"),
         trades: bool = True) -> Any:
    """One interactive figure of a result (see :meth:`tickstep.Result.plot`; ``rows`` and
    ``trades`` as `plot_spec` takes them)."""
    go = plotly_objects()
    canvas = plot_spec(result, check_symbols(result, symbols), max_points, rows=rows, trades=trades)
    return go.Figure(canvas.spec())


# ---- walk-forward ----------------------------------------------------------------------


def account_figure(result: Any, max_points: int = DEFAULT_POINTS, *, exposure: bool = True,
                   sharpe: pd.Series | None = None, title: str | None = None) -> Canvas:
    """The account on one time axis: equity, its drawdown, its exposure (``exposure``)
    and the rolling Sharpe Ratio ``sharpe`` (`rolling_sharpe_of`), one above the other,
    of a run or a walk-forward's stitched one."""
    draws = [add_equity, add_drawdown] + ([add_exposure] if exposure else [])
    rows = [(0.6, 1)] + [(0.2, 1)] * (len(draws) - 1) + ([(0.2, 1)] if sharpe is not None else [])
    canvas = Canvas(rows, height=(620 if exposure else 520) + (160 if sharpe is not None else 0),
                    title=title)
    for cell, draw in enumerate(draws, start=1):
        draw(canvas, cell, result, max_points)
    if sharpe is not None:
        add_rolling_sharpe(canvas, len(rows), sharpe, max_points)
    for cell in range(1, len(rows) + 1):
        canvas.time_axis(cell, first=1, labels=cell == len(rows))
    return canvas


def walk_forward_equity(wf: Any, max_points: int = DEFAULT_POINTS,
                        exposure: bool = False, sharpe: pd.Series | None = None) -> Canvas:
    """The stitched out-of-sample equity and its drawdown (and exposure, and the rolling
    Sharpe Ratio ``sharpe``: `account_figure`), a dotted line at each test window's start."""
    canvas = account_figure(wf, max_points, exposure=exposure, sharpe=sharpe,
                            title=None if exposure else "walk-forward: out-of-sample equity")
    canvas.layout["shapes"] = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": t.value / 1e6, "x1": t.value / 1e6,
         "y0": 0, "y1": 1, "line": {"color": "#999", "width": 1, "dash": "dot"}}
        for t in wf.windows["test_start"]
    ]
    return canvas


def walk_forward_windows(wf: Any, objective: str) -> Canvas:
    """Per window: the objective in and out of sample (bars side by side), and the
    parameters chosen (a line per numeric parameter)."""
    windows = wf.windows
    canvas = Canvas([(1.0, 2)], height=380)
    canvas.layout["hovermode"] = "closest"
    number = windows.index.to_numpy()
    for column, name, color in (("in_sample", "in sample", GREY), ("out_of_sample", "out of sample", BLUE)):
        canvas.add(1, {"type": "bar", "x": number, "y": windows[column].to_numpy(dtype=float),
                       "name": name, "marker": {"color": color}})
    canvas.layout["barmode"] = "group"
    canvas.x_axis(1, title={"text": "window"}, dtick=1)
    canvas.caption(1, objective)
    chosen = [c for c in wf.parameters
              if pd.api.types.is_numeric_dtype(windows[c]) and not pd.api.types.is_bool_dtype(windows[c])]
    for k, name in enumerate(chosen):
        canvas.add(2, {"type": "scatter", "mode": "lines+markers", "x": number,
                       "y": windows[name].to_numpy(dtype=float), "name": name,
                       "line": {"color": (GREEN, RED, BLUE, GREY)[k % 4], "width": 1.5}})
    canvas.x_axis(2, title={"text": "window"}, dtick=1)
    canvas.caption(2, "parameters chosen")
    return canvas
