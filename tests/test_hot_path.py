"""The hot path's shortcuts read what the slow paths read.

- An indicator's ``value``/``prev`` inside ``next(symbol)`` are written by the engine
  before the call: they must equal the core's reads (``get``/``previous``) bit for bit
  at every bar, for rolling statistics, timeframe indicators and ``self.I`` series,
  never show a later bar (perturbing the data after a bar leaves every read up to it
  unchanged), stay what they were in objects a strategy kept, and outside ``next``
  behave as before (an error naming the missing symbol).
- A sized order's `SizingRequest` is made by the core in one call: it must be the same
  object the dataclass's own constructor makes from the same figures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep import UnknownSymbolError
from tickstep.sizing import SizingRequest


def minutes(rng, n, start, price):
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    close = price * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close,
                         "volume": rng.uniform(1, 100, n)}, index=index)


def make_data(seed=11):
    rng = np.random.default_rng(seed)
    data = {"AAA": minutes(rng, 400, "2024-01-02 00:00", 100.0),
            "BBB": minutes(rng, 300, "2024-01-02 01:00", 50.0),  # starts late
            "CCC": minutes(rng, 400, "2024-01-02 00:00", 20.0)}
    data["CCC"] = data["CCC"].drop(data["CCC"].index[100:130])  # a gap
    return data


DATA = make_data()


def same(a, b):
    """Equal bit for bit, NaN equal to NaN."""
    return np.array(a, dtype=float).tobytes() == np.array(b, dtype=float).tobytes()


class Reads(tickstep.Strategy):
    """Records, per symbol and bar, what next() reads through the written values and
    through the core's calls, for indicators of every kind."""

    def init(self):
        tf = self.timeframe("15m")
        self.inds = {
            "sma": self.sma(5),
            "ema": self.ema(8, "high"),
            "rsi": self.rsi(6),
            "atr15m": self.atr(3, timeframe=tf),
            "mean15m": self.sma(2, timeframe=tf),
            "I": self.I(lambda c: c.rolling(7).mean()),
            "I_volume": self.I(lambda v: v.ewm(span=4).mean(), source="volume"),
        }
        self.rows = {s: [] for s in self.symbols}
        self.kept = {s: [] for s in self.symbols}

    def next(self, symbol):
        row = []
        for ind in self.inds.values():
            row.append((ind.value, ind.prev, ind.get(symbol), ind.previous(symbol),
                        ind.get(), ind.previous()))
        self.rows[symbol].append(row)
        self.kept[symbol].append(self.inds["sma"].value)  # a reference the strategy keeps


@pytest.fixture(scope="module")
def reads():
    return tickstep.Backtest(DATA, Reads, cash=1e6).run().strategy


def test_written_values_equal_the_core_reads_at_every_bar(reads):
    for symbol, frame in DATA.items():
        rows = reads.rows[symbol]
        assert len(rows) == len(frame)
        for k, row in enumerate(rows):
            for name, (value, prev, got, previous, got_running, previous_running) in zip(reads.inds, row):
                assert same(value, got) and same(value, got_running), (symbol, k, name)
                assert same(prev, previous) and same(prev, previous_running), (symbol, k, name)


def test_written_values_equal_the_pandas_reference(reads):
    for symbol, frame in DATA.items():
        sma = frame["close"].rolling(5).mean().to_numpy()
        series = frame["close"].rolling(7).mean().to_numpy()
        rows = np.array([[r[0][0], r[0][1], r[5][0], r[5][1]] for r in reads.rows[symbol]])
        np.testing.assert_allclose(rows[:, 0], sma, rtol=1e-12)
        np.testing.assert_allclose(rows[:, 1], np.r_[np.nan, sma[:-1]], rtol=1e-12)
        np.testing.assert_array_equal(rows[:, 2], series)  # self.I: the function's own values
        np.testing.assert_array_equal(rows[:, 3], np.r_[np.nan, series[:-1]])


def test_a_value_the_strategy_kept_is_not_changed_by_later_bars(reads):
    for symbol, frame in DATA.items():
        np.testing.assert_allclose(reads.kept[symbol], frame["close"].rolling(5).mean(), rtol=1e-12)


