"""Symbols that may not be sold short (``shortable=``), hand-computed: a fill that would
open or add to a short in such a symbol is rejected; a sale of more than a long holds
executes down to flat and the rest is rejected. Bars are daily from 2024-01-01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import market_orders, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, sell

NOT_SHORTABLE = "not shortable (shortable): it would sell short"


def bars(closes):
    index = pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1e5}, index=index)


DATA = {"AAA": bars([100, 100, 101, 102, 103]), "BBB": bars([50, 50, 49, 48, 47])}


def test_a_long_only_account_sells_down_to_flat_and_no_further():
    # Buy 10 AAA; sell 15: 10 sold (the reduction), 5 refused; sell 3 more: refused whole.
    r = run_script(DATA, {("AAA", 0): buy(10), ("AAA", 1): sell(15), ("AAA", 2): sell(3)},
                   shortable=False, on_reject="ignore")
    assert list(zip(r.fills["side"], r.fills["size"], strict=True)) == [("buy", 10), ("sell", 10)]
    aaa = r.orders
    assert aaa["status"].tolist() == ["filled", "rejected", "rejected"]
    assert aaa["reason"].tolist() == ["", NOT_SHORTABLE, NOT_SHORTABLE]
    assert aaa["filled_size"].tolist() == [10, 10, 0]
    assert r.stats["# Orders Rejected"] == 2
    assert r.positions.empty
    # Every symbol may be sold short by default: the same orders leave a short of 8.
    free = run_script(DATA, {("AAA", 0): buy(10), ("AAA", 1): sell(15), ("AAA", 2): sell(3)})
    assert free.positions.loc["AAA", "size"] == -8


def test_the_symbols_named_may_be_sold_short_the_others_not():
    script = {("AAA", 0): sell(4), ("BBB", 0): sell(6)}
    with pytest.warns(tickstep.RejectedOrderWarning, match=r"1 not shortable"):
        r = run_script(DATA, script, shortable=["BBB"])
    assert r.positions["size"].to_dict() == {"BBB": -6}
    rejected = r.orders[r.orders["status"] == "rejected"]
    assert rejected["symbol"].tolist() == ["AAA"]


def test_signals_mode_refuses_the_same_short_entries():
    index = DATA["AAA"].index
    short_entries = pd.DataFrame({"AAA": [True, False, True, False, False],
                                  "BBB": [False, True, False, False, False]}, index=index)
    none = short_entries & False
    bt = tickstep.Backtest(DATA, cash=10_000, shortable=["AAA"], on_reject="ignore")
    r = bt.run_signals(entries=none, exits=none, short_entries=short_entries, short_exits=none,
                       size=2, size_type="amount")
    assert r.positions["size"].to_dict() == {"AAA": -2}
    assert r.orders.loc[r.orders["symbol"] == "BBB", "reason"].tolist() == [NOT_SHORTABLE]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["AAA", "BBB"]),
                          st.integers(-12, 12)), max_size=10))
def test_no_position_in_a_symbol_that_may_not_be_shorted_ever_goes_short(orders):
    # Random market orders: AAA may not be sold short, BBB may. AAA's held units, the
    # fills' running sum, never go below 0; BBB's orders fill as without the rule.
    script = market_orders(orders)
    r = run_script(DATA, script, cash=1_000_000, shortable=["BBB"], on_reject="ignore")
    free = run_script(DATA, script, cash=1_000_000)
    f = r.fills
    signed = np.where(f["side"] == "buy", 1.0, -1.0) * f["size"].to_numpy()
    held = pd.Series(signed[(f["symbol"] == "AAA").to_numpy()]).cumsum()
    assert (held >= 0).all()
    bbb, bbb_free = f[f["symbol"] == "BBB"], free.fills[free.fills["symbol"] == "BBB"]
    assert bbb["size"].tolist() == bbb_free["size"].tolist()


def test_bad_values_are_refused_by_name():
    for bad, match in [("SPY", r"shortable='SPY': must be True .* got str"),
                       ({"SPY": True}, r"got FrozenMapping|got dict"),
                       ([1], r"\(symbols by name\)"), (3, r"got int")]:
        with pytest.raises(tickstep.ConfigError, match=match):
            tickstep.BacktestConfig(shortable=bad)
    with pytest.raises(tickstep.UnknownSymbolError, match=r"shortable: 'AAB' is not a symbol of "
                                                          r"the data.*did you mean 'AAA'"):
        tickstep.Backtest(DATA, tickstep.Strategy, shortable=["AAB"]).run()


# ---- locates quoted bar by bar (shortable_column) ------------------------------------

LOCATED = {"AAA": bars([100, 100, 101, 102, 103, 104]).assign(locate=[1, 0, 0, 1, 1, 0]),
           "BBB": bars([50, 50, 49, 48, 47, 46])}


def test_a_bar_without_a_locate_refuses_a_new_short():
    # Sells placed on day 1 fill on day 2 (no locate: refused), on day 3 fill on day 4
    # (a locate: filled), on day 4 add on day 5 (filled). BBB has no such column: the
    # account's rule, every symbol may.
    script = {("AAA", 0): sell(5), ("AAA", 2): sell(5), ("AAA", 3): sell(2),
              ("BBB", 0): sell(4)}
    r = run_script(LOCATED, script, shortable_column="locate", on_reject="ignore")
    aaa = r.orders[r.orders["symbol"] == "AAA"]
    assert aaa["status"].tolist() == ["rejected", "filled", "filled"]
    assert aaa["reason"].tolist() == [NOT_SHORTABLE, "", ""]
    assert aaa["closed_time"].dt.day.tolist() == [2, 4, 5]
    assert r.positions.loc["AAA", "size"] == -7 and r.positions.loc["BBB", "size"] == -4


def test_without_a_locate_a_short_is_kept_and_covered_but_not_added_to():
    # Short 5 filled on day 2; the column says 0 from day 5: on day 6 a sale adding to the
    # short is refused, a purchase covering part of it fills. A long sold on a day without
    # a locate goes down to flat, the rest refused.
    data = {"AAA": LOCATED["AAA"].assign(locate=[1, 1, 1, 1, 0, 0])}
    script = {0: sell(5), 4: lambda s, sym: (s.sell(size=1), s.buy(size=2))}
    r = run_script(data, script, shortable_column="locate", on_reject="ignore")
    assert r.orders["status"].tolist() == ["filled", "rejected", "filled"]
    assert r.positions.loc["AAA", "size"] == -3
    long = run_script(data, {0: buy(5), 4: sell(8)}, shortable_column="locate",
                      on_reject="ignore")
    assert list(zip(long.fills["side"], long.fills["size"], strict=True)) == [
        ("buy", 5), ("sell", 5)]
    assert long.orders["reason"].tolist() == ["", NOT_SHORTABLE]


def test_a_locate_does_not_open_shorts_the_account_does_not_allow():
    # shortable=False is the account's rule: a bar saying 1 does not override it.
    r = run_script(LOCATED, {("AAA", 2): sell(5)}, shortable=False, shortable_column="locate",
                   on_reject="ignore")
    assert r.orders["reason"].tolist() == [NOT_SHORTABLE]


def test_signals_mode_reads_the_locates_too():
    index = LOCATED["AAA"].index
    short_entries = pd.DataFrame({"AAA": [True, False, True, False, False, False],
                                  "BBB": [False] * 6}, index=index)
    none = short_entries & False
    bt = tickstep.Backtest(LOCATED, shortable_column="locate", on_reject="ignore")
    r = bt.run_signals(entries=none, exits=none, short_entries=short_entries,
                       short_exits=none, size=5, size_type="amount")
    # Day 1's signal fills on day 2 (no locate: refused), day 3's on day 4 (filled).
    assert r.orders["status"].tolist() == ["rejected", "filled"]
    assert r.orders["closed_time"].dt.day.tolist() == [2, 4]


def test_a_column_of_locates_is_checked():
    data = {"AAA": LOCATED["AAA"].assign(locate=[1, 0, 2, 1, 1, 0])}
    with pytest.raises(tickstep.TickstepError, match=r"symbol 'AAA': 2 in column 'locate' at "
                                                     r"2024-01-03.*must be 1 .* 0 .* or NaN"):
        tickstep.Backtest(data, tickstep.Strategy, shortable_column="locate").run()
