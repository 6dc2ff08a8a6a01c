"""Symbols' own margin terms (``margin_by_symbol=``), hand-computed and against a reference:
the margin an account's positions require is summed over them, each at its own leverage
(initial margin worth / leverage) and maintenance margin (maintenance x worth), worth
being |units| x price x multiplier, or at its own margin per unit (|units| x the initial
and the maintenance margin per unit); the account's terms for the symbols not listed.

Bars are daily from 2024-01-01 (bar i is day i + 1), one price per bar unless given.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import market_orders, run_script
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from test_engine_fills import buy
from test_multiplier import flat_bars

INSUFFICIENT = "insufficient margin"
MARGIN_CALL = "margin call: equity fell to the maintenance margin"


# A stock beside a futures contract of 50 a point; the contract falls from day 4.
DATA = {"STOCK": flat_bars([100, 100, 100, 100, 100]), "FUT": flat_bars([100, 100, 85, 84, 84])}
FUTURE_TERMS = {"FUT": {"leverage": 10, "maintenance_margin": 0.05}}


def test_a_contract_at_its_own_margin_beside_a_stock_at_the_accounts():
    # 10 contracts at 100 are worth 10 x 100 x 50 = 50,000 and require 5,000 of the
    # 10,000; then 60 shares at 100 would require 6,000 more (11,000: rejected), 40 shares
    # 4,000 (9,000: filled). At 85 equity is 10,000 - 10 x 15 x 50 = 2,500 against a
    # maintenance of 0.05 x 42,500 = 2,125 (the stock's is the account's 0): kept. At 84,
    # 2,000 against 2,100: margin called, both positions closed at their closes.
    script = {("FUT", 0): lambda s, sym: (s.buy("FUT", size=10), s.buy("STOCK", size=60),
                                          s.buy("STOCK", size=40))}
    r = run_script(DATA, script, multiplier={"FUT": 50}, margin_by_symbol=FUTURE_TERMS,
                   on_reject="ignore")
    o = r.orders
    entries = o[o["reason"] != MARGIN_CALL]
    assert entries["status"].tolist() == ["filled", "rejected", "filled"]
    assert entries["reason"].tolist() == ["", INSUFFICIENT, ""]
    assert r.stats["# Margin Calls"] == 1
    calls = r.fills[r.fills["side"] == "sell"]
    assert list(zip(calls["symbol"], calls["size"], calls["price"], strict=True)) == [
        ("STOCK", 40, 100.0), ("FUT", 10, 84.0)]
    assert (calls["time"] == DATA["FUT"].index[3]).all()
    assert r.stats["Equity Final [$]"] == pytest.approx(10_000 - 10 * 16 * 50)


def test_without_its_own_terms_the_contract_is_held_to_the_accounts():
    # The account's leverage of 1: the contracts' 50,000 are beyond its 10,000.
    script = {("FUT", 0): buy(10)}
    r = run_script(DATA, script, multiplier={"FUT": 50}, on_reject="ignore")
    assert r.orders["reason"].tolist() == [INSUFFICIENT]
    # With a leverage of its own of 5 the 50,000 take all 10,000 and fill; a sixth of
    # more does not.
    terms = {"FUT": {"leverage": 5}}
    ok = run_script(DATA, script, multiplier={"FUT": 50}, margin_by_symbol=terms)
    assert ok.orders["status"].tolist() == ["filled"]
    more = run_script(DATA, {("FUT", 0): buy(11)}, multiplier={"FUT": 50},
                      margin_by_symbol=terms, on_reject="ignore")
    assert more.orders["reason"].tolist() == [INSUFFICIENT]


def test_a_part_not_given_is_the_accounts():
    # The contract's leverage is its own (10), its maintenance the account's 0.3: 10
    # contracts worth 50,000 need 15,000 of equity to stay, and the 10,000 are called at
    # the first close after the fill.
    script = {("FUT", 0): buy(10)}
    r = run_script(DATA, script, multiplier={"FUT": 50}, maintenance_margin=0.3,
                   margin_by_symbol={"FUT": {"leverage": 10}})
    assert r.stats["# Margin Calls"] == 1
    sells = r.fills[r.fills["side"] == "sell"]
    assert sells["time"].tolist() == [DATA["FUT"].index[1]]
    # Its own maintenance of 0.2 keeps it (10,000 against 10,000: not below).
    kept = run_script({"FUT": flat_bars([100, 100, 100])}, script,
                      multiplier={"FUT": 50}, maintenance_margin=0.3,
                      margin_by_symbol={"FUT": {"leverage": 10, "maintenance_margin": 0.2}})
    assert kept.stats["# Margin Calls"] == 0
    assert kept.positions.loc["FUT", "size"] == 10


@pytest.mark.parametrize("terms", [
    FUTURE_TERMS,
    # The same 5,000 for 10 contracts, as money per contract.
    {"FUT": {"initial_margin_per_unit": 500, "maintenance_margin_per_unit": 400}},
])
def test_signals_mode_keeps_the_same_terms(terms):
    index = DATA["FUT"].index
    entries = pd.DataFrame({"STOCK": [True, False, False, False, False],
                            "FUT": [True, False, False, False, False]}, index=index)
    none = entries & False
    bt = tickstep.Backtest(DATA, cash=10_000, multiplier={"FUT": 50},
                           margin_by_symbol=terms, on_reject="ignore")
    r = bt.run_signals(entries=entries, exits=none, size={"STOCK": 60, "FUT": 10},
                       size_type="amount")
    # STOCK's entry comes first in the call order: 6,000 of margin; then FUT's 5,000
    # would make 11,000 (rejected).
    assert r.orders["status"].tolist() == ["filled", "rejected"]
    assert r.orders["symbol"].tolist() == ["STOCK", "FUT"]


def test_symbols_named_must_be_the_datas():
    with pytest.raises(tickstep.UnknownSymbolError, match=r"margin_by_symbol: 'FUTS' is not a "
                                                          r"symbol of the data.*'FUT'"):
        tickstep.Backtest(DATA, tickstep.Strategy, margin_by_symbol={"FUTS": {"leverage": 2}})


def test_a_margin_per_unit_above_the_price_calls_a_long_account_with_cash_to_spare():
    # 90 contracts at 100 need 900 each to keep: 81,000, against equity of 100,000 in
    # all; with 47,600 of stock at the account's 0.4 (19,040) the account needs 100,040
    # and is called at the first close, though it is long with 43,400 of cash. (The check
    # used to be skipped for a long account with cash: no fraction of worth below 1 can
    # call it, but a margin per unit can ask more than the position is worth.)
    data = {"AAA": flat_bars([100] * 4), "BBB": flat_bars([100] * 4)}
    script = {("AAA", 0): buy(476), ("BBB", 0): buy(90)}
    terms = {"BBB": {"initial_margin_per_unit": 900, "maintenance_margin_per_unit": 900}}
    r = run_script(data, script, cash=100_000, leverage=3.0, maintenance_margin=0.4,
                   margin_by_symbol=terms)
    assert r.orders["status"].tolist()[:2] == ["filled", "filled"]
    assert r.stats["# Margin Calls"] == 1
    closed = r.fills[r.fills["side"] == "sell"]
    assert closed["time"].tolist() == [data["AAA"].index[1]] * 2
    # 880 a contract to keep: 79,200 + 19,040 = 98,240, below equity: kept.
    kept = run_script(data, script, cash=100_000, leverage=3.0, maintenance_margin=0.4,
                      margin_by_symbol={"BBB": {"initial_margin_per_unit": 900,
                                                "maintenance_margin_per_unit": 880}})
    assert kept.stats["# Margin Calls"] == 0


# ---- against a reference -------------------------------------------------------------

SYMBOLS = ("AAA", "BBB", "CCC")


def reference(closes, opens, orders, multipliers, terms, commission):
    """The broker's margin rules on long market orders, in plain floats: each order placed
    at bar t fills at bar t + 1's open in placement order if, after it (every position
    marked at that open), equity is above 0 and the initial margin summed over the
    positions is at most equity; after each bar's closes, an account below the
    maintenance margin summed so is closed out there. A symbol's terms are ("worth",
    leverage, maintenance): worth / leverage and maintenance x worth, or ("unit", initial,
    maintenance): units x each. The accepted orders, the margin calls and final equity;
    None when a decision lies within 1e-9 of its edge (floats may round either way
    there)."""
    n = len(next(iter(closes.values())))
    size = dict.fromkeys(SYMBOLS, 0.0)
    cash, calls, filled = 100_000.0, 0, set()

    def worth(sym, units, price):
        return units * price * multipliers[sym]

    def equity(marks):
        return cash + sum(worth(s, size[s], marks[s]) for s in SYMBOLS)

    def initial(s, units, price):
        kind, first, _ = terms[s]
        if kind == "unit":
            return abs(units) * first
        return worth(s, abs(units), price) / first

    def maintenance(s, units, price):
        kind, _, second = terms[s]
        if kind == "unit":
            return abs(units) * second
        return worth(s, abs(units), price) * second

    for t in range(1, n):
        marks = {s: opens[s][t] for s in SYMBOLS}
        for order_id, (bar, sym, units) in enumerate(orders):
            if bar != t - 1:
                continue
            price = opens[sym][t]
            fee = commission * units * price * multipliers[sym]
            after = equity(marks) - fee + worth(sym, units, marks[sym] - price)
            held = dict(size, **{sym: size[sym] + units})
            required = sum(initial(s, held[s], marks[s]) for s in SYMBOLS)
            if abs(required - after) <= 1e-9 * abs(after) or abs(after) < 1e-9:
                return None
            if after > 0 and required <= after:
                cash -= worth(sym, units, price) + fee
                size[sym] += units
                filled.add(order_id)
        marks = {s: closes[s][t] for s in SYMBOLS}
        if any(size.values()):
            now = equity(marks)
            keep = sum(maintenance(s, size[s], marks[s]) for s in SYMBOLS)
            if abs(now - keep) <= 1e-9 * abs(now):
                return None
            if now <= 0 or now < keep:
                calls += 1
                for s in SYMBOLS:
                    if size[s]:
                        cash += worth(s, size[s], marks[s]) - commission * worth(s, size[s], marks[s])
                        size[s] = 0.0
    return filled, calls, equity({s: closes[s][-1] for s in SYMBOLS})


def path(draw_steps):
    return [100.0 * math.exp(sum(draw_steps[: k + 1])) for k in range(len(draw_steps))]


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.lists(st.floats(-0.15, 0.15), min_size=6, max_size=6), min_size=6,
                   max_size=6),
    orders=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(SYMBOLS), st.integers(1, 400)),
                    max_size=12),
    multipliers=st.tuples(*[st.sampled_from([1.0, 5.0, 50.0])] * 3),
    account=st.tuples(st.sampled_from([1.0, 1.5, 3.0]), st.sampled_from([0.0, 0.2, 0.4])),
    own=st.lists(st.one_of(
        st.none(),
        st.tuples(st.sampled_from([None, 1.0, 2.5, 10.0, 20.0]),
                  st.sampled_from([None, 0.0, 0.1, 0.3, 0.6])),
        # A margin per unit: an initial amount and the maintenance as a share of it.
        st.tuples(st.just("unit"), st.sampled_from([20.0, 150.0, 900.0, 4_000.0]),
                  st.sampled_from([0.0, 0.5, 0.9, 1.0]))),
        min_size=3, max_size=3),
    commission=st.sampled_from([0.0, 0.001]),
)
def test_the_margin_rules_match_a_reference(steps, orders, multipliers, account, own, commission):
    # Three symbols whose opens and closes walk apart; random long market orders, each
    # symbol at its own terms (fractions of worth or money per unit), some parts or whole
    # symbols left to the account's.
    closes = {s: path(steps[k][:6]) for k, s in enumerate(SYMBOLS)}
    opens = {s: [c * math.exp(steps[(k + 1) % 3][i] / 3) for i, c in enumerate(closes[s])]
             for k, s in enumerate(SYMBOLS)}
    index = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    data = {s: pd.DataFrame({"open": opens[s], "high": np.maximum(opens[s], closes[s]),
                             "low": np.minimum(opens[s], closes[s]), "close": closes[s],
                             "volume": 1e6}, index=index) for s in SYMBOLS}
    leverage, maintenance = account
    by_symbol, terms = {}, {}
    for s, given_terms in zip(SYMBOLS, own, strict=True):
        if given_terms is not None and given_terms[0] == "unit":
            _, per_unit, kept = given_terms
            by_symbol[s] = {"initial_margin_per_unit": per_unit,
                            "maintenance_margin_per_unit": per_unit * kept}
            terms[s] = ("unit", per_unit, per_unit * kept)
            continue
        parts = {}
        if given_terms is not None:
            for part, value in zip(("leverage", "maintenance_margin"), given_terms, strict=True):
                if value is not None:
                    parts[part] = value
        if parts:
            by_symbol[s] = parts
        terms[s] = ("worth", parts.get("leverage", leverage),
                    parts.get("maintenance_margin", maintenance))
    mults = dict(zip(SYMBOLS, multipliers, strict=True))
    # Placement order: bar, then the symbols' call order, then the order drawn.
    placed = sorted(orders, key=lambda o: (o[0], SYMBOLS.index(o[1])))
    expected = reference(closes, opens, placed, mults, terms, commission)
    assume(expected is not None)
    filled, calls, final = expected
    event(f"rejections: {len(placed) > len(filled)}, margin calls: {calls > 0}")
    event(f"margins per unit: {sum(t[0] == 'unit' for t in terms.values())}")
    r = run_script(data, market_orders(placed), cash=100_000, leverage=leverage,
                   maintenance_margin=maintenance, margin_by_symbol=by_symbol or None,
                   multiplier=mults, commission=commission, on_reject="ignore")
    entries = r.orders[r.orders["reason"] != MARGIN_CALL]
    assert set(np.flatnonzero(entries["status"].to_numpy() == "filled")) == filled
    assert r.stats["# Margin Calls"] == calls
    assert r.equity.iloc[-1] == pytest.approx(final, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["STOCK", "FUT"]),
                          st.integers(-300, 300)), max_size=10),
       st.sampled_from([0.5, 1.0, 2.0, 4.0]), st.sampled_from([0.0, 0.25, 0.5]))
def test_every_symbol_at_the_accounts_terms_is_the_accounts_rule(orders, leverage, maintenance):
    # Given to every symbol, the account's own terms (powers of two: the sums' terms are
    # then exact) change nothing: the same fills and equity, bit for bit.
    script = market_orders(orders)
    options = dict(cash=20_000, leverage=leverage, maintenance_margin=maintenance,
                   multiplier={"FUT": 5}, on_reject="ignore")
    plain = run_script(DATA, script, **options)
    terms = {s: {"leverage": leverage, "maintenance_margin": maintenance} for s in DATA}
    own = run_script(DATA, script, margin_by_symbol=terms, **options)
    pd.testing.assert_frame_equal(own.fills, plain.fills)
    pd.testing.assert_frame_equal(own.orders, plain.orders)
    assert own.equity.tolist() == plain.equity.tolist()


class ThreeEntries(tickstep.Strategy):
    """The first test's orders, placed at FUT's first bar without reading the history (a
    streamed run keeps only some of it)."""

    def init(self):
        self.placed = False

    def next(self, symbol):
        if symbol == "FUT" and not self.placed:
            self.placed = True
            self.buy("FUT", size=10)
            self.buy("STOCK", size=60)
            self.buy("STOCK", size=40)


@pytest.mark.parametrize("window", ["1D", "2D"])
def test_a_streamed_run_keeps_the_same_terms(window):
    options = dict(multiplier={"FUT": 50}, margin_by_symbol=FUTURE_TERMS, on_reject="ignore")
    whole = tickstep.Backtest(DATA, ThreeEntries, **options).run()
    streamed = tickstep.Backtest(DATA, ThreeEntries, stream=window, **options).run()
    assert streamed.stats["# Margin Calls"] == whole.stats["# Margin Calls"] == 1
    pd.testing.assert_frame_equal(streamed.fills, whole.fills)
    assert streamed.equity.tolist() == whole.equity.tolist()


class ReadsMargin(tickstep.Strategy):
    """At each FUT bar: reads the margin the account holds and its buying power in each
    symbol, then buys ``plan``'s orders of that bar (a size, or "all": what the buying
    power buys of the symbol)."""

    plan = {}

    def init(self):
        self.seen = []

    def next(self, symbol):
        if symbol != "FUT":
            return
        power = tuple(self.buying_power(s) for s in self.symbols)
        self.seen.append((self.margin_used, *power))
        for sym, size in self.plan.get(len(self.seen) - 1, ()):
            if size == "all":
                size = math.floor(self.buying_power(sym) / self._ctx.unit_value(sym))
            self.buy(sym, size=size)


def test_buying_power_is_what_an_increase_may_take():
    # 10 contracts (worth 50,000 at 100, leverage 10) hold 5,000 of the 10,000: 5,000 are
    # free, 50,000 of contracts or 5,000 of shares (the account's leverage 1). Filled at
    # the close they were placed at (trade_on_close), the shares the buying power buys
    # (50) fill; one more is rejected.
    plan = {0: [("FUT", 10)], 1: [("STOCK", "all")], 2: [("STOCK", 1)]}
    flat = {"FUT": flat_bars([100] * 4), "STOCK": flat_bars([100] * 4)}
    bt = tickstep.Backtest(flat, ReadsMargin, multiplier={"FUT": 50}, trade_on_close=True,
                           margin_by_symbol={"FUT": {"leverage": 10}}, on_reject="ignore")
    r = bt.run(plan=plan)
    # (margin used, buying power in FUT, in STOCK)
    assert r.strategy.seen[:3] == [(0.0, 100_000.0, 10_000.0), (5_000.0, 50_000.0, 5_000.0),
                                   (10_000.0, 0.0, 0.0)]
    assert r.orders["size"].tolist() == [10, 50, 1]
    assert r.orders["status"].tolist() == ["filled", "filled", "rejected"]


def test_an_accounts_buying_power_is_leverage_times_equity_less_gross_exposure():
    # Leverage 2: 100 units at 100 hold 5,000 of the 10,000 as margin; 10,000 more may be
    # bought. The price falls to 90: equity 9,000, margin 4,500, buying power 9,000.
    data = {"FUT": flat_bars([100, 100, 90])}
    r = tickstep.Backtest(data, ReadsMargin, leverage=2, trade_on_close=True).run(
        plan={0: [("FUT", 100)]})
    assert r.strategy.seen == [(0.0, 20_000.0), (5_000.0, 10_000.0), (4_500.0, 9_000.0)]


# ---- a margin per unit ---------------------------------------------------------------

# A contract of 50 a point whose price doubles, then falls back below where it started.
RISING = {"FUT": flat_bars([100, 100, 200, 200, 80, 80])}
PER_CONTRACT = {"FUT": {"initial_margin_per_unit": 1_000, "maintenance_margin_per_unit": 800}}


def test_a_margin_per_unit_is_money_per_contract_whatever_the_price():
    # 10 contracts require 10 x 1,000 = 10,000 of the 10,000 to open; an eleventh would
    # be rejected. At 200 (worth 100,000) they still require 8,000 to keep: equity
    # 10,000 + 10 x 100 x 50 = 60,000, kept, and 50 more would take 50,000 more of
    # initial margin against the 60,000 - 10,000 held: filled. At 80 equity is 60,000 -
    # 60 x 120 x 50 = -300,000: called.
    script = {("FUT", 0): lambda s, sym: (s.buy("FUT", size=11), s.buy("FUT", size=10)),
              ("FUT", 2): lambda s, sym: (s.buy("FUT", size=51), s.buy("FUT", size=50))}
    r = run_script(RISING, script, multiplier={"FUT": 50}, margin_by_symbol=PER_CONTRACT,
                   on_reject="ignore")
    entries = r.orders[r.orders["reason"] != MARGIN_CALL]
    assert entries["size"].tolist() == [11, 10, 51, 50]
    assert entries["status"].tolist() == ["rejected", "filled", "rejected", "filled"]
    assert r.stats["# Margin Calls"] == 1
    sold = r.fills[r.fills["side"] == "sell"]
    assert sold["size"].tolist() == [60] and sold["price"].tolist() == [80.0]
    assert sold["time"].tolist() == [RISING["FUT"].index[4]]
    assert r.stats["Equity Final [$]"] == pytest.approx(10_000 + 10 * 100 * 50 - 60 * 120 * 50)
    # As a fraction of worth (leverage 5 at the first price: the same 10,000 for the 10
    # contracts), the 50 more at 200 would require 60 x 10,000 / 5 = 120,000: rejected.
    worth = run_script(RISING, script, multiplier={"FUT": 50}, on_reject="ignore",
                       margin_by_symbol={"FUT": {"leverage": 5, "maintenance_margin": 0.04}})
    assert worth.orders["status"].tolist()[:4] == ["rejected", "filled", "rejected", "rejected"]


def test_a_margin_per_unit_keeps_a_short_as_a_long():
    # A short of 10 requires 10 x 1,000 as a long does: the price doubling costs the short
    # 10 x 100 x 50 = 50,000, equity -40,000 is below 8,000: called at 200.
    r = run_script(RISING, {("FUT", 0): lambda s, sym: s.sell("FUT", size=10)},
                   multiplier={"FUT": 50}, margin_by_symbol=PER_CONTRACT, on_reject="ignore")
    assert r.orders["status"].tolist() == ["filled", "filled"]
    assert r.stats["# Margin Calls"] == 1
    assert r.fills["price"].tolist() == [100.0, 200.0]
    # Rising a point at a time: at 101 equity 10,000 - 10 x 1 x 50 = 9,500 >= 8,000, kept;
    # at 105, 7,500 < 8,000: called there.
    edge = {"FUT": flat_bars([100, 100, 101, 105, 105])}
    called = run_script(edge, {("FUT", 0): lambda s, sym: s.sell("FUT", size=10)},
                        multiplier={"FUT": 50}, margin_by_symbol=PER_CONTRACT)
    buys = called.fills[called.fills["side"] == "buy"]
    assert buys["time"].tolist() == [edge["FUT"].index[3]]
    assert buys["price"].tolist() == [105.0]


def test_buying_power_at_a_margin_per_unit_is_contracts_at_their_worth():
    # Before FUT holds anything: 10,000 free pay for 10 contracts of 5,000 (50 x 100):
    # 50,000. After 4 are bought, 6,000 free: 6 contracts, 30,000; and "all" buys them.
    # At 200 (equity 10,000 + 10 x 100 x 50 = 60,000, 10,000 held, 50,000 free): 50
    # contracts worth 10,000 each.
    plan = {0: [("FUT", 4)], 1: [("FUT", "all")]}
    data = {"FUT": flat_bars([100, 100, 100, 200])}
    r = tickstep.Backtest(data, ReadsMargin, multiplier={"FUT": 50}, trade_on_close=True,
                          margin_by_symbol=PER_CONTRACT, on_reject="ignore").run(plan=plan)
    assert r.orders["size"].tolist() == [4, 6]
    assert r.orders["status"].tolist() == ["filled", "filled"]
    assert r.strategy.seen == [(0.0, 50_000.0), (4_000.0, 30_000.0), (10_000.0, 0.0),
                               (10_000.0, 500_000.0)]


@pytest.mark.parametrize(("terms", "message"), [
    ({"initial_margin_per_unit": 1_000}, "maintenance_margin_per_unit is missing"),
    ({"maintenance_margin_per_unit": 800}, "initial_margin_per_unit is missing"),
    ({"initial_margin_per_unit": 1_000, "maintenance_margin_per_unit": 800, "leverage": 2},
     "margin per unit .* or as fractions of worth .*leverage.*, not both"),
    ({"initial_margin_per_unit": 1_000, "maintenance_margin_per_unit": 1_200},
     r"maintenance_margin_per_unit'\]=1200.*at most initial_margin_per_unit=1000"),
    ({"initial_margin_per_unit": 0, "maintenance_margin_per_unit": 0},
     r"initial_margin_per_unit'\]=0: must be a positive"),
    ({"initial_margin_per_unit": 1_000, "maintenance_margin_per_unit": -1},
     r"maintenance_margin_per_unit'\]=-1: must be a finite number >= 0"),
    ({"initial_margin_per_contract": 1_000}, "did you mean 'initial_margin_per_unit'"),
])
def test_a_margin_per_unit_given_wrong_is_refused_naming_the_symbol(terms, message):
    with pytest.raises(tickstep.ConfigError, match=r"margin_by_symbol\['FUT'\].*" + message):
        tickstep.Backtest(RISING, tickstep.Strategy, margin_by_symbol={"FUT": terms})


def test_the_core_refuses_a_margin_per_unit_given_wrong_too():
    # The engine's own check, for callers that bypass the config (the binding's setter).
    from tickstep.simulation import market_from_columns
    market = market_from_columns(tickstep.data.to_market_columns(RISING))
    engine = tickstep._core.Engine(market, cash=10_000)
    with pytest.raises(tickstep.ConfigError, match=r"margin_by_symbol\['FUT'\]: "
                                                  r"maintenance_margin_per_unit is missing"):
        engine.set_symbol_margin("FUT", initial_margin_per_unit=1_000)
    with pytest.raises(tickstep.ConfigError, match="not both"):
        engine.set_symbol_margin("FUT", leverage=2, initial_margin_per_unit=1_000,
                                 maintenance_margin_per_unit=800)
