"""The event-driven engine against an independent reference: backtesting.py.

The same random bars and the same orders, placed in ``next`` by a tickstep strategy and
by a backtesting.py one: market buys and sells (reversals among them), closes, entries
with a stop-loss and a take-profit, limit and stop entries of either side, resting until
filled, and a commission on every fill. Both must give the same trades (entry and exit
bars, side, size, entry and exit prices), the same commissions and the same final
equity.

Where the two define things differently, the orders here keep to the ground they share:

- Fills at the next bar's open (both libraries' default). With ``trade_on_close=True``,
  backtesting.py fills a stop that the next bar gaps through at the stop price (it
  compares the stop with the previous close), where tickstep fills it at that bar's open,
  the first price there was; and it executes a market order filled at a bar's close
  after the orders resting from before that fill at the next bar's open (so a reduction
  closes other lots), where tickstep executes fills in the order of their times.
- A stop-loss and a take-profit both inside one bar: tickstep fills the one nearer the
  open. The bars drawn here are narrower than the distance between the two.
- Units are whole: backtesting.py reads a size below 1 as a fraction of equity.
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
ORDERS = ("buy", "sell", "close", "bracket_buy", "bracket_sell", "limit_buy", "stop_buy",
          "limit_sell", "stop_sell")


def draw_orders(seed: int, n: int, p: float = 0.08) -> list[str | None]:
    """The order (if any) placed at each bar."""
    rng = np.random.default_rng(seed + 7)
    which = np.where(rng.random(n) < p, rng.integers(0, len(ORDERS), n), -1)
    return [None if k < 0 else ORDERS[k] for k in which]


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


def reference_run(frame: pd.DataFrame, orders: list[str | None]) -> tuple[list[tuple], pd.Series]:
    class Placing(ReferenceStrategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            order = orders[len(self.data) - 1]
            if order is not None:
                place(self.buy, self.sell, self.position.close, order, float(self.data.Close[-1]))

    bars = frame.rename(columns=str.capitalize).tz_localize(None)
    stats = ReferenceBacktest(bars, Placing, cash=CASH, commission=COMMISSION,
                              finalize_trades=False).run()
    t = stats["_trades"]
    trades = sorted((int(e), int(x), float(s), float(ep), float(xp)) for e, x, s, ep, xp in
                    zip(t["EntryBar"], t["ExitBar"], t["Size"], t["EntryPrice"], t["ExitPrice"]))
    return trades, stats


def tickstep_run(frame: pd.DataFrame, orders: list[str | None]) -> tuple[list[tuple], tickstep.Result]:
    class Placing(tickstep.Strategy):
        def init(self) -> None:
            self.bar = 0

        def next(self, symbol) -> None:  # type: ignore[no-untyped-def]
            order = orders[self.bar]
            self.bar += 1
            if order is not None:
                place(self.buy, self.sell, self.close, order, self.price())

    result = tickstep.Backtest(frame, Placing, cash=CASH, commission=COMMISSION).run()
    t, at = result.trades, {ts: k for k, ts in enumerate(frame.index)}
    trades = sorted((at[e], at[x], float(s) if side == "long" else -float(s), float(ep), float(xp))
                    for e, x, s, side, ep, xp in zip(t["entry_time"], t["exit_time"], t["size"],
                                                     t["side"], t["entry_price"], t["exit_price"]))
    return trades, result


# backtesting.py's own warnings: trades left open (as here on purpose: both mark them at
# the last close) and a pandas deprecation inside its statistics.
@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek")
@pytest.mark.parametrize("seed", range(6))
def test_orders_fill_as_backtesting_py_fills_them(seed):
    n = 1_500
    b = walk(seed, n, 1)
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    frame = pd.DataFrame({c: b[c][:, 0] for c in ("open", "high", "low", "close")}, index=index)
    frame["volume"] = 1.0
    orders = draw_orders(seed, n)
    ours, result = tickstep_run(frame, orders)
    our_stats = result.stats
    theirs, their_stats = reference_run(frame, orders)
    assert len(ours) > 50, "too few trades to compare"
    assert [t[:3] for t in ours] == [t[:3] for t in theirs]
    np.testing.assert_allclose([t[3:] for t in ours], [t[3:] for t in theirs], rtol=1e-12)
    assert float(our_stats["Commissions [$]"]) == pytest.approx(float(their_stats["Commissions [$]"]),
                                                                rel=1e-9)
    assert float(our_stats["Equity Final [$]"]) == pytest.approx(float(their_stats["Equity Final [$]"]),
                                                                 rel=1e-12)
    # Brackets closed trades (a stop-loss or a take-profit filled), beside closes.
    roles = set(result.fills["role"])
    assert {"entry", "close"} <= roles and roles & {"stop_loss", "take_profit"}, roles
