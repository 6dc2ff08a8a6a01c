"""Fused reads and one-call orders of the Python hot path read and do what the long way does.

- A `Crossing` (``self.crossing(a, b)``) is +1 on the bar ``a`` crossed above ``b``, -1
  on the bar it crossed below, 0 otherwise: checked against hand-computed bars (equal
  values, NaN warm-up, a level), against ``crossed_above``/``crossed_below`` at every
  bar, and outside ``next`` (read through the core, an error without a running symbol).
- Orders without a size are sized in the core: `FixedSize` and `PercentOfEquity` are
  computed there (no request, no call), and must give the units their ``__call__`` gives,
  so the same fills as the same sizer called through Python.
- ``next`` is called through its function's own entry when it is a plain method; any
  other callable still runs, and an error inside it reaches the caller unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from hypothesis import given, settings
from hypothesis import strategies as st
from tickstep import UnknownSymbolError
from tickstep.sizing import FixedSize, PercentOfEquity, SizingRequest, native_sizing


def daily(closes, start="2024-01-01"):
    closes = np.asarray(closes, dtype=float)
    index = pd.date_range(start, periods=len(closes), freq="D", tz="UTC")
    return pd.DataFrame({"open": closes, "high": closes + 1, "low": closes - 1, "close": closes,
                         "volume": np.full(len(closes), 1000.0)}, index=index)


class Records(tickstep.Strategy):
    """Records the crossing of close (``sma(1)``) with a level and with ``sma(2)``, and the
    long way of reading each, at every bar."""

    level = 100.0

    def init(self):
        self.close_line = self.sma(1)
        self.mean2 = self.sma(2)
        self.at_level = self.crossing(self.close_line, self.level)
        self.with_mean = self.crossing(self.close_line, self.mean2)
        self.rows = []

    def next(self, symbol):
        c, m = self.close_line, self.mean2
        self.rows.append((
            self.at_level.value, self.with_mean.value,
            c.crossed_above(self.level), c.crossed_below(self.level),
            c.crossed_above(m), c.crossed_below(m),
            self.at_level.get(symbol), self.with_mean.get(),
        ))


CLOSES = [99, 100, 101, 100, 99, 99, 101, 103, 102, 100]


def test_a_crossing_of_a_level_by_hand():
    rows = tickstep.Backtest({"AAA": daily(CLOSES)}, Records).run().strategy.rows
    # close vs 100: bar 0 has no bar before (NaN): 0; bar 1 touches 100 (equal is not
    # above): 0; bar 2 100 -> 101: +1; bar 3 101 -> 100 (equal is not below): 0; bar 4
    # 100 -> 99: -1; bar 5 stays below: 0; bar 6 99 -> 101: +1; then above, 102 -> 100 at
    # bar 9 lands on the level: 0.
    assert [r[0] for r in rows] == [0, 0, 1, 0, -1, 0, 1, 0, 0, 0]


def test_a_crossing_of_two_indicators_by_hand():
    rows = tickstep.Backtest({"AAA": daily(CLOSES)}, Records).run().strategy.rows
    # mean2 = NaN, 99.5, 100.5, 100.5, 99.5, 99, 100, 102, 102.5, 101
    # close - mean2 = NaN, .5, .5, -.5, -.5, 0, 1, 1, -.5, -1
    # bar 1: NaN before: 0; bar 3: .5 -> -.5: -1; bar 5: -.5 -> 0 (equal): 0;
    # bar 6: 0 -> 1 (at before, above now): +1; bar 8: 1 -> -.5: -1.
    assert [r[1] for r in rows] == [0, 0, 0, -1, 0, 0, 1, 0, -1, 0]


def test_a_crossing_is_crossed_above_or_below_at_every_bar():
    rng = np.random.default_rng(3)
    closes = 100 + np.cumsum(rng.normal(0, 1, 300))
    rows = tickstep.Backtest({"AAA": daily(closes), "BBB": daily(closes[::-1])}, Records,
                             ).run(level=float(np.median(closes))).strategy.rows
    assert any(r[0] for r in rows) and any(r[1] for r in rows)
    for at_level, with_mean, above_l, below_l, above_m, below_m, got_l, got_m in rows:
        assert at_level == (1 if above_l else -1 if below_l else 0) == got_l
        assert with_mean == (1 if above_m else -1 if below_m else 0) == got_m
        assert type(at_level) is int and type(with_mean) is int


class OnTick(tickstep.Strategy):
    def init(self):
        self.cross = self.crossing(self.sma(1), 100)
        self.seen, self.later, self.errors = {}, [], []

    def next(self, symbol):
        self.seen[(self.now, symbol)] = self.cross.value

    def on_tick(self):
        self.later.extend(((self.now, s), self.cross.get(s)) for s in self.active_symbols())
        try:
            _ = self.cross.value
        except UnknownSymbolError as err:
            self.errors.append(str(err))


def test_outside_next_a_crossing_is_read_through_the_core():
    data = {"AAA": daily(CLOSES), "BBB": daily([101, 99, 100, 101, 98])}
    s = tickstep.Backtest(data, OnTick).run().strategy
    assert len(s.later) == len(s.seen) == 15
    assert all(s.seen[key] == value for key, value in s.later)
    assert len(s.errors) == 10 and "no current symbol" in s.errors[0]
    assert repr(s.cross) == "Crossing(mean(1, close) x 100)"
    with pytest.raises(AttributeError, match="read-only"):
        s.cross.value = 1


def test_a_crossing_of_self_I_series_is_the_same_as_of_engine_indicators():
    class OnI(Records):
        def init(self):
            super().init()
            self.with_mean = self.crossing(self.I(lambda c: c), self.I(lambda c: c.rolling(2).mean()))

    data = {"AAA": daily(CLOSES)}
    engine = tickstep.Backtest(data, Records).run().strategy.rows
    on_i = tickstep.Backtest(data, OnI).run().strategy.rows
    assert [r[1] for r in on_i] == [r[1] for r in engine]


@pytest.mark.parametrize("args, culprit", [
    (("close", 100.0), "indicator"),
    ((None, float("nan")), "other"),
    ((None, "100"), "other"),
    ((None, True), "other"),
])
def test_a_crossing_of_what_is_not_a_line_is_refused(args, culprit):
    class Bad(tickstep.Strategy):
        def init(self):
            first = self.sma(3) if args[0] is None else args[0]
            self.crossing(first, args[1])

    with pytest.raises(TypeError, match=f"crossing\\({culprit}="):
        tickstep.Backtest({"AAA": daily(CLOSES)}, Bad).run()


def test_a_crossing_is_declared_in_init_only():
    class Late(tickstep.Strategy):
        def init(self):
            self.f = self.sma(2)

        def next(self, symbol):
            self.crossing(self.f, 100)

    with pytest.raises(tickstep.StateError, match="declared in init"):
        tickstep.Backtest({"AAA": daily(CLOSES)}, Late).run()


# ---- sizing in the core ----------------------------------------------------------------------


class Called:
    """Any sizer the core calls: the same rule as ``inner`` through a request."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, req):
        assert type(req) is SizingRequest
        return self.inner(req)


