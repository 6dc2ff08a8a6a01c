"""`Result`: what a backtest returns, as pandas objects built from the engine's columns."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from tickstep.metrics import compute_stats, format_stats

__all__ = ["Result"]

_ROLES = np.array(["entry", "stop_loss", "take_profit", "close"], dtype=object)
_STATUS = np.array(["open", "filled", "cancelled", "rejected"], dtype=object)


def _times(ns: np.ndarray) -> pd.DatetimeIndex:
    # int64 ns -> UTC times without to_datetime's parsing machinery (a run's fixed cost).
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("M8[ns]")).tz_localize("UTC")


def _symbols(codes: np.ndarray, names: list[str] | pd.CategoricalDtype) -> pd.Categorical:
    dtype = names if isinstance(names, pd.CategoricalDtype) else pd.CategoricalDtype(names)
    return pd.Categorical.from_codes(np.asarray(codes, dtype="int64"), dtype=dtype)


def trades_frame(raw: dict[str, np.ndarray], names: list[str] | pd.CategoricalDtype) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": _symbols(raw["symbol"], names),
            "side": np.where(raw["direction"] > 0, "long", "short"),
            "size": raw["size"],
            "entry_time": _times(raw["entry_ts"]),
            "exit_time": _times(raw["exit_ts"]),
            "entry_price": raw["entry_price"],
            "exit_price": raw["exit_price"],
            "pnl": raw["pnl"],
            "return_pct": raw["return_pct"],
            "commission": raw["commission"],
            "bars_held": raw["bars_held"],
            "mae": raw["mae"],
            "mfe": raw["mfe"],
            "trade_id": raw["trade_id"],
            "exit_order": raw["exit_order"],
        }
    )


def fills_frame(raw: dict[str, np.ndarray], names: list[str] | pd.CategoricalDtype) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": _times(raw["ts"]),
            "symbol": _symbols(raw["symbol"], names),
            "side": np.where(raw["side"] > 0, "buy", "sell"),
            "size": raw["size"],
            "price": raw["price"],
            "commission": raw["commission"],
            "role": _ROLES[raw["role"].astype(np.int64)],
            "order_id": raw["order_id"],
        }
    )


def orders_frame(raw: dict[str, Any], names: list[str] | pd.CategoricalDtype) -> pd.DataFrame:
    def when(ns: Any) -> pd.DatetimeIndex:
        # int64 min marks "no time": still open, or placed in init() before the first tick.
        ns = np.asarray(ns, dtype="int64")
        missing = ns == np.iinfo(np.int64).min
        return _times(np.where(missing, 0, ns)).where(~missing)

    return pd.DataFrame(
        {
            "order_id": raw["order_id"],
            "symbol": _symbols(raw["symbol"], names),
            "side": np.where(raw["side"] > 0, "buy", "sell"),
            "size": raw["size"],
            "limit": raw["limit"],
            "stop": raw["stop"],
            "sl": raw["sl"],
            "tp": raw["tp"],
            "role": _ROLES[raw["role"].astype(np.int64)],
            "tag": raw["tag"],
            "placed_time": when(raw["placed_ts"]),
            "status": _STATUS[raw["status"].astype(np.int64)],
            "closed_time": when(raw["closed_ts"]),
            "reason": list(raw["reason"]),
        }
    )


def equity_frame(raw: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {"equity": raw["equity"], "cash": raw["cash"], "gross_exposure": raw["gross_exposure"]},
        index=_times(raw["ts"]).rename("time"),
    )


class Result:
    """The outcome of one backtest.

    Attributes
    ----------
    stats : pandas.Series
        Performance statistics (see :func:`tickstep.metrics.compute_stats`).
    trades : pandas.DataFrame
        Closed trades: symbol, side, size, entry/exit time and price, pnl (net of
        commission), return_pct, commission, bars_held, mae, mfe.
    equity : pandas.Series
        Equity at the end of every trading day (or every bar with ``record_every_bar``).
    equity_frame : pandas.DataFrame
        The same samples with cash and gross exposure.
    fills : pandas.DataFrame
        Every fill, in order (built on first access).
    orders : pandas.DataFrame
        Every order placed and how it ended: filled, cancelled, rejected, or still open
        (built on first access).
    positions : pandas.DataFrame
        Positions still open at the end: size, average price, last price.
    params : dict
        The parameters the strategy ran with.
    """

    def __init__(self, stats: pd.Series, trades: pd.DataFrame, equity_frame: pd.DataFrame,
                 raw: dict[str, Any], symbols: pd.CategoricalDtype, params: dict[str, Any],
                 strategy: Any) -> None:
        self.stats = stats
        self.trades = trades
        self.equity_frame = equity_frame
        self.params = params
        self.strategy = strategy
        self._raw = raw
        self._symbols = symbols

    @property
    def equity(self) -> pd.Series:
        return self.equity_frame["equity"]

    @cached_property
    def fills(self) -> pd.DataFrame:
        return fills_frame(self._raw["fills"], self._symbols)

    @cached_property
    def orders(self) -> pd.DataFrame:
        return orders_frame(self._raw["orders"], self._symbols)

    @cached_property
    def positions(self) -> pd.DataFrame:
        pos = self._raw["positions"]
        frame = pd.DataFrame(
            {"size": pos["size"], "average_price": pos["average_price"], "last_price": pos["mark"]},
            index=pd.Index(list(self._symbols.categories), name="symbol"),
        )
        return frame[frame["size"] != 0]

    def __repr__(self) -> str:
        return f"<Result {len(self.trades)} trades, final equity {self.equity.iloc[-1]:,.2f}>"

    def summary(self) -> str:
        """The statistics as readable text."""
        return format_stats(self.stats)


def build_result(engine: Any, names: list[str] | pd.CategoricalDtype, *, cash: float,
                 risk_free_rate: float, start: pd.Timestamp, end: pd.Timestamp,
                 params: dict[str, Any], strategy: Any) -> Result:
    symbols = names if isinstance(names, pd.CategoricalDtype) else pd.CategoricalDtype(names)
    trades = trades_frame(engine.trades(), symbols)
    eq = equity_frame(engine.equity())
    stats = compute_stats(eq, trades, initial_cash=cash, risk_free_rate=risk_free_rate,
                          start=start, end=end)
    raw = {"fills": engine.fills(), "orders": engine.orders(), "positions": engine.positions()}
    return Result(stats=stats, trades=trades, equity_frame=eq, raw=raw, symbols=symbols,
                  params=params, strategy=strategy)