class ReadsWithCrossings(Reads):
    """The same reads with crossings declared too (the engine then also keeps each pair it
    writes, for the crossings to compare): of two indicators, of an indicator and a
    ``self.I`` series, and of an indicator and a level."""

    def init(self):
        super().init()
        inds = self.inds
        self.crossings = [
            (self.crossing(inds["sma"], inds["ema"]), inds["sma"], inds["ema"]),
            (self.crossing(inds["I"], inds["sma"]), inds["I"], inds["sma"]),
            (self.crossing(inds["rsi"], 50.0), inds["rsi"], 50.0),
        ]
        self.crossed = {s: [] for s in self.symbols}

    def next(self, symbol):
        super().next(symbol)
        row = []
        for crossing, line, other in self.crossings:
            now, before = line.get(symbol), line.previous(symbol)
            if isinstance(other, float):
                other_now = other_before = other
            else:
                other_now, other_before = other.get(symbol), other.previous(symbol)
            # The rule by hand, from the core's reads (NaN compares false: 0).
            expected = 1 if before <= other_before and now > other_now else \
                -1 if before >= other_before and now < other_now else 0
            row.append((crossing.value, expected))
        self.crossed[symbol].append(row)


def test_with_crossings_declared_the_written_values_and_crossings_equal_the_core_reads():
    s = tickstep.Backtest(DATA, ReadsWithCrossings, cash=1e6).run().strategy
    seen = set()
    for symbol, frame in DATA.items():
        assert len(s.rows[symbol]) == len(s.crossed[symbol]) == len(frame)
        for k, (row, crossed) in enumerate(zip(s.rows[symbol], s.crossed[symbol])):
            for name, (value, prev, got, previous, got_running, previous_running) in zip(s.inds, row):
                assert same(value, got) and same(value, got_running), (symbol, k, name)
                assert same(prev, previous) and same(prev, previous_running), (symbol, k, name)
            for j, (value, expected) in enumerate(crossed):
                assert value == expected, (symbol, k, j)
                seen.add((j, value))
    # Every crossing crossed both ways somewhere (the test compares more than zeros).
    assert {(j, v) for j in range(3) for v in (-1, 1)} <= seen


@pytest.mark.parametrize("cut", [0, 57, 150, 299])
def test_no_read_shows_a_bar_after_its_own(cut):
    """Perturb the prices of every bar after AAA's bar ``cut`` (so also what the self.I
    functions return there): every read of every bar up to it is unchanged, bit for bit."""

    cut_time = DATA["AAA"].index[cut]

    def perturbed(frame):
        frame = frame.copy()
        frame.loc[frame.index > cut_time, ["open", "high", "low", "close"]] *= 1.37
        return frame

    data = {s: perturbed(f) for s, f in DATA.items()}
    base = tickstep.Backtest(DATA, Reads, cash=1e6).run().strategy
    moved = tickstep.Backtest(data, Reads, cash=1e6).run().strategy
    for symbol in DATA:
        # The symbol's bars up to the cut's time (BBB starts late: fewer of them).
        upto = int((DATA[symbol].index <= cut_time).sum())
        for k in range(upto):
            assert same(base.rows[symbol][k], moved.rows[symbol][k]), (symbol, k)
        if upto < len(DATA[symbol]):
            assert not same(base.rows[symbol][upto:], moved.rows[symbol][upto:]), symbol


def test_outside_next_values_are_refused_as_before():
    class Outside(tickstep.Strategy):
        def init(self):
            self.f = self.sma(3)
            with pytest.raises(UnknownSymbolError, match="no current symbol"):
                self.f.value  # noqa: B018
            self.errors = []
            self.ticks = 0

        def next(self, symbol):
            self.f.value  # noqa: B018

        def on_tick(self):
            self.ticks += 1
            for read in (lambda: self.f.value, lambda: self.f.prev):
                try:
                    read()
                except UnknownSymbolError as err:
                    self.errors.append(str(err))

    result = tickstep.Backtest(DATA, Outside, cash=1e6).run()
    s = result.strategy
    assert len(s.errors) == 2 * s.ticks
    assert all("no current symbol" in e for e in s.errors)
    with pytest.raises(tickstep.TickstepError, match="only usable inside"):
        s.f.value  # noqa: B018


