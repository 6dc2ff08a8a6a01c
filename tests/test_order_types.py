"""Order types: trailing stops, time in force, OCO groups, modify, partial closes.

Hand-computed bars and fills: every expected number is worked out beside it. Daily bars
from 2024-01-01 unless said otherwise; an order placed "at bar i" joins the book at the
end of bar i and can fill from bar i + 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars, run_script
from hypothesis import given, settings
from hypothesis import strategies as st


def T(i, freq="D", start="2024-01-01"):
    return pd.Timestamp(start, tz="UTC") + i * pd.Timedelta(f"1{freq}")


def rec(result, order_id):
    return result.orders.set_index("order_id").loc[order_id]


def keep(name, make):
    """A script action that keeps the id of the order ``make(strategy, symbol)`` places."""

    def act(s, sym):
        s.ids[name] = make(s, sym)

    return act


def both(*actions):
    def act(s, sym):
        for a in actions:
            a(s, sym)

    return act


# ---- trailing stops ------------------------------------------------------------------------


TRAIL_ROWS = [
    (100, 100, 100, 100),  # 0: buy 10 with sl_trail=2
    (100, 103, 99, 102),   # 1: entry at the open 100: stop 98; low 99 holds; high 103 -> 101
    (102, 106, 101.5, 105),  # 2: open 102 below the best 103; low 101.5 holds; high 106 -> 104
    (105, 105.5, 103, 104),  # 3: open 105; low 103 reaches the stop 104: filled at 104
    (104, 104, 104, 104),
]


def test_trailing_stop_loss_ratchets_then_fills():
    r = run_script({"X": make_bars(TRAIL_ROWS)}, {0: lambda s, sym: s.buy(size=10, sl_trail=2.0)})
    exit_ = r.fills.iloc[1]
    assert (exit_.time, exit_.role, exit_.price) == (T(3), "stop_loss", 104.0)
    assert r.trades.pnl.iloc[0] == pytest.approx(40.0)  # (104 - 100) x 10


def test_trailing_stop_hit_by_a_gap_fills_at_the_open():
    rows = [*TRAIL_ROWS[:3], (103, 103.5, 101, 102), (102, 102, 102, 102)]
    # Bar 3 opens at 103, below the stop 104 (set from the best 106): filled at the open.
    r = run_script({"X": make_bars(rows)}, {0: lambda s, sym: s.buy(size=10, sl_trail=2.0)})
    assert (r.fills.time.iloc[1], r.fills.price.iloc[1]) == (T(3), 103.0)
    assert r.trades.pnl.iloc[0] == pytest.approx(30.0)


def test_a_stop_never_moves_back_within_or_across_bars():
    # The best price only rises: after the high of 106 the stop is 104 even though the next
    # bar's high (105.5) is lower; it did not follow the high up and the low down in one bar.
    rows = [*TRAIL_ROWS[:3], (105, 105.5, 104.2, 105), (105, 105, 103.9, 104)]
    r = run_script({"X": make_bars(rows)}, {0: lambda s, sym: s.buy(size=10, sl_trail=2.0)})
    assert (r.fills.time.iloc[1], r.fills.price.iloc[1]) == (T(4), 104.0)


def test_stand_alone_trailing_stop_by_percent():
    # Long 5 from bar 1's open (100). At bar 1 (close 100): sell 5, trail 5% -> stop 95.
    # Bar 2: open 100, low 99 holds, high 110 -> stop 104.5. Bar 3: open 108, low 104
    # reaches 104.5: filled at 104.5. P&L (104.5 - 100) x 5 = 22.5.
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 110, 99, 108), (108, 109, 104, 105)]
    script = {0: lambda s, sym: s.buy(size=5), 1: keep("trail", lambda s, sym: s.sell(size=5, trail="5%"))}
    r = run_script({"X": make_bars(rows)}, script)
    f = r.fills.set_index("order_id").loc[r.strategy.ids["trail"]]
    assert (f.time, f.price, f["size"]) == (T(3), 104.5, 5.0)
    assert r.trades.pnl.iloc[0] == pytest.approx(22.5)


class AtrTrail(tickstep.Strategy):
    def init(self):
        self.atr2 = self.atr(2)
        self.seen = {}

    def next(self, symbol):
        i = len(self.data()) - 1
        self.seen[i] = self.atr2.value
        if i == 2:
            self.buy(size=1, sl_trail=(self.atr2, 1.5))


def test_trailing_stop_by_a_multiple_of_a_declared_atr():
    # The leg starts from the entry (bar 3's open, 100) at 1.5 x the ATR as of bar 2 (the
    # bar before the fill); through bar 3 it rises with the high by 1.5 x that ATR; from
    # bar 4's open on it uses the ATR as of bar 3.
    rows = [(100, 101, 99, 100), (100, 102, 98, 100), (100, 101, 99, 100), (100, 104, 99.5, 103),
            (103, 103, 90, 95), (95, 95, 95, 95)]
    r = tickstep.Backtest({"X": make_bars(rows)}, AtrTrail, record_every_bar=True).run()
    seen = r.strategy.seen
    stop_after_3 = 104 - 1.5 * seen[2]  # survived bar 3 (low 99.5 above 100 - 1.5 x ATR)
    assert 99.5 > 100 - 1.5 * seen[2]
    stop_at_4 = max(stop_after_3, 104 - 1.5 * seen[3])  # bar 4 opens 103 < best 104
    assert (r.fills.time.iloc[1], r.fills.price.iloc[1]) == (T(4), pytest.approx(stop_at_4, rel=1e-12))


# ---- time in force ---------------------------------------------------------------------------


def hourly(start, n, lows):
    """n hourly bars at 100 from ``start`` (UTC); ``lows`` = {i: low} dips."""
    rows = [(100, 100, lows.get(i, 100), 100) for i in range(n)]
    return make_bars(rows, start=start, freq="h")


def dst_day_order(low_at):
    # New York Sunday 2024-03-10 is the spring-forward day: it runs from 05:00 UTC (EST)
    # to 03:59 UTC on Monday (EDT). A day order placed at 14:00 UTC on Sunday is good
    # through the last bar of that New York day, 03:00 UTC Monday — not 23:00 UTC Sunday.
    data = {"X": hourly("2024-03-10 05:00", 24, {low_at: 89})}
    place = {9: keep("day", lambda s, sym: s.buy(size=1, limit=90, tif="day"))}  # 14:00 UTC
    return run_script(data, place, timezone="America/New_York")


def test_day_order_is_good_till_the_end_of_the_trading_day_across_dst():
    # 03:00 UTC Monday is bar 22: still New York Sunday, so the order fills.
    r = dst_day_order(low_at=22)
    o = rec(r, r.strategy.ids["day"])
    assert (o.status, o.closed_time) == ("filled", pd.Timestamp("2024-03-11 03:00", tz="UTC"))


def test_day_order_expires_at_the_session_end_across_dst():
    # 04:00 UTC Monday (bar 23) is New York Monday: the order expired at 03:00 UTC.
    r = dst_day_order(low_at=23)
    o = rec(r, r.strategy.ids["day"])
    assert (o.status, o.reason) == ("expired", "day order: its trading day ended")
    assert o.closed_time == pd.Timestamp("2024-03-11 03:00", tz="UTC")
    assert len(r.fills) == 0


def gtd_bars(low_at):
    # B misses 00:02 and 00:03. A limit placed at B's 00:00 bar with valid=3 may fill on
    # B's next three bars: 00:01, 00:04, 00:05.
    a = make_bars([(100, 100, 100, 100)] * 8, start="2024-01-01", freq="min")
    b = a.drop(a.index[[2, 3]]).copy()
    b.loc[b.index[b.index.minute == low_at], "low"] = 89
    script = {("B", 0): keep("gtd", lambda s, sym: s.buy(sym, size=1, limit=90, valid=3))}
    return run_script({"A": a, "B": b}, script)


def test_good_till_bars_counts_the_symbols_own_bars():
    r = gtd_bars(low_at=5)
    o = rec(r, r.strategy.ids["gtd"])
    assert (o.status, o.closed_time) == ("filled", T(5, "min"))


def test_good_till_bars_expires_after_n_bars_of_a_symbol_that_misses_minutes():
    r = gtd_bars(low_at=6)
    o = rec(r, r.strategy.ids["gtd"])
    assert (o.status, o.reason) == ("expired", "good for a number of bars: they passed")
    assert o.closed_time == T(5, "min")  # the end of its third bar


@pytest.mark.parametrize("valid", [pd.Timedelta("3min"), "2024-01-01 00:03"])
@pytest.mark.parametrize(("low_at", "status"), [(3, "filled"), (4, "expired")])
def test_good_till_a_time_or_a_duration(valid, low_at, status):
    # Placed at 00:00, good through 00:03: a touch at 00:03 fills, at 00:04 it expired.
    data = {"X": make_bars([(100, 100, 89 if i == low_at else 100, 100) for i in range(6)],
                           freq="min")}
    script = {0: keep("gtd", lambda s, sym: s.buy(size=1, limit=90, valid=valid))}
    r = run_script(data, script)
    o = rec(r, r.strategy.ids["gtd"])
    assert o.status == status
    if status == "expired":
        assert (o.reason, o.closed_time) == ("good till date: its time passed", T(3, "min"))


def test_immediate_or_cancel_limit_fills_on_its_next_bar_or_expires():
    rows = [(100, 100, 100, 100), (100, 100, 99, 100), (100, 100, 95, 100)]
    script = {0: keep("ioc", lambda s, sym: s.buy(size=1, limit=96, tif="ioc"))}
    r = run_script({"X": make_bars(rows)}, script)
    o = rec(r, r.strategy.ids["ioc"])
    # Bar 1's low 99 misses 96: expired at bar 1, though bar 2 would have reached it.
    assert (o.status, o.reason, o.closed_time) == (
        "expired", "immediate-or-cancel: not filled on its bar", T(1))
    filled = run_script({"X": make_bars([rows[0], rows[2]])}, script)
    assert rec(filled, filled.strategy.ids["ioc"]).status == "filled"


class PlaceInInit(tickstep.Strategy):
    """Places ``order(self)`` in ``init()`` and keeps its id."""

    order = None

    def init(self):
        self.id = self.order(self)

    def next(self, symbol):
        pass


def placed_in_init(data, order):
    return tickstep.Backtest(data, PlaceInInit, record_every_bar=True).run(order=order)


@pytest.mark.parametrize(("low_at", "status"), [(1, "filled"), (2, "expired")])
def test_immediate_or_cancel_placed_in_init_has_the_first_bar_it_can_fill_on(low_at, status):
    # Placed in init(), it joins the book at the first tick's end: bar 0 is behind it, so
    # its one bar is bar 1 (a touch there fills; one at bar 2 comes after it expired).
    rows = [(100, 100, 95 if i == low_at else 100, 100) for i in range(4)]
    r = placed_in_init({"X": make_bars(rows)}, lambda s: s.buy("X", size=1, limit=96, tif="ioc"))
    o = rec(r, r.strategy.id)
    assert o.status == status
    if status == "filled":
        assert (o.closed_time, r.fills.price.iloc[0]) == (T(1), 96.0)
    else:
        assert (o.reason, o.closed_time) == ("immediate-or-cancel: not filled on its bar", T(1))
        assert len(r.fills) == 0


@pytest.mark.parametrize(("low_at", "status"), [(2, "filled"), (3, "expired")])
def test_good_for_bars_placed_in_init_counts_from_the_first_bar_it_can_fill_on(low_at, status):
    # valid=2 from init(): bars 1 and 2 (bar 0 was played before it joined).
    rows = [(100, 100, 95 if i == low_at else 100, 100) for i in range(5)]
    r = placed_in_init({"X": make_bars(rows)}, lambda s: s.buy("X", size=1, limit=96, valid=2))
    o = rec(r, r.strategy.id)
    assert o.status == status
    if status == "expired":
        assert o.closed_time == T(2)


def test_immediate_or_cancel_placed_in_init_for_a_symbol_that_starts_later():
    # B's first bar is at the second tick: the order has joined by then, so B's bar 0 is
    # its one bar (low 99 misses 96), and B's bar 1 (low 95) comes after it expired.
    a = make_bars([(100, 100, 100, 100)] * 4)
    b = make_bars([(100, 100, 99, 100), (100, 100, 95, 100), (100, 100, 100, 100)], start="2024-01-02")
    r = placed_in_init({"A": a, "B": b}, lambda s: s.buy("B", size=1, limit=96, tif="ioc"))
    o = rec(r, r.strategy.id)
    assert (o.status, o.closed_time) == ("expired", T(1))
    assert len(r.fills) == 0


# ---- one-cancels-other -----------------------------------------------------------------------


def straddle(up, down, bar):
    def place(s, sym):
        s.ids["up"] = s.buy(size=2, stop=up)
        s.ids["down"] = s.sell(size=2, stop=down, oco=s.ids["up"])

    return run_script({"X": make_bars([(100, 100, 100, 100), bar, (100, 100, 100, 100)])}, {0: place})


def test_oco_straddle_with_both_legs_inside_one_bar_fills_exactly_one():
    # Bar 1 (open 100) reaches both 104 and 95: the buy stop, 4 from the open, is reached
    # first; the sell stop is cancelled. One fill, a long of 2, nothing left working.
    r = straddle(104, 95, (100, 106, 94, 100))
    assert list(r.fills.order_id) == [r.strategy.ids["up"]]
    assert r.fills.price.iloc[0] == 104.0
    down = rec(r, r.strategy.ids["down"])
    assert (down.status, down.reason) == ("cancelled", "its one-cancels-other group filled")
    assert r.positions["size"].to_dict() == {"X": 2.0}
    assert set(r.orders.status) == {"filled", "cancelled"}


def test_oco_leg_nearest_the_open_wins_whatever_the_placement_order():
    # The sell stop at 97 (3 from the open) is reached before the buy stop at 106 (6).
    r = straddle(106, 97, (100, 107, 96, 100))
    assert list(r.fills.order_id) == [r.strategy.ids["down"]]
    assert r.positions["size"].to_dict() == {"X": -2.0}
    assert rec(r, r.strategy.ids["up"]).status == "cancelled"


ROWS_AT_CLOSE = [(100, 100, 100, 100), (101, 101, 101, 101), (102, 102, 102, 102)]


def oco_at_close(second):
    """Long 1 and a resting limit x from bar 0; at bar 1 a sell of 1 with oco=x (it closes
    the long at the close), then ``second`` with oco=x; market orders fill at the close."""

    def start(s, sym):
        s.ids["long"] = s.buy(size=1)
        s.ids["x"] = s.buy(size=1, limit=50)

    def both_legs(s, sym):
        s.ids["a"] = s.sell(size=1, oco=s.ids["x"])
        s.ids["b"] = second(s)

    script = {0: start, 1: both_legs}
    return run_script({"X": make_bars(ROWS_AT_CLOSE)}, script, trade_on_close=True)


@pytest.mark.parametrize(
    "second",
    [lambda s: s.buy(size=2, oco=s.ids["x"]), lambda s: s.buy(size=2, limit=120, oco=s.ids["x"])],
    ids=["market", "limit"],
)
def test_oco_order_filling_at_the_close_cancels_the_group_orders_placed_after_it(second):
    # a fills at bar 1's close (101), before b has joined the book (b was placed after
    # it); x and b are its group: both cancelled, so one fill of the group (b, market or
    # limit, would have filled at bar 1's close or bar 2's open).
    r = oco_at_close(second)
    ids = r.strategy.ids
    assert list(r.fills.order_id) == [ids["long"], ids["a"]]
    assert list(r.fills.price) == [100.0, 101.0]
    for other in ("x", "b"):
        o = rec(r, ids[other])
        assert (o.status, o.reason, o.closed_time) == (
            "cancelled", "its one-cancels-other group filled", T(1))
    assert r.trades.pnl.tolist() == [1.0]  # (101 - 100) x 1
    assert r.positions.empty or (r.positions["size"] == 0).all()


def test_oco_order_reducing_at_the_close_cancels_a_group_order_waiting_to_increase():
    # Long 1 from bar 0. At bar 1: a (buy 1, oco=x) then b (sell 3, oco=x). The batch at the
    # close executes reductions first: b closes the long 1 first, so b is the group's fill
    # and cancels a (waiting with its increase) and x; then b's increase opens the short 2.
    def start(s, sym):
        s.ids["long"] = s.buy(size=1)
        s.ids["x"] = s.buy(size=1, limit=50)

    def legs(s, sym):
        s.ids["a"] = s.buy(size=1, oco=s.ids["x"])
        s.ids["b"] = s.sell(size=3, oco=s.ids["x"])

    r = run_script({"X": make_bars(ROWS_AT_CLOSE)}, {0: start, 1: legs}, trade_on_close=True)
    ids = r.strategy.ids
    assert list(r.fills.order_id) == [ids["long"], ids["b"]]
    assert list(r.fills.price) == [100.0, 101.0]
    assert rec(r, ids["b"]).filled_size == 3.0
    for other in ("a", "x"):
        o = rec(r, ids[other])
        assert (o.status, o.reason, o.closed_time) == (
            "cancelled", "its one-cancels-other group filled", T(1))
    assert r.positions["size"].to_dict() == {"X": -2.0}
    assert r.trades.pnl.tolist() == [1.0]  # (101 - 100) x 1


def test_oco_group_cannot_mix_symbols():
    def place(s, sym):
        first = s.buy("A", size=1, limit=90)
        s.sell("B", size=1, limit=110, oco=first)

    data = {"A": make_bars([(100, 100, 100, 100)] * 2), "B": make_bars([(100, 100, 100, 100)] * 2)}
    with pytest.raises(tickstep.OrderError, match="another symbol; a one-cancels-other group holds one"):
        run_script(data, {("A", 0): place})


# ---- modify --------------------------------------------------------------------------------


def test_modify_takes_effect_from_the_next_bar():
    # A buy limit at 90 placed at bar 0; at bar 1 it is moved to 98; bar 1's low 97 does not
    # fill it (the change applies from bar 2), bar 2's low 97.5 fills it at 98.
    rows = [(100, 100, 100, 100), (100, 100, 97, 100), (100, 100, 97.5, 100)]
    script = {0: keep("lim", lambda s, sym: s.buy(size=1, limit=90)),
              1: lambda s, sym: s.modify(s.ids["lim"], limit=98)}
    r = run_script({"X": make_bars(rows)}, script)
    f = r.fills.iloc[0]
    assert (f.time, f.price) == (T(2), 98.0)
    assert rec(r, r.strategy.ids["lim"]).limit == 98.0


def test_modify_size_and_stop_of_a_working_order():
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 106, 100, 100)]
    def change(s, sym):
        s.modify(s.ids["stop"], stop=105, size=3)
    script = {0: keep("stop", lambda s, sym: s.buy(size=1, stop=110)), 1: change}
    r = run_script({"X": make_bars(rows)}, script)
    f = r.fills.iloc[0]
    assert (f.time, f.price, f["size"]) == (T(2), 105.0, 3.0)


@pytest.mark.parametrize(
    ("target", "kw", "message"),
    [
        ("filled", {"limit": 99}, "it is filled; only working orders can be modified"),
        ("cancelled", {"limit": 99}, "it is cancelled"),
        ("unknown", {"limit": 99}, "no such order in this backtest"),
        ("market", {"limit": 99}, "it has no limit price to change"),
        ("working", {"size": -1}, "size must be positive"),
    ],
)
def test_modify_refuses_what_cannot_be_changed(target, kw, message):
    rows = [(100, 100, 100, 100)] * 4

    def place(s, sym):
        s.ids["filled"] = s.buy(size=1)
        s.ids["working"] = s.buy(size=1, limit=50)
        s.ids["cancelled"] = s.buy(size=1, limit=40)
        s.cancel(s.ids["cancelled"])
        s.ids["unknown"] = 999
        s.ids["market"] = s.buy(size=1)

    def change(s, sym):
        oid = s.ids[target]
        if target == "market":
            oid = s.buy(size=1)
        s.modify(oid, **kw)

    with pytest.raises(tickstep.OrderError, match=f"modify order \\d+: {message}"):
        run_script({"X": make_bars(rows)}, {0: place, 1: change})


# ---- partial close -------------------------------------------------------------------------


def test_partial_close_is_fifo_with_trades_and_commission_split():
    # Buy 4 (fills bar 1 at 100), buy 6 (fills bar 2 at 110); close half at bar 2 -> bar 3
    # at 120 sells 5: all 4 of the first trade and 1 of the second. Commission 0.1% + 1:
    # entries 1.4 and 1.66; the exit 600 x 0.001 + 1 = 1.6, split 4/5 and 1/5.
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110), (120, 120, 120, 120)]
    script = {0: lambda s, sym: s.buy(size=4), 1: lambda s, sym: s.buy(size=6),
              2: keep("half", lambda s, sym: s.close(portion=0.5))}
    r = run_script({"X": make_bars(rows)}, script, commission=0.001, commission_fixed=1.0)
    exit_ = r.fills.set_index("order_id").loc[r.strategy.ids["half"]]
    assert (exit_["size"], exit_.price, exit_.commission) == (5.0, 120.0, pytest.approx(1.6))
    t = r.trades
    assert list(t["size"]) == [4.0, 1.0]
    assert list(t.entry_price) == [100.0, 110.0]
    assert t.commission.iloc[0] == pytest.approx(1.4 + 1.28)
    assert t.commission.iloc[1] == pytest.approx(1.66 / 6 + 0.32)
    assert t.pnl.iloc[0] == pytest.approx(80 - 2.68)
    assert t.pnl.iloc[1] == pytest.approx(10 - 1.66 / 6 - 0.32)
    assert r.positions["size"].to_dict() == {"X": 5.0}


def test_partial_close_on_a_position_object():
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100)]
    script = {0: lambda s, sym: s.sell(size=8), 1: lambda s, sym: s.position().close(portion=0.25)}
    r = run_script({"X": make_bars(rows)}, script)
    assert r.fills["size"].iloc[1] == 2.0
    assert r.positions["size"].to_dict() == {"X": -6.0}


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"trail": -1.0}, "trail: a trailing distance must be a positive price amount, got -1"),
        ({"trail": float("nan")}, "trail: a trailing distance must be a positive price amount, got NaN"),
        ({"trail": "100%"}, "trail: a trailing percentage must be above 0% and below 100%, got 100%"),
        ({"sl_trail": "-2%"}, "sl_trail: a trailing percentage"),
        ({"trail": 1.0, "stop": 90}, "takes neither stop= nor limit="),
        ({"sl": 90, "sl_trail": 2.0}, "give sl= or sl_trail=, not both"),
        ({"valid": 0}, "valid=0: an order must be valid for at least 1 bar"),
        ({"valid": "2023-12-01"}, "is not after the current time"),
        ({"valid": pd.Timedelta(0)}, "a duration must be positive"),
        ({"tif": "ioc"}, "immediate-or-cancel applies to limit orders only"),
        ({"tif": "week"}, 'tif="week": must be .gtc., .day., .ioc., .fok., .opg. or .close.'),
        ({"oco": 999}, "oco=999: no such order"),
    ],
)
def test_bad_order_options_name_the_order_and_the_rule(kw, message):
    rows = [(100, 100, 100, 100)] * 3
    with pytest.raises(tickstep.OrderError, match=message.replace("(", r"\(").replace("?", r"\?")) as info:
        run_script({"X": make_bars(rows)}, {1: lambda s, sym: s.sell(size=1, **kw)})
    assert isinstance(info.value, ValueError)


def test_partial_close_portion_out_of_range_is_refused():
    rows = [(100, 100, 100, 100)] * 3
    script = {0: lambda s, sym: s.buy(size=1), 1: lambda s, sym: s.close(portion=1.5)}
    with pytest.raises(tickstep.OrderError, match=r"X: close: portion must be in \(0, 1\], got 1.5"):
        run_script({"X": make_bars(rows)}, script)


# ---- many resting orders -------------------------------------------------------------------


def _ladder_ends(bars, orders, moves, cancels):
    """Each order's end as the documented rules give it, bar by bar: placed at bar 0, an
    order can fill from bar 1; a buy limit or a sell stop fills where the bar's low
    reaches it, at the open if the open is at or below it, else at its price; a sell limit
    or a buy stop where the high reaches it, at the open if the open is at or above it,
    else at its price. One good for n bars
    expires at the end of bar n if it has not filled by then. A move at bar j applies from
    bar j + 1 (bar j is matched before `next` runs); a cancel at bar j leaves bar j's fill
    and comes after bar j's expiry. Returns {order index: (status, bar, fill price)}, the
    bar where its life ended; orders still working at the end are left out."""
    ends = {}
    for k, (side, kind, level, valid) in enumerate(orders):
        falling = (side == "buy") == (kind == "limit")
        for b in range(1, len(bars)):
            if k in moves and b > moves[k][0]:
                level = moves[k][1]
            o, h, lo, _ = bars[b]
            if falling and lo <= level:
                ends[k] = ("filled", b, min(o, level))
            elif not falling and h >= level:
                ends[k] = ("filled", b, max(o, level))
            elif valid is not None and b == valid:
                ends[k] = ("expired", b, None)
            elif k in cancels and b == cancels[k]:
                ends[k] = ("cancelled", b, None)
            if k in ends:
                break
    return ends


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_ladder_of_resting_orders_ends_each_where_the_bars_and_its_life_say(seed):
    # Hundreds of buy limits and sell stops below the price and sell limits and buy stops
    # above it rest together, some good for a number of bars (the account goes long and
    # short as they fill, which moves no fill); the bars walk through some of them; some are moved (to
    # anywhere on the ladder) or cancelled on the way. Every order's end (fill, expiry,
    # cancel) is its own bar, worked out order by order, and every fill its own price.
    rng = np.random.default_rng(seed)
    n = 120
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close[0] = 100.0
    open_ = np.concatenate([[100.0], close[:-1] * np.exp(rng.normal(0, 0.004, n - 1))])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, n)))
    high[0] = low[0] = 100.0
    bars = list(zip(open_, high, low, close))
    orders = []
    for d in rng.uniform(0.1, 30, 300):
        side, kind = ("buy", "sell")[rng.integers(2)], ("limit", "stop")[rng.integers(2)]
        below = (side == "buy") == (kind == "limit")
        valid = int(rng.integers(1, n + 20)) if rng.random() < 0.3 else None
        orders.append((side, kind, round(100 - d if below else 100 + d, 2), valid))
    # (Orders good for a number of bars are not moved: only their prices would be.)
    movable = [k for k, o in enumerate(orders) if o[3] is None]
    moves = {int(k): (int(rng.integers(1, n - 1)), round(float(rng.uniform(75, 125)), 2))
             for k in rng.choice(movable, 40, replace=False)}
    cancels = {int(k): int(rng.integers(1, n - 1)) for k in rng.choice(len(orders), 40, replace=False)}
    expected = _ladder_ends(bars, orders, moves, cancels)

    def place(s, sym):
        s.ids = {k: getattr(s, side)(size=1, **{kind: level}, **({} if valid is None else {"valid": valid}))
                 for k, (side, kind, level, valid) in enumerate(orders)}

    def later(b):
        def act(s, sym):
            for k, (at, level) in moves.items():
                if at == b and (k not in expected or expected[k][1] > b):
                    s.modify(s.ids[k], **{orders[k][1]: level})
            for k, at in cancels.items():
                if at == b:
                    s.cancel(s.ids[k])
        return act

    script = {0: place, **{b: later(b) for b in range(1, n)}}
    r = run_script({"X": make_bars(bars)}, script, cash=1e9)
    by_id = {order_id: k for k, order_id in r.strategy.ids.items()}
    bar_of = {T(b): b for b in range(n)}
    got = {by_id[o.order_id]: (o.status, bar_of[o.closed_time])
           for o in r.orders.itertuples() if o.status != "open"}
    assert got == {k: (status, b) for k, (status, b, _) in expected.items()}
    prices = {by_id[f.order_id]: f.price for f in r.fills.itertuples()}
    assert prices == pytest.approx({k: p for k, (status, _, p) in expected.items() if status == "filled"},
                                   rel=1e-12)
    # Not a vacuous ladder: orders end each way, and many rest to the end.
    statuses = [status for status, _, _ in expected.values()]
    assert {"filled", "expired", "cancelled"} <= set(statuses)
    assert 30 < statuses.count("filled") and len(expected) < 280
