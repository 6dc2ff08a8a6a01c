"""Orders at the open (``tif="opg"``) and at the close (``tif="close"``), hand-computed:
market-on-open / limit-on-open fill at the open of the symbol's next bar only,
market-on-close / limit-on-close at its close only, after everything else in the bar;
what does not fill then expires. Bars are daily from 2024-01-01.
"""

from __future__ import annotations

import pandas as pd
import pytest
import tickstep
from conftest import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, sell

AT_CLOSE = "at the close: not filled at its bar's close"
AT_OPEN = "at the open: not filled at its bar's open"


def bars(*rows, volume=1_000.0):
    index = pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    return frame.assign(volume=volume)


DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-01-01", tz="UTC")
DATA = bars(
    (100, 101, 99, 100),   # Jan 1: orders placed here
    (102, 106, 95, 103),   # Jan 2: the orders' bar
    (103, 104, 94, 96),    # Jan 3
    (96, 97, 95, 96),      # Jan 4
)


def fills(r):
    return list(zip(r.fills["time"], r.fills["side"], r.fills["size"], r.fills["price"],
                    strict=True))


def test_a_market_order_at_the_close_fills_at_the_next_bars_close():
    r = run_script(DATA, {0: buy(10, tif="close")})
    assert fills(r) == [(START + DAY, "buy", 10, 103.0)]
    # Slipped as market orders are: 20 bps against the buyer.
    slipped = run_script(DATA, {0: buy(10, tif="close")}, slippage=20)
    assert slipped.fills["price"].tolist() == [pytest.approx(103.0 * 1.002)]


@pytest.mark.parametrize(("limit", "filled"), [(103.0, 103.0), (104.0, 103.0), (102.9, None)])
def test_a_limit_at_the_close_fills_only_if_the_close_reaches_it(limit, filled):
    # Jan 2 traded from 95 to 106: only its close, 103, counts.
    r = run_script(DATA, {0: buy(10, limit=limit, tif="close")}, commission=0.001,
                   commission_maker=0.0002)
    o = r.orders.iloc[0]
    if filled is None:
        assert (o["status"], o["reason"], o["closed_time"]) == ("expired", AT_CLOSE, START + DAY)
        assert r.fills.empty
    else:
        assert fills(r) == [(START + DAY, "buy", 10, filled)]
        # At its own limit it rested till the close came to it: a maker's fee; at a better
        # close a taker's.
        rate = 0.0002 if filled == limit else 0.001
        assert r.fills["commission"].tolist() == [pytest.approx(10 * filled * rate)]


@pytest.mark.parametrize(("limit", "filled"), [(None, 102.0), (102.5, 102.0), (101.0, None)])
def test_an_order_at_the_open_fills_only_at_the_open(limit, filled):
    # Jan 2 opened at 102 and traded down to 95: a buy limit at 101 that the range reached
    # is not filled, the open did not reach it.
    r = run_script(DATA, {0: buy(10, limit=limit, tif="opg")})
    if filled is None:
        o = r.orders.iloc[0]
        assert (o["status"], o["reason"], o["closed_time"]) == ("expired", AT_OPEN, START + DAY)
    else:
        assert fills(r) == [(START + DAY, "buy", 10, filled)]


def test_the_strategy_sees_a_fill_at_the_close_at_its_turn_on_that_bar():
    seen = []

    def look(s, sym):
        seen.append((s.position.size, s.equity))

    r = run_script(DATA, {0: buy(10, tif="close"), 1: look, 2: look})
    # Bought at Jan 2's close (103), marked there: equity 10,000; Jan 3 at 96: -70.
    assert seen == [(10, 10_000.0), (10, 10_000.0 - 70.0)]
    assert r.trades.empty


def test_a_bracket_of_an_entry_at_the_close_watches_from_the_next_bar():
    # The entry fills at Jan 2's close, 103; Jan 2's low (95) lies below its stop-loss
    # (97) but came before the close: the stop watches from Jan 3, whose low 94 fills it.
    r = run_script(DATA, {0: buy(10, tif="close", sl=97.0, tp=110.0)})
    assert fills(r) == [(START + DAY, "buy", 10, 103.0), (START + 2 * DAY, "sell", 10, 97.0)]
    assert r.fills["role"].tolist() == ["entry", "stop_loss"]


