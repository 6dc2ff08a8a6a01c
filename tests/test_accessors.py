"""The strategy's hot accessors: symbols named by the object ``next`` received, by an equal
string or by a wrong one; one position and one history object per symbol for the run;
bars as snapshots; a crossover read in one call equal to the four reads it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def frame(closes, start="2024-01-02"):
    closes = np.asarray(closes, dtype=float)
    index = pd.date_range(start, periods=len(closes), freq="D", tz="UTC")
    return pd.DataFrame({"open": closes - 0.5, "high": closes + 1, "low": closes - 1,
                         "close": closes, "volume": np.arange(1.0, len(closes) + 1)}, index=index)


RNG = np.random.default_rng(3)
DATA = {
    "AAA": frame(100 + np.cumsum(RNG.normal(0, 1, 60))),
    "BBB": frame(50 + np.cumsum(RNG.normal(0, 1, 60))),
}


def run(strategy, data=DATA, **options):
    return tickstep.Backtest(data, strategy, cash=1e6, **options).run()


def test_a_symbol_is_found_by_its_own_name_by_an_equal_string_and_refused_when_unknown():
    class Names(tickstep.Strategy):
        def init(self):
            self.rows = []

        def next(self, symbol):
            if not self.position:
                self.buy(size=1 if symbol == "AAA" else 2)
            other = "BBB" if symbol == "AAA" else "AAA"
            copy = "".join(list(symbol))  # equal, not the same object
            assert copy is not symbol
            self.rows.append((symbol, self.position_size(symbol), self.position_size(copy),
                              self.position_size(), self.position_size(other),
                              self.price(symbol) == self.price(copy) == self.price()))

    result = run(Names)
    rows = result.strategy.rows
    held = {"AAA": 1.0, "BBB": 2.0}
    for k, (symbol, by_object, by_copy, running, other, same_price) in enumerate(rows):
        assert by_object == by_copy == running
        assert same_price
        if k >= 4:  # both bought on day 1, filled at day 2's open
            assert by_object == held[symbol]
            assert other == held["BBB" if symbol == "AAA" else "AAA"]

    class Wrong(tickstep.Strategy):
        def next(self, symbol):
            self.position_size(self.wrong)

        wrong = "AAB"

    with pytest.raises(tickstep.UnknownSymbolError, match=r"unknown symbol 'AAB'.*did you mean 'AA[AB]'"):
        run(Wrong)
    for bad in (True, 2.5, ("AAA",), 7):
        with pytest.raises(tickstep.UnknownSymbolError):
            run(type("Bad", (Wrong,), {"wrong": bad}))


def test_one_position_and_one_history_object_per_symbol_for_the_whole_run():
    class Same(tickstep.Strategy):
        def init(self):
            self.positions_seen, self.histories_seen, self.lengths = set(), set(), []
            self.kept = None

        def next(self, symbol):
            self.positions_seen.add((id(self.position), id(self.position(symbol))))
            history = self.data(count=3)
            self.histories_seen.add((symbol, id(history), id(self.data(symbol, count=3))))
            if self.kept is None:
                self.kept = self.data("AAA")  # read live at every later tick
            self.lengths.append((symbol, len(history), len(self.kept), len(self.data(symbol))))
            assert history.close[-1] == self.bar().close == self.price()
            assert history.ts[-1] == self.now

    result = run(Same)
    s = result.strategy
    assert len({p for p, _ in s.positions_seen}) == 1  # the running position
    assert len({q for _, q in s.positions_seen}) == 2  # one per symbol
    assert len({(sym, h) for sym, h, _ in s.histories_seen}) == 2
    counts = {"AAA": 0, "BBB": 0}
    for symbol, last3, kept, everything in s.lengths:
        counts[symbol] += 1
        assert last3 == min(3, counts[symbol])
        assert everything == counts[symbol]
        assert kept == counts["AAA"]  # never a bar past the current tick


def test_a_bar_is_a_snapshot_tuple_with_named_fields():
    class Bars(tickstep.Strategy):
        def init(self):
            self.first = None
            self.rows = []

        def next(self, symbol):
            bar = self.bar()
            if self.first is None:
                self.first = bar
            self.rows.append((symbol, tuple(bar), bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume))

    result = run(Bars)
    s = result.strategy
    assert isinstance(s.first, tuple) and len(s.first) == 6
    f = DATA["AAA"].iloc[0]
    assert tuple(s.first) == (DATA["AAA"].index[0].value, f.open, f.high, f.low, f.close, f.volume)
    assert s.first == tuple(s.first)  # unchanged after the run: a snapshot, not a live view
    seen = {"AAA": 0, "BBB": 0}
    for symbol, values, *fields in s.rows:
        row = DATA[symbol].iloc[seen[symbol]]
        seen[symbol] += 1
        assert values == tuple(fields) == (DATA[symbol].index[seen[symbol] - 1].value, row.open,
                                           row.high, row.low, row.close, row.volume)


def test_crossed_above_and_below_equal_the_four_reads_they_replace():
    class Cross(tickstep.Strategy):
        def init(self):
            self.fast, self.slow = self.sma(3), self.ema(7)
            self.checked = self.crossings = 0

        def next(self, symbol):
            f, s = self.fast, self.slow
            above = f.prev <= s.prev and f.value > s.value
            below = f.prev >= s.prev and f.value < s.value
            assert f.crossed_above(s) is above
            assert f.crossed_below(s) is below
            assert f.crossed_above(s, "AAA") is (f.previous("AAA") <= s.previous("AAA") and f.get("AAA") > s.get("AAA"))
            level = 100.0
            assert f.crossed_above(level) is (f.prev <= level and f.value > level)
            assert f.crossed_below(level) is (f.prev >= level and f.value < level)
            self.checked += 1
            self.crossings += above or below

    result = run(Cross)
    assert result.strategy.checked == 120
    assert result.strategy.crossings > 3  # the data does cross


def test_self_I_reads_each_value_at_its_own_bar_only():
    class Series(tickstep.Strategy):
        def init(self):
            self.mean = self.I(lambda s: s.rolling(4).mean(), source="high")
            self.rows = []

        def next(self, symbol):
            self.rows.append((symbol, len(self.data()), self.mean.value, self.mean.prev))

    result = run(Series)
    for symbol, n, value, prev in result.strategy.rows:
        expected = DATA[symbol]["high"].rolling(4).mean().to_numpy()
        np.testing.assert_equal(value, expected[n - 1])
        np.testing.assert_equal(prev, expected[n - 2] if n >= 2 else np.nan)


def test_accessors_read_the_same_in_a_streamed_run():
    class Reads(tickstep.Strategy):
        def init(self):
            self.fast = self.sma(3)
            self.rows = []

        def next(self, symbol):
            bar = self.bar()
            self.rows.append((symbol, bar.time, bar.close, tuple(bar), len(self.data(count=5)),
                              self.data(count=2).close.tolist(), repr(self.fast.value),
                              self.fast.crossed_above(100.0), self.position(symbol).size))
            if len(self.rows) % 7 == 0:
                self.buy(size=1)
            elif self.position and len(self.rows) % 5 == 0:
                self.position.close()

    whole = run(Reads)
    streamed = tickstep.Backtest(DATA, Reads, cash=1e6, stream="5D", history=10).run()
    assert streamed.strategy.rows == whole.strategy.rows
    assert len(whole.trades) > 0 and streamed.trades.equals(whole.trades)
