"""Fills limited by the bars' volume (``volume_limit=``), hand-computed: every expected
fill is worked out in the comments. Bars are daily from 2024-01-01 (bar i is day i + 1).

The rule: a symbol's fills in a bar take at most ``volume_limit`` x its volume, in the
order they execute; an order the rest does not cover fills in part, and the rest works on
from the next bar as a new order on the same terms (a stop that filled: at market); an
order meeting no volume left waits whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import following, make_bars, market_orders, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, close, sell

PART = "filled in part, as far as the bar's volume allowed (volume_limit): the rest works on as a new order"


def flat(volumes, price=100.0):
    return make_bars([(price, price, price, price)] * len(volumes), volume=list(volumes))


def fills(r):
    return list(zip(r.fills["time"].dt.day, r.fills["side"], r.fills["size"], r.fills["price"],
                    strict=True))


def test_an_order_fills_what_each_bar_allows_and_the_rest_works_on():
    # Buy 30 placed on day 1, 10% of each bar's volume: day 2 (volume 100) fills 10, day
    # 3 (50) fills 5, day 4 (0) fills nothing, day 5 (1,000) fills the last 15.
    r = run_script(flat([1000, 100, 50, 0, 1000, 1000]), {0: buy(30)}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 100), (3, "buy", 5, 100), (5, "buy", 15, 100)]
    orders = r.orders
    assert orders["size"].tolist() == [30, 20, 15]
    assert orders["filled_size"].tolist() == [10, 5, 15]
    assert orders["status"].tolist() == ["filled"] * 3
    assert orders["reason"].tolist() == [PART, PART, ""]
    # Each rest is placed when its part filled, to work from the next bar.
    assert orders["placed_time"].dt.day.tolist() == [1, 2, 3]
    assert r.positions["size"].tolist() == [30.0]
    # Without the limit it all fills on day 2.
    assert fills(run_script(flat([1000, 100, 50, 0, 1000, 1000]), {0: buy(30)})) == [
        (2, "buy", 30, 100)]


def test_orders_of_one_symbol_share_its_bars_allowance_in_the_order_they_fill():
    # Two buys of 8 placed on day 1: day 2 allows 10, the first takes 8, the second 2;
    # its rest of 6 takes day 3's 5, the last unit fills on day 5 (day 4 has none).
    r = run_script(flat([1000, 100, 50, 0, 1000]), {0: lambda s, sym: (buy(8)(s, sym), buy(8)(s, sym))},
                   volume_limit=0.1)
    assert fills(r) == [(2, "buy", 8, 100), (2, "buy", 2, 100), (3, "buy", 5, 100),
                        (5, "buy", 1, 100)]
    # Other symbols' volume is their own: BBB fills whole on day 2.
    data = {"AAA": flat([1000, 100, 1000]), "BBB": flat([1000, 1000, 1000], price=50.0)}
    both = run_script(data, {0: buy(20)}, volume_limit=0.1)
    got = sorted(zip(both.fills["symbol"], both.fills["time"].dt.day, both.fills["size"],
                     strict=True))
    assert got == [("AAA", 2, 10), ("AAA", 3, 10), ("BBB", 2, 20)]


def test_a_part_of_an_order_of_whole_units_is_whole_units():
    # Buy 30 (whole shares) with 10% of volumes 125, 5, 180 and 1,000: day 2 allows 12.5,
    # 12 fill (the half share is no share); day 3 allows 0.5: nothing fills, the rest of
    # 18 waits whole; day 4 allows 18 exactly; nothing is left for day 5.
    r = run_script(flat([1000, 125, 5, 180, 1000]), {0: buy(30)}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 12, 100), (4, "buy", 18, 100)]
    assert r.orders["size"].tolist() == [30, 18]
    # An order of fractional units takes each allowance exactly: 12.5, 0.5, then the
    # rest of 17.25.
    r = run_script(flat([1000, 125, 5, 180, 1000]), {0: buy(30.25)}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 12.5, 100), (3, "buy", 0.5, 100), (4, "buy", 17.25, 100)]
    # A hair of float noise below a whole unit is forgiven: 0.35 x 180 is
    # 62.99999999999999 in floats, and 63 shares of 100 fill on day 2.
    r = run_script(flat([1000, 180, 1000]), {0: buy(100)}, volume_limit=0.35)
    assert fills(r) == [(2, "buy", 63, 100), (3, "buy", 37, 100)]


def test_whole_orders_leave_the_fraction_of_an_allowance_to_others():
    # Day 2 allows 12.5 (10% of 125): the buy of 10 takes 10; the buy of 5 finds 2.5, fills
    # 2, and its rest of 3 fills on day 3; the sale of 0.25 (fractional) fits in the half
    # unit the whole parts left of day 2.
    r = run_script(flat([1000, 125, 1000]),
                   {0: lambda s, sym: (buy(10)(s, sym), buy(5)(s, sym), sell(0.25)(s, sym))},
                   volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 100), (2, "buy", 2, 100), (2, "sell", 0.25, 100),
                        (3, "buy", 3, 100)]


def test_with_trade_on_close_the_rest_fills_at_the_next_open():
    # Placed on day 1 and filled at its close (100) as far as 10% of 100 allows: 10. The
    # rest works from day 2 as any working market order: at its open, 101.
    data = make_bars([(100, 100, 100, 100), (101, 102, 101, 102), (103, 104, 103, 104)],
                     volume=[100, 1000, 1000])
    r = run_script(data, {0: buy(30)}, volume_limit=0.1, trade_on_close=True)
    assert fills(r) == [(1, "buy", 10, 100), (2, "buy", 20, 101)]


def test_cancelling_an_order_filled_in_part_cancels_its_rest():
    # Buy 30 on day 1: 10 fill on day 2 (volume 100); cancelled on day 2 by its own id,
    # its rest of 20 is what is cancelled. Modifying it instead names the rest.
    data = flat([1000, 100, 1000, 1000])

    def cancel_it(s, sym):
        s.log.append(s.cancel(s.ids["buy"][0]))

    r = run_script(data, {0: buy(30), 1: cancel_it}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 100)]
    assert r.orders["status"].tolist() == ["filled", "cancelled"]
    assert r.orders["reason"].iloc[1] == "cancelled by the strategy"

    def modify_it(s, sym):
        s.modify(s.ids["buy"][0], size=5)

    with pytest.raises(tickstep.OrderError, match=r"modify order 1: it filled in part; its rest "
                                                  r"works on as order 2: modify that"):
        run_script(data, {0: buy(30), 1: modify_it}, volume_limit=0.1)


def test_a_target_placed_again_replaces_the_rest_of_the_last_one():
    # order_target(30) on day 1 fills 10 on day 2 (volume 100); order_target(30) again on
    # day 2 cancels the rest (20) and orders the difference from what is held (20), which
    # fills on day 3: 30 held, not 50.
    def target(s, sym):
        s.order_target(size=30)

    r = run_script(flat([1000, 100, 1000, 1000]), {0: target, 1: target}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 100), (3, "buy", 20, 100)]
    assert r.positions["size"].tolist() == [30.0]


def test_a_close_in_part_closes_the_rest_next():
    # 30 bought on day 2 (ample volume); close() placed on day 3 fills 10 on day 4 (volume
    # 100) and the rest, a close of what is left, 20 on day 5. Two trade records.
    data = make_bars([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100),
                      (110, 110, 110, 110), (120, 120, 120, 120), (120, 120, 120, 120)],
                     volume=[1000, 1000, 1000, 100, 1000, 1000])
    r = run_script(data, {0: buy(30), 2: close}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 30, 100), (4, "sell", 10, 110), (5, "sell", 20, 120)]
    assert r.positions.empty
    assert r.trades["size"].tolist() == [10, 20]
    assert r.trades["pnl"].tolist() == pytest.approx([100.0, 400.0])
    assert r.equity.iloc[-1] == pytest.approx(10_500.0)


def test_the_rest_of_a_stop_that_filled_is_a_market_order():
    # A buy stop at 105 placed on day 1: day 2 trades up to 106 with volume 100, so 10
    # of 30 fill at 105; day 3 opens at 101, below the stop, and the rest (at market)
    # fills there.
    data = make_bars([(100, 100, 100, 100), (100, 106, 100, 104), (101, 102, 99, 100),
                      (100, 100, 100, 100)], volume=[1000, 100, 1000, 1000])
    r = run_script(data, {0: buy(30, stop=105)}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 105), (3, "buy", 20, 101)]
    rest = r.orders.iloc[1]
    assert np.isnan(rest["stop"]) and np.isnan(rest["limit"])


def test_on_its_last_bar_the_rest_ends_with_it():
    # Immediate-or-cancel: a limit at 100 fills 10 of 30 on its one bar; no rest.
    data = flat([1000, 100, 1000, 1000])
    r = run_script(data, {0: buy(30, limit=100, tif="ioc")}, volume_limit=0.1)
    assert fills(r) == [(2, "buy", 10, 100)]
    assert r.orders["reason"].tolist() == [
        "filled in part, as far as the bar's volume allowed (volume_limit), on its last bar: "
        "the rest ended with it"]
    # Good for two bars: the rest works on the second, then ends.
    two = run_script(flat([1000, 100, 50, 1000]), {0: buy(30, limit=100, valid=2)},
                     volume_limit=0.1)
    assert fills(two) == [(2, "buy", 10, 100), (3, "buy", 5, 100)]
    assert len(two.orders) == 2


KILLED = "fill or kill: not filled whole on its bar"


def test_fill_or_kill_fills_whole_on_its_bar_or_not_at_all():
    # Day 2 allows 10: a market order of 30 at fill-or-kill fills nothing and ends there
    # (day 3's 100 does not fill it); one of 10 fills whole.
    data = flat([1000, 100, 1000, 1000])
    r = run_script(data, {0: buy(30, tif="fok")}, volume_limit=0.1)
    assert r.fills.empty
    o = r.orders.iloc[0]
    assert (o["status"], o["reason"], o["closed_time"].day) == ("expired", KILLED, 2)
    whole = run_script(data, {0: buy(10, tif="fok")}, volume_limit=0.1)
    assert fills(whole) == [(2, "buy", 10, 100)]
    assert whole.orders["status"].tolist() == ["filled"]
    # What it does not take is left to the symbol's other orders of that bar: a buy of
    # 30 killed, then a buy of 8 placed after it fills whole.
    both = run_script(data, {0: lambda s, sym: (buy(30, tif="fok")(s, sym), buy(8)(s, sym))},
                      volume_limit=0.1)
    assert fills(both) == [(2, "buy", 8, 100)]
    assert both.orders["reason"].tolist() == [KILLED, ""]


def test_a_limit_at_fill_or_kill_fills_on_its_next_bar_only():
    # Without a volume limit it is whole or nothing anyway: a limit at 99 that day 2 (low
    # 99.5) does not reach is killed there, though day 3 would reach it.
    data = make_bars([(100, 101, 99, 100), (100, 101, 99.5, 100), (100, 101, 98, 99)])
    r = run_script(data, {0: buy(10, limit=99, tif="fok")})
    assert r.fills.empty and r.orders["reason"].tolist() == [KILLED]
    reached = run_script(data, {0: buy(10, limit=99.5, tif="fok")})
    assert fills(reached) == [(2, "buy", 10, 99.5)]


def test_fill_or_kill_is_refused_on_stops():
    with pytest.raises(tickstep.OrderError, match=r"fill or kill \(tif='fok'\) applies to market "
                                                  r"and limit orders only"):
        run_script(flat([1000, 1000]), {0: buy(10, stop=101, tif="fok")})
    with pytest.raises(tickstep.OrderError, match="'fok'"):
        run_script(flat([1000, 1000]), {0: buy(10, tif="FOK")})


def test_each_part_of_a_bracketed_entry_is_a_trade_with_its_own_legs():
    # Buy 30 with a stop-loss at 95 placed on day 1: 10 fill on day 2 (volume 100), 20 on
    # day 3; day 4 trades down to 94 with ample volume and both legs fill at 95.
    data = make_bars([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100),
                      (96, 96, 94, 94), (94, 94, 94, 94)], volume=[1000, 100, 1000, 1000, 1000])
    r = run_script(data, {0: buy(30, sl=95)}, volume_limit=0.1)
    assert r.trades["size"].tolist() == [10, 20]
    assert r.trades["exit_price"].tolist() == [95, 95]
    assert r.positions.empty
    assert r.equity.iloc[-1] == pytest.approx(10_000 - 30 * 5)


def test_a_stop_loss_filled_in_part_closes_the_rest_of_its_trade_next():
    # 30 held from day 2 with a stop-loss at 95; day 4 trades down to 94 with volume 100:
    # 10 fill at 95, the leg's rest (at market) closes the other 20 at day 5's open, 93.
    data = make_bars([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100),
                      (96, 96, 94, 94), (93, 93, 93, 93), (93, 93, 93, 93)],
                     volume=[1000, 1000, 1000, 100, 1000, 1000])
    r = run_script(data, {0: buy(30, sl=95)}, volume_limit=0.1)
    assert fills(r)[1:] == [(4, "sell", 10, 95), (5, "sell", 20, 93)]
    assert r.fills["role"].tolist() == ["entry", "stop_loss", "stop_loss"]
    assert r.positions.empty and r.trades["size"].tolist() == [10, 20]
    # No leg is left working once the trade is closed.
    assert (r.orders["status"] != "open").all()


def test_a_margin_call_closes_whatever_the_volume():
    # Short 100 at 100 on day 2 (cash 20,000), 4x leverage and a 50% maintenance: day 3
    # closes at 160 (equity 4,000 < 0.5 x 16,000) with no volume at all: called there.
    data = make_bars([(100, 100, 100, 100), (100, 100, 100, 100), (100, 160, 100, 160),
                      (160, 160, 160, 160)], volume=[1000, 1000, 0, 0])
    r = run_script(data, {0: sell(100)}, cash=10_000, leverage=4, maintenance_margin=0.5,
                   volume_limit=0.1)
    assert r.stats["# Margin Calls"] == 1
    assert fills(r) == [(2, "sell", 100, 100), (3, "buy", 100, 160)]


def test_signals_mode_fills_in_parts_as_the_event_driven_run():
    # Entries and exits far enough apart that each order's rests are done before the
    # next signal: signals mode and the same orders placed by hand fill the same parts.
    rng = np.random.default_rng(3)
    n = 60
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    data = {}
    for symbol in ("AAA", "BBB"):
        close_ = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        data[symbol] = pd.DataFrame({"open": close_, "high": close_ * 1.01, "low": close_ * 0.99,
                                     "close": close_, "volume": rng.integers(50, 300, n) * 1.0},
                                    index=index)
    entries = pd.DataFrame(False, index=index, columns=list(data))
    exits = entries.copy()
    entries.iloc[[2, 20, 40], 0] = entries.iloc[[5, 25, 45], 1] = True
    exits.iloc[[12, 30, 50], 0] = exits.iloc[[15, 35, 55], 1] = True

    ByHand = following(entries, exits, 60)
    for limit, impact in ((None, 0.0), (0.1, 0.0), (0.1, 0.5)):
        bt = tickstep.Backtest(data, ByHand, cash=100_000, volume_limit=limit,
                               volume_impact=impact, record_every_bar=True)
        native = bt.run_signals(entries=entries, exits=exits, size=60, size_type="amount")
        by_hand = bt.run()
        pd.testing.assert_frame_equal(native.fills, by_hand.fills, check_exact=True)
        pd.testing.assert_series_equal(native.equity, by_hand.equity, check_exact=True)
    # (The limited run did fill in parts: 60 units against 5-30 a bar.)
    assert (native.orders["reason"] == PART).sum() >= 12


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "10%", float("nan")])
def test_a_volume_limit_outside_its_range_is_refused(value):
    with pytest.raises(tickstep.ConfigError, match=r"volume_limit=.*a fraction of a bar's volume "
                                                   r"in \(0, 1\]"):
        tickstep.BacktestConfig(volume_limit=value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 14), st.sampled_from(["AAA", "BBB"]),
                          st.integers(-40, 40)), max_size=14),
       st.lists(st.sampled_from([0.0, 5.0, 20.0, 25.0, 50.0, 150.0, 180.0, 1000.0]), min_size=32,
                max_size=32),
       st.sampled_from([0.1, 0.35, 0.5, 1.0]), st.booleans())
def test_no_bar_gives_more_than_its_share_and_every_rest_is_what_was_left(orders, volumes, limit,
                                                                         on_close):
    # Random market orders (> 0 buys, < 0 sells) of two symbols on random volumes: no bar
    # of a symbol fills more than limit x its volume; every part's rest is an order of the
    # same side for the units left, placed when the part filled; the orders being of whole
    # units, so is every fill; and the account is its cash and its positions at the last
    # closes, by a reference from the fills.
    data = {s: make_bars([(100 + k, 101 + k, 99 + k, 100 + k) for k in range(16)],
                         volume=volumes[16 * j:16 * (j + 1)])
            for j, s in enumerate(("AAA", "BBB"))}
    r = run_script(data, market_orders(orders), cash=1_000_000, commission=0.001, volume_limit=limit,
                   trade_on_close=on_close)
    f = r.fills
    taken = f.groupby(["symbol", "time"])["size"].sum()
    for (symbol, time), units in taken.items():
        assert units <= limit * data[symbol].loc[time, "volume"] * (1 + 1e-12)
    assert (f["size"] == np.floor(f["size"])).all()
    o = r.orders
    for _, part in o[o["reason"] == PART].iterrows():
        rests = o[(o["placed_time"] == part["closed_time"]) & (o["symbol"] == part["symbol"])
                  & (o["side"] == part["side"])
                  & np.isclose(o["size"], part["size"] - part["filled_size"], rtol=1e-12)]
        assert len(rests) >= 1
    signed = np.where(f["side"] == "buy", 1.0, -1.0) * f["size"].to_numpy()
    cash = 1_000_000 - float((signed * f["price"]).sum()) - float(f["commission"].sum())
    held = pd.Series(signed, index=f["symbol"]).groupby(level=0).sum()
    value = sum(units * data[s]["close"].iloc[-1] for s, units in held.items())
    assert r.equity.iloc[-1] == pytest.approx(cash + value, rel=1e-12, abs=1e-6)


class SellsBThenA(tickstep.Strategy):
    """Buys 100 of BBB and of AAA at the first tick, sells 15 of BBB then 15 of AAA at the
    second (placed in that order, whatever order the backtest has the symbols in)."""

    def init(self):
        self.ticks = 0

    def on_tick(self):
        self.ticks += 1
        for symbol in ("BBB", "AAA"):
            if self.ticks == 1:
                self.buy(symbol, size=100)
            elif self.ticks == 2:
                self.sell(symbol, size=15)


@pytest.mark.parametrize("symbols", [("AAA", "BBB"), ("BBB", "AAA")])
def test_the_rests_of_one_batch_are_numbered_in_the_order_their_orders_were_placed(symbols):
    # Both sells (orders 3 and 4) fill 10 at day 3 (10% of 100) in one batch, reducing
    # positions: each executes when the walk reaches its symbol. Their rests of 5 join
    # the book numbered as their orders were placed (BBB's 5, AAA's 6), not in the walk's
    # order: a rest's id orders its turn in a later batch, so it must not follow the
    # symbols' order (it used to, for reductions).
    data = {s: flat([1000, 1000, 100, 1000]) for s in symbols}
    r = tickstep.Backtest(data, SellsBThenA, cash=100_000, volume_limit=0.1).run()
    o = r.orders.set_index("order_id")
    assert o["symbol"].tolist() == ["BBB", "AAA"] * 3
    assert o.loc[[5, 6], "parent_id"].tolist() == [3, 4]
    assert o.loc[[5, 6], "size"].tolist() == [5.0, 5.0]
    assert sorted(fills(r)) == [(2, "buy", 100, 100)] * 2 + [(3, "sell", 10, 100)] * 2 + [
        (4, "sell", 5, 100)] * 2


def test_a_streamed_run_fills_the_same_parts_as_the_run_in_memory():
    # Two symbols on 5-minute bars over four days with thin, uneven volume, traded by the
    # random levered trader under a volume limit: streamed a day at a time (rests carried
    # across the windows), the run is the same, bit for bit.
    from test_margin_calls import levered_runs

    def thin(rng, index):
        return {"volume": rng.integers(0, 400, len(index)) * 1.0}

    whole, streamed = levered_runs(17, ("AAA", "BBB"), thin, 5, cash=10_000, leverage=2.0,
                                   commission=0.0005, volume_limit=0.1, on_reject="ignore")
    assert (whole.orders["reason"] == PART).sum() > 20
    pd.testing.assert_series_equal(whole.stats, streamed.stats, check_exact=True)
    pd.testing.assert_frame_equal(whole.fills, streamed.fills, check_exact=True)
    pd.testing.assert_frame_equal(whole.orders, streamed.orders, check_exact=True)


# ---- market impact: volume_impact -------------------------------------------------------------


def test_a_fill_pays_the_square_of_its_share_of_the_volume():
    # 10 units on a bar of 100 (a tenth), impact 0.1: 0.1 x 0.1^2 = 0.1% of the price. A
    # buy at 100 pays 100.10; with 10 bps of slippage first, 100 x 1.001 x 1.001; a sell
    # receives 99.90; 50 units (half the bar) pay 0.1 x 0.25 = 2.5%; the commission (0.1%)
    # is of the price paid.
    data = flat([1000, 100, 100])
    assert fills(run_script(data, {0: buy(10)}, volume_impact=0.1)) == [
        (2, "buy", 10, pytest.approx(100.1, rel=1e-15))]
    slipped = run_script(data, {0: buy(10)}, volume_impact=0.1, slippage=10)
    assert slipped.fills["price"].iloc[0] == pytest.approx(100 * 1.001 * 1.001, rel=1e-15)
    assert fills(run_script(data, {0: sell(10)}, volume_impact=0.1)) == [
        (2, "sell", 10, pytest.approx(99.9, rel=1e-15))]
    half = run_script(data, {0: buy(50)}, volume_impact=0.1, commission=0.001)
    assert half.fills["price"].iloc[0] == pytest.approx(102.5, rel=1e-15)
    assert half.fills["commission"].iloc[0] == pytest.approx(50 * 102.5 * 0.001, rel=1e-12)


def test_orders_with_a_limit_never_pay_past_it_and_no_volume_fills_nothing():
    # A buy limit at 100 fills at 100, impact or not (as slippage leaves limits alone).
    data = flat([1000, 100, 0, 100])
    assert fills(run_script(data, {0: buy(10, limit=100)}, volume_impact=0.5)) == [
        (2, "buy", 10, 100)]
    # Day 3 trades nothing: a market order placed on day 2 waits for day 4 (10 of 100).
    assert fills(run_script(data, {1: buy(10)}, volume_impact=0.1)) == [
        (4, "buy", 10, pytest.approx(100.1, rel=1e-15))]


def test_with_a_volume_limit_each_part_pays_for_its_own_share():
    # 30 units, 10% of each bar's volume, impact 1.0: day 2 (volume 100) fills 10 at a
    # share of 0.1 (1%: 101.00); day 3 (volume 400) the other 20, a share of 0.05
    # (0.25%: 100.25).
    r = run_script(flat([1000, 100, 400, 1000]), {0: buy(30)}, volume_limit=0.1,
                   volume_impact=1.0)
    assert fills(r) == [(2, "buy", 10, pytest.approx(101.0, rel=1e-15)),
                        (3, "buy", 20, pytest.approx(100.25, rel=1e-15))]


@pytest.mark.parametrize("value", [-0.1, float("inf"), "1%"])
def test_a_volume_impact_outside_its_range_is_refused(value):
    with pytest.raises(tickstep.ConfigError, match=r"volume_impact=.*a finite coefficient >= 0"):
        tickstep.BacktestConfig(volume_impact=value)
