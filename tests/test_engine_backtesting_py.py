"""The event-driven engine against an independent reference: backtesting.py.

The same random bars and the same orders, placed in ``next`` by a tickstep strategy and
by a backtesting.py one: market buys and sells (reversals among them), closes, entries
with a stop-loss and a take-profit, limit and stop entries of either side resting until
they fill, cancels, and a commission on every fill. Both must give the same fills (bar,
side, size, price), the same closed trades (entry and exit bars, side, size, prices),
the same final equity, and commissions as a fraction of each fill's notional.

Where the two define things differently, the comparison keeps to the ground they share:

- One order (with its bracket's legs) works at a time: a new one is placed only when
  none is working, and what still works 10 bars after the last placement is cancelled.
  When several orders fill in one bar, the two order them differently: tickstep by the
  bar's prices from the open and then by placement, reductions before increases (the
  orders guide), backtesting.py by placement, with orders that close a trade
  (``position.close()``) first. A close then closes other lots, or more units, or is
  cancelled in one library and not in the other. That order of executions is held to
  tickstep's own rules by the engine's other tests (hand-computed fills, the invariants'
  reference).
- With ``trade_on_close=True`` (market orders filled at the close of the bar they are
  placed on), backtesting.py fills a stop that the next bar gaps through at the stop
  price (it compares the stop with that close), where tickstep fills it at that bar's
  open, the first price there was: those runs place market and limit orders only. (It
  also executes a fill at a bar's close after the next open's fills of orders resting
  from before; one order at a time, none rests then.)
- A stop-loss and a take-profit both inside one bar: tickstep fills the one nearer the
  open. The bars drawn here are narrower than the distance between the two.
- backtesting.py calls ``next`` from the second bar on, and fills nothing placed at the
  last bar (with ``trade_on_close=True`` tickstep fills it at that close): no order is
  placed at either.
- Units are whole: backtesting.py reads a size below 1 as a fraction of equity. That
  reading is compared on its own (the last test): tickstep's
  ``PercentOfEquity(fraction, lot_size=1, at="fill")`` sizer against ``size=fraction``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from backtesting import Backtest as ReferenceBacktest
from backtesting import Strategy as ReferenceStrategy
from conftest import walk

CASH = 1_000_000.0
COMMISSION = 0.001
#: Bars after which the working orders (a resting entry, a bracket's legs) are cancelled.
STALE = 10
ORDERS = ("buy", "sell", "close", "bracket_buy", "bracket_sell", "limit_buy", "stop_buy",
          "limit_sell", "stop_sell")


def draw_orders(seed: int, n: int, kinds: tuple[str, ...] = ORDERS,
                p: float = 0.3) -> list[str | None]:
    """The order (if any) of ``kinds`` placed at each bar; none at the first, where
    backtesting.py does not call ``next``, nor at the last, where it fills nothing (not
    even at that bar's close)."""
    rng = np.random.default_rng(seed + 7)
    which = np.where(rng.random(n) < p, rng.integers(0, len(kinds), n), -1)
    return [None] + [None if k < 0 else kinds[k] for k in which[1:-1]] + [None]


def place(buy, sell, close, order: str, price: float) -> None:  # type: ignore[no-untyped-def]
    """Place ``order`` through either library's calls, priced off the bar's close."""
    if order == "buy":
        buy(size=2)
    elif order == "sell":
        sell(size=2)
    elif order == "close":
        close()
    elif order == "bracket_buy":
        buy(size=1, sl=price * 0.99, tp=price * 1.015)
    elif order == "bracket_sell":
        sell(size=1, sl=price * 1.01, tp=price * 0.985)
    elif order == "limit_buy":
        buy(size=1, limit=price * 0.997)
    elif order == "stop_buy":
        buy(size=1, stop=price * 1.003)
    elif order == "limit_sell":
        sell(size=1, limit=price * 1.003)
    elif order == "stop_sell":
        sell(size=1, stop=price * 0.997)


def fills_of_trades(trades) -> dict[tuple, float]:  # type: ignore[no-untyped-def]
    """backtesting.py's fills, from its trades (closed and open): units by (bar, side,
    price). A fill split over several lots is one entry again."""
    fills: dict[tuple, float] = {}
    for t in trades:
        legs = [(t.entry_bar, "buy" if t.size > 0 else "sell", t.entry_price)]
        if t.exit_bar is not None:
            legs.append((t.exit_bar, "sell" if t.size > 0 else "buy", t.exit_price))
        for leg in legs:
            fills[leg] = fills.get(leg, 0.0) + abs(t.size)
    return fills


def cancel_stale(strategy, bar: int) -> None:  # type: ignore[no-untyped-def]
    """Cancel what still works ``STALE`` bars after the last placement, in either
    library (``strategy.placed``: that bar)."""
    if strategy.orders and bar - strategy.placed >= STALE:
        for working in list(strategy.orders):
            working.cancel()


def fills_by_bar(result: tickstep.Result, frame: pd.DataFrame) -> dict[tuple, float]:
    """tickstep's fills as `fills_of_trades` gives backtesting.py's: units by (bar, side,
    price)."""
    f, at = result.fills, {ts: k for k, ts in enumerate(frame.index)}
    fills: dict[tuple, float] = {}
    for ts, side, size, price in zip(f["time"], f["side"], f["size"], f["price"]):
        key = (at[ts], str(side), float(price))
        fills[key] = fills.get(key, 0.0) + float(size)
    return fills


def reference_run(frame: pd.DataFrame, orders: list[str | None],
                  trade_on_close: bool) -> tuple[dict[tuple, float], pd.Series]:
    class Placing(ReferenceStrategy):
        def init(self) -> None:
            self.placed = 0

        def next(self) -> None:
            bar = len(self.data) - 1
            cancel_stale(self, bar)
            order = orders[bar]
            if order is not None and not self.orders:
                self.placed = bar
                place(self.buy, self.sell, self.position.close, order, float(self.data.Close[-1]))

    bars = frame.rename(columns=str.capitalize).tz_localize(None)
    stats = ReferenceBacktest(bars, Placing, cash=CASH, commission=COMMISSION,
                              trade_on_close=trade_on_close, finalize_trades=False).run()
    strategy = stats["_strategy"]
    stats["trades"] = sorted((t.entry_bar, t.exit_bar, float(t.size), t.entry_price, t.exit_price)
                             for t in strategy.closed_trades)
    return fills_of_trades([*strategy.closed_trades, *strategy.trades]), stats


def tickstep_run(frame: pd.DataFrame, orders: list[str | None],
                 trade_on_close: bool) -> tuple[dict[tuple, float], tickstep.Result]:
    class Placing(tickstep.Strategy):
        def init(self) -> None:
            self.bar, self.placed = -1, 0

        def next(self, symbol) -> None:  # type: ignore[no-untyped-def]
            self.bar += 1
            # backtesting.py's words for the working orders, as the reference above.
            cancel_stale(self, self.bar)
            order = orders[self.bar]
            if order is not None and not self.orders:
                self.placed = self.bar
                place(self.buy, self.sell, self.close, order, self.price())

    result = tickstep.Backtest(frame, Placing, cash=CASH, commission=COMMISSION,
                               trade_on_close=trade_on_close).run()
    return fills_by_bar(result, frame), result


#: Orders at the next bar's open, every kind; at the bar's close, market and limit orders.
RUNS = {
    "next open, every kind": (False, ORDERS),
    "trade on close, market and limit orders": (True, ("buy", "sell", "close", "limit_buy",
                                                       "limit_sell")),
}


# backtesting.py's own warnings: trades left open at the end (both libraries mark them at
# the last close) and pandas deprecations inside its statistics.
@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek")
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("run", list(RUNS), ids=str)
def test_orders_fill_as_backtesting_py_fills_them(run, seed):
    trade_on_close, kinds = RUNS[run]
    n = 2_000
    b = walk(seed, n, 1)
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    frame = pd.DataFrame({c: b[c][:, 0] for c in ("open", "high", "low", "close")}, index=index)
    frame["volume"] = 1.0
    orders = draw_orders(seed, n, kinds)
    ours, result = tickstep_run(frame, orders, trade_on_close)
    theirs, their_stats = reference_run(frame, orders, trade_on_close)
    assert len(ours) > 150, "too few fills to compare"
    # The same fills: bar, side and units exactly, prices to the last bits of rounding.
    assert sorted(k[:2] for k in ours) == sorted(k[:2] for k in theirs)
    mine, reference = sorted(ours.items()), sorted(theirs.items())
    np.testing.assert_allclose([k[2] for k, _ in mine], [k[2] for k, _ in reference], rtol=1e-12)
    assert [units for _, units in mine] == [units for _, units in reference]
    # Commission as backtesting.py charges it: a fraction of each fill's notional.
    f = result.fills
    np.testing.assert_allclose(f["commission"], COMMISSION * f["size"] * f["price"], rtol=1e-12)
    assert float(result.stats["Equity Final [$]"]) == pytest.approx(
        float(their_stats["Equity Final [$]"]), rel=1e-12)
    # One order at a time: the same lots, so the same closed trades too.
    t, at = result.trades, {ts: k for k, ts in enumerate(frame.index)}
    trades = sorted((at[e], at[x], float(u) if side == "long" else -float(u), ep, xp)
                    for e, x, u, side, ep, xp in zip(t["entry_time"], t["exit_time"], t["size"],
                                                     t["side"], t["entry_price"], t["exit_price"]))
    assert [k[:3] for k in trades] == [k[:3] for k in their_stats["trades"]]
    np.testing.assert_allclose([k[3:] for k in trades], [k[3:] for k in their_stats["trades"]],
                               rtol=1e-12)
    # Brackets closed trades (a stop-loss or a take-profit filled), beside closes; limits
    # and stops filled.
    roles = set(result.fills["role"])
    filled = result.orders[result.orders["status"] == "filled"]
    assert {"entry", "close"} <= roles and filled["limit"].notna().any()
    if "bracket_buy" in kinds:
        assert roles & {"stop_loss", "take_profit"} and filled["stop"].notna().any(), roles


# ---- a fraction of equity spent at the fill ----------------------------------------------

#: Entries sized at their fill, placed while flat (see the test).
SHARE_ENTRIES = ("buy", "sell", "bracket_buy", "bracket_sell", "limit_buy", "stop_sell")


def place_share(buy, sell, order: str, price: float, fraction: float | None) -> None:  # type: ignore[no-untyped-def]
    """Place entry ``order`` sized as ``fraction`` of the liquidity at its fill: given as
    backtesting.py's ``size=fraction``, or (``None``) left to tickstep's sizer."""
    size = {} if fraction is None else {"size": fraction}
    prices = {"bracket_buy": {"sl": price * 0.99, "tp": price * 1.015},
              "bracket_sell": {"sl": price * 1.01, "tp": price * 0.985},
              "limit_buy": {"limit": price * 0.997}, "stop_sell": {"stop": price * 0.997}}
    (buy if order in ("buy", "bracket_buy", "limit_buy") else sell)(**size, **prices.get(order, {}))


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek")
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("fraction", "margin"), [(0.9999, 1.0), (0.5, 1.0), (0.7, 0.5)])
def test_a_fraction_of_equity_at_the_fill_buys_what_backtesting_py_buys(fraction, margin, seed):
    # backtesting.py's `self.buy(size=0.5)` against tickstep's `self.buy()` sized by
    # `PercentOfEquity(0.5, lot_size=1, at="fill")`: the same whole units at each fill.
    # Entries are placed while flat and exits are closes or bracket legs: backtesting.py
    # marks an open position at the fill bar's close when it sizes (a price from after the
    # fill), where tickstep marks it at the open, so the two agree on a flat account (its
    # cash) and the test keeps there. Commission on every fill; with margin 0.5 the
    # leverage is 2 in both. All of the liquidity (0.9999) by every kind of entry: both
    # value a stop's fill at the stop when they check its margin (a short entered whole by
    # a stop below the open fills in both).
    n = 2_000
    b = walk(seed, n, 1)
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    frame = pd.DataFrame({c: b[c][:, 0] for c in ("open", "high", "low", "close")}, index=index)
    frame["volume"] = 1.0
    orders = draw_orders(seed, n, SHARE_ENTRIES)

    class Theirs(ReferenceStrategy):
        def init(self) -> None:
            self.placed = 0

        def next(self) -> None:
            bar = len(self.data) - 1
            cancel_stale(self, bar)
            if orders[bar] is not None and not self.orders:
                self.placed = bar
                if self.position:
                    self.position.close()
                else:
                    place_share(self.buy, self.sell, orders[bar], float(self.data.Close[-1]), fraction)

    class Ours(tickstep.Strategy):
        def init(self) -> None:
            self.bar, self.placed = -1, 0

        def next(self, symbol) -> None:  # type: ignore[no-untyped-def]
            self.bar += 1
            cancel_stale(self, self.bar)
            if orders[self.bar] is not None and not self.orders:
                self.placed = self.bar
                if self.position:
                    self.close()
                else:
                    place_share(self.buy, self.sell, orders[self.bar], self.price(), None)

    bars = frame.rename(columns=str.capitalize).tz_localize(None)
    stats = ReferenceBacktest(bars, Theirs, cash=CASH, commission=COMMISSION, margin=margin,
                              finalize_trades=False).run()
    theirs = fills_of_trades([*stats["_strategy"].closed_trades, *stats["_strategy"].trades])
    sizer = tickstep.PercentOfEquity(fraction, lot_size=1, at="fill")
    result = tickstep.Backtest(frame, Ours, cash=CASH, commission=COMMISSION, margin=margin,
                               sizer=sizer).run()
    ours = fills_by_bar(result, frame)
    assert len(ours) > 100, "too few fills to compare"
    assert sorted(k[:2] for k in ours) == sorted(k[:2] for k in theirs)
    mine, reference = sorted(ours.items()), sorted(theirs.items())
    np.testing.assert_allclose([k[2] for k, _ in mine], [k[2] for k, _ in reference], rtol=1e-12)
    assert [units for _, units in mine] == [units for _, units in reference]
    assert float(result.stats["Equity Final [$]"]) == pytest.approx(
        float(stats["Equity Final [$]"]), rel=1e-12)
    # The orders' records hold the units sized at the fill.
    entries = result.orders[(result.orders["role"] == "entry") & (result.orders["status"] == "filled")]
    assert (entries["size"] == entries["filled_size"]).all()