def test_fills_at_the_close_come_last_in_the_bars_batch():
    # Both symbols' orders are placed on Jan 1 with 10,000 of cash: B's market order at the
    # open (80 x 102 = 8,160) is an increase at the open, A's order at the close (30 x
    # 103 = 3,090) one at the close: the open's goes first and A's no longer fits.
    script = {("A", 0): buy(30, tif="close"), ("B", 0): buy(80)}
    r = run_script({"A": DATA, "B": DATA}, script, on_reject="ignore")
    assert r.orders["status"].tolist() == ["rejected", "filled"]
    # Placed the other way round the same: the moment decides, not placement.
    swapped = run_script({"B": DATA, "A": DATA}, script, on_reject="ignore")
    assert swapped.orders.set_index("symbol")["status"].to_dict() == {"B": "filled",
                                                                       "A": "rejected"}


def test_a_sale_at_the_close_pays_for_purchases_in_its_batch():
    # Reductions first in a batch, wherever in the bar: A's sale at Jan 3's close frees
    # what B's market buy at Jan 3's open takes (one instant, one batch).
    script = {("A", 0): buy(95), ("A", 1): sell(95, tif="close"), ("B", 1): buy(90)}
    r = run_script({"A": DATA, "B": DATA}, script)
    assert r.orders["status"].tolist() == ["filled", "filled", "filled"]


def test_under_trade_on_close_an_order_at_the_close_fills_at_its_own_bar():
    r = run_script(DATA, {0: buy(10, tif="close")}, trade_on_close=True)
    assert fills(r) == [(START, "buy", 10, 100.0)]
    # One at the open still waits for the next open.
    r = run_script(DATA, {0: buy(10, tif="opg")}, trade_on_close=True)
    assert fills(r) == [(START + DAY, "buy", 10, 102.0)]


def test_a_part_at_the_close_under_a_volume_limit_ends_with_its_bar():
    r = run_script(DATA, {0: buy(300, tif="close")}, volume_limit=0.1, cash=100_000)
    assert fills(r) == [(START + DAY, "buy", 100, 103.0)]
    assert r.orders["reason"].str.contains("on its last bar: the rest ended").tolist() == [True]


@pytest.mark.parametrize(("kw", "message"), [
    ({"stop": 105.0, "tif": "close"}, "at the close (tif='close') applies to market and limit"),
    ({"trail": 2.0, "tif": "opg"}, "at the open (tif='opg') applies to market and limit"),
    ({"tif": "moc"}, "tif=\"moc\": must be 'gtc', 'day', 'ioc', 'fok', 'opg' or 'close'"),
    ({"tif": "close", "valid": 2}, "valid= makes an order good till a date"),
])
def test_orders_at_the_open_or_close_are_refused_naming_the_rule(kw, message):
    with pytest.raises(tickstep.OrderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_script(DATA, {0: buy(10, **kw)})


def test_a_stop_loss_in_the_bar_fills_before_an_order_at_the_close():
    # A stop-loss resting from Jan 2 (94.5) and a sale at the close placed on Jan 2, both
    # on Jan 3: the stop fills intrabar (Jan 3's low 94 reaches it) and closes the trade,
    # the sale at the close comes after it and opens a short of 5 at 96.
    script = {0: buy(10, sl=94.5), 1: sell(5, tif="close")}
    r = run_script(DATA, script)
    assert fills(r) == [(START + DAY, "buy", 10, 102.0), (START + 2 * DAY, "sell", 10, 94.5),
                        (START + 2 * DAY, "sell", 5, 96.0)]
    assert r.positions["size"].tolist() == [-5]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(50, 150), st.floats(50, 150)), min_size=3, max_size=6),
       st.sampled_from(["buy", "sell"]), st.sampled_from(["opg", "close"]),
       st.one_of(st.none(), st.floats(50, 150)), st.integers(0, 1))