def test_an_indicator_s_values_are_read_only():
    class Writes(tickstep.Strategy):
        def init(self):
            self.f = self.sma(3)
            self.refused = []

        def next(self, symbol):
            for attempt in (lambda: setattr(self.f, "value", 1.0), lambda: delattr(self.f, "prev")):
                with pytest.raises(AttributeError, match="read-only"):
                    attempt()
            self.refused.append(symbol)

    result = tickstep.Backtest(DATA, Writes, cash=1e6).run()
    assert len(result.strategy.refused) == sum(len(f) for f in DATA.values())


def test_a_reset_inside_next_shows_at_once():
    class Resets(tickstep.Strategy):
        def init(self):
            self.f = self.sma(3)
            self.rows = []

        def next(self, symbol):
            if symbol == "AAA" and len(self.data()) == 50:
                before = self.f.value
                self.f.reset("BBB")  # another symbol: the running one's values stay
                assert self.f.value == before
                self.f.reset()
                self.rows.append((before, self.f.value, self.f.prev, self.f.get()))

    result = tickstep.Backtest(DATA, Resets, cash=1e6).run()
    (before, value, prev, got), = result.strategy.rows
    assert before == before and np.isnan(value) and np.isnan(prev) and np.isnan(got)


# ---- sizing requests -------------------------------------------------------------------------


class Keeps:
    """A sizer keeping every request it is given, sizing 1 unit."""

    def __init__(self):
        self.requests = []

    def __call__(self, req):
        self.requests.append(req)
        return 1.0


class Sized(tickstep.Strategy):
    def init(self):
        self.expected = []

    def next(self, symbol):
        k = len(self.data())
        if k % 40 == 5:
            ctx = self._ctx
            args = (symbol, 1, self.price(), None, self.equity, self.cash, self.position_size(),
                    self.open_position_count, self.gross_exposure, ctx.pending_entry_count())
            self.expected.append(SizingRequest(*args))
            self.buy()
        elif k % 40 == 25:
            price, sl = self.price() * 1.01, self.price() * 1.05
            args = (symbol, -1, price, sl, self.equity, self.cash, self.position_size(),
                    self.open_position_count, self.gross_exposure, self._ctx.pending_entry_count())
            self.expected.append(SizingRequest(*args))
            self.sell(limit=price, sl=sl)


def test_the_core_s_sizing_request_is_the_dataclass_s():
    sizer = Keeps()
    result = tickstep.Backtest(DATA, Sized, cash=1e5, sizer=sizer).run()
    got, expected = sizer.requests, result.strategy.expected
    assert len(got) == len(expected) > 20
    for req, want in zip(got, expected):
        assert type(req) is SizingRequest
        assert req == want and hash(req) == hash(want) and repr(req) == repr(want)
        assert [type(v) for v in dataclasses.astuple(req)] == [type(v) for v in dataclasses.astuple(want)]
        with pytest.raises(dataclasses.FrozenInstanceError):
            req.price = 1.0  # type: ignore[misc]
    assert len({id(r) for r in got}) == len(got)  # each order its own request
    assert any(r.position != 0 for r in got) and any(r.stop_loss is not None for r in got)


def test_a_sizing_request_keeps_a_price_as_given():
    class Ask(tickstep.Strategy):
        def next(self, symbol):
            self.asked = (self.sizing_request(symbol, 1, price=101), self.sizing_request(symbol, -1))

    result = tickstep.Backtest(DATA, Ask, cash=1e5).run()
    given, latest = result.strategy.asked
    assert given.price == 101 and type(given.price) is int and given.side == 1
    assert latest.price == DATA["CCC"]["close"].iloc[-1] and latest.side == -1


# ---- self.position is the engine's -------------------------------------------------------------


