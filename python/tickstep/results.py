"""`Result`: what a backtest returns, as pandas objects (or Arrow tables) built from the
engine's columns; saved to and loaded from Parquet files.

Every table of a result is described once, in :data:`_TABLES`: which raw engine column
each output column comes from and how it reads (a time, a symbol, a choice among labels).
The pandas frames, the Arrow tables and the way back from saved Parquet files all follow
that one description, so a loaded result equals the one that was saved.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep._core import UnknownSymbolError
from tickstep.hints import did_you_mean
from tickstep.metrics import (
    _STAT_TRADE_COLUMNS,
    BenchmarkPrices,
    buy_and_hold_values,
    daily_returns,
    exposed,
    format_stats,
    held_values,
    rolling_sharpe,
    stats_of_columns,
)
from tickstep.significance import bootstrap_stats, deflated_sharpe_ratio, probabilistic_sharpe_ratio

__all__ = ["EngineLine", "IndicatorLine", "Result", "build_result", "load_result", "market_stats_inputs", "samples_since"]

#: An order's role by its code in the core: what the results' `role` columns and a
#: strategy's `Order.role` read.
ROLES = ("entry", "stop_loss", "take_profit", "close")
_STATUS = ("open", "filled", "cancelled", "rejected", "expired")
_EXECUTED = ("", "buy", "sell")  # nothing executed, bought, sold
_NO_TIME = np.iinfo(np.int64).min  # the engine's "no time": still open, or placed in init()
#: Why a result has no prices to show: the runs that keep none.
_NO_PRICES = ("this result keeps no prices: a streamed run (stream=) with record_every_bar=True keeps "
              "none (every bar's close would be kept), nor a result saved from one, so its prices, "
              "plot and report need the same backtest streamed without record_every_bar, or run in "
              "memory (without stream=)")
#: The version `Result.save` writes; `load_result` reads it and every one before.
FORMAT_VERSION = 5


class IndicatorLine(NamedTuple):
    """One line of an indicator a strategy declared with ``self.I(..., plot=True)``, kept
    for the report: its name, backtesting.py's chart options (``overlay`` None: decided
    by the report from the prices), and per symbol its value at each bar, as the strategy
    read it there."""

    name: str
    overlay: bool | None
    color: str | None
    scatter: bool
    #: Per symbol (in symbol order) a value per bar of the result's prices.
    values: list[np.ndarray]


class EngineLine(NamedTuple):
    """An engine indicator a strategy declared (``self.sma(10)``, ``self.rsi(14)``, ...),
    kept for the report by its study ``id``: the run computes its values bar by bar
    without keeping them, so they are computed again from the engine once it has run
    (`Engine.indicator_values`), the same values the strategy read, and become an
    `IndicatorLine` with its chart options (the overlay, None, left to the report)."""

    name: str
    id: int
    overlay: bool | None = None
    color: str | None = None
    scatter: bool = False


@dataclass(frozen=True)
class _Column:
    """One output column: its name, how it reads, the raw engine column it comes from."""

    name: str
    kind: str  # float | int | time | maybe_time | symbol | choice | sign | text
    raw: str
    dtype: str = "float64"  # of the raw column (restored on load)
    labels: tuple[str, ...] = ()  # choice: label per code; sign: (positive, negative)
    since: int = 1  # the first format version that saves it (results saved before lack it)


_TABLES: dict[str, tuple[_Column, ...]] = {
    "trades": (
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("side", "sign", "direction", "int8", ("long", "short")),
        _Column("size", "float", "size"),
        _Column("entry_time", "time", "entry_ts", "int64"),
        _Column("exit_time", "time", "exit_ts", "int64"),
        _Column("entry_price", "float", "entry_price"),
        _Column("exit_price", "float", "exit_price"),
        _Column("pnl", "float", "pnl"),
        _Column("return_pct", "float", "return_pct"),
        _Column("commission", "float", "commission"),
        _Column("bars_held", "int", "bars_held", "int64"),
        _Column("mae", "float", "mae"),
        _Column("mfe", "float", "mfe"),
        _Column("trade_id", "int", "trade_id", "int64"),
        _Column("entry_order", "int", "entry_order", "int64", since=2),
        _Column("exit_order", "int", "exit_order", "int64"),
        _Column("tag", "int", "tag", "int64", since=2),
    ),
    "fills": (
        _Column("time", "time", "ts", "int64"),
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("side", "sign", "side", "int8", ("buy", "sell")),
        _Column("size", "float", "size"),
        _Column("price", "float", "price"),
        _Column("commission", "float", "commission"),
        _Column("role", "choice", "role", "int8", ROLES),
        _Column("order_id", "int", "order_id", "int64"),
    ),
    "orders": (
        _Column("order_id", "int", "order_id", "int64"),
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("side", "sign", "side", "int8", ("buy", "sell")),
        _Column("size", "float", "size"),
        _Column("limit", "float", "limit"),
        _Column("stop", "float", "stop"),
        _Column("sl", "float", "sl"),
        _Column("tp", "float", "tp"),
        _Column("role", "choice", "role", "int8", ROLES),
        _Column("tag", "int", "tag", "int64"),
        # The order whose fill made this one (a bracket leg's or a trade exit's entry, the
        # order a rest under volume_limit is the rest of); 0 for none.
        _Column("parent_id", "int", "parent_id", "int64", since=3),
        _Column("placed_time", "maybe_time", "placed_ts", "int64"),
        _Column("status", "choice", "status", "int8", _STATUS),
        _Column("closed_time", "maybe_time", "closed_ts", "int64"),
        _Column("reason", "text", "reason"),
        # What was executed (a close() is sized and sided when it fills; see the fill rules).
        _Column("filled_size", "float", "filled_size"),
        _Column("fill_price", "float", "fill_price"),
        _Column("filled_side", "choice", "filled_side", "int8", _EXECUTED),
    ),
    "equity": (
        _Column("time", "time", "ts", "int64"),
        _Column("equity", "float", "equity"),
        _Column("cash", "float", "cash"),
        _Column("gross_exposure", "float", "gross_exposure"),
    ),
    "positions": (
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("size", "float", "size"),
        _Column("average_price", "float", "average_price"),
        _Column("last_price", "float", "mark"),
        # What each symbol's positions were paid and charged besides their fills
        # (`Result.payments`); a row per symbol, held at the end or not.
        _Column("dividends", "float", "dividends", since=4),
        _Column("carrying_costs", "float", "carrying_costs", since=4),
    ),
    "prices": (
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("time", "time", "ts", "int64"),
        _Column("close", "float", "close"),
    ),
    # Each symbol's spans of the run's ticks at whose ends it was held (a table of its
    # own since version 5; `Result.holding_spans`).
    "holding_spans": (
        _Column("symbol", "symbol", "symbol", "int64"),
        _Column("from_tick", "int", "from_tick", "int64"),
        _Column("to_tick", "int", "to_tick", "int64"),
    ),
}


def _times(ns: np.ndarray) -> pd.DatetimeIndex:
    # int64 ns -> UTC times without to_datetime's parsing machinery (a run's fixed cost).
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("M8[ns]")).tz_localize("UTC")


def _pandas_column(col: _Column, values: Any, symbols: pd.CategoricalDtype, text: Any) -> Any:
    """One output column for pandas; ``text``: `_text_dtype` (None: strings as numpy)."""
    if col.kind == "float":
        return np.asarray(values, dtype="float64")
    if col.kind == "int":
        return np.asarray(values, dtype="int64")
    if col.kind == "time":
        return _times(values)
    if col.kind == "maybe_time":
        ns = np.asarray(values, dtype="int64")
        missing = ns == _NO_TIME
        return _times(np.where(missing, 0, ns)).where(~missing)
    if col.kind == "symbol":
        return pd.Categorical.from_codes(np.asarray(values, dtype="int64"), dtype=symbols)
    if col.kind == "choice":
        codes = np.asarray(values, dtype=np.int64)
        if len(codes) and text is not None:
            return _labels_at(col.labels, codes, text)
        return np.asarray(col.labels, dtype=object)[codes]
    if col.kind == "sign":
        if len(values) and text is not None:
            return _labels_at(col.labels, np.where(np.asarray(values) > 0, 0, 1), text)
        return np.where(np.asarray(values) > 0, col.labels[0], col.labels[1])
    if len(values) and text is not None:
        return pd.array(pa.array(values, type=pa.large_string()), dtype=text)
    return list(values)  # text


def _text_dtype() -> Any:
    """The dtype pandas gives a column of strings, when Arrow-backed (``str``, the default
    since pandas 3), else None. Asked per frame: a pandas option may change it."""
    dtype = pd.Series(np.array(["text"], dtype=object)).dtype
    return dtype if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" else None


def _labels_at(labels: tuple[str, ...], codes: np.ndarray, text: Any) -> Any:
    """``labels[codes]`` as the column of strings pandas would make of them (``text``):
    one take of the few labels in Arrow, instead of pandas reading every string."""
    return pd.array(pa.array(labels, type=pa.large_string()).take(pa.array(codes)), dtype=text)


def _columns(table: str, raw: dict[str, Any]) -> list[_Column]:
    """The columns of ``table`` that ``raw`` holds: all of them, but for a result saved
    by an earlier format version, which lacks the columns added since."""
    return [c for c in _TABLES[table] if c.since == 1 or c.raw in raw]


def _frame(table: str, raw: dict[str, Any], symbols: pd.CategoricalDtype) -> pd.DataFrame:
    text = _text_dtype()
    return pd.DataFrame({c.name: _pandas_column(c, raw[c.raw], symbols, text)
                         for c in _columns(table, raw)})


def _arrow_table(table: str, raw: dict[str, Any], symbols: list[str]) -> Any:
    """The same table as pyarrow, straight from the raw columns (no pandas on the way)."""
    utc = pa.timestamp("ns", tz="UTC")
    arrays = {}
    for c in _columns(table, raw):
        v = raw[c.raw]
        if c.kind in ("float", "int"):
            arrays[c.name] = pa.array(np.asarray(v, dtype=c.dtype if c.kind == "int" else "float64"))
        elif c.kind == "time":
            arrays[c.name] = pa.array(np.asarray(v, dtype="int64"), type=pa.int64()).cast(utc)
        elif c.kind == "maybe_time":
            ns = np.asarray(v, dtype="int64")
            arrays[c.name] = pa.array(ns, mask=ns == _NO_TIME, type=pa.int64()).cast(utc)
        elif c.kind == "symbol":
            arrays[c.name] = pa.DictionaryArray.from_arrays(
                pa.array(np.asarray(v, dtype="int32")), pa.array(symbols, type=pa.string())
            )
        elif c.kind == "choice":
            # One take of the few labels, not a string object per row.
            labels = pa.array(c.labels, type=pa.string())
            arrays[c.name] = labels.take(pa.array(np.asarray(v, dtype=np.int64)))
        elif c.kind == "sign":
            labels = pa.array(c.labels, type=pa.string())
            arrays[c.name] = labels.take(pa.array(np.where(np.asarray(v) > 0, 0, 1)))
        else:
            arrays[c.name] = pa.array(list(v), type=pa.string())
    return pa.table(arrays)


def _raw_from_arrow(table: str, arrow: Any, symbols: list[str], version: int = FORMAT_VERSION) -> dict[str, Any]:
    """Back from an Arrow table (e.g. read from Parquet) of format ``version`` to the raw
    engine columns (those added since that version are not there)."""
    import pyarrow.compute as pc

    raw: dict[str, Any] = {}
    for c in _TABLES[table]:
        if c.since > version:
            continue
        if c.name not in arrow.column_names:
            raise ValueError(f"saved {table} table lacks the {c.name!r} column")
        col = arrow.column(c.name)
        if c.kind in ("float", "int"):
            raw[c.raw] = col.to_numpy().astype(c.dtype, copy=False)
        elif c.kind in ("time", "maybe_time"):
            ns = pc.fill_null(col.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()), _NO_TIME)
            raw[c.raw] = ns.to_numpy().astype("int64", copy=False)
        elif c.kind in ("symbol", "choice"):
            known = symbols if c.kind == "symbol" else list(c.labels)
            codes = pc.index_in(col.cast(pa.string()), pa.array(known, type=pa.string()))
            if codes.null_count:
                bad = col.filter(pc.is_null(codes))[0]
                raise ValueError(f"saved {table} table: {c.name} {bad} is not one of {known}")
            raw[c.raw] = codes.to_numpy().astype(c.dtype, copy=False)
        elif c.kind == "sign":
            positive = pc.equal(col, c.labels[0]).to_numpy(zero_copy_only=False)
            raw[c.raw] = np.where(positive, 1, -1).astype(c.dtype)
        else:
            raw[c.raw] = [str(x) for x in col.to_pylist()]
    return raw


#: What backtesting.py keeps among its statistics, and where a result keeps it.
_BACKTESTING_PY_TABLES = {
    "_trades": "result.trades (columns in snake case: entry_time, entry_price, pnl, ...)",
    "_equity_curve": "result.equity, or result.equity_frame with cash and gross exposure",
    "_strategy": "result.strategy",
}


class DailyReturnsMixin:
    """Is the Sharpe Ratio more than luck? What a run (`Result`) and a walk-forward's
    stitched out-of-sample run (`tickstep.walkforward.WalkForwardResult`) answer from
    their daily returns. A class using it has ``equity``, ``initial_cash``, ``stats`` and
    ``_run_options`` (the run's options: its timezone, risk-free rate and annualisation).
    """

    equity: pd.Series
    initial_cash: float
    stats: pd.Series

    @property
    def _run_options(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def daily_returns(self) -> pd.Series:
        """The run's daily returns (each trading day's last equity in the run's timezone,
        from the initial cash): those its Sharpe Ratio, Sortino Ratio and volatility are
        computed from, ``attrs["periods_per_year"]`` the annualisation `stats` applied
        (`tickstep.metrics.daily_returns`)."""
        options = self._run_options
        return daily_returns(self.equity, self.initial_cash, options.get("timezone", "UTC"),
                             options.get("periods_per_year"))

    def _daily_terms(self) -> dict[str, Any]:
        """The daily returns and the annualisation `stats` used."""
        daily = self.daily_returns()
        return {"returns": daily.to_numpy(), "periods_per_year": daily.attrs["periods_per_year"],
                "risk_free_rate": float(self._run_options.get("risk_free_rate", 0.0))}

    def rolling_sharpe(self, window: int = 126) -> pd.Series:
        """The Sharpe Ratio of each day's last ``window`` daily returns (126: about six
        months of exchange days), with the run's risk-free rate and annualisation
        (`tickstep.metrics.rolling_sharpe`): how steady the edge was, which the one
        figure of the whole run hides. The report draws it under the equity."""
        # (The returns carry their annualisation: rolling_sharpe reads it from them.)
        return rolling_sharpe(self.daily_returns(), window,
                              risk_free_rate=float(self._run_options.get("risk_free_rate", 0.0)))

    def probabilistic_sharpe(self, benchmark: float = 0.0) -> float:
        """The probability that the strategy's true Sharpe Ratio is above ``benchmark``
        (annualised), given how many daily returns the run had and how skewed and
        fat-tailed they were (`tickstep.significance.probabilistic_sharpe_ratio`, with the
        run's risk-free rate and annualisation)."""
        return probabilistic_sharpe_ratio(benchmark=benchmark, **self._daily_terms())

    def bootstrap(self, n: int = 1000, *, block: int | None = None, seed: int = 0) -> pd.DataFrame:
        """How far the run's figures could have been by the luck of which days came when:
        the return, CAGR, volatility, Sharpe and Sortino Ratios and maximum drawdown of
        ``n`` histories drawn from its daily returns by the stationary bootstrap (blocks of
        ``block`` days on average; by default Politis and White's length for them),
        seeded by ``seed`` (`tickstep.significance.bootstrap_stats`; the CAGR over the
        run's own span). ``result.bootstrap().quantile([0.05, 0.5, 0.95])`` gives ranges.
        Needs ``pip install 'tickstep[bootstrap]'``."""
        years = self.stats["Duration"] / pd.Timedelta(days=1) / 365.25
        return bootstrap_stats(n=n, block=block, seed=seed, years=years, **self._daily_terms())

    def deflated_sharpe(self, trials: Any, *, n_trials: int | None = None) -> float:
        """The probability that this run's true Sharpe Ratio is above zero, allowing for
        its choice as the best of ``trials``: the rows of the `optimize` or `run_batch` it
        was chosen from (or their Sharpe Ratios); ``n_trials`` an effective number of
        independent trials instead of their count
        (`tickstep.significance.deflated_sharpe_ratio`)."""
        return deflated_sharpe_ratio(trials=trials, n_trials=n_trials, **self._daily_terms())


class Result(DailyReturnsMixin):
    """The outcome of one backtest.

    Holds plain numpy/pandas data (and the engine that ran it only until its indicators
    are first read; a pickle reads them first), so it pickles; `save` writes it to
    Parquet files and `tickstep.load_result` reads it back equal.

    Attributes
    ----------
    stats : pandas.Series
        Performance statistics (see :func:`tickstep.metrics.compute_stats`).
    trades : pandas.DataFrame
        Closed trades: symbol, side, size, entry/exit time and price, pnl (net of
        commission), return_pct, commission, bars_held, mae, mfe (built on first access).
    equity : pandas.Series
        Equity at the end of every trading day (or every bar with ``record_every_bar``).
    equity_frame : pandas.DataFrame
        The same samples with cash and gross exposure (float dust of a flat book reads 0;
        built on first access).
    fills : pandas.DataFrame
        Every fill, in order (built on first access).
    orders : pandas.DataFrame
        Every order placed and how it ended: filled, cancelled, rejected, or still open
        (built on first access).
    positions : pandas.DataFrame
        Positions still open at the end: size, average price, last price.
    payments : pandas.DataFrame
        What each symbol's positions were paid and charged besides their fills
        (dividends, borrow fees, funding); with ``interest``, the account's own, they
        make up the statistics' ``Dividends [$]`` and ``Carrying Costs [$]``.
    params : dict
        The parameters the strategy ran with.
    options : dict
        The engine and accounting options of the run (cash, commission, ...).
    initial_cash : float
        The account's cash before the first bar.
    metadata : pandas.DataFrame or None
        Symbol metadata (sector, exchange, ...) indexed by symbol, when the data had some.
    benchmark : pandas.Series or None
        The prices of the run's ``benchmark=`` (what ``Alpha [%]`` and ``Beta`` read),
        named by it; ``benchmark_equity()`` is the cash held in it, ``buy_and_hold()`` the
        cash held in the basket of ``Buy & Hold Return [%]``.
    strategy_name : str
        The strategy class's name.
    strategy : Strategy or None
        The strategy object that ran, for inspecting what it recorded. Only in the
        process that ran it: None after pickling or loading (it belongs to the engine).
    """

    def __init__(self, stats: pd.Series, trades: pd.DataFrame | None,
                 equity_frame: pd.DataFrame | None,
                 raw: dict[str, Any], symbols: pd.CategoricalDtype, params: dict[str, Any],
                 strategy: Any = None, *, strategy_name: str | None = None,
                 options: dict[str, Any] | None = None, metadata: pd.DataFrame | None = None,
                 prices: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 initial_cash: float | None = None,
                 indicators: list[IndicatorLine] | Callable[[], list[IndicatorLine]] | None = None,
                 benchmark: pd.Series | None = None) -> None:
        self.stats = stats
        if trades is not None:
            self.trades = trades  # else built from the raw columns when first read
        if equity_frame is not None:
            self.equity_frame = equity_frame  # else built from the raw columns when first read
        self.params = params
        self.strategy = strategy
        self.strategy_name = strategy_name or (type(strategy).__name__ if strategy is not None else "")
        self.options = dict(options or {})
        self.initial_cash = float(initial_cash if initial_cash is not None
                                  else self.options.get("cash", math.nan))
        self.metadata = metadata
        self._raw = raw
        self._symbols = symbols
        # Close prices: per symbol (in symbol order) a pair of arrays (times, closes).
        self._prices = prices
        # The prices of the run's ``benchmark=`` (its Alpha and Beta's), when it had one.
        self._benchmark = benchmark
        # The indicators' lines drawn in the report, on the bars of the prices: given, or
        # computed when first read (the engine's are computed again from the engine, a
        # cost a run whose result nobody draws need not pay).
        self._pending_lines = indicators if callable(indicators) else None
        self._lines = [] if callable(indicators) else list(indicators or [])

    @property
    def _indicators(self) -> list[IndicatorLine]:
        if self._pending_lines is not None:
            self._lines, self._pending_lines = list(self._pending_lines()), None
        return self._lines

    # ---- a statistic by its label --------------------------------------------------------

    def __getitem__(self, label: str) -> Any:
        """A statistic by its label: ``result["Sharpe Ratio"]`` is
        ``result.stats["Sharpe Ratio"]``, as backtesting.py's ``stats = bt.run()`` reads."""
        try:
            return self.stats[label]
        except KeyError:
            if label in _BACKTESTING_PY_TABLES:
                raise KeyError(f"{label!r} is backtesting.py's; here it is "
                               f"{_BACKTESTING_PY_TABLES[label]}") from None
            labels = [str(x) for x in self.stats.index]
            raise KeyError(f"{label!r} is no statistic of this result"
                           f"{did_you_mean(str(label), labels)} (result.stats lists them)") from None

    def __contains__(self, label: object) -> bool:
        return label in self.stats.index

    # A result is not a sequence: iterating it would read statistics 0, 1, 2, ...
    __iter__ = None

    # ---- tables --------------------------------------------------------------------------

    @cached_property
    def equity_frame(self) -> pd.DataFrame:
        return _equity_frame(self._raw["equity"])

    @property
    def equity(self) -> pd.Series:
        """Equity samples: the ``equity`` column of `equity_frame`."""
        return self.equity_frame["equity"]

    @property
    def symbols(self) -> list[str]:
        """The symbols the backtest ran on, in the engine's order."""
        return list(self._symbols.categories)

    @cached_property
    def trades(self) -> pd.DataFrame:
        return _frame("trades", self._log("trades"), self._symbols)

    @cached_property
    def fills(self) -> pd.DataFrame:
        return _frame("fills", self._log("fills"), self._symbols)

    @cached_property
    def orders(self) -> pd.DataFrame:
        return _frame("orders", self._log("orders"), self._symbols)

    def _log(self, table: str) -> dict[str, Any]:
        """The raw columns of ``table``; the order log, the fills and the trades may still
        be the core's logs (`tickstep._core.OrderLog`, ``FillLog``, ``TradeLog``), exported
        on first read."""
        raw = self._raw[table]
        if not isinstance(raw, dict):
            if table == "trades":
                self._spans_raw()  # while the core's log can still work them out
            raw = self._raw[table] = raw.columns()
        return raw

    @cached_property
    def positions(self) -> pd.DataFrame:
        frame = _frame("positions", self._positions_raw(), self._symbols)
        frame = frame.set_index(pd.Index(self.symbols, name="symbol")).drop(columns="symbol")
        return frame.loc[frame["size"] != 0, ["size", "average_price", "last_price"]]

    @cached_property
    def payments(self) -> pd.DataFrame:
        """What each symbol's positions were paid and charged over the run besides their
        fills, in the account's money.

        Indexed by every symbol of the run (held at the end or not): ``dividends``, those
        received net of those its shorts paid the lender (``dividend_column``), and
        ``carrying_costs``, the borrow fees its shorts paid (``borrow_rate`` and its
        kin) and the funding it settled (``funding_column``), paid less received. Their
        sums are the statistics' ``Dividends [$]`` and, with `interest`, ``Carrying Costs
        [$]``; `tickstep.report.symbol_breakdown` counts them in each symbol's P&L.

        A result saved before they were kept (format version 3 or earlier) has NaN here,
        unless its statistics say the run had neither (both 0).

        Examples
        --------
        >>> import pandas as pd, tickstep
        >>> times = pd.date_range("2024-01-02", periods=3, freq="D", tz="UTC")
        >>> bars = pd.DataFrame({"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0,
        ...                      "volume": 1e6, "dividend": [0.0, 0.0, 0.5]}, index=times)
        >>> class Hold(tickstep.Strategy):
        ...     def next(self, symbol):
        ...         if not self.position:
        ...             self.buy(size=100)
        >>> r = tickstep.Backtest({"XYZ": bars}, Hold, dividend_column="dividend").run()
        >>> r.payments
                dividends  carrying_costs
        symbol
        XYZ          50.0             0.0
        """
        raw = self._positions_raw()
        if "dividends" in raw:
            columns = {"dividends": raw["dividends"], "carrying_costs": raw["carrying_costs"]}
        else:
            had = [self.stats.get(label, math.nan) for label in ("Dividends [$]", "Carrying Costs [$]")]
            none = 0.0 if all(v == 0 for v in had) else math.nan
            columns = {"dividends": none, "carrying_costs": none}
        return pd.DataFrame(columns, index=pd.Index(self.symbols, name="symbol"), dtype="float64")

    @cached_property
    def holding_spans(self) -> pd.DataFrame | None:
        """Each symbol's spans of the run's ticks at whose ends it held a position: a row
        per span, ``symbol``, ``from_tick`` and ``to_tick`` (ticks ``from_tick`` to
        ``to_tick - 1``, numbered from the run's start, as `exposure_ticks` counts them);
        those still held at the end last. A symbol's share of the ticks is the ``Exposure
        Time [%]`` of `tickstep.report.symbol_breakdown`, and all the symbols' spans
        together cover the account's exposed ticks. None for a result saved before they
        were kept."""
        raw = self._spans_raw()
        return None if raw is None else _frame("holding_spans", raw, self._symbols)

    def _spans_raw(self) -> dict[str, Any] | None:
        """The raw columns of `holding_spans`, which the core's trade log works out when
        first asked (before the trades are exported: their columns alone do not say where
        the ticks stand); None for a result saved before they were kept."""
        if "holding_spans" not in self._raw:
            trades = self._raw.get("trades")
            if trades is None or isinstance(trades, dict):
                return None
            self._raw["holding_spans"] = trades.holding_spans()
        return self._raw["holding_spans"]

    @property
    def exposure_ticks(self) -> tuple[int, int] | None:
        """The run's ticks from its start that ended with a position held, and all of
        them, ``(exposed, ticks)``: what ``Exposure Time [%]`` is the share of, counted at
        every tick whatever the equity samples kept. None for a result saved before
        they were kept."""
        ticks = self._raw.get("exposure_ticks")
        return None if ticks is None else (int(ticks[0]), int(ticks[1]))

    @property
    def interest(self) -> float:
        """Interest on the account's cash over the run: paid on negative cash
        (``margin_rate``), net of that earned on positive cash (``cash_rate``). The part
        of ``Carrying Costs [$]`` no symbol's position made (`payments` has the rest);
        NaN for a result saved before it was kept, unless the run had no carrying costs.
        """
        if "interest" in self._raw:
            return float(self._raw["interest"])
        return 0.0 if self.stats.get("Carrying Costs [$]", math.nan) == 0 else math.nan

    def _positions_raw(self) -> dict[str, Any]:
        pos = self._raw["positions"]
        return {"symbol": np.arange(len(self.symbols), dtype="int64"), **pos}

    def prices(self, symbol: str) -> pd.Series:
        """Close prices of ``symbol`` over the backtest, on a UTC ``DatetimeIndex``.

        A streamed run (``stream=``) keeps only the bars whose close marked an equity
        sample (the symbol's latest bar at each day end): what the position values, the
        plot and the report read, a bar per symbol and day at most, never every bar."""
        if symbol not in self._symbols.categories:
            raise KeyError(f"no symbol {symbol!r} in this result (symbols: {self.symbols})")
        if self._prices is None:
            raise ValueError(_NO_PRICES)
        ts, close = self._prices[self._symbols.categories.get_loc(symbol)]
        return pd.Series(close, index=_times(ts).rename("time"), name=symbol)

    def buy_and_hold(self) -> pd.Series:
        """What the initial cash would be worth at each equity sample in the basket of
        ``Buy & Hold Return [%]``: split equally among the symbols, each share bought at
        its symbol's first close of the run and held, without costs (a share waits in
        cash until its symbol's first bar; after a symbol's last bar it keeps its last
        close). Its last value is ``initial_cash * (1 + Buy & Hold Return [%] / 100)``;
        the plot and the report draw it beside the equity.

        A streamed run keeps the closes of its day ends only: its basket starts at each
        symbol's first day's last close (the statistic, from the first bar's).

        Examples
        --------
        >>> import tickstep
        >>> from tickstep.strategies import SmaCross
        >>> result = tickstep.Backtest(tickstep.data.example_daily(), SmaCross,
        ...                            cash=100_000).run()
        >>> basket = result.buy_and_hold()
        >>> bool(basket.index.equals(result.equity.index))
        True
        >>> f"{basket.iloc[-1] / 1000 - 100:.6f}", f"{result['Buy & Hold Return [%]']:.6f}"
        ('550.876935', '550.876935')
        """
        if self._prices is None:
            raise ValueError(_NO_PRICES)
        basket = buy_and_hold_values(self._prices, self.equity.index.asi8,
                                     pd.Timestamp(self.stats["Start"]).value, self.initial_cash)
        return pd.Series(basket, index=self.equity.index, name="buy & hold")

    @property
    def benchmark(self) -> pd.Series | None:
        """The prices of the run's ``benchmark=`` it kept (what its ``Alpha [%]`` and
        ``Beta`` read; a symbol's are its closes in the run's market), named by it; None
        without one."""
        return self._benchmark

    def benchmark_equity(self) -> pd.Series:
        """What the initial cash would be worth at each equity sample held in the run's
        ``benchmark=`` (a symbol of the data or a price Series): ``initial_cash * price /
        base``, each price the benchmark's last at or before the sample and ``base`` its
        last at or before the run's start (its first, if it starts later; NaN before it),
        the prices the run's ``Alpha [%]`` and ``Beta`` read: its daily returns
        (`tickstep.metrics.daily_returns`) are theirs. The plot and the report draw it
        beside the equity.

        Examples
        --------
        >>> import tickstep
        >>> from tickstep.strategies import SmaCross
        >>> result = tickstep.Backtest(tickstep.data.example_daily(), SmaCross,
        ...                            cash=100_000, benchmark="TEW").run()
        >>> held = result.benchmark_equity()
        >>> held.name, bool(held.index.equals(result.equity.index))
        ('TEW', True)
        """
        if self._benchmark is None:
            raise ValueError("this run had no benchmark: BacktestConfig(benchmark=...) takes a "
                             "symbol of the data or a price Series")
        held = held_values(self._benchmark, self.equity.index.asi8,
                           pd.Timestamp(self.stats["Start"]).value, self.initial_cash)
        return pd.Series(held, index=self.equity.index, name=self._benchmark.name)

    def indicators(self, symbol: str) -> pd.DataFrame:
        """The strategy's indicators kept for the report at each of ``symbol``'s bars over
        the backtest, a column per line by its name: its ``self.I`` indicators (those
        declared with ``plot=True``, the default) and the engine's (``self.sma(10)`` as
        ``SMA(close, 10)``, ``self.rsi(14, timeframe=tf)`` as ``RSI(close, 14)@1h``,
        except one reset during the run), in the order declared. Each value is the one
        the strategy read at that bar (NaN where it had none). On the index of
        :meth:`prices`; no columns when none was kept."""
        prices = self.prices(symbol)
        s = self._symbols.categories.get_loc(symbol)
        return pd.DataFrame({line.name: line.values[s] for line in self._indicators},
                            index=prices.index, columns=[line.name for line in self._indicators])

    def _indicator_meta(self) -> list[dict[str, Any]]:
        return [{"name": x.name, "overlay": x.overlay, "color": x.color, "scatter": x.scatter}
                for x in self._indicators]

    def to_arrow(self, table: str | None = None) -> Any:
        """The result's tables as ``pyarrow.Table`` (for Polars and other Arrow users).

        Built from the engine's columns directly (no pandas on the way): times as
        ``timestamp[ns, UTC]``, symbols dictionary-encoded, labels as strings.

        Parameters
        ----------
        table : {"trades", "equity", "orders", "fills", "positions", "prices", "holding_spans"}, optional
            One table; by default a dict of trades, equity, orders and fills.

        Examples
        --------
        >>> import tickstep
        >>> from tickstep.strategies import SmaCross
        >>> r = tickstep.Backtest(tickstep.data.example_daily(), SmaCross).run()
        >>> r.to_arrow("equity").column_names
        ['time', 'equity', 'cash', 'gross_exposure']
        """
        if table is None:
            return {name: self.to_arrow(name) for name in ("trades", "equity", "orders", "fills")}
        if table not in _TABLES:
            raise ValueError(f"no table {table!r}: choose one of {sorted(_TABLES)}")
        return _arrow_table(table, self._table_raw(table), self.symbols)

    def _table_raw(self, table: str) -> dict[str, Any]:
        if table == "positions":
            return self._positions_raw()
        if table == "holding_spans" and self._spans_raw() is None:
            raise ValueError("this result keeps no holding spans: it was saved before they were "
                             "kept (format version 4 or earlier)")
        if table == "prices":
            if self._prices is None:
                raise ValueError(_NO_PRICES)
            return _long_prices(self._prices)
        return self._log(table)

    # ---- plots and the report ------------------------------------------------------------

    def plot(self, symbols: list[str] | None = None, *, max_points: int = 2000) -> Any:
        """An interactive figure (Plotly) of the run.

        Rows: equity with its peak, drawdown, exposure (gross, as % of equity), then for
        each of ``symbols`` its closes with every fill marked (buys, short sales, exits,
        stop-losses, take-profits); at the bottom the monthly returns heatmap and the
        distribution of trade returns. Lines longer than ``max_points`` are downsampled
        for display (MinMax-LTTB), so minute data over months draws in seconds.

        Parameters
        ----------
        symbols : list of str, optional
            Symbols to draw prices for; default the three with the largest absolute P&L.
        max_points : int, default 2000
            Points per line at most.

        Returns
        -------
        plotly.graph_objects.Figure
            Shows itself in a notebook; ``fig.show()`` opens a browser elsewhere.
            Needs ``pip install 'tickstep[plot]'``.
        """
        from tickstep.report import plot

        return plot(self, symbols, max_points=max_points)

    def report(self, path: str | Path, *, symbols: list[str] | None = None,
               max_points: int = 2000, title: str | None = None,
               bootstrap: int | None = None) -> Path:
        """Write a self-contained HTML report to ``path`` and return the path.

        One file that works offline (Plotly embedded once, compressed; nothing fetched):
        the statistics, the parameters and engine options, the probabilistic Sharpe Ratio
        (with ``bootstrap=N``, also the ranges of N histories drawn by `bootstrap`, seed
        0), the figures of `plot`, P&L, trades and exposure by symbol (and by sector when
        the metadata has a ``sector`` column, see `tickstep.report.symbol_breakdown`), and
        the rejected orders. Needs ``pip install 'tickstep[plot]'``.
        """
        from tickstep.report import write_report

        return write_report(self, path, symbols=symbols, max_points=max_points, title=title,
                            bootstrap=bootstrap)

    # ---- text ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Result {len(self.trades)} trades, final equity {self.equity.iloc[-1]:,.2f}>"

    def summary(self) -> str:
        """The statistics as readable text."""
        return format_stats(self.stats)

    @property
    def _run_options(self) -> Mapping[str, Any]:
        return self.options

    # ---- pickling, saving, loading -------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        for log in ("fills", "orders", "trades"):
            self._log(log)  # plain columns, not the core's logs
        self._indicators  # computed, so that no engine goes with them  # noqa: B018
        state = self.__dict__.copy()
        state["strategy"] = None  # lives with the engine that ran it
        for lazy in ("fills", "orders", "positions", "payments", "holding_spans"):
            state.pop(lazy, None)  # rebuilt on access from the raw columns
        # The trades and equity frames go as they are when they were read (else they are
        # built from the raw columns when read after loading, as here).
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled by an earlier version: its lines were computed already, under the old name.
        if "_indicators" in state:
            state["_lines"] = state.pop("_indicators")
        state.setdefault("_lines", [])
        state.setdefault("_pending_lines", None)
        state.setdefault("_benchmark", None)  # pickled before results kept it
        self.__dict__.update(state)

    def save(self, path: str | Path) -> Path:
        """Write the result to directory ``path``: Parquet tables and ``result.json``.

        ``result.json`` holds the statistics, parameters, options and the list of tables;
        the tables are trades, equity, orders, fills, positions, prices (and metadata, and
        the indicators kept for the report, when there are some). Files of a previous save
        in the same directory are replaced.
        Parameters that JSON cannot hold are saved as their ``repr`` text.

        Returns the directory. Read it back with :func:`tickstep.load_result`.
        """
        import pyarrow.parquet as pq

        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise FileExistsError(f"{directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        tables = ["trades", "equity", "orders", "fills", "positions"]
        if self._prices is not None:
            tables.append("prices")
        spans = self._spans_raw() is not None
        if spans:
            tables.append("holding_spans")
        # The version whose columns the tables hold: a result loaded from an earlier
        # version lacks the columns added since, and is saved as that version again.
        version = FORMAT_VERSION if spans else 4
        for name in tables:
            arrow = self.to_arrow(name)
            pq.write_table(arrow, directory / f"{name}.parquet", compression="zstd")
            for c in _TABLES[name]:
                if c.name not in arrow.column_names:
                    version = min(version, c.since - 1)
        if self.metadata is not None:
            self.metadata.to_parquet(directory / "metadata.parquet")
            tables.append("metadata")
        if self._benchmark is not None:
            self._benchmark.rename("price").rename_axis("time").to_frame().to_parquet(
                directory / "benchmark.parquet")
            tables.append("benchmark")
        if self._indicators and self._prices is not None:
            pq.write_table(pa.table(_long_indicators(self._indicators)), directory / "indicators.parquet",
                           compression="zstd")
            tables.append("indicators")
        meta = {
            "format": "tickstep.result",
            "version": version,
            "strategy": self.strategy_name,
            "initial_cash": self.initial_cash,
            "symbols": self.symbols,
            "params": _jsonable(self.params),
            "options": _jsonable(self.options),
            "stats": [_stat_to_json(label, value) for label, value in self.stats.items()],
            "tables": tables,
            "indicators": self._indicator_meta(),
        }
        if self._benchmark is not None:  # its name: the Parquet file's column is "price"
            meta["benchmark"] = _jsonable({"name": self._benchmark.name})["name"]
        if "interest" in self._raw:
            meta["interest"] = self._raw["interest"]
        if self.exposure_ticks is not None:
            meta["exposure_ticks"] = list(self.exposure_ticks)
        (directory / "result.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
        return directory


def load_result(path: str | Path) -> Result:
    """Read a result written by :meth:`Result.save`.

    Examples
    --------
    >>> import tempfile, tickstep
    >>> from tickstep.strategies import SmaCross
    >>> r = tickstep.Backtest(tickstep.data.example_daily(), SmaCross).run()
    >>> with tempfile.TemporaryDirectory() as d:
    ...     back = tickstep.load_result(r.save(d))
    >>> back.stats.equals(r.stats), back.trades.equals(r.trades)
    (True, True)
    """
    import pyarrow.parquet as pq

    directory = Path(path)
    meta_file = directory / "result.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{directory} holds no saved result (no result.json)")
    meta = json.loads(meta_file.read_text())
    version = meta.get("version")
    if meta.get("format") != "tickstep.result" or version not in range(1, FORMAT_VERSION + 1):
        raise ValueError(
            f"{meta_file} is not a tickstep result of format version 1 to {FORMAT_VERSION} "
            f"(format={meta.get('format')!r}, version={version!r})"
        )
    symbols = list(meta["symbols"])
    dtype = pd.CategoricalDtype(symbols)

    def read(name: str) -> dict[str, Any]:
        return _raw_from_arrow(name, pq.read_table(directory / f"{name}.parquet"), symbols, version)

    raw = {name: read(name) for name in ("trades", "equity", "fills", "orders")}
    positions = read("positions")
    raw["positions"] = {k: v for k, v in positions.items() if k != "symbol"}
    if "interest" in meta:
        raw["interest"] = float(meta["interest"])
    if "exposure_ticks" in meta:
        raw["exposure_ticks"] = tuple(int(n) for n in meta["exposure_ticks"])
    tables = meta["tables"]
    if "holding_spans" in tables:
        raw["holding_spans"] = read("holding_spans")
    prices = _per_symbol_prices(read("prices"), len(symbols)) if "prices" in tables else None
    metadata = pd.read_parquet(directory / "metadata.parquet") if "metadata" in tables else None
    benchmark = (pd.read_parquet(directory / "benchmark.parquet")["price"]
                 .rename(meta.get("benchmark")) if "benchmark" in tables else None)
    indicators = []
    if "indicators" in tables and prices is not None:
        columns = pq.read_table(directory / "indicators.parquet")
        bounds = np.cumsum([0] + [len(ts) for ts, _ in prices])
        for j, line in enumerate(meta.get("indicators", [])):
            values = columns.column(str(j)).to_numpy()
            indicators.append(IndicatorLine(line["name"], line["overlay"], line["color"], line["scatter"],
                                            [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
    stats = pd.Series(
        [_stat_from_json(s) for s in meta["stats"]],
        index=pd.Index([s["label"] for s in meta["stats"]], dtype=object),
        dtype=object,
        name="stats",
    )
    return Result(
        stats=stats,
        trades=None,
        equity_frame=_equity_frame(raw["equity"]),
        raw=raw,
        symbols=dtype,
        params=meta["params"],
        strategy_name=meta["strategy"],
        initial_cash=meta["initial_cash"],
        options=meta["options"],
        metadata=metadata,
        prices=prices,
        indicators=indicators,
        benchmark=benchmark,
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, (np.generic,)):
            return v.item()
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        if isinstance(v, float) and not math.isfinite(v):
            return {"float": repr(v)}
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):  # a dict, or an option's frozen mapping
            return {str(k): plain(x) for k, x in v.items()}
        return repr(v)

    return {str(k): plain(v) for k, v in values.items()}


def _stat_to_json(label: str, value: Any) -> dict[str, Any]:
    if isinstance(value, pd.Timestamp):
        return {"label": label, "type": "time", "value": value.isoformat()}
    if isinstance(value, pd.Timedelta):
        return {"label": label, "type": "duration", "value": int(value.value)}
    if isinstance(value, (bool, np.bool_)):
        return {"label": label, "type": "bool", "value": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"label": label, "type": "int", "value": int(value)}
    if isinstance(value, (float, np.floating)):
        # repr round-trips a float exactly; NaN/inf as text keeps the file standard JSON.
        return {"label": label, "type": "float", "value": repr(float(value))}
    return {"label": label, "type": "text", "value": str(value)}


def _stat_from_json(s: dict[str, Any]) -> Any:
    kind, value = s["type"], s["value"]
    if kind == "time":
        return pd.Timestamp(value)
    if kind == "duration":
        return pd.Timedelta(int(value), unit="ns")
    if kind == "float":
        return float(value)
    return value


def _equity_frame(raw: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {c.name: raw[c.raw] for c in _TABLES["equity"] if c.name != "time"},
        index=_times(raw["ts"]).rename("time"),
    )


def _first_bar(market: Any, symbol: int, since: int | None) -> int:
    if since is None:
        return 0
    return int(np.searchsorted(market.column(symbol, "ts", 0, sys.maxsize), since))


def _close_prices(market: Any, since: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every symbol's times and closes from ``since`` on: read-only views of the market
    (no copy; a pickle or a save copies the values, never the market)."""
    out = []
    for i in range(len(market.symbols)):
        first = _first_bar(market, i, since)
        out.append((market.column(i, "ts", first, sys.maxsize),
                    market.column(i, "close", first, sys.maxsize)))
    return out


def samples_since(equity: dict[str, np.ndarray], since: int) -> dict[str, np.ndarray]:
    """The engine's equity samples at or after ``since`` (ns): a run that trades from
    ``trade_start`` is measured from there, not over its warm-up."""
    keep = np.asarray(equity["ts"]) >= since
    if keep.all():
        return dict(equity)
    return {name: np.asarray(column)[keep] for name, column in equity.items()}


def _charted_since(strategy: Any, market: Any, since: int, engine: Any) -> list[IndicatorLine]:
    """The lines ``strategy`` kept for the report (`Strategy.I` and the engine's
    indicators, in the order declared), from each symbol's first bar at or after
    ``since`` on: on the bars of `_close_prices`."""
    lines = [_line_of(line, engine, len(market.symbols)) for line in getattr(strategy, "_charted", ())]
    if not lines:
        return []
    firsts = [_first_bar(market, i, since) for i in range(len(market.symbols))]
    return [line._replace(values=[v[f:] for v, f in zip(line.values, firsts)])
            for line in lines if line is not None]


def _kept_lines(strategy: Any, market: Any, since: int,
                engine: Any) -> list[IndicatorLine] | Callable[[], list[IndicatorLine]]:
    """`_charted_since`, now when every line is the strategy's own (``self.I``), else
    when first read: the engine's indicators are computed again from ``engine``, which
    the result holds until then (not for a result nobody draws)."""
    if any(isinstance(line, EngineLine) for line in getattr(strategy, "_charted", ())):
        return partial(_charted_since, strategy, market, since, engine)
    return _charted_since(strategy, market, since, engine)


def _line_of(line: IndicatorLine | EngineLine, engine: Any, symbols: int) -> IndicatorLine | None:
    """``line`` with its values: an engine indicator's computed from ``engine`` (None
    for one reset during the run, whose values afresh would not be the run's)."""
    if isinstance(line, IndicatorLine):
        return line
    values = [engine.indicator_values(line.id, i) for i in range(symbols)]
    if any(v is None for v in values):
        return None
    return IndicatorLine(line.name, line.overlay, line.color, line.scatter, values)


def _long_indicators(lines: list[IndicatorLine]) -> dict[str, np.ndarray]:
    """The lines as one table, a column per line (named by its position), the symbols'
    bars one after another as in `_long_prices`."""
    return {str(j): np.concatenate(line.values) for j, line in enumerate(lines)}


def _long_prices(prices: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    return {
        "symbol": np.repeat(np.arange(len(prices), dtype="int64"), [len(t) for t, _ in prices]),
        "ts": np.concatenate([t for t, _ in prices] or [np.empty(0, "int64")]),
        "close": np.concatenate([c for _, c in prices] or [np.empty(0, "float64")]),
    }


def _per_symbol_prices(raw: dict[str, np.ndarray], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.argsort(raw["symbol"], kind="stable")
    codes, ts, close = raw["symbol"][order], raw["ts"][order], raw["close"][order]
    bounds = np.searchsorted(codes, np.arange(n + 1))
    return [(ts[a:b], close[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def first_last_closes(market: Any, since: int | None = None,
                      until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each symbol's first close (from ``since`` on) and last close (before ``until``,
    when given): the buy-and-hold basket of the statistics."""
    closes = [market.column(i, "close", _first_bar(market, i, since),
                            sys.maxsize if until is None else _first_bar(market, i, until))
              for i in range(len(market.symbols))]
    first = np.array([c[0] if len(c) else np.nan for c in closes], dtype=float)
    last = np.array([c[-1] if len(c) else np.nan for c in closes], dtype=float)
    return first, last


def benchmark_prices(benchmark: Any, market: Any) -> pd.Series | None:
    """``benchmark=`` as a price Series: a symbol's closes from the market, or the
    user's own prices (a Series or `tickstep.metrics.BenchmarkPrices`)."""
    if benchmark is None:
        return None
    if isinstance(benchmark, BenchmarkPrices):
        return benchmark.prices
    if isinstance(benchmark, str):
        symbols = list(market.symbols)
        if benchmark not in symbols:
            raise UnknownSymbolError(
                f"benchmark {benchmark!r} is not a symbol of the data{did_you_mean(benchmark, symbols)}"
            )
        i = symbols.index(benchmark)
        return pd.Series(market.column(i, "close", 0, sys.maxsize),
                         index=_times(market.column(i, "ts", 0, sys.maxsize)), name=benchmark)
    return BenchmarkPrices(benchmark).prices


def market_stats_inputs(market: Any, benchmark: Any = None, since: int | None = None,
                        until: int | None = None) -> dict[str, Any]:
    """What the statistics read from the market besides the run: the buy-and-hold
    basket's first (from ``since`` on) and last closes (before ``until``, when given) and
    the benchmark's prices (keywords of `tickstep.metrics.compute_stats`)."""
    return {"buy_and_hold": first_last_closes(market, since, until),
            "benchmark": benchmark_prices(benchmark, market)}


def build_result(engine: Any, names: list[str] | pd.CategoricalDtype, *, cash: float,
                 risk_free_rate: float, start: pd.Timestamp, end: pd.Timestamp,
                 params: dict[str, Any], strategy: Any, market: Any = None,
                 options: dict[str, Any] | None = None, metadata: pd.DataFrame | None = None,
                 benchmark: Any = None, orders_rejected: int = 0, timezone: str = "UTC",
                 periods_per_year: int | None = None, keep_prices: bool = True,
                 prices: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Result:
    """A finished engine's columns as a `Result` (the engine is not kept; its order log and
    fills move to the result). ``market`` is a run's whole market, whose closes the result
    keeps (unless not ``keep_prices``), or a streamed run's summary (`RunSummary`), which
    gives ``prices``: the closes its equity samples were marked at."""
    symbols = names if isinstance(names, pd.CategoricalDtype) else pd.CategoricalDtype(names)
    trade_stats = engine.trade_stat_columns()
    eq_raw = samples_since(engine.equity(), start.value)
    # A flat book's exposure is 0, not the float dust the incremental sum leaves.
    eq_raw["gross_exposure"] = np.where(
        exposed(eq_raw["gross_exposure"], eq_raw["equity"]), eq_raw["gross_exposure"], 0.0
    )
    # `compute_stats` of the equity and trades frames, from the columns they are made of
    # (the same values): the trades are exported and their frame built only when the
    # result's trades are read.
    inputs = market_stats_inputs(market, benchmark, start.value) if market is not None else {}
    stats = stats_of_columns(
        eq_raw["ts"], eq_raw["equity"], eq_raw["gross_exposure"],
        {c: trade_stats[c] for c in _STAT_TRADE_COLUMNS} if len(trade_stats["pnl"]) else {},
        initial_cash=cash, risk_free_rate=risk_free_rate, start=start, end=end,
        orders_rejected=orders_rejected, timezone=timezone, periods_per_year=periods_per_year,
        carrying_costs=engine.carrying_costs(), margin_calls=engine.margin_calls(),
        dividends=engine.dividends(), exposure_ticks=engine.exposure_ticks(), **inputs,
    )
    # The logs are exported when the result's orders, fills or trades are read.
    orders, fills, trades = engine.take_logs()
    raw = {"fills": fills, "orders": orders, "positions": engine.positions(),
           "equity": eq_raw, "trades": trades, "interest": engine.interest(),
           "exposure_ticks": engine.exposure_ticks()}
    keep = market is not None and keep_prices
    return Result(stats=stats, trades=None, equity_frame=None, raw=raw, symbols=symbols,
                  params=params, strategy=strategy, options=_jsonable(options or {}),
                  metadata=metadata,
                  prices=prices if not keep else _close_prices(market, start.value),
                  initial_cash=cash,
                  indicators=_kept_lines(strategy, market, start.value, engine) if keep else None,
                  benchmark=inputs.get("benchmark"))