class EveryFew(tickstep.Strategy):
    def init(self):
        self.k = 0

    def next(self, symbol):
        self.k += 1
        if self.k % 7 == 1:
            self.buy()
        elif self.k % 7 == 4:
            self.sell(limit=self.price() * 1.002)
        elif self.k % 7 == 6:
            self.close()


def walk(seed, n=120):
    rng = np.random.default_rng(seed)
    return daily(50 * np.exp(np.cumsum(rng.normal(0, 0.02, n))))


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["fixed", "percent"]),
    amount=st.floats(0.01, 500, allow_nan=False),
    lot=st.one_of(st.none(), st.sampled_from([0.001, 0.5, 1, 3, 10, 100])),
    seed=st.integers(0, 10),
)
def test_a_computed_sizer_sizes_as_its_call(kind, amount, lot, seed):
    fraction = amount / 1000
    sizer = FixedSize(amount, lot) if kind == "fixed" else PercentOfEquity(fraction, lot)
    assert native_sizing(sizer) is not None
    data = {"AAA": walk(seed), "BBB": walk(seed + 1)}
    computed = tickstep.Backtest(data, EveryFew, cash=1e6, sizer=sizer, on_reject="ignore").run()
    called = tickstep.Backtest(data, EveryFew, cash=1e6, sizer=Called(sizer), on_reject="ignore").run()
    a, b = computed.fills, called.fills
    assert len(a) == len(b)  # none when a lot is larger than the size
    assert np.array_equal(a["size"].to_numpy(), b["size"].to_numpy())
    assert np.array_equal(a["price"].to_numpy(), b["price"].to_numpy())
    assert computed.equity.to_numpy().tobytes() == called.equity.to_numpy().tobytes()