@pytest.mark.parametrize("where", ["init", "next", "on_tick"])
def test_assigning_to_self_position_is_refused(where):
    class Shadows(tickstep.Strategy):
        def init(self):
            self.count = 0  # other attributes are set as usual
            if where == "init":
                self.position = 0

        def next(self, symbol):
            self.count += 1
            if where == "next":
                self.position = 1

        def on_tick(self):
            if where == "on_tick":
                self.position = self.position("AAA")

    with pytest.raises(AttributeError, match=r"cannot assign to Shadows\.position: it is the engine's"):
        tickstep.Backtest(DATA, Shadows, cash=1e6).run()


def test_deleting_self_position_or_a_parameter_named_position_is_refused():
    class Deletes(tickstep.Strategy):
        def next(self, symbol):
            del self.position

    with pytest.raises(AttributeError, match=r"cannot delete Deletes\.position"):
        tickstep.Backtest(DATA, Deletes, cash=1e6).run()

    class Named(tickstep.Strategy):
        position = 3  # a parameter by that name would hide the running position

        def next(self, symbol):
            pass

    with pytest.raises(AttributeError, match=r"cannot assign to Named\.position"):
        tickstep.Backtest(DATA, Named, cash=1e6).run(position=5)


def test_strategy_attributes_are_stored_and_read_as_usual():
    class Counts(tickstep.Strategy):
        def init(self):
            self.bars = {}

        def next(self, symbol):
            self.last = symbol
            self.bars[symbol] = self.bars.get(symbol, 0) + 1
            if symbol == "CCC":
                del self.last

    s = tickstep.Backtest(DATA, Counts, cash=1e6).run().strategy
    assert s.bars == {k: len(v) for k, v in DATA.items()}
    assert not hasattr(s, "last")  # CCC, the last symbol called at the last tick, deleted it


# ---- a position's truth value ----------------------------------------------------------------


def test_a_position_s_truth_is_its_size_read_live_and_refused_where_no_symbol_runs():
    """``bool(self.position)`` (read without pyo3's wrapper) is ``size != 0`` at every bar,
    for the running symbol's position and for named ones, also through ``__bool__``; where
    no symbol runs (``on_tick``, ``init``) and outside a run it raises as ``.size`` does."""

    class Truths(tickstep.Strategy):
        def init(self):
            self.rows = []
            self.refused = []
            try:
                bool(self.position)
            except UnknownSymbolError as err:
                self.refused.append(("init", str(err)))

        def next(self, symbol):
            p = self.position
            named = self.position(symbol)
            self.rows.append((bool(p), p.size != 0, bool(named), p.__bool__(), not p))
            if len(self.rows) % 9 == 0 and not p:
                self.buy(size=1)
            elif len(self.rows) % 9 == 0:
                self.close()

        def on_tick(self):
            try:
                bool(self.position)
            except UnknownSymbolError as err:
                if not self.refused or self.refused[-1][0] != "on_tick":
                    self.refused.append(("on_tick", str(err)))

    result = tickstep.Backtest(make_data(), Truths, cash=1e6).run()
    rows = result.strategy.rows
    assert len(rows) > 500 and len(result.trades) > 10
    assert all(truth == sized == named == dunder == (not negated) for truth, sized, named, dunder, negated in rows)
    assert any(truth for truth, *_ in rows) and not all(truth for truth, *_ in rows)
    assert [w for w, _ in result.strategy.refused] == ["init", "on_tick"]
    with pytest.raises(tickstep.TickstepError, match="only usable inside"):
        bool(result.strategy.position)


def test_the_base_class_leaves_a_strategy_room_for_its_own_attributes():
    # CPython 3.11 keeps at most 30 attributes of an instance in its fast layout (its
    # shared keys): past that, every `self.x` of the strategy reads a plain dict, which a
    # ranked portfolio's run measured 15% slower. The base class's own are 23 (24 when
    # streamed); what only some runs need lives on the class until set.
    import warnings

    class Bare(tickstep.Strategy):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = tickstep.Backtest(tickstep.data.example_daily(), Bare).run().strategy
        streamed = tickstep.Backtest(tickstep.data.example_daily(), Bare, stream="30D").run().strategy
    assert len(vars(whole)) <= 23, sorted(vars(whole))
    assert len(vars(streamed)) <= 24, sorted(vars(streamed))