def test_the_fill_is_the_moments_price_or_none(prices, side, tif, limit, when):
    # Random bars (open and close drawn, the range around them), one order placed at bar
    # `when`: it fills at its next bar's open or close, if a limit allows that price, and
    # at no other price or bar; else it expires on that bar.
    rows = [(o, max(o, c) + 1, min(o, c) - 1, c) for o, c in prices]
    data = bars(*rows)
    order = (buy if side == "buy" else sell)(5, limit=limit, tif=tif)
    r = run_script(data, {when: order}, cash=1_000_000)
    o, h, lo, c = rows[when + 1]
    price = o if tif == "opg" else c
    reaches = limit is None or (price <= limit if side == "buy" else price >= limit)
    if reaches:
        assert fills(r) == [(START + (when + 1) * DAY, side, 5, price)]
    else:
        assert r.fills.empty
        row = r.orders.iloc[0]
        assert (row["status"], row["closed_time"]) == ("expired", START + (when + 1) * DAY)


def test_a_limit_exit_or_else_at_the_close_in_one_group():
    # Long 10 from Jan 2's open (102). On Jan 2 a sell limit at 104 and a sale at the
    # close form one group: on Jan 3 (high 104) the limit fills intrabar and cancels the
    # sale at the close; with the limit at 105 (not reached) the sale fills at the close,
    # 96, and cancels the limit.
    def exits(limit):
        def act(s, sym):
            first = s.sell(size=10, limit=limit)
            s.sell(size=10, tif="close", oco=first)
        return act

    for limit, (price, role_filled) in [(104.0, (104.0, "limit")), (105.0, (96.0, "close"))]:
        r = run_script(DATA, {0: buy(10), 1: exits(limit)})
        assert fills(r)[-1] == (START + 2 * DAY, "sell", 10, price)
        o = r.orders.iloc[1:]
        filled = o[o["status"] == "filled"]
        assert len(filled) == 1 and len(o[o["status"] == "cancelled"]) == 1
        assert filled["limit"].notna().tolist() == [role_filled == "limit"]
        assert r.positions.empty


@pytest.mark.parametrize(("tif", "close_price"), [("close", 96.0), ("opg", 103.0), ("gtc", 103.0)])
def test_with_exclusive_orders_the_close_comes_at_the_orders_moment(tif, close_price):
    # Long 10 from Jan 2's open; on Jan 2 a buy of 5 with exclusive_orders: the position
    # is closed just before it, at Jan 3's close for an order at the close (96), at its
    # open otherwise (103).
    r = run_script(DATA, {0: buy(10), 1: buy(5, tif=tif)}, exclusive_orders=True)
    entry_price = 96.0 if tif == "close" else 103.0
    assert fills(r)[1:] == [(START + 2 * DAY, "sell", 10, close_price),
                            (START + 2 * DAY, "buy", 5, entry_price)]
    assert r.positions["size"].tolist() == [5]


def test_a_trade_at_the_close_counts_its_excursions_after_its_entry_and_through_its_exit():
    # Bought at Jan 2's close (103) after its 95-106 range: that range was before the
    # trade. Sold at Jan 3's close (96): Jan 3's whole range, 94 to 104, was before the
    # sale. So MAE 94/103 - 1 and MFE 104/103 - 1, not Jan 2's 95 and 106.
    r = run_script(DATA, {0: buy(10, tif="close"), 1: sell(10, tif="close")})
    assert fills(r) == [(START + DAY, "buy", 10, 103.0), (START + 2 * DAY, "sell", 10, 96.0)]
    t = r.trades.iloc[0]
    assert t["mae"] == pytest.approx(94 / 103 - 1)
    assert t["mfe"] == pytest.approx(104 / 103 - 1)
    # Bought at Jan 2's open (102) instead, the trade lives through Jan 2's range.
    opened = run_script(DATA, {0: buy(10), 1: sell(10, tif="close")}).trades.iloc[0]
    assert opened["mae"] == pytest.approx(94 / 102 - 1)
    assert opened["mfe"] == pytest.approx(106 / 102 - 1)
    # As a trade entered and left at the closes under trade_on_close (the barrier).
    barrier = run_script(DATA, {1: buy(10), 2: sell(10)}, trade_on_close=True).trades.iloc[0]
    assert (barrier["entry_price"], barrier["exit_price"]) == (103.0, 96.0)
    assert (barrier["mae"], barrier["mfe"]) == (t["mae"], t["mfe"])