def test_only_the_shipped_formula_sizers_are_computed():
    class Mine(FixedSize):
        def __call__(self, req):
            return 2 * super().__call__(req)

    assert native_sizing(FixedSize(3)) == ("fixed", 3.0, None)
    assert native_sizing(PercentOfEquity(0.5, lot_size=10)) == ("percent", 0.5, 10.0)
    assert native_sizing(Mine(3)) is None
    assert native_sizing(FixedSize(3, lot_size=math.inf)) is None
    assert native_sizing(FixedSize(3, lot_size=np.float32(2))) is None  # not a plain float
    assert native_sizing(Called(FixedSize(3))) is None


class OneSized(tickstep.Strategy):
    def init(self):
        self.ids = []

    def next(self, symbol):
        if not self.ids:
            self.ids.append(self.buy())


@pytest.mark.parametrize("units, placed", [(0.0, False), (2.5, True)])
def test_a_sizer_saying_zero_places_nothing(units, placed):
    r = tickstep.Backtest({"AAA": daily(CLOSES)}, OneSized, sizer=lambda req: units).run()
    (order_id,) = r.strategy.ids
    assert (order_id is not None) == placed
    assert len(r.fills) == (1 if placed else 0)


@pytest.mark.parametrize("units", [-1.0, math.nan, "x"])
def test_a_sizer_giving_bad_units_is_named(units):
    def sizer(req):
        return units

    expected = (TypeError, ValueError)
    with pytest.raises(expected) as err:
        tickstep.Backtest({"AAA": daily(CLOSES)}, OneSized, sizer=sizer).run()
    if not isinstance(units, str):
        assert "AAA: sizer" in str(err.value) and "expected units >= 0" in str(err.value)
        assert repr(float(units)) in str(err.value)


def test_an_error_inside_a_sizer_reaches_the_caller_unchanged():
    class Boom(Exception):
        pass

    def sizer(req):
        raise Boom("no size today")

    with pytest.raises(Boom) as err:
        tickstep.Backtest({"AAA": daily(CLOSES)}, OneSized, sizer=sizer).run()
    assert str(err.value) == "no size today"
    assert "AAA" in err.value.__notes__[0]


# ---- how next is called ----------------------------------------------------------------------


CALLS: list[str] = []


class Static(tickstep.Strategy):
    """``next`` as a plain function (no strategy bound to it)."""

    @staticmethod
    def next(symbol):
        CALLS.append(symbol)


class Recorder(tickstep.Strategy):
    def init(self):
        self.calls = []

    def next(self, symbol):
        self.calls.append((self.now, symbol))


def test_a_next_that_is_no_bound_method_is_still_called():
    data = {"AAA": daily(CLOSES), "BBB": daily(CLOSES[:4])}
    CALLS.clear()
    tickstep.Backtest(data, Static).run()
    assert sorted(CALLS) == ["AAA"] * 10 + ["BBB"] * 4
    # From trade_start on, next is wrapped in a plain function by the library.
    late = tickstep.Backtest(data, Recorder, trade_start="2024-01-03").run().strategy.calls
    every = tickstep.Backtest(data, Recorder).run().strategy.calls
    assert late == [c for c in every if c[0] >= pd.Timestamp("2024-01-03", tz="UTC").value]
