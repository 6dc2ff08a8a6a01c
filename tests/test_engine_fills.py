"""Hand-computed fill scenarios: every expected number is worked out in the comments.

Bars are daily from 2024-01-01 (bar i is at ``T(i)``); the scripted strategy acts at a
symbol's i-th bar, so an order placed "at bar i" is decided on bar i's close.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import run_script

EXACT = dict(rel=1e-12, abs=1e-9)


def T(i: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i)


def approx(x):
    return pytest.approx(x, **EXACT)


def order(result, order_id):
    return result.orders.set_index("order_id").loc[order_id]


def only(frame):
    assert len(frame) == 1, frame
    return frame.iloc[0]


def buy(size, **kw):
    def act(s, sym):
        s.ids.setdefault("buy", []).append(s.buy(size=size, **kw))
    return act


def sell(size, **kw):
    def act(s, sym):
        s.ids.setdefault("sell", []).append(s.sell(size=size, **kw))
    return act


def close(s, sym):
    s.ids.setdefault("close", []).append(s.close())


def seq(*actions):
    def act(s, sym):
        for a in actions:
            a(s, sym)
    return act


FOUR = [
    # open  high  low  close
    (100, 101, 99, 100),   # 0
    (102, 105, 101, 104),  # 1
    (104, 106, 103, 105),  # 2
    (105, 107, 104, 106),  # 3
]


# --- market orders --------------------------------------------------------------------


def test_market_order_fills_at_next_open(bars, run):
    r = run(bars(FOUR), {0: buy(10), 2: close})
    # Buy placed at bar 0 fills at bar 1's open 102; the close placed at bar 2 at bar 3's
    # open 105.
    assert list(r.fills["time"]) == [T(1), T(3)]
    assert list(r.fills["price"]) == [102.0, 105.0]
    assert list(r.fills["side"]) == ["buy", "sell"]
    assert list(r.fills["role"]) == ["entry", "close"]
    assert list(r.fills["size"]) == [10.0, 10.0]
    t = only(r.trades)
    assert (t.side, t["size"], t.entry_time, t.exit_time) == ("long", 10.0, T(1), T(3))
    # (105 - 102) * 10 = 30; return 30 / (102 * 10), no costs
    assert t.pnl == approx(30.0)
    assert t.return_pct == approx(30.0 / 1020.0)
    assert t.bars_held == 2
    # cash: 10000 - 1020 = 8980 from bar 1; equity = cash + 10 * close.
    assert list(r.equity_frame["cash"]) == approx([10000, 8980, 8980, 10030])
    assert list(r.equity) == approx([10000, 8980 + 1040, 8980 + 1050, 10030])
    assert list(r.equity.index) == [T(0), T(1), T(2), T(3)]
    assert list(r.equity_frame["gross_exposure"]) == approx([0, 1040, 1050, 0])
    o = order(r, r.strategy.ids["buy"][0])
    assert (o.status, o.placed_time, o.closed_time) == ("filled", T(0), T(1))


def test_market_order_fills_at_close_with_trade_on_close(bars, run):
    r = run(bars(FOUR), {0: buy(10), 2: close}, trade_on_close=True)
    # Buy at bar 0's close 100, sell at bar 2's close 105: (105 - 100) * 10 = 50.
    assert list(r.fills["time"]) == [T(0), T(2)]
    assert list(r.fills["price"]) == [100.0, 105.0]
    t = only(r.trades)
    assert t.pnl == approx(50.0)
    assert t.bars_held == 2
    # cash 9000 after the buy; equity 9000 + 10 * close: 10000, 10040, then 10050 flat.
    assert list(r.equity) == approx([10000, 10040, 10050, 10050])
    assert list(r.equity_frame["cash"]) == approx([9000, 9000, 10050, 10050])


def test_trade_on_close_does_not_affect_limit_orders(bars, run):
    # A limit buy at 104 placed on bar 0 (close 100) must not fill at bar 0's close even with
    # trade_on_close: it rests and fills at bar 1, whose open 102 is already below the
    # limit -> the better open, 102.
    r = run(bars(FOUR), {0: buy(10, limit=104)}, trade_on_close=True)
    f = only(r.fills)
    assert (f.time, f.price) == (T(1), 102.0)


# --- stops, gaps, brackets ------------------------------------------------------------


def test_gap_through_stop_loss_fills_at_the_open(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 98, 101),  # entry at the open 100; sl 95 not touched
        (90, 92, 88, 91),     # opens at 90, below the stop 95: filled at the open, 90
        (91, 93, 90, 92),
    ]
    r = run(bars(rows), {0: buy(10, sl=95)})
    assert list(r.fills["price"]) == [100.0, 90.0]
    assert list(r.fills["role"]) == ["entry", "stop_loss"]
    t = only(r.trades)
    # (90 - 100) * 10 = -100, not (95 - 100) * 10.
    assert (t.exit_time, t.exit_price) == (T(2), 90.0)
    assert t.pnl == approx(-100.0)
    assert r.equity.iloc[-1] == approx(9900.0)


@pytest.mark.parametrize("direction", ["long", "short"])
def test_stop_loss_wins_when_both_legs_are_inside_one_bar(bars, run, direction):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 98, 101),   # entry at the open 100; neither 95/105 nor 110/90 touched
        (101, 112, 88, 100),   # both legs inside the range: the stop-loss fills
        (100, 101, 99, 100),
    ]
    if direction == "long":
        r = run(bars(rows), {0: buy(10, sl=95, tp=110)})
        sl_price, pnl = 95.0, (95 - 100) * 10
    else:
        r = run(bars(rows), {0: sell(10, sl=105, tp=90)})
        sl_price, pnl = 105.0, (100 - 105) * 10
    assert list(r.fills["role"]) == ["entry", "stop_loss"]
    assert r.fills["price"].iloc[1] == sl_price
    assert r.fills["time"].iloc[1] == T(2)
    assert only(r.trades).pnl == approx(pnl)
    legs = r.orders.set_index("role")
    assert legs.loc["stop_loss", "status"] == "filled"
    assert legs.loc["take_profit", "status"] == "cancelled"
    assert legs.loc["take_profit", "closed_time"] == T(2)
    assert r.equity.iloc[-1] == approx(10000 + pnl)


def test_stop_loss_born_intrabar_beats_a_limit_in_the_same_bar(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 103, 94, 100),  # buy limit 98 fills intrabar; its sl 95 and a sell limit 102 both inside
        (100, 101, 99, 100),
    ]

    def place(s, sym):
        s.ids["entry"] = s.buy(size=10, limit=98, sl=95)
        s.ids["other"] = s.sell(size=10, limit=102)

    r = run(bars(rows), {0: place})
    # After an intrabar entry the stop-loss watches the rest of the bar, and stops are
    # matched before limits: the trade opened at 98 is stopped at 95, (95 - 98) * 10 = -30,
    # exactly as when 102 is the bracket's own take-profit (see the next test).
    sl = r.orders[r.orders["role"] == "stop_loss"].iloc[0]
    assert (sl.status, sl.closed_time) == ("filled", T(1))
    first = r.trades.iloc[0]
    assert (first.entry_price, first.exit_price) == (98.0, 95.0)
    assert first.pnl == approx(-30.0)


def test_stop_loss_born_intrabar_beats_its_own_take_profit(bars, run):
    rows = [(100, 101, 99, 100), (100, 103, 94, 100), (100, 101, 99, 100)]
    r = run(bars(rows), {0: buy(10, limit=98, sl=95, tp=102)})
    assert list(r.fills["role"]) == ["entry", "stop_loss"]
    assert list(r.fills["price"]) == [98.0, 95.0]
    assert only(r.trades).pnl == approx(-30.0)


def test_take_profit_fill_cancels_the_stop_loss(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 98, 101),  # entry 100
        (101, 111, 99, 109),  # high 111 reaches the tp 110: sold at 110
        (100, 100, 80, 85),   # would have hit the sl 95: it must be gone
    ]
    r = run(bars(rows), {0: buy(10, sl=95, tp=110)})
    assert list(r.fills["role"]) == ["entry", "take_profit"]
    assert r.fills["price"].iloc[1] == 110.0
    legs = r.orders.set_index("role")
    assert legs.loc["stop_loss", "status"] == "cancelled"
    assert legs.loc["stop_loss", "closed_time"] == T(2)
    # (110 - 100) * 10 = 100; flat afterwards, so the crash of bar 3 costs nothing.
    assert only(r.trades).pnl == approx(100.0)
    assert list(r.equity) == approx([10000, 10010, 10100, 10100])


def test_closing_the_position_cancels_both_legs(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 98, 101),  # entry 100
        (101, 103, 100, 102),  # close() from bar 1 fills at the open 101
        (102, 120, 80, 100),  # would touch both legs
    ]
    r = run(bars(rows), {0: buy(10, sl=95, tp=110), 1: close})
    assert list(r.fills["role"]) == ["entry", "close"]
    assert r.fills["price"].iloc[1] == 101.0
    legs = r.orders.set_index("role")
    for role in ("stop_loss", "take_profit"):
        assert legs.loc[role, "status"] == "cancelled"
        assert legs.loc[role, "closed_time"] == T(2)
    assert only(r.trades).pnl == approx(10.0)  # (101 - 100) * 10
    assert r.equity.iloc[-1] == approx(10010.0)


def test_cancel_of_a_working_order(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # limit 90 not reached
        (100, 101, 85, 95),   # would fill the limit at 90, but it was cancelled at bar 1
        (95, 96, 94, 95),
    ]

    def place(s, sym):
        s.ids["limit"] = s.buy(size=10, limit=90)

    def cancel(s, sym):
        assert s.orders() == [s.ids["limit"]]
        s.ids["cancelled"] = s.cancel(s.ids["limit"])
        s.ids["again"] = s.cancel(s.ids["limit"])
        s.ids["left"] = s.orders()

    r = run(bars(rows), {0: place, 1: cancel})
    assert r.fills.empty
    assert r.strategy.ids["cancelled"] is True
    assert r.strategy.ids["again"] is False
    assert r.strategy.ids["left"] == []
    o = order(r, r.strategy.ids["limit"])
    assert (o.status, o.closed_time) == ("cancelled", T(1))
    assert list(r.equity) == approx([10000] * 4)


def test_cancel_of_an_order_placed_in_the_same_bar(bars, run):
    def place_and_cancel(s, sym):
        s.ids["m"] = s.buy(size=10)
        s.ids["ok"] = s.cancel(s.ids["m"])

    r = run(bars(FOUR), {0: place_and_cancel})
    assert r.strategy.ids["ok"] is True
    assert r.fills.empty
    assert order(r, r.strategy.ids["m"]).status == "cancelled"


def test_cancel_of_a_bracket_leg_keeps_the_other(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 98, 101),  # entry 100
        (101, 102, 100, 101),
        (100, 112, 90, 100),  # both 95 and 110 inside: only the tp is left -> 110
    ]

    def cancel_sl(s, sym):
        sl = s.open_trades()[0]["sl_order"]
        s.ids["sl"] = sl
        s.ids["ok"] = s.cancel(sl)

    r = run(bars(rows), {0: buy(10, sl=95, tp=110), 2: cancel_sl})
    assert r.strategy.ids["ok"] is True
    assert list(r.fills["role"]) == ["entry", "take_profit"]
    assert r.fills["price"].iloc[1] == 110.0
    assert order(r, r.strategy.ids["sl"]).status == "cancelled"


# --- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "side, limit, bar1, price",
    [
        # buy limit 97: bar opens 99 above it, the low 96 reaches it -> 97
        ("buy", 97, (99, 100, 96, 98), 97.0),
        # buy limit 97: bar opens 95, already below -> the better open 95
        ("buy", 97, (95, 96, 94, 95), 95.0),
        # sell limit 103: opens 101, high 104 reaches it -> 103
        ("sell", 103, (101, 104, 100, 102), 103.0),
        # sell limit 103: opens 106, above it -> the better open 106
        ("sell", 103, (106, 107, 105, 106), 106.0),
    ],
)
def test_limit_fills_at_limit_or_the_better_open(bars, run, side, limit, bar1, price):
    rows = [(100, 101, 99, 100), bar1, (100, 101, 99, 100)]
    act = buy(10, limit=limit) if side == "buy" else sell(10, limit=limit)
    r = run(bars(rows), {0: act}, slippage=25)  # limits never slip
    f = only(r.fills)
    assert (f.time, f.side, f.price) == (T(1), side, price)


def test_limit_out_of_reach_stays_open(bars, run):
    # buy limit 90 never reached (lows 99, 98): still open at the end, never filled.
    rows = [(100, 101, 99, 100), (100, 101, 98, 99), (99, 100, 98, 99)]
    r = run(bars(rows), {0: buy(10, limit=90)})
    assert r.fills.empty
    o = only(r.orders)
    assert o.status == "open"
    assert pd.isna(o.closed_time)


# --- stop entries and stop-limits ------------------------------------------------------


@pytest.mark.parametrize(
    "side, stop, bar1, price",
    [
        # buy stop 103: opens 101, high 104 reaches it -> 103
        ("buy", 103, (101, 104, 100, 102), 103.0),
        # buy stop 103: opens 105, above it -> the worse open 105
        ("buy", 103, (105, 106, 104, 105), 105.0),
        # sell stop 97: opens 99, low 96 reaches it -> 97
        ("sell", 97, (99, 100, 96, 98), 97.0),
        # sell stop 97: opens 95, below it -> the worse open 95
        ("sell", 97, (95, 96, 94, 95), 95.0),
    ],
)
def test_stop_entry(bars, run, side, stop, bar1, price):
    rows = [(100, 101, 99, 100), bar1, (100, 101, 99, 100)]
    act = buy(10, stop=stop) if side == "buy" else sell(10, stop=stop)
    r = run(bars(rows), {0: act})
    f = only(r.fills)
    assert (f.time, f.side, f.price) == (T(1), side, price)
    assert r.positions.loc["ASSET", "size"] == (10.0 if side == "buy" else -10.0)


def test_stop_not_touched_does_not_fill(bars, run):
    rows = [(100, 101, 99, 100), (100, 102.9, 99, 101), (101, 102, 100, 101)]
    r = run(bars(rows), {0: buy(10, stop=103)})
    assert r.fills.empty


def test_stop_limit_fills_at_the_trigger_when_marketable(bars, run):
    # buy stop 103 limit 104: the high 105 touches 103, 103 <= 104 -> fills at 103.
    rows = [(100, 101, 99, 100), (101, 105, 100, 104), (104, 105, 103, 104)]
    r = run(bars(rows), {0: buy(10, stop=103, limit=104)}, slippage=50)
    f = only(r.fills)
    assert (f.time, f.price) == (T(1), 103.0)  # a stop-limit is a limit: no slippage


def test_stop_limit_triggered_but_not_marketable_rests_as_limit(bars, run):
    rows = [
        (100, 101, 99, 100),
        (101, 105, 100, 104),   # stop 103 touched; 103 > limit 102: rests, even though the
                                # low 100 is under 102 (the path after the trigger is unknown)
        (104, 105, 101.5, 103),  # as a limit 102 now: the low 101.5 reaches it -> 102
        (103, 104, 102, 103),
    ]
    r = run(bars(rows), {0: buy(10, stop=103, limit=102)})
    f = only(r.fills)
    assert (f.time, f.price) == (T(2), 102.0)


def test_stop_limit_gap_over_the_limit_rests(bars, run):
    rows = [
        (100, 101, 99, 100),
        (106, 107, 103, 106),   # opens 106 over the stop 103 and the limit 104: rests
        (105, 106, 103.5, 104),  # limit 104 reached by the low 103.5 -> 104
    ]
    r = run(bars(rows), {0: buy(10, stop=103, limit=104)})
    f = only(r.fills)
    assert (f.time, f.price) == (T(2), 104.0)


# --- costs -----------------------------------------------------------------------------


def test_commission_and_slippage_arithmetic(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 99, 101),   # market buy at the open: 100 * (1 + 10bp) = 100.1
        (101, 111, 100, 109),  # limit sell 110 (placed at bar 1): 110, no slippage
        (109, 110, 108, 109),
    ]
    r = run(
        bars(rows),
        {0: buy(10), 1: sell(10, limit=110)},
        commission=0.001,
        commission_fixed=1.0,
        slippage=10,
    )
    buy_px = 100 * 1.001
    buy_fee = 10 * buy_px * 0.001 + 1.0     # 1.001 + 1 = 2.001
    sell_fee = 10 * 110 * 0.001 + 1.0       # 1.1 + 1 = 2.1
    assert list(r.fills["price"]) == approx([buy_px, 110.0])
    assert list(r.fills["commission"]) == approx([buy_fee, sell_fee])
    t = only(r.trades)
    # (110 - 100.1) * 10 - (2.001 + 2.1) = 99 - 4.101 = 94.899
    assert t.pnl == approx((110 - buy_px) * 10 - buy_fee - sell_fee)
    assert t.pnl == pytest.approx(94.899, abs=1e-9)
    assert t.commission == approx(buy_fee + sell_fee)
    assert t.return_pct == approx(t.pnl / (buy_px * 10 + buy_fee + sell_fee))
    # cash after the buy: 10000 - 1001 - 2.001; equity at bar 1 adds 10 * 101.
    cash1 = 10000 - 10 * buy_px - buy_fee
    assert r.equity_frame["cash"].iloc[1] == approx(cash1)
    assert r.equity.iloc[1] == approx(cash1 + 1010)
    assert r.equity.iloc[-1] == approx(10000 + t.pnl)


def test_a_symbols_own_slippage(bars):
    # LIQUID slips by the account's 10 bp, THIN by its own 80 bp: market buys at bar 1's
    # open 100 fill at 100.1 and 100.8; stop sells at 95 (bar 2 trades down to 94) at
    # 95 x (1 - 10bp) and 95 x (1 - 80bp); THIN's limit sell never slips.
    rows = [(100, 101, 99, 100), (100, 102, 99, 100), (100, 100, 94, 95), (95, 96, 94, 95)]
    data = {"LIQUID": bars(rows), "THIN": bars(rows)}
    script = {("LIQUID", 0): buy(10), ("THIN", 0): buy(10),
              ("LIQUID", 1): sell(10, stop=95), ("THIN", 1): sell(5, stop=95),
              ("THIN", 2): sell(5, limit=95)}
    r = run_script(data, script, slippage=10, slippage_by_symbol={"THIN": 80})
    f = r.fills
    assert list(zip(f["symbol"], f["side"], strict=True)) == [
        ("LIQUID", "buy"), ("THIN", "buy"), ("LIQUID", "sell"), ("THIN", "sell"), ("THIN", "sell")]
    assert list(f["price"]) == approx([100.1, 100.8, 95 * 0.999, 95 * 0.992, 95.0])
    # Signals mode slips by the same terms.
    entries = pd.DataFrame({s: [True, False, False, False] for s in data}, index=data["THIN"].index)
    bt = tickstep.Backtest(data, cash=10_000, slippage=10, slippage_by_symbol={"THIN": 80})
    sig = bt.run_signals(entries=entries, exits=entries & False, size=10, size_type="amount")
    assert sig.fills.set_index("symbol")["price"].to_dict() == {"LIQUID": approx(100.1),
                                                                "THIN": approx(100.8)}


def test_a_symbols_own_slippage_is_checked():
    with pytest.raises(tickstep.ConfigError, match=r"slippage_by_symbol\['X'\]=-1"):
        tickstep.BacktestConfig(slippage_by_symbol={"X": -1})
    data = {"X": pd.DataFrame({"open": [1.0], "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                              index=pd.date_range("2024-01-01", periods=1, tz="UTC"))}
    with pytest.raises(tickstep.ConfigError, match=r"slippage_by_symbol\['X'\] = 10000"):
        tickstep.Backtest(data, tickstep.Strategy, slippage_by_symbol={"X": 10_000}).run()
    with pytest.raises(tickstep.UnknownSymbolError, match="slippage_by_symbol: 'Y'"):
        tickstep.Backtest(data, tickstep.Strategy, slippage_by_symbol={"Y": 1})


#: A broker's schedule: half a cent a unit, at least 1.00 a fill, at most 1% of its value.
SCHEDULE = dict(commission_per_unit=0.005, commission_min=1.0, commission_cap=0.01)


def test_a_schedule_charges_per_unit_its_minimum_and_its_cap_on_every_fill(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 99, 101),   # buy 1,000 at 100: 5.00 by the unit (1.00 < 5 < 1,000)
        (101, 103, 100, 102),  # sell 150 at 101: 0.75 by the unit, raised to the minimum
        (102, 103, 80, 81),    # close the 850 left at 102: 4.25 by the unit
        (81, 82, 80, 81),      # buy 1 at 81: 0.005, the minimum 1.00 over the cap 0.81
        (81, 82, 80, 81),
    ]
    r = run(bars(rows), {0: buy(1_000), 1: sell(150), 2: close, 3: buy(1)},
            cash=1_000_000, **SCHEDULE)
    assert list(r.fills["size"]) == [1_000, 150, 850, 1]
    assert list(r.fills["price"]) == approx([100.0, 101.0, 102.0, 81.0])
    assert list(r.fills["commission"]) == approx([5.0, 1.0, 4.25, 0.81])
    # The two trades share the entry's 5.00 by their units: 0.75 and 4.25.
    assert list(r.trades["commission"]) == approx([0.75 + 1.0, 4.25 + 4.25])
    assert list(r.trades["pnl"]) == approx([150 * 1 - 1.75, 850 * 2 - 8.5])
    # (The statistics count the closed trades' commissions; the open unit's is in equity.)
    assert r["Commissions [$]"] == approx(1.75 + 8.5)
    # The unit held is worth what it cost at the last close: equity lacks its fee only.
    assert r.equity.iloc[-1] == approx(1_000_000 + 148.25 + 1_691.5 - 0.81)


def test_a_schedule_adds_per_unit_to_the_rate_and_the_fixed_part(bars, run):
    r = run(bars([(100, 101, 99, 100), (50, 51, 49, 50), (50, 51, 49, 50)]), {0: buy(40)},
            commission=0.001, commission_fixed=2.0, commission_per_unit=0.05, commission_min=3.0)
    # 40 at 50: 2.00 by the rate + 2.00 fixed + 2.00 by the unit = 6.00 (over the minimum 3).
    assert only(r.fills).commission == approx(6.0)
    r = run(bars([(100, 101, 99, 100), (50, 51, 49, 50), (50, 51, 49, 50)]), {0: buy(4)},
            commission=0.001, commission_fixed=0.5, commission_per_unit=0.05, commission_min=3.0)
    # 4 at 50: 0.20 + 0.50 + 0.20 = 0.90, raised to the minimum 3.00.
    assert only(r.fills).commission == approx(3.0)


def test_a_limit_filled_at_its_limit_pays_the_makers_rate_and_other_fills_the_takers(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 98, 99),    # the buy limit 99 rests; the bar comes down to it: maker
        (99, 106, 99, 105),    # its take-profit 104 is reached inside the bar: maker
        (103, 104, 102, 103),  # a buy limit 104 meets the open 103, a better price: taker
        (103, 104, 96, 97),    # its stop-loss 98 fills at 98 (a stop): taker
        (97, 98, 96, 97),
    ]
    r = run(bars(rows), {0: buy(10, limit=99, tp=104), 2: buy(10, limit=104, sl=98)},
            commission=0.001, commission_maker=0.0002, commission_fixed=0.5)
    assert list(r.fills["role"]) == ["entry", "take_profit", "entry", "stop_loss"]
    assert list(r.fills["price"]) == approx([99.0, 104.0, 103.0, 98.0])
    # 990 x 0.0002 + 0.5; 1,040 x 0.0002 + 0.5; 1,030 x 0.001 + 0.5; 980 x 0.001 + 0.5.
    assert list(r.fills["commission"]) == approx([0.698, 0.708, 1.53, 1.48])
    assert list(r.trades["pnl"]) == approx([50 - 0.698 - 0.708, -50 - 1.53 - 1.48])


def test_a_negative_makers_rate_is_a_rebate_unless_a_minimum_says_otherwise(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 98, 99),    # the buy limit 99 rests; the bar comes down to it: maker
        (99, 106, 99, 105),    # its take-profit 104 is reached inside the bar: maker
        (105, 106, 104, 105),
    ]
    fees = dict(commission=0.001, commission_maker=-0.0005, commission_fixed=0.2)
    r = run(bars(rows), {0: buy(10, limit=99, tp=104)}, **fees)
    # 990 x -0.0005 + 0.2 = -0.295 and 1,040 x -0.0005 + 0.2 = -0.32: both fills are paid,
    # and the trade gains 0.615 on top of its 50.00.
    assert list(r.fills["commission"]) == approx([-0.295, -0.32])
    assert only(r.trades).pnl == approx(50.0 + 0.615)
    assert r.equity.iloc[-1] == approx(10_000 + 50.615)
    # A minimum of 0.25 is paid instead of either rebate.
    r = run(bars(rows), {0: buy(10, limit=99, tp=104)}, commission_min=0.25, **fees)
    assert list(r.fills["commission"]) == approx([0.25, 0.25])


def test_slippage_on_stop_exits_and_market_shorts(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 102, 99, 101),   # short at the open: sell receives 100 * (1 - 20bp) = 99.8
        (101, 106, 100, 104),  # sl 105 (a buy stop) touched: pays 105 * 1.002 = 105.21
        (104, 105, 103, 104),
    ]
    r = run(bars(rows), {0: sell(10, sl=105)}, slippage=20)
    entry, exit_ = 100 * (1 - 0.002), 105 * (1 + 0.002)
    assert list(r.fills["price"]) == approx([entry, exit_])
    # short: (99.8 - 105.21) * 10 = -54.1
    assert only(r.trades).pnl == approx((entry - exit_) * 10)
    assert r.equity.iloc[-1] == approx(10000 + (entry - exit_) * 10)


def test_short_pnl_and_marking(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 97, 98),  # short 10 at 100: cash 11000, equity 11000 - 10 * 98 = 10020
        (98, 99, 92, 93),    # equity 11000 - 930 = 10070
        (90, 91, 89, 90),    # covered at the open 90: +100
    ]
    r = run(bars(rows), {0: sell(10), 2: close})
    assert list(r.equity_frame["cash"]) == approx([10000, 11000, 11000, 10100])
    assert list(r.equity) == approx([10000, 10020, 10070, 10100])
    assert list(r.equity_frame["gross_exposure"]) == approx([0, 980, 930, 0])
    t = only(r.trades)
    assert (t.side, t.entry_price, t.exit_price) == ("short", 100.0, 90.0)
    assert t.pnl == approx(100.0)
    assert t.return_pct == approx(0.1)


# --- lots ------------------------------------------------------------------------------


def test_fifo_partial_closes(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # lot A: 10 @ 100
        (110, 111, 109, 110),  # lot B: 10 @ 110
        (120, 121, 119, 120),  # sell 15 @ 120: all of A, 5 of B
        (125, 126, 124, 125),
    ]
    r = run(bars(rows), {0: buy(10), 1: buy(10), 2: sell(15)}, commission_fixed=2.0)
    trades = r.trades
    assert len(trades) == 2
    a, b = trades.iloc[0], trades.iloc[1]
    assert (a["size"], a.entry_price, a.exit_price) == (10.0, 100.0, 120.0)
    assert (b["size"], b.entry_price, b.exit_price) == (5.0, 110.0, 120.0)
    assert a.trade_id != b.trade_id
    # Commission 2 per fill. A: its entry fee 2 plus 10/15 of the exit fee.
    # B: half of its entry fee (5 of 10 units) plus 5/15 of the exit fee.
    assert a.commission == approx(2 + 2 * 10 / 15)
    assert b.commission == approx(1 + 2 * 5 / 15)
    assert a.pnl == approx(200 - (2 + 2 * 10 / 15))
    assert b.pnl == approx(50 - (1 + 2 * 5 / 15))
    assert r.positions.loc["ASSET", "size"] == 5.0
    assert r.positions.loc["ASSET", "average_price"] == 110.0
    # Final equity: cash 10000 - 1000 - 1100 + 1800 - 3 * 2 = 9694, plus 5 * 125 = 10319;
    # = cash0 + closed pnl + open (125 - 110) * 5 - the 1.0 of B's entry fee not yet charged.
    assert r.equity.iloc[-1] == approx(10319.0)
    assert r.equity.iloc[-1] == approx(10000 + a.pnl + b.pnl + 75 - 1.0)


def test_position_flip(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # long 10 @ 100
        (105, 106, 104, 105),  # sell 25 @ 105: closes 10 (+50), opens short 15 @ 105
        (102, 103, 101, 102),  # close: buy 15 @ 102 (+45)
        (101, 102, 100, 101),
    ]
    r = run(bars(rows), {0: buy(10), 1: sell(25), 2: close})
    assert list(r.fills["size"]) == [10.0, 25.0, 15.0]
    assert list(r.fills["side"]) == ["buy", "sell", "buy"]
    t = r.trades
    assert list(t["side"]) == ["long", "short"]
    assert list(t["size"]) == [10.0, 15.0]
    assert list(t["pnl"]) == approx([50.0, 45.0])
    assert list(t["entry_time"]) == [T(1), T(2)]
    assert r.positions.empty
    # equity at bar 2: cash 10000 - 1000 + 2625 = 11625, short 15 marked at 105 -> 10050
    assert r.equity.iloc[2] == approx(10050.0)
    assert r.equity.iloc[-1] == approx(10095.0)


def test_flip_brackets_belong_to_the_new_trade(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # long 10 @ 100, with an sl at 90
        (100, 101, 99, 100),  # sell 20 @ 100 with sl 110: closes the long, opens short 10
        (100, 111, 89, 100),  # the old sl (90) must be cancelled; the new sl 110 fills
        (100, 101, 99, 100),
    ]
    r = run(bars(rows), {0: buy(10, sl=90), 1: sell(20, sl=110)})
    assert list(r.fills["role"]) == ["entry", "entry", "stop_loss"]
    f = r.fills.iloc[2]
    assert (f.side, f["size"], f.price, f.time) == ("buy", 10.0, 110.0, T(3))
    assert list(r.orders[r.orders["role"] == "stop_loss"]["status"]) == ["cancelled", "filled"]
    assert r.positions.empty
    assert list(r.trades["pnl"]) == approx([0.0, -100.0])


def test_close_sizes_at_fill_time(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # long 10
        (100, 101, 99, 100),  # buy 5 (placed before the close) -> 15, then close sells 15
        (100, 101, 99, 100),
    ]
    r = run(bars(rows), {0: buy(10), 1: seq(buy(5), close)})
    assert list(r.fills["size"]) == [10.0, 5.0, 15.0]
    assert list(r.fills["role"]) == ["entry", "entry", "close"]
    assert r.positions.empty
    assert list(r.trades["size"]) == [10.0, 5.0]
    # The close order was logged with the position size at placement (10) but filled 15.
    assert order(r, r.strategy.ids["close"][0]).status == "filled"


def test_close_when_flat_returns_none_and_a_close_finding_no_position_is_cancelled(bars, run):
    def at0(s, sym):
        s.ids["flat_close"] = s.close()  # flat: nothing placed
        s.buy(size=10)

    # Bar 1: the sell 10 (placed first) flattens at bar 2's open; the close placed after it
    # finds no position at fill time and is cancelled.
    r = run(bars(FOUR), {0: at0, 1: seq(sell(10), close)})
    assert r.strategy.ids["flat_close"] is None
    assert list(r.fills["role"]) == ["entry", "entry"]
    c = order(r, r.strategy.ids["close"][0])
    assert (c.status, c.closed_time) == ("cancelled", T(2))
    assert r.positions.empty
    assert only(r.trades).pnl == approx(10 * (104 - 102))


# --- margin -----------------------------------------------------------------------------


def test_rejected_for_insufficient_margin_leaves_equity_untouched(bars, run):
    # 200 units at the open 100 = 20000 of exposure on 10000 equity at leverage 1.
    r = run(bars(FOUR), {0: buy(200, sl=90)})
    assert r.fills.empty and r.trades.empty
    o = only(r.orders)
    assert (o.status, o.reason, o.closed_time) == ("rejected", "insufficient margin", T(1))
    assert list(r.equity) == [10000.0] * 4
    assert list(r.equity_frame["cash"]) == [10000.0] * 4


def test_leverage_allows_the_same_order(bars, run):
    # 20000 <= 2.5 * 10000: fills at 102 (bar 1 open); equity 10000 + 200 * (close - 102).
    r = run(bars(FOUR), {0: buy(200)}, leverage=2.5)
    f = only(r.fills)
    assert (f.price, f["size"]) == (102.0, 200.0)
    assert list(r.equity) == approx([10000, 10000 + 200 * 2, 10000 + 200 * 3, 10000 + 200 * 4])


def test_margin_boundary(bars, run):
    # Exactly 10000 of exposure on 10000 equity fills; with a fee of 1 the equity after the
    # fill is 9999 < 10000 of exposure: rejected.
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100)]
    ok = run(bars(rows), {0: buy(100)})
    assert len(ok.fills) == 1
    refused = run(bars(rows), {0: buy(100)}, commission_fixed=1.0)
    assert refused.fills.empty
    assert only(refused.orders).status == "rejected"


def test_reducing_order_is_never_rejected(bars, run):
    rows = [
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # long 190 @ 100: exposure 19000 <= 2 * (10000 - 10)
        (70, 71, 69, 70),     # sell 50 @ 70
        (70, 71, 69, 70),
    ]
    # At bar 2's open equity is 10000 - 10 - 190 * 30 = 4290 and the exposure after the sell
    # would be 140 * 70 = 9800 > 2 * (4290 - 10): a margin check would refuse it, but a fill
    # that shrinks the position is never refused.
    r = run(bars(rows), {0: buy(190), 1: sell(50)}, commission_fixed=10.0, leverage=2.0)
    assert list(r.fills["size"]) == [190.0, 50.0]
    assert r.positions.loc["ASSET", "size"] == 140.0


# --- excursions ---------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["long", "short"])
def test_mae_mfe_and_bars_held(bars, run, direction):
    rows = [
        (100, 101, 99, 100),
        (100, 104, 97, 102),  # entry at the open 100
        (102, 108, 99, 104),
        (104, 104, 95, 100),
        (101, 103, 100, 102),  # exit at the open 101 (close placed at bar 3)
        (102, 130, 50, 100),   # after the exit: must not count
    ]
    act = buy(10) if direction == "long" else sell(10)
    r = run(bars(rows), {0: act, 3: close})
    t = only(r.trades)
    assert (t.entry_time, t.exit_time) == (T(1), T(4))
    assert t.bars_held == 3
    # Prices seen while open: 95 .. 108 (bars 1-3) and the exit 101.
    if direction == "long":
        assert t.mae == approx(95 / 100 - 1)   # -0.05
        assert t.mfe == approx(108 / 100 - 1)  # +0.08
        assert t.pnl == approx(10.0)
    else:
        assert t.mae == approx(-(108 / 100 - 1))  # -0.08
        assert t.mfe == approx(-(95 / 100 - 1))   # +0.05
        assert t.pnl == approx(-10.0)


# --- several symbols -----------------------------------------------------------------------


def test_order_for_another_symbol_fills_at_its_next_bar(bars, run):
    a = bars([(100, 101, 99, 100), (101, 102, 100, 101), (102, 103, 101, 102)])
    b = bars([(50, 51, 49, 50), (52, 53, 51, 52), (54, 55, 53, 54)])

    def from_a(s, sym):
        if sym == "A":
            s.buy("B", size=10)

    # Placed in A's next() at bar 0; B's bar 0 was already processed: fill at B's bar 1
    # open 52, never at B's bar 0.
    r = run({"A": a, "B": b}, {0: from_a})
    f = only(r.fills)
    assert (f.symbol, f.time, f.price) == ("B", T(1), 52.0)
    # A position in B marked at B's close; A is flat: 10000 - 520 + 10 * 52, 10 * 54.
    assert list(r.equity) == approx([10000, 10000, 10020])


def test_position_marked_at_last_close_when_its_symbol_has_no_bar(bars, run):
    a = bars([(100, 101, 99, 100)] * 5)
    b_full = bars([(50, 51, 49, 50), (52, 53, 51, 52), (60, 61, 59, 60), (70, 71, 69, 70),
                   (54, 55, 53, 54)])
    b = b_full.drop(b_full.index[[2, 3]])  # B has no bars at T(2), T(3)

    def on_b(s, sym):
        if sym == "B":
            s.buy(size=10)

    r = run({"A": a, "B": b}, {("B", 0): on_b})
    # Long 10 B @ 52 from T(1); at T(2), T(3) B is still marked at its last close 52.
    assert list(r.equity.index) == [T(i) for i in range(5)]
    assert list(r.equity) == approx([10000, 10000, 10000, 10000, 10000 + 10 * (54 - 52)])


def test_nan_free_results(bars, run):
    r = run(bars(FOUR), {0: buy(10, sl=90, tp=200), 2: close}, commission=0.001)
    assert np.isfinite(r.equity.to_numpy()).all()
    assert np.isfinite(r.trades[["pnl", "mae", "mfe", "return_pct"]].to_numpy()).all()
    assert math.isfinite(float(r.stats["Equity Final [$]"]))


# --- defaults: sizing, sampling, stats ----------------------------------------------------


def test_default_sizer_is_95_percent_of_equity(bars, run):
    def no_size(s, sym):
        s.ids["id"] = s.buy()

    r = run(bars(FOUR), {0: no_size})
    # 0.95 * 10000 / the latest close 100 = 95 units, filled at bar 1's open 102.
    f = only(r.fills)
    assert (f["size"], f.price) == (95.0, 102.0)


def test_explicit_sizer(bars, run):
    def no_size(s, sym):
        s.sell()

    r = run(bars(FOUR), {0: no_size}, sizer=tickstep.FixedSize(7))
    f = only(r.fills)
    assert (f.side, f["size"]) == ("sell", 7.0)


def test_equity_sampled_at_the_end_of_each_trading_day(bars, run):
    rows = [(100, 101, 99, 100), (101, 102, 100, 101), (102, 103, 101, 102), (103, 104, 102, 103)]
    minutes = bars(rows, start="2024-01-01 23:58", freq="min")
    # UTC days: 01-01 ends at 23:59, 01-02 at the last bar 00:01.
    utc = run(minutes, {}, record_every_bar=False)
    assert list(utc.equity.index) == [
        pd.Timestamp("2024-01-01 23:59", tz="UTC"),
        pd.Timestamp("2024-01-02 00:01", tz="UTC"),
    ]
    # In New York all four minutes are on 2024-01-01 (18:58-19:01): one sample, at the end.
    ny = run(minutes, {}, record_every_bar=False, timezone="America/New_York")
    assert list(ny.equity.index) == [pd.Timestamp("2024-01-02 00:01", tz="UTC")]
    every = run(minutes, {})
    assert len(every.equity) == 4


def test_stats_agree_with_the_trades_and_equity(bars, run):
    r = run(bars(FOUR), {0: buy(10), 1: close, 2: sell(5)}, commission_fixed=1.0)
    assert r.stats["# Trades"] == len(r.trades) == 1
    assert float(r.stats["Equity Final [$]"]) == approx(r.equity.iloc[-1])
    # Open short 5 @ 105 (bar 3 open), marked at 106: final equity
    # 10000 + (104 - 102) * 10 - 2 fees - 1 fee + 5 * (105 - 106) = 10012.
    assert r.equity.iloc[-1] == approx(10012.0)


# --- exclusive_orders ------------------------------------------------------------------

SIX = [
    # open  high  low  close
    (100, 101, 99, 100),   # 0  buy 10 with a stop-loss at 90
    (102, 105, 101, 104),  # 1  long 10 at 102; a buy limit at 95, then sell 4
    (104, 106, 103, 105),  # 2  the long closed at 104, the short of 4 opened at 104
    (105, 107, 104, 106),  # 3  buy 3
    (106, 107, 105, 106),  # 4  the short closed at 106, the long of 3 opened at 106
    (106, 107, 105, 106),  # 5
]


def test_exclusive_orders_close_the_position_and_cancel_the_entries_first(bars, run):
    script = {0: lambda s, sym: s.ids.update(entry=s.buy(size=10, sl=90)),
              1: lambda s, sym: s.ids.update(limit=s.buy(size=5, limit=95), short=s.sell(size=4)),
              3: lambda s, sym: s.ids.update(long=s.buy(size=3))}
    r = run(bars(SIX), script, exclusive_orders=True)
    fills = r.fills[["time", "side", "size", "price", "role"]]
    assert [tuple(x) for x in fills.itertuples(index=False)] == [
        (T(1), "buy", 10.0, 102.0, "entry"),
        (T(2), "sell", 10.0, 104.0, "close"),   # the long closed first ...
        (T(2), "sell", 4.0, 104.0, "entry"),    # ... then the short opened, in one batch
        (T(4), "buy", 4.0, 106.0, "close"),
        (T(4), "buy", 3.0, 106.0, "entry"),
    ]
    limit = order(r, r.strategy.ids["limit"])
    assert (limit.status, limit.reason) == ("cancelled", "exclusive_orders: a later order replaced it")
    # One close for the two orders of bar 1 (a close sizes itself when it fills).
    assert list(r.orders["role"]).count("close") == 2
    # The long's stop-loss leg went with its trade.
    sl = r.orders[r.orders["role"] == "stop_loss"].iloc[0]
    assert (sl.status, sl.reason) == ("cancelled", "its trade was closed")
    assert r.positions["size"].iloc[0] == 3.0
    # Without the option the same orders pile up: long 10, then the limit (never reached)
    # and the short of 4 against it.
    plain = run(bars(SIX), script)
    assert list(plain.fills["role"]) == ["entry", "entry", "entry"]
    assert plain.positions["size"].iloc[0] == 10 - 4 + 3


def test_exclusive_orders_refuse_targets(bars, run):
    errors = []

    def target(s, sym):
        for attempt in (lambda: s.order_target(size=5), lambda: s.rebalance({"ASSET": 0.5})):
            try:
                attempt()
            except tickstep.ConfigError as e:
                errors.append(str(e))

    r = run(bars(SIX), {1: target}, exclusive_orders=True)
    assert errors == ["order_target() and rebalance() trade the difference from what is held, and "
                      "exclusive_orders=True closes what is held before each order: use one or the other"] * 2
    assert r.orders.empty


# --- self.orders as backtesting.py reads it ----------------------------------------------


def test_orders_read_as_objects_counted_tested_and_cancelled(bars, run):
    seen = {}

    def place(s, sym):
        assert not s.orders and len(s.orders) == 0
        s.ids["limit"] = s.buy(size=10, limit=101, sl=95, tp=110, tag=7)
        s.ids["stop"] = s.sell(size=3, stop=98)
        seen["placed"] = [(o.id, o.role, o.size, o.limit, o.stop, o.sl, o.tp, o.tag) for o in s.orders]

    def read(s, sym):
        seen["bar2"] = list(s.orders)
        seen["trade"] = s.trades[0].id
        seen["ids"] = s.orders(sym)
        seen["count"] = (len(s.orders), bool(s.orders))
        (stop,) = [o for o in s.orders if o.stop == 98]
        seen["cancelled"] = stop.cancel()
        seen["after"] = [o.id for o in s.orders]

    rows = [(100, 101, 99, 100), (102, 103, 100.5, 102), (102, 104, 101, 103), (103, 104, 102, 103)]
    r = run(bars(rows), {0: place, 2: read})
    limit, stop = r.strategy.ids["limit"], r.strategy.ids["stop"]
    assert seen["placed"] == [(limit, "entry", 10.0, 101.0, None, 95.0, 110.0, 7),
                              (stop, "entry", -3.0, None, 98.0, None, None, 0)]
    # Bar 1 (low 100.5) filled the limit at 101; its legs work now, the stop entry too.
    legs = [o for o in seen["bar2"] if o.is_contingent]
    assert sorted((o.role, o.size, o.stop, o.limit) for o in legs) == [
        ("stop_loss", -10.0, 95.0, None), ("take_profit", -10.0, None, 110.0)]
    assert [o.trade_id for o in legs] == [seen["trade"]] * 2
    assert seen["ids"] == [o.id for o in seen["bar2"]] and stop in seen["ids"]
    assert seen["count"] == (3, True)
    assert seen["cancelled"] is True and stop not in seen["after"] and len(seen["after"]) == 2
    assert order(r, stop).status == "cancelled"


def test_orders_say_how_they_were_placed(bars, run):
    # Time in force, validity, trail, group and parent as each was placed; a plain order
    # has none of them.
    seen = {}

    def place(s, sym):
        s.ids["plain"] = s.buy(size=1, limit=90)
        s.ids["bars"] = s.buy(size=1, limit=91, valid=3)
        s.ids["until"] = s.buy(size=1, limit=92, valid=pd.Timestamp("2024-03-01"))
        s.ids["day"] = s.buy(size=1, limit=93, tif="day")
        s.ids["close"] = s.buy(size=1, limit=94, tif="close")
        s.ids["opg"] = s.buy(size=1, limit=95, tif="opg")
        s.ids["fok"] = s.buy(size=1, limit=96, tif="fok")
        s.ids["trail"] = s.sell(size=1, trail="2%")
        s.ids["distance"] = s.sell(size=1, trail=1.5, oco=s.ids["trail"])
        s.ids["entry"] = s.buy(size=10, limit=101, sl=95)
        seen["placed"] = {o.id: (o.tif, o.valid, o.trail, o.oco, o.parent_id) for o in s.orders}

    def read(s, sym):
        seen["legs"] = [(o.role, o.parent_id, o.tif, o.trail) for o in s.orders if o.is_contingent]

    rows = [(100, 101, 99, 100), (102, 103, 100.5, 102), (102, 104, 101, 103), (103, 104, 102, 103)]
    r = run(bars(rows), {0: place, 2: read})
    ids = r.strategy.ids
    placed = seen["placed"]
    assert placed[ids["plain"]] == ("gtc", None, None, None, None)
    assert placed[ids["bars"]] == ("gtc", 3, None, None, None)
    assert placed[ids["until"]] == ("gtc", pd.Timestamp("2024-03-01", tz="UTC"), None, None, None)
    assert placed[ids["day"]][0] == "day"
    assert placed[ids["close"]][0] == "close" and placed[ids["opg"]][0] == "opg"
    assert placed[ids["fok"]][0] == "fok"
    assert placed[ids["trail"]] == ("gtc", None, "2%", ids["trail"], None)
    assert placed[ids["distance"]] == ("gtc", None, 1.5, ids["trail"], None)
    # The entry's stop-loss leg, working from its fill at bar 1, names the entry.
    assert seen["legs"] == [("stop_loss", ids["entry"], "gtc", None)]
    legs = r.orders[r.orders["role"] == "stop_loss"]
    assert legs["parent_id"].tolist() == [ids["entry"]]


def test_orders_in_on_tick_are_every_symbols(bars):
    class Both(tickstep.Strategy):
        def init(self):
            self.seen = []

        def next(self, symbol):
            if len(self.data) == 1:
                self.buy(size=1, limit=1.0)  # never reached

        def on_tick(self):
            self.seen.append(sorted(o.symbol for o in self.orders))

    r = tickstep.Backtest({"A": bars(FOUR), "B": bars(FOUR)}, Both, cash=10_000).run()
    assert r.strategy.seen[0] == ["A", "B"] and r.strategy.seen[-1] == ["A", "B"]


# --- a symbol's own schedule ----------------------------------------------------------


def test_a_symbol_with_its_own_schedule_pays_it_and_the_others_the_accounts(bars, run, tmp_path):
    # Both symbols buy 10 at bar 0 (filled at bar 1's open 102) and sell at bar 2 (filled
    # at bar 3's open 105). The account charges 0.1% + 1.00; "SHARES" pays 0.05 a unit,
    # at least 1.50, and nothing more (its parts not given are 0).
    data = {"COIN": bars(FOUR), "SHARES": bars(FOUR)}
    r = run(data, {0: buy(10), 2: close}, commission=0.001, commission_fixed=1.0,
                   commission_by_symbol={"SHARES": {"commission_per_unit": 0.05,
                                                    "commission_min": 1.5}})
    fees = r.fills.groupby("symbol", observed=True)["commission"].apply(list)
    # COIN: 1,020 x 0.001 + 1 = 2.02, then 1,050 x 0.001 + 1 = 2.05.
    assert fees["COIN"] == [approx(2.02), approx(2.05)]
    # SHARES: 10 x 0.05 = 0.50, raised to the minimum 1.50, twice.
    assert fees["SHARES"] == [1.5, 1.5]
    # Equity: 10,000 + 2 x 30 of P&L - 4.07 - 3.00.
    assert r.equity.iloc[-1] == approx(10_000 + 60 - 4.07 - 3.0)
    # A saved result keeps the schedules as plain data.
    loaded = tickstep.load_result(r.save(tmp_path / "saved"))
    assert loaded.options["commission_by_symbol"] == {
        "SHARES": {"commission_per_unit": 0.05, "commission_min": 1.5}}
    # A symbol the data lacks is refused by name (a misspelt ticker would pay the
    # account's schedule without a word).
    with pytest.raises(tickstep.UnknownSymbolError, match=r"'SHARE' is not a symbol of the data"):
        tickstep.Backtest(data, tickstep.Strategy, commission_by_symbol={"SHARE": {"commission": 0.01}})
