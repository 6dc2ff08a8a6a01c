"""backtesting.py's idioms, as a strategy ported from it writes them: ``self.data.Close``
handed to ``self.I`` in ``init``, ``self.data.Close[-1]`` and ``self.sma1[-1]`` in
``next``, ``backtesting.lib.crossover`` on indicators, and ``next(self)`` without the
symbol.

The quick-start strategy of backtesting.py's documentation, one class body for both
libraries, must trade as backtesting.py trades it; the idioms must read what tickstep's
own forms read; what cannot mean anything is refused.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import ClassVar

import backtesting.lib
import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.lib
from backtesting import Backtest as ReferenceBacktest
from backtesting import Strategy as ReferenceStrategy
from backtesting.lib import crossover
from conftest import walk
from tickstep.data import example_daily


def SMA(values, n):  # noqa: N802 (backtesting.py's spelling)
    return pd.Series(values).rolling(n).mean()


def quick_start(base, close_first: bool = True, size: float | None = 10):  # type: ignore[no-untyped-def]
    """backtesting.py's quick-start strategy, as its documentation writes it, on ``base``:
    the position closed before each order, or (``close_first=False``) as its README
    writes it, run with ``exclusive_orders=True``, which closes it. Its orders are of
    ``size`` units, or (None) of its library's default size: backtesting.py's all of the
    liquidity at the fill, tickstep's sizer."""
    sized = {} if size is None else {"size": size}

    class SmaCross(base):  # type: ignore[misc, valid-type]
        n1 = 10
        n2 = 20

        def init(self):  # type: ignore[no-untyped-def]
            close = self.data.Close
            self.sma1 = self.I(SMA, close, self.n1)
            self.sma2 = self.I(SMA, close, self.n2)

        def next(self):  # type: ignore[no-untyped-def]
            if crossover(self.sma1, self.sma2):
                if close_first:
                    self.position.close()
                self.buy(**sized)
            elif crossover(self.sma2, self.sma1):
                if close_first:
                    self.position.close()
                self.sell(**sized)

    return SmaCross


def frame(seed: int, n: int) -> pd.DataFrame:
    bars = walk(seed, n, 1)
    index = pd.date_range("2020-01-01", periods=n, freq="D")
    return pd.DataFrame({c.capitalize(): bars[c][:, 0] for c in ("open", "high", "low", "close")}
                        | {"Volume": 1_000.0}, index=index)


def assert_trades_as_backtesting_py_trades(ours, theirs, least: int) -> None:  # type: ignore[no-untyped-def]
    """Every trade of tickstep's result `ours` equal to backtesting.py's `theirs` (at
    least `least` of them): side and size, prices, times, net P&L; and the final equity
    (an open position marked at the last close in both)."""
    ref = theirs._trades
    assert len(ref) >= least
    assert len(ours.trades) == len(ref)
    for (_, t), (_, r) in zip(ours.trades.iterrows(), ref.iterrows()):
        assert (1 if t["side"] == "long" else -1) * t["size"] == r["Size"]
        assert t["entry_price"] == pytest.approx(r["EntryPrice"], rel=1e-12)
        assert t["exit_price"] == pytest.approx(r["ExitPrice"], rel=1e-12)
        assert t["entry_time"].tz_localize(None) == r["EntryTime"]
        assert t["exit_time"].tz_localize(None) == r["ExitTime"]
        assert t["pnl"] == pytest.approx(r["PnL"], rel=1e-9)  # net of both commissions
    assert ours.stats["Equity Final [$]"] == pytest.approx(theirs["Equity Final [$]"], rel=1e-12)


def run_both(make, data: pd.DataFrame, **options):  # type: ignore[no-untyped-def]
    """``make(base)`` run by tickstep and by backtesting.py on ``data`` with the same
    options (cash 100,000 unless given): (ours, theirs)."""
    options = {"cash": 100_000, **options}
    ours = tickstep.Backtest(data, make(tickstep.Strategy), **options).run()
    theirs = ReferenceBacktest(data, make(ReferenceStrategy), **options).run()
    return ours, theirs


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_the_quick_start_trades_as_backtesting_py_trades_it(seed):
    ours, theirs = run_both(quick_start, frame(seed, 400), commission=0.002)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=11)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("close_first", [True, False])
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_the_quick_start_without_sizes_trades_as_backtesting_py_with_the_sizer_at_the_fill(
        seed, close_first):
    # backtesting.py's `self.buy()` spends all of the liquidity at the fill (its default
    # size is the float just below 1), in whole units: tickstep's
    # `PercentOfEquity(1.0, lot_size=1, at="fill")`. Each order reverses the position,
    # closed first (by `position.close()` or `exclusive_orders`): sized on the cash after
    # the close, in both.
    data = frame(seed, 400)
    options = {"cash": 100_000, "commission": 0.002, "exclusive_orders": not close_first}
    make = functools.partial(quick_start, close_first=close_first, size=None)
    ours = tickstep.Backtest(data, make(tickstep.Strategy), **options,
                             sizer=tickstep.PercentOfEquity(1.0, lot_size=1, at="fill")).run()
    theirs = ReferenceBacktest(data, make(ReferenceStrategy), **options).run()
    assert_trades_as_backtesting_py_trades(ours, theirs, least=11)
    # Sized at placement (at the close before the fill), the units differ.
    placed = tickstep.Backtest(data, make(tickstep.Strategy), **options,
                               sizer=tickstep.PercentOfEquity(1.0, lot_size=1)).run()
    assert list(placed.trades["size"]) != list(ours.trades["size"])


def charted(base):  # type: ignore[no-untyped-def]
    """The quick-start with backtesting.py's chart options on its indicators."""

    class Charted(quick_start(base)):  # type: ignore[misc]
        def init(self):  # type: ignore[no-untyped-def]
            close = self.data.Close
            self.sma1 = self.I(SMA, close, self.n1, name="fast", overlay=True, color="red")
            self.sma2 = self.I(SMA, close, self.n2, plot=False, scatter=False, overlay=None,
                               color=None)

    return Charted


@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_chart_options_of_self_I_are_taken_as_backtesting_py_takes_them():
    # Not handed to the function (SMA takes none of them): the strategy runs as written
    # and trades as backtesting.py trades it.
    ours, theirs = run_both(charted, frame(5, 400), commission=0.002)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=11)


@pytest.mark.parametrize(("option", "value", "rule"), [
    ("plot", "yes", "True or False"), ("scatter", 1, "True or False"),
    ("overlay", "price", "True, False or None"), ("color", 3, "a colour name"),
    ("color", ["red", 2], "a colour name"),
])
def test_chart_options_of_the_wrong_type_are_refused_by_name(option, value, rule):
    class Bad(tickstep.Strategy):
        def init(self):  # type: ignore[no-untyped-def]
            self.I(SMA, self.data.Close, 5, **{option: value})

    with pytest.raises(tickstep.ConfigError, match=rf"self.I\({option}=.*{rule}"):
        tickstep.Backtest(frame(1, 50), Bad).run()


class Reads(tickstep.Strategy):
    """At each symbol's bar, backtesting.py's reads beside tickstep's own."""

    def init(self):
        self.log = []

    def next(self, symbol):
        self.log.append((symbol, self.data.Close[-1], self.price(), self.data.High[-3:].copy(),
                         self.data(count=3).high.copy(), len(self.data), len(self.data(symbol)),
                         self.data.Volume[-1], self.bar().volume, self.data.index[-1], self.time))


def test_the_running_symbols_bars_read_by_backtesting_py_names():
    market = example_daily()
    result = tickstep.Backtest(market, Reads, cash=10_000).run()
    log = result.strategy.log
    seen: dict[str, int] = {}
    for symbol, close, price, highs, last_highs, n, n_named, volume, bar_volume, at, now in log:
        seen[symbol] = seen.get(symbol, 0) + 1
        assert close == price
        np.testing.assert_array_equal(highs, last_highs)
        assert n == n_named == seen[symbol]  # the bars so far, this one included
        assert volume == bar_volume
        assert at == now
    assert len(seen) == len(market.symbols) > 1


def test_self_data_df_is_the_bars_so_far_as_backtesting_pys():
    # backtesting.py's self.data.df at every bar, beside tickstep's, on one frame with an
    # extra column: the same rows, columns and values (times as UTC here).
    data = frame(3, 60)
    data["signal"] = np.arange(len(data)) % 4 - 1.5

    def reading(base):  # type: ignore[no-untyped-def]
        class ReadsFrame(base):  # type: ignore[misc, valid-type]
            def init(self):  # type: ignore[no-untyped-def]
                self.frames = []

            def next(self):  # type: ignore[no-untyped-def]
                self.frames.append(self.data.df)

        return ReadsFrame

    ours = tickstep.Backtest(data, reading(tickstep.Strategy), cash=10_000).run().strategy.frames
    theirs = ReferenceBacktest(data, reading(ReferenceStrategy), cash=10_000).run()["_strategy"].frames
    assert len(ours) == len(data) and len(theirs) >= len(data) - 2
    by_rows = {len(f): f for f in ours}
    for reference in theirs:
        mine = by_rows[len(reference)]
        expected = reference.set_axis(reference.index.tz_localize("UTC").as_unit("ns"))
        pd.testing.assert_frame_equal(mine, expected, check_freq=False, check_names=False)
    assert list(ours[-1].columns) == ["Open", "High", "Low", "Close", "Volume", "signal"]


def marks(base):  # type: ignore[no-untyped-def]
    """Adds to a long position every 9 bars and closes it every 31, recording at each bar
    the position's ``pl`` and ``pl_pct`` and each open trade's ``pl`` and ``pl_pct``."""

    class Marks(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            self.seen = {}

        def next(self):  # type: ignore[no-untyped-def]
            bar = len(self.data)
            self.seen[bar] = (self.position.pl, self.position.pl_pct,
                              [x for t in self.trades for x in (t.pl, t.pl_pct)])
            if bar % 31 == 0:
                self.position.close()
            elif bar % 9 == 0:
                self.buy(size=7)

    return Marks


@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_a_position_and_its_trades_mark_their_profit_as_backtesting_py_does():
    """``position.pl_pct`` is in percent, a trade's ``pl_pct`` a fraction, both net of
    commissions, as backtesting.py's (a port comparing ``pl_pct < -5`` means 5% there)."""
    ours, theirs = run_both(marks, frame(3, 300), commission=0.002)
    mine, reference = ours.strategy.seen, theirs["_strategy"].seen
    compared = [bar for bar in reference if bar in mine and reference[bar][2]]
    assert len(compared) > 150
    for bar in compared:
        (pl, pct, trades), (want_pl, want_pct, want_trades) = mine[bar], reference[bar]
        assert pl == pytest.approx(want_pl, rel=1e-9)
        assert pct == pytest.approx(want_pct, rel=1e-9) and abs(want_pct) > 1e-3
        assert trades == pytest.approx(want_trades, rel=1e-9)
    assert max(abs(mine[bar][1]) for bar in compared) > 1  # percent, not a fraction


def leveraged(base):  # type: ignore[no-untyped-def]
    """Every 12 bars three entries, each closed 3 bars on: of about 0.8x the equity in
    units, of 1.5x and of 2.6x (beyond 2:1). With a required margin of 0.5 the first two
    fill and the third is refused; with 1 the first alone fills."""

    class Leveraged(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            pass

        def next(self):  # type: ignore[no-untyped-def]
            bar = len(self.data)
            if bar % 4 == 0 and not self.position:
                times = {0: 0.8, 4: 1.5, 8: 2.6}[bar % 12]
                self.buy(size=int(times * self.equity / self.data.Close[-1]))
            elif bar % 4 == 3:
                self.position.close()

    return Leveraged


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.parametrize("options", [{"margin": 0.5}, {"margin": 1.0}, {"commission": (3.0, 0.002)},
                                     {"margin": 0.5, "commission": (1.0, 0.001)}],
                         ids=["margin 0.5", "margin 1", "commission pair", "both"])
def test_backtesting_py_s_margin_and_commission_pair_mean_what_they_mean_there(options):
    """``margin=m`` is leverage 1 / m and ``commission=(fixed, relative)`` a fixed amount
    and a fraction per fill, as backtesting.py's ``Backtest`` takes them: the same trades,
    and the same entries refused for want of margin (each warned of by both)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ours, theirs = run_both(leveraged, frame(4, 400), **options)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=20)
    cancelled = sum("canceled the order due to insufficient margin" in str(w.message) for w in seen)
    assert cancelled > 20
    assert (ours.orders["status"] == "rejected").sum() == cancelled
    assert sum("rejected (" in str(w.message) for w in seen) == 1  # tickstep's, once for the run
    entries = (ours.trades["size"] * ours.trades["entry_price"]).to_numpy()
    equity = ours.equity.reindex(ours.trades["entry_time"]).to_numpy()
    levered = entries > 1.2 * equity
    assert levered.any() if options.get("margin") == 0.5 else not levered.any()
    if "commission" in options:
        fixed, relative = options["commission"]
        fills = ours.fills
        np.testing.assert_allclose(fills["commission"], fixed + relative * fills["size"].abs() * fills["price"],
                                   rtol=1e-12)


def test_backtesting_py_s_terms_are_refused_in_other_shapes_and_beside_tickstep_s():
    data = frame(0, 50)
    for options, message in (
            ({"margin": 0}, r"margin=0: backtesting.py's required margin ratio is in \(0, 1\]"),
            ({"margin": 2}, r"margin=2: .*in \(0, 1\]"),
            ({"margin": True}, r"margin=True: "),
            ({"margin": 0.5, "leverage": 2}, r"margin= and leverage=: give one"),
            ({"commission": (1.0, 0.1, 2)}, r"commission=\(1.0, 0.1, 2\): backtesting.py's pair is \(fixed, relative\)"),
            ({"commission": (1.0, 0.1), "commission_fixed": 1}, r"give the fixed part once"),
            ({"commission": lambda size, price: 1.0}, r"a commission function is not taken"),
            ({"commission": (-1.0, 0.1)}, r"commission_fixed"),
            ({"commission": (1.0, 1.5)}, r"commission"),
            ({"commission": (0.0, -0.0005)}, r"commission=-0.0005: .*commission_maker="),
            ({"spread": 0.001}, r"spread=: not an option; backtesting.py's spread= .* slippage="),
            ({"hedging": True}, r"hedging=: not an option; .* one net size per symbol"),
            ({"finalize_trades": True}, r"finalize_trades=: not an option; .* result.positions")):
        with pytest.raises(tickstep.ConfigError, match=message):
            tickstep.Backtest(data, tickstep.Strategy, cash=1_000, **options)


def test_init_columns_stand_for_each_symbols_columns_in_self_I():
    def spread(high, low, n):
        return (high - low).rolling(n).mean()

    def spread_of_frame(df, n):
        return (df["high"] - df["low"]).rolling(n).mean()

    class Both(tickstep.Strategy):
        def init(self):
            self.a = self.I(spread, self.data.High, self.data.Low, 5)
            self.b = self.I(spread_of_frame, 5, source=None)
            self.c = self.I(spread, low=self.data.Low, high=self.data["High"], n=5)
            self.d = self.I(SMA, self.data.close, 7)   # tickstep's spelling reads the same
            self.e = self.I(SMA, 7)
            self.rows = []

        def next(self, symbol):
            # The symbol's own last five ranges, by numpy (nothing before five bars).
            last = self.data(count=5)
            by_hand = np.mean(last.high - last.low) if len(self.data) >= 5 else np.nan
            self.rows.append((self.a.value, self.b.value, self.c.value, by_hand,
                              self.d.value, self.e.value))

    result = tickstep.Backtest(example_daily(), Both, cash=10_000).run()
    rows = np.array(result.strategy.rows)
    assert np.isfinite(rows[:, 0]).sum() > 100
    np.testing.assert_array_equal(rows[:, 0], rows[:, 1])
    np.testing.assert_array_equal(rows[:, 2], rows[:, 1])
    np.testing.assert_allclose(rows[:, 0], rows[:, 3], rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(rows[:, 4], rows[:, 5])


def series_forms(base):  # type: ignore[no-untyped-def]
    """The quick-start's two means handed backtesting.py's other forms of the data in
    ``init()``: the column as a Series (``self.data.Close.s``) and the whole bars
    (``self.data.df``)."""

    class SeriesForms(quick_start(base)):  # type: ignore[misc]
        def init(self):  # type: ignore[no-untyped-def]
            self.sma1 = self.I(lambda s, n: s.rolling(n).mean(), self.data.Close.s, self.n1)
            self.sma2 = self.I(lambda df, n: df.Close.rolling(n).mean(), self.data.df, self.n2)

    return SeriesForms


def made_series(base):  # type: ignore[no-untyped-def]
    """The quick-start's means of the closes made a Series by the strategy, as
    backtesting.py's users write it: ``self.I(f, pd.Series(self.data.Close), n)``."""

    class MadeSeries(quick_start(base)):  # type: ignore[misc]
        def init(self):  # type: ignore[no-untyped-def]
            close = pd.Series(self.data.Close)
            self.sma1 = self.I(lambda s, n: s.rolling(n).mean(), close, n=self.n1)
            self.sma2 = self.I(lambda s, n: s.rolling(n).mean(), close, self.n2)

    return MadeSeries


@pytest.mark.parametrize("make", [series_forms, made_series])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_self_I_takes_the_column_as_a_series_and_the_whole_bars_as_backtesting_py_does(make, seed):
    ours, theirs = run_both(make, frame(seed, 400), commission=0.002)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=11)


def test_the_whole_bars_in_init_are_each_symbols_with_backtesting_pys_names():
    market = example_daily()
    seen = {}

    class Frames(tickstep.Strategy):
        def init(self):  # type: ignore[no-untyped-def]
            def keep(bars):  # type: ignore[no-untyped-def]
                seen[len(seen)] = bars
                return bars.Close

            self.close = self.I(keep, self.data.df)

    result = tickstep.Backtest(market, Frames).run()
    assert len(seen) == len(market.symbols)
    for k, symbol in enumerate(result.symbols):
        bars = seen[k]
        assert list(bars.columns[:5]) == ["Open", "High", "Low", "Close", "Volume"]
        assert bars["Close"].tolist() == result.prices(symbol).tolist()


def test_an_extra_column_named_in_init():
    frame = example_daily_frame()
    frame["signal"] = np.arange(len(frame), dtype=float)

    class Extra(tickstep.Strategy):
        def init(self):
            self.x = self.I(lambda s: s * 2, self.data.signal)
            self.seen = []

        def next(self, symbol):
            self.seen.append((self.x.value, self.data.signal[-1] * 2))

    seen = tickstep.Backtest(frame, Extra, cash=1_000).run().strategy.seen
    assert len(seen) == len(frame)
    assert all(x == y for x, y in seen)


def example_daily_frame() -> pd.DataFrame:
    return frame(3, 60)


def test_next_without_the_symbol_runs_as_next_with_it():
    class WithSymbol(tickstep.Strategy):
        def init(self):
            self.fast, self.slow = self.sma(5), self.sma(15)

        def next(self, symbol):
            if self.fast.value > self.slow.value and not self.position:
                self.buy(size=3)
            elif self.fast.value < self.slow.value and self.position:
                self.position.close()

    class WithoutSymbol(WithSymbol):
        def next(self):
            if self.fast.value > self.slow.value and not self.position:
                self.buy(size=3)
            elif self.fast.value < self.slow.value and self.position:
                self.position.close()

    market = example_daily()
    for options in ({}, {"trade_start": "2020-03-02"}):  # (and after a warm-up)
        one = tickstep.Backtest(market, WithSymbol, cash=100_000, **options).run()
        other = tickstep.Backtest(market, WithoutSymbol, cash=100_000, **options).run()
        assert len(one.fills) > 20 and one.trades["symbol"].nunique() > 1
        pd.testing.assert_frame_equal(one.fills, other.fills)
        pd.testing.assert_series_equal(one.equity, other.equity)
    assert one.fills["time"].min() > pd.Timestamp("2020-03-02", tz="UTC")


def test_what_cannot_mean_anything_is_refused():
    def run(init=None, on_tick=None, **params):  # type: ignore[no-untyped-def]
        body = {"init": init or (lambda self: None)}
        if on_tick is not None:
            body["on_tick"] = on_tick
        body.update(params)
        return tickstep.Backtest(example_daily(), type("S", (tickstep.Strategy,), body), cash=1_000).run()

    with pytest.raises(AttributeError, match=r"self\.data\.Clos: the data has no column 'Clos'.*did you mean 'Close'"):
        run(lambda self: self.data.Clos)
    for use, read in (("read as an array", np.asarray), ("its length", len), ("[-1]", lambda c: c[-1]),
                      (".values", lambda c: c.values), (".mean", np.mean)):
        with pytest.raises(TypeError, match=rf"self\.data\.Close \(each symbol's 'close' column, for self\.I\) "
                                            rf"is no array in init\(\) \({re.escape(use)}\): hand it to self\.I"):
            run(lambda self, read=read: read(self.data.Close))
    with pytest.raises(tickstep.ConfigError, match=r"self\.I\(source='high'\) with self\.data\.Close .*name the columns one way"):
        run(lambda self: self.I(SMA, self.data.Close, 5, source="high"))
    with pytest.raises(tickstep.UnknownSymbolError, match=r"len\(self\.data\) in init\(\): no symbol is running"):
        run(lambda self: len(self.data))
    # In on_tick no symbol is running either: name one, as with self.position.
    with pytest.raises(tickstep.UnknownSymbolError, match="no current symbol here"):
        run(on_tick=lambda self: self.data.Close)


def test_a_parameter_named_data_keeps_its_value():
    class Named(tickstep.Strategy):
        data = 3

        def init(self):
            self.seen = self.data

    assert tickstep.Backtest(example_daily(), Named, cash=1_000).run(data=5).strategy.seen == 5

    class Own(tickstep.Strategy):
        def data(self, n):  # a helper of the strategy's own, as it could have before
            return n * 2

        def init(self):
            self.seen = self.data(4)

    assert tickstep.Backtest(example_daily(), Own, cash=1_000).run().strategy.seen == 8


def test_calling_self_data_gives_one_view_per_symbol_and_count_and_names_what_is_wrong():
    errors: list[str] = []

    class Calls(tickstep.Strategy):
        def next(self, symbol):
            assert self.data(count=3) is self.data(None, 3)
            assert self.data(symbol) is self.data(symbol=symbol)
            # The same view however the call is written (the interpreter calls the core in
            # two ways: the arguments where they lie, or as a tuple and a dictionary).
            kw = {"count": 3}
            assert self.data(**kw) is self.data(count=3)
            other = self.symbols[-1]
            np.testing.assert_array_equal(self.data(other, count=2).close, self.data(other).close[-2:])
            if errors:
                return
            for call in (lambda: self.data(symbol, 3, 4), lambda: self.data(cnt=3),
                         lambda: self.data(symbol, symbol=symbol), lambda: self.data(count=-1),
                         lambda: self.data("NOPE"), lambda: self.data(count=[1]),
                         lambda: self.data(**{"cnt": 3}), lambda: self.data(count=3)(count=2)):
                try:
                    call()
                    errors.append("no error")
                except Exception as error:  # noqa: BLE001 (each is looked at below)
                    errors.append(f"{type(error).__name__}: {error}")

    tickstep.Backtest(example_daily(), Calls, cash=1_000).run()
    assert errors[0] == "TypeError: self.data(symbol=None, count=None) takes at most 2 arguments (3 given)"
    assert errors[1] == "TypeError: self.data(symbol=None, count=None) got an unexpected argument cnt"
    assert errors[2] == "TypeError: self.data(symbol=None, count=None) got symbol twice"
    assert errors[3] == "ConfigError: data(count=-1): count must be a whole number of bars >= 0"
    assert errors[4].startswith("UnknownSymbolError: \"unknown symbol 'NOPE'")
    assert errors[5] == "ConfigError: data(count=[1]): count must be a whole number of bars >= 0"
    assert errors[6].startswith("TypeError: ") and "cnt" in errors[6]
    assert errors[7].startswith("TypeError: only self.data is called")


def test_a_streamed_run_calls_next_without_the_symbol_and_reads_self_data_alike():
    import tickstep.data as td

    class Window(tickstep.Strategy):
        def init(self):
            self.f = self.sma(5)

        def next(self):
            closes = self.data(count=10).Close  # (a streamed run keeps `history` bars)
            if len(closes) == 10 and not self.position and closes[-1] > closes.mean():
                self.buy(size=1)
            elif self.position and self.f.value > closes[-1]:
                self.position.close()

    store = td.Store()
    store.ingest(td.sample(symbols=3, days=3, seed=5))
    whole = tickstep.Backtest(store, Window, cash=10_000).run()
    streamed = tickstep.Backtest(store, Window, cash=10_000, stream="45min", history=20).run()
    assert len(whole.fills) > 10
    pd.testing.assert_frame_equal(whole.fills, streamed.fills, check_exact=True)
    pd.testing.assert_series_equal(whole.equity, streamed.equity, check_exact=True)


def test_a_finished_run_leaves_no_strategy_behind():
    # self.data refers to its strategy and the strategy to it: the collector must see
    # the whole cycle, or every run of an optimize would stay in memory.
    import gc
    import weakref

    made = []

    class Reads(tickstep.Strategy):
        def init(self):
            made.append(weakref.ref(self))

        def next(self, symbol):
            self.last = self.data(count=3).close

    result = tickstep.Backtest(example_daily(), Reads, cash=1_000).run()
    assert made[0]() is result.strategy
    del result
    gc.collect()
    assert made[0]() is None


def test_an_indicator_reads_its_value_and_the_one_before_as_backtesting_py_slices():
    class Sliced(tickstep.Strategy):
        def init(self):
            self.engine = self.ema(4)
            self.series = self.I(SMA, self.data.Close, 6)
            self.rows = []
            self.refused = []

        def next(self, symbol):
            self.rows.append([self.engine[-1], self.engine.value, self.engine[-2], self.engine.prev,
                              self.series[np.int64(-1)], self.series.value, self.series[-2],
                              self.series.prev])
            if not self.refused:
                for index in (-3, 0, 1, -1.0, True, "x", slice(-3, None)):
                    try:
                        self.engine[index]
                        self.refused.append(f"{index!r}: no error")
                    except (IndexError, TypeError) as error:
                        self.refused.append(f"{type(error).__name__}: {error}")
                try:
                    list(self.series)
                except TypeError as error:
                    self.refused.append(str(error))

    strategy = tickstep.Backtest(example_daily(), Sliced, cash=1_000).run().strategy
    rows = np.array(strategy.rows)
    assert np.isfinite(rows).all(axis=1).sum() > 100
    for k in (0, 2, 4, 6):
        np.testing.assert_array_equal(rows[:, k], rows[:, k + 1])
    name = "Indicator(ema(4, close))"
    keeps = ("this rolling statistic keeps its latest 2 values ([-1] to [-2], or a slice [-m:] of "
             "them; get(ago=0) to get(ago=1)); declare it with lookback=n to read n values back, "
             "or use self.I, whose indicators keep every bar's")
    whole = "indices are whole numbers ([-1] is .value, [-2] .prev) or slices"
    assert strategy.refused == [
        f"IndexError: {name}[-3]: {keeps}", f"IndexError: {name}[0]: {keeps}",
        f"IndexError: {name}[1]: {keeps}", f"TypeError: {name}[-1.0]: {whole}",
        f"TypeError: {name}[True]: {whole}", f"TypeError: {name}['x']: {whole}",
        f"IndexError: {name}[slice(-3, None, None)]: {keeps}",
        "'Indicator' object is not iterable",
    ]


def test_an_indicator_of_self_I_reads_any_bar_so_far_as_backtesting_py_arrays_do():
    """Inside ``next`` an indicator of ``self.I`` is, as backtesting.py's array cut at the
    current bar, readable at any bar so far: ``[-k]``, ``[k]`` and slices, each equal to
    the pandas rolling mean cut at that bar; NaN before the symbol's first bar (as ``[-2]``
    is at it); a bar not reached yet refused (no look-ahead), on every symbol."""
    keys = (-1, -2, -3, -7, -40, 0, 3, slice(-5, None), slice(None, 4), slice(-9, -2, 3),
            slice(None, None, -4), slice(2, 2))

    class Looks(tickstep.Strategy):
        def init(self):
            self.mean = self.I(SMA, self.data.Close, 6)
            self.seen = {s: [] for s in self.symbols}
            self.ahead = []

        def next(self, symbol):
            bars = len(self.data)
            self.seen[symbol].append([self.mean[k] for k in keys if not isinstance(k, int) or k < bars])
            try:
                self.mean[bars]
                self.ahead.append("no error")
            except IndexError as error:
                self.ahead.append(str(error))

    a, b = frame(1, 60), frame(2, 45)
    result = tickstep.Backtest({"A": a, "B": b}, Looks, cash=1_000).run()
    strategy = result.strategy
    for symbol, bars in (("A", a), ("B", b)):
        mean = bars["Close"].rolling(6).mean().to_numpy()
        assert len(strategy.seen[symbol]) == len(bars)
        for i, reads in enumerate(strategy.seen[symbol]):
            so_far = mean[: i + 1]
            expected = [so_far[k] if isinstance(k, slice) or -len(so_far) <= k else np.nan
                        for k in keys if not isinstance(k, int) or k < i + 1]
            assert len(reads) == len(expected)
            for got, want in zip(reads, expected):
                if isinstance(want, np.ndarray):
                    np.testing.assert_array_equal(got, want)
                else:
                    np.testing.assert_equal(got, want)
    assert strategy.ahead[0] == ("Indicator(SMA)[1]: the symbol's bar 1 is not reached yet (its "
                                 "latest is bar 0): an indicator shows no value ahead of its bar")
    assert len(strategy.ahead) == len(a) + len(b)
    assert all(m.startswith("Indicator(SMA)[") and "not reached yet" in m for m in strategy.ahead)


def test_an_indicators_length_is_the_bars_so_far_as_backtesting_pys_array_is():
    """``len(indicator)`` inside ``next`` is the running symbol's bars so far, as the
    length of backtesting.py's array cut at the current bar: the same as backtesting.py's
    at every bar it calls ``next`` on, for an indicator of ``self.I`` and an engine
    statistic alike, on two symbols of different lengths; refused where no symbol runs."""

    def lengths(base):  # type: ignore[no-untyped-def]
        class Lengths(base):  # type: ignore[misc, valid-type]
            def init(self):  # type: ignore[no-untyped-def]
                self.mean = self.I(SMA, self.data.Close, 5)
                self.seen = []

            def next(self):  # type: ignore[no-untyped-def]
                self.seen.append((len(self.data), len(self.mean)))

        return Lengths

    class Both(lengths(tickstep.Strategy)):
        def init(self):
            super().init()
            self.sma5 = self.sma(5)
            self.refused = []

        def next(self, symbol):
            super().next()
            assert len(self.sma5) == len(self.mean)

        def on_tick(self):
            assert self.sma5 and self.mean  # an object's truth, as before it had a length
            try:
                len(self.sma5)
            except tickstep.StateError as error:
                self.refused.append(str(error))

    a, b = frame(1, 60), frame(2, 45)
    ours = tickstep.Backtest({"A": a, "B": b}, Both, cash=1_000).run().strategy
    theirs = ReferenceBacktest(a, lengths(ReferenceStrategy), cash=1_000).run()._strategy
    assert sorted(ours.seen) == sorted([(n, n) for n in range(1, 61)] + [(n, n) for n in range(1, 46)])
    assert theirs.seen and set(theirs.seen) <= set(ours.seen)  # from after its warm-up
    assert ours.refused[0] == ("len(Indicator(mean(5, close))) is the running symbol's bars so far, and no "
                               "symbol runs here (init() or on_tick()): read len(self.data(symbol))")
    assert len(ours.refused) == 60


def lookback(base):  # type: ignore[no-untyped-def]
    """A trend entry reading an indicator three bars back and a slice of it, one class body
    for both libraries."""

    class Lookback(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            self.mean = self.I(SMA, self.data.Close, 8)

        def next(self):  # type: ignore[no-untyped-def]
            rising = self.mean[-1] > self.mean[-3] and self.mean[-5:].min() == self.mean[-5]
            if not self.position and rising and self.data.Close[-1] > self.mean[-1]:
                self.buy(size=7)
            elif self.position and self.data.Close[-1] < self.mean[-2]:
                self.position.close()

    return Lookback


def bands(values, n):  # (upper, lower): two lines, as backtesting.py indicators may return
    close = pd.Series(values)
    mean, spread = close.rolling(n).mean(), 2 * close.rolling(n).std()
    return mean + spread, mean - spread


def band_reversion(base):  # type: ignore[no-untyped-def]
    """A mean reversion on two-line Bollinger bands, one class body for both libraries:
    in when the close crosses below the lower band, out when it crosses above the upper.
    (A cross reads the bar before too: backtesting.py calls ``next`` from the bar after
    the indicators' first values, and a cross cannot happen at that first one.)"""

    class Bands(base):  # type: ignore[misc, valid-type]
        n = 15

        def init(self):  # type: ignore[no-untyped-def]
            self.upper, self.lower = self.I(bands, self.data.Close, self.n)

        def next(self):  # type: ignore[no-untyped-def]
            if len(self.data) < 2:  # (tickstep calls next from the first bar on)
                return
            close, before = self.data.Close[-1], self.data.Close[-2]
            if not self.position and close < self.lower[-1] and before >= self.lower[-2]:
                self.buy(size=5)
            elif self.position and close > self.upper[-1] and before <= self.upper[-2]:
                self.position.close()

    return Bands


@pytest.mark.parametrize(("make", "bars", "least"), [(band_reversion, 500, 3), (lookback, 400, 5)],
                         ids=["two lines", "bars back"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_indicators_of_two_lines_or_read_bars_back_trade_as_backtesting_py_trades_them(make, bars, least, seed):
    ours, theirs = run_both(make, frame(seed, bars), commission=0.001)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=least)


def test_the_forms_of_several_lines_give_the_same_indicators():
    def as_frame(close, n):
        upper, lower = bands(close, n)
        return pd.DataFrame({"upper": upper, "lower": lower})

    def rows(close, n):
        return np.vstack([line.to_numpy() for line in bands(close, n)])

    def columns(close, n):
        return np.column_stack([line.to_numpy() for line in bands(close, n)])

    class Forms(tickstep.Strategy):
        def init(self):
            self.alone = (self.I(lambda c: bands(c, 10)[0]), self.I(lambda c: bands(c, 10)[1]))
            self.forms = [self.I(bands, self.data.Close, 10), self.I(as_frame, 10), self.I(rows, 10),
                          self.I(columns, 10), self.I(bands, 10, name=["up", "down"])]
            self.seen = []

        def next(self, symbol):
            self.seen.append([self.alone[0].value, self.alone[1].value]
                             + [line.value for form in self.forms for line in form])

    strategy = tickstep.Backtest(example_daily(), Forms, cash=1_000).run().strategy
    seen = np.array(strategy.seen)
    assert np.isfinite(seen).all(axis=1).sum() > 100
    for k in range(2, seen.shape[1], 2):
        np.testing.assert_array_equal(seen[:, k:k + 2], seen[:, :2])
    assert [[line.name for line in form] for form in strategy.forms] == [
        ["bands[0]", "bands[1]"], ["as_frame[upper]", "as_frame[lower]"], ["rows[0]", "rows[1]"],
        ["columns[0]", "columns[1]"], ["up", "down"]]


def test_several_lines_refused_where_they_cannot_be_read():
    market = example_daily()
    n = len(market.bars[0].ts) if hasattr(market, "bars") else None

    def run(init):  # type: ignore[no-untyped-def]
        return tickstep.Backtest(market, type("S", (tickstep.Strategy,), {"init": init}), cash=1_000).run()

    calls = []

    def uneven(close):
        calls.append(1)
        return tuple(close for _ in range(2 if len(calls) == 1 else 3))

    with pytest.raises(tickstep.ConfigError, match=r"indicator 'uneven' returned 3 lines, for \w+ 2 lines: "
                                                   r"every symbol's indicator has the same lines"):
        run(lambda self: self.I(uneven))
    with pytest.raises(tickstep.ConfigError, match=r"the indicator has 2 lines; name each"):
        run(lambda self: self.I(bands, 5, name=["only one"]))
    with pytest.raises(tickstep.ConfigError, match=r"one name for an indicator of one line"):
        run(lambda self: self.I(SMA, 5, name=["a", "b"]))
    with pytest.raises(tickstep.ConfigError, match=r"returned shape \((\d+), \1\): expected \(\1,\) for one line, "
                                                   r"or \(lines, \1\) or \(\1, lines\) for several \(with as many "
                                                   r"lines as bars, say which: return a tuple of lines\)"):
        run(lambda self: self.I(lambda c: np.zeros((len(c), len(c)))))
    with pytest.raises(tickstep.ConfigError, match=r"line 1 returned shape \(3,\), expected \(\d+,\)"):
        run(lambda self: self.I(lambda c: (c, c.to_numpy()[:3])))
    assert n is None or n > 0


def test_a_list_of_numbers_is_one_line():
    class Listed(tickstep.Strategy):
        def init(self):
            self.double = self.I(lambda c: [2 * x for x in c])
            self.seen = []

        def next(self, symbol):
            self.seen.append((self.double.value, 2 * self.price()))

    seen = tickstep.Backtest(example_daily(), Listed, cash=1_000).run().strategy.seen
    assert all(a == b for a, b in seen)


def trailing_stops(base):  # type: ignore[no-untyped-def]
    """A trend entry whose stop-loss trails the close by hand, one class body for both
    libraries: each bar, every open trade's ``sl`` is raised (long) or lowered (short)
    to ``k`` of the close, never loosened; in on the close's side of its mean when flat."""

    class Trailing(base):  # type: ignore[misc, valid-type]
        n = 10
        k = 0.03

        def init(self):  # type: ignore[no-untyped-def]
            self.sma = self.I(SMA, self.data.Close, self.n)

        def next(self):  # type: ignore[no-untyped-def]
            if len(self.data) <= self.n:  # (backtesting.py starts after the mean's warm-up)
                return
            price = self.data.Close[-1]
            for trade in self.trades:
                if trade.is_long:
                    trade.sl = max(trade.sl or 0, price * (1 - self.k))
                else:
                    trade.sl = min(trade.sl or np.inf, price * (1 + self.k))
            if not self.position:
                if price > self.sma[-1]:
                    self.buy(size=10)
                elif price < self.sma[-1]:
                    self.sell(size=10)

    return Trailing


def trades_in_parts(base):  # type: ignore[no-untyped-def]
    """Two entries a cycle, the newer trade closed alone, half the older, a take-profit
    set on what is left, the rest closed: ``self.trades[i].close(portion)`` and
    ``.tp =`` on one trade of several, one class body for both libraries."""

    class Parts(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            pass

        def next(self):  # type: ignore[no-untyped-def]
            step = len(self.data) % 40
            if step == 5:
                self.buy(size=10)
            elif step == 10:
                self.buy(size=6)
            elif step == 15 and len(self.trades) == 2:
                self.trades[-1].close()
            elif step == 20 and self.trades:
                self.trades[0].close(0.5)
            elif step == 25 and self.trades:
                self.trades[0].tp = self.data.Close[-1] * 1.01
            elif step == 35:
                self.position.close()

    return Parts


@pytest.mark.parametrize("make", [trailing_stops, trades_in_parts])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_trades_set_their_stops_and_close_as_backtesting_py_trades_do(make, seed):
    ours, theirs = run_both(make, frame(seed, 400), cash=1e6, commission=0.001)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=15)
    # The stops ride one order per trade, moved in place (backtesting.py places a new
    # one at every move): no order piles up per bar.
    stops = ours.orders[ours.orders["role"] == "stop_loss"]
    assert len(stops) <= len(ours.trades) + 1


#: The statistics both libraries compute by one formula (the rest differ by definition:
#: see "Differences that matter when porting" in docs/guide/coming-from.md).
SHARED_FORMULAS = ("Equity Final [$]", "Equity Peak [$]", "Commissions [$]", "Return [%]",
                   "CAGR [%]", "Max. Drawdown [%]", "Avg. Drawdown [%]", "# Trades",
                   "Win Rate [%]", "SQN", "Kelly Criterion")
#: The lengths of time both compute by one formula; backtesting.py rounds each up to its
#: data's resolution (days here).
SHARED_DURATIONS = ("Max. Drawdown Duration", "Avg. Drawdown Duration", "Max. Trade Duration",
                    "Avg. Trade Duration")


@pytest.mark.parametrize("calendar", ["D", "B"])
@pytest.mark.parametrize("seed", range(3))
def test_statistics_of_one_formula_are_backtesting_pys_on_the_same_trades(seed, calendar):
    # The quick-start's crossovers, long and short, with a commission, on every day or on
    # weekdays only: the same trades in both, and so the same values of the statistics
    # both compute by one formula (and the same span).
    data = frame(seed, 700).set_axis(pd.date_range("2019-01-01", periods=700, freq=calendar))
    ours = tickstep.Backtest(data, quick_start(tickstep.Strategy), cash=100_000,
                             commission=0.002).run().stats
    theirs = ReferenceBacktest(data, quick_start(ReferenceStrategy), cash=100_000, commission=0.002,
                               finalize_trades=False).run()
    assert theirs["# Trades"] > 15
    for label in SHARED_FORMULAS:
        assert float(ours[label]) == pytest.approx(float(theirs[label]), rel=1e-9, abs=1e-12), label
    for label in SHARED_DURATIONS:
        assert ours[label].ceil("D") == theirs[label], label
    assert (ours["Start"], ours["End"]) == (theirs["Start"].tz_localize("UTC"), theirs["End"].tz_localize("UTC"))
    assert ours["Duration"] == theirs["Duration"]


def test_a_result_reads_a_statistic_by_its_label_as_backtesting_pys_stats():
    df = frame(1, 300)
    stats = tickstep.Backtest(df, quick_start(tickstep.Strategy), cash=100_000, commission=0.002).run()
    for label in ("Equity Final [$]", "Sharpe Ratio", "# Trades", "Return [%]"):
        assert label in stats
        assert stats[label] == stats.stats[label] or (np.isnan(stats[label]) and np.isnan(stats.stats[label]))
    assert "Sharp Ratio" not in stats
    with pytest.raises(KeyError, match=re.escape("'Sharp Ratio' is no statistic of this result — "
                                                 "did you mean 'Sharpe Ratio'? (result.stats lists them)")):
        stats["Sharp Ratio"]
    with pytest.raises(TypeError, match="not iterable"):
        list(stats)
    # backtesting.py's tables among its statistics: where a result keeps them.
    with pytest.raises(KeyError, match=re.escape("'_trades' is backtesting.py's; here it is result.trades")):
        stats["_trades"]
    with pytest.raises(KeyError, match=re.escape("'_equity_curve' is backtesting.py's; here it is result.equity")):
        stats["_equity_curve"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_exclusive_orders_trade_as_backtesting_pys_option(seed):
    ours, theirs = run_both(lambda base: quick_start(base, close_first=False), frame(seed, 500),
                            commission=0.002, exclusive_orders=True)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=20)
    # Never more than one trade at a time: each exit is the next entry's time.
    trades = ours.trades
    assert (trades["exit_time"].iloc[:-1].to_numpy() <= trades["entry_time"].iloc[1:].to_numpy()).all()


def test_exclusive_orders_are_refused_in_signals_mode():
    market = example_daily()
    bt = tickstep.Backtest(market, tickstep.Strategy, cash=10_000, exclusive_orders=True)
    with pytest.raises(tickstep.ConfigError, match=re.escape(
            "exclusive_orders=True is for orders a strategy places; signals mode does not take it")):
        bt.run_signals({s: np.zeros(1, bool) for s in market.symbols})


def weekly_trend(base, rule: str = "W"):  # type: ignore[no-untyped-def]
    """A daily crossover traded only with the higher timeframe's trend, written with
    ``resample_apply`` and ``crossover`` of each library's ``lib`` (``base`` says which):
    long when the close crosses above its 10-day mean while above the mean of the last
    4 closes of ``rule``'s periods, out when it crosses below."""
    lib = tickstep.lib if base is tickstep.Strategy else backtesting.lib

    class WeeklyTrend(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = lib.resample_apply(rule, SMA, self.data.Close, 4)

        def next(self):  # type: ignore[no-untyped-def]
            if lib.crossover(self.data.Close, self.fast) and self.data.Close[-1] > self.slow[-1]:
                self.buy(size=10)
            elif lib.crossover(self.fast, self.data.Close):
                self.position.close()

    return WeeklyTrend


def business_days(seed: int, n: int) -> pd.DataFrame:
    """`frame`'s bars on weekdays only, as a stock's daily bars come."""
    return frame(seed, n).set_axis(pd.bdate_range("2020-01-01", periods=n))


@pytest.mark.parametrize("rule", ["W", "W-FRI", "ME"])
@pytest.mark.parametrize("calendar", [frame, business_days])
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_resample_apply_on_daily_bars_trades_as_backtesting_pys(rule, calendar, seed):
    # A period of daily bars shows from the bar that ends it (every day) or the first bar
    # after it (weekdays, weeks ending on Sunday) in both libraries.
    ours, theirs = run_both(lambda base: weekly_trend(base, rule), calendar(seed, 500), commission=0.002)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=5)


def recorded_daily_mean(base):  # type: ignore[no-untyped-def]
    """Records, at each bar, its time and ``resample_apply("D", SMA, Close, 3)``'s value."""
    lib = tickstep.lib if base is tickstep.Strategy else backtesting.lib

    class Recorded(base):  # type: ignore[misc, valid-type]
        seen: ClassVar[list] = []

        def init(self):  # type: ignore[no-untyped-def]
            self.daily = lib.resample_apply("D", SMA, self.data.Close, 3)
            self.seen.clear()

        def next(self):  # type: ignore[no-untyped-def]
            self.seen.append((pd.Timestamp(self.data.index[-1]).tz_localize(None), self.daily[-1]))

    return Recorded


def test_resample_apply_intraday_shows_a_period_at_its_last_bar_one_bar_before_backtesting_py():
    # Hourly bars every hour: a day completes with its 23:00 bar (whose close ends the
    # day) here; backtesting.py labels the day by its end and shows it from 00:00, the
    # bar after. Every value is theirs one bar earlier.
    data = frame(3, 24 * 30).set_axis(pd.date_range("2021-03-01", periods=24 * 30, freq="h"))
    ours_cls, theirs_cls = recorded_daily_mean(tickstep.Strategy), recorded_daily_mean(ReferenceStrategy)
    tickstep.Backtest(data, ours_cls, cash=100_000).run()
    ReferenceBacktest(data, theirs_cls, cash=100_000).run()
    ours = pd.Series(dict(ours_cls.seen))
    theirs = pd.Series(dict(theirs_cls.seen))
    shown = ours.shift(1).reindex(theirs.index)  # ours at the bar before each of theirs
    assert shown.notna().sum() > 24 * 20
    pd.testing.assert_series_equal(shown, theirs, check_names=False, rtol=1e-12)


@pytest.mark.parametrize("rule", ["h", "4h", "90min"])
@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York"])
def test_resample_apply_within_a_day_counts_the_local_clock(rule, zone):
    # 15-minute bars in a backtest with timezone=zone: lengths that divide a day count
    # from each local midnight (Kolkata's hours start at its own :00, half an hour off
    # UTC's; New York's across its spring change), as backtesting.py's on the same bars
    # in local time. Intraday, each value shows at the period's last bar, theirs one bar
    # later.
    utc = pd.date_range("2021-03-01", periods=4 * 24 * 30, freq="15min", tz="UTC")
    local = utc.tz_convert(zone).tz_localize(None)
    bars = frame(6, len(utc))
    ours_cls = recorded_period_mean(tickstep.Strategy, rule)
    theirs_cls = recorded_period_mean(ReferenceStrategy, rule)
    tickstep.Backtest(bars.set_axis(utc), ours_cls, cash=100_000, timezone=zone).run()
    ReferenceBacktest(bars.set_axis(local), theirs_cls, cash=100_000).run()
    ours = pd.Series(dict((t.tz_convert(zone).tz_localize(None), v) for t, v in ours_cls.seen))
    theirs = pd.Series(dict(theirs_cls.seen))
    shown = ours.shift(1).reindex(theirs.index)  # ours at the bar before each of theirs
    assert shown.notna().sum() > 2000
    pd.testing.assert_series_equal(shown, theirs, check_names=False, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_crossover_and_cross_read_as_backtesting_libs(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        a, b = rng.integers(0, 3, size=(2, rng.integers(0, 4))).astype(float)
        forms = [a, list(a), pd.Series(a), float(a[-1]) if len(a) else 1.0]
        for x in forms:
            for y in [b, pd.Series(b), 1.0]:
                assert tickstep.lib.crossover(x, y) == backtesting.lib.crossover(x, y)
                assert tickstep.lib.cross(x, y) == backtesting.lib.cross(x, y)


def trailed(base, pct: float | None = None):  # type: ignore[no-untyped-def]
    """The quick-start on each library's ``TrailingStrategy`` (``base`` says which): its
    trades' stop-losses trail the close by 1.5 mean true ranges of 20 bars, or by
    ``pct`` of the close."""
    lib = tickstep.lib if base is tickstep.Strategy else backtesting.lib

    class Trailed(quick_start(lib.TrailingStrategy)):  # type: ignore[misc]
        def init(self):  # type: ignore[no-untyped-def]
            super().init()
            self.set_atr_periods(20)
            if pct is None:
                self.set_trailing_sl(1.5)
            else:
                self.set_trailing_pct(pct)

        def next(self):  # type: ignore[no-untyped-def]
            super().next()
            lib.TrailingStrategy.next(self)

    return Trailed


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_trailing_strategy_trades_as_backtesting_libs(seed):
    # No entry before the mean true range has its 20 bars (the crossover of a 20-bar mean
    # needs 21), so backtesting.py's back-filled first values are never used.
    ours, theirs = run_both(trailed, frame(seed, 500), commission=0.002)
    assert_trades_as_backtesting_py_trades(ours, theirs, least=11)
    assert (ours.fills["role"] == "stop_loss").sum() > 5  # the trailed stops closed trades


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_trailing_by_a_fraction_of_the_close_moves_each_stop_to_it(seed):
    data = frame(seed, 400)

    class Seen(trailed(tickstep.Strategy, pct=0.02)):  # type: ignore[misc]
        checked: ClassVar[list] = []

        def next(self):  # type: ignore[no-untyped-def]
            super().next()
            close = self.data.Close[-1]
            for trade in self.trades:
                floor = close * (0.98 if trade.is_long else 1.02)
                assert trade.sl == pytest.approx(floor) or (trade.sl > floor if trade.is_long
                                                            else trade.sl < floor)
                self.checked.append(trade.sl)

    Seen.checked.clear()
    tickstep.Backtest(data, Seen, cash=100_000, commission=0.002).run()
    assert len(Seen.checked) > 50


@pytest.mark.parametrize(("call", "words"), [
    (lambda s: s.set_atr_periods(0), r"set_atr_periods\(periods=0\): a whole number of bars >= 1"),
    (lambda s: s.set_trailing_sl(-1), r"set_trailing_sl\(n_atr=-1\): a positive number"),
    (lambda s: s.set_trailing_pct(5), r"set_trailing_pct\(pct=5\): a fraction of the close in \(0, 1\)"),
])
def test_trailing_settings_out_of_range_are_refused_by_name(call, words):
    class Bad(tickstep.lib.TrailingStrategy):
        def init(self):  # type: ignore[no-untyped-def]
            super().init()
            call(self)

    with pytest.raises(tickstep.ConfigError, match=words):
        tickstep.Backtest(frame(0, 50), Bad, cash=100_000).run()


class ReferenceQuickStart(quick_start(ReferenceStrategy)):  # type: ignore[misc]
    """The quick-start for backtesting.py's optimize, whose worker processes take the
    class by its name."""


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_optimize_returns_backtesting_pys_heatmap_and_plot_heatmaps_draws_each_pair():
    data = frame(2, 400)
    grid = {"n1": [5, 10, 15], "n2": [20, 30]}
    ours = tickstep.Backtest(data, quick_start(tickstep.Strategy), cash=100_000, commission=0.002)
    rows, heatmap = ours.optimize(**grid, maximize="Equity Final [$]", return_heatmap=True,
                                  cache=False, executor="sequential")
    theirs = ReferenceBacktest(data, ReferenceQuickStart, cash=100_000, commission=0.002)
    _, reference = theirs.optimize(**grid, maximize="Equity Final [$]", return_heatmap=True)
    assert list(heatmap.index.names) == list(reference.index.names) == ["n1", "n2"]
    assert heatmap.name == "Equity Final [$]" and len(heatmap) == 6
    pd.testing.assert_series_equal(heatmap, reference.sort_index().astype(float), check_names=False,
                                   rtol=1e-12)
    assert rows.set_index(["n1", "n2"])["Equity Final [$]"].sort_index().equals(heatmap)

    fig = tickstep.lib.plot_heatmaps(heatmap.rename("equity").to_frame().assign(
        stop=1).set_index("stop", append=True)["equity"], agg="max", open_browser=False)
    assert [t.name for t in fig.data] == ["n2 by n1", "stop by n1", "stop by n2"]
    first = np.array(fig.data[0].z, dtype=float)
    np.testing.assert_array_equal(first, heatmap.unstack("n1").to_numpy())
    with pytest.raises(tickstep.ConfigError, match=r"at least two named parameters"):
        tickstep.lib.plot_heatmaps(heatmap.groupby("n1").max(), open_browser=False)
    with pytest.raises(tickstep.ConfigError, match=r"return_heatmap='yes'\): True or False"):
        ours.optimize(**grid, return_heatmap="yes")


def recorded_period_mean(base, rule: str):  # type: ignore[no-untyped-def]
    """Records, at each bar, its time and ``resample_apply(rule, SMA, Close, 3)``'s value."""
    lib = tickstep.lib if base is tickstep.Strategy else backtesting.lib

    class Recorded(base):  # type: ignore[misc, valid-type]
        seen: ClassVar[list] = []

        def init(self):  # type: ignore[no-untyped-def]
            self.mean = lib.resample_apply(rule, SMA, self.data.Close, 3)
            self.seen.clear()

        def next(self):  # type: ignore[no-untyped-def]
            self.seen.append((pd.Timestamp(self.data.index[-1]), self.mean[-1]))

    return Recorded


def periods_in_both(rule: str, zone: str) -> tuple[pd.Series, pd.Series]:
    """`recorded_period_mean`'s values by local time: here on bars in ``zone`` with
    ``timezone=zone``, and backtesting.py's on the same bars in local time (daily bars
    at local midnight on weekdays, or 6-hourly ones for days; both span the changes of
    offset of spring 2021 in either hemisphere)."""
    freq, n = ("6h", 640) if rule == "D" else ("B", 300)
    local = frame(4, n).set_axis(pd.date_range("2021-01-04", periods=n, freq=freq))
    ours_cls = recorded_period_mean(tickstep.Strategy, rule)
    theirs_cls = recorded_period_mean(ReferenceStrategy, rule)
    aware = local.tz_localize(zone)
    tickstep.Backtest(aware, ours_cls, cash=100_000, timezone=zone).run()
    ReferenceBacktest(local, theirs_cls, cash=100_000).run()
    ours = pd.Series(dict((t.tz_convert(zone).tz_localize(None), v) for t, v in ours_cls.seen))
    theirs = pd.Series(dict(theirs_cls.seen))
    assert theirs.notna().sum() > 20
    return ours, theirs


@pytest.mark.parametrize("rule", ["W", "ME", "D"])
@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Asia/Kolkata"])
def test_resample_apply_periods_are_the_backtests_calendar(rule, zone):
    # East of Greenwich a local midnight is the day before in UTC: with timezone= the
    # bars' zone, days, weeks and months are local ones, as backtesting.py's on the same
    # bars in local time.
    ours, theirs = periods_in_both(rule, zone)
    if rule == "D":  # the day's last bar completes it here, bt.py shows it from the next
        ours = ours.shift(1)
    pd.testing.assert_series_equal(ours.reindex(theirs.index), theirs, check_names=False, rtol=1e-12)


@pytest.mark.parametrize("rule", ["W", "ME", "D"])
@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Sydney"])
def test_resample_apply_across_daylight_saving_changes_keeps_the_local_calendar(rule, zone):
    # Across a change of UTC offset, bars at local midnight are 71 or 73 hours apart over
    # a weekend in UTC (6-hourly ones 5 or 7 hours overnight), which in UTC would read
    # as hourly bars and complete a period a bar late. On the calendar's wall clock they
    # stay a day (6 hours) apart: every period shows as it does in a zone without a
    # change, backtesting.py's values (a day a bar earlier, at its last bar).
    ours, theirs = periods_in_both(rule, zone)
    if rule == "D":
        ours = ours.shift(1)
    pd.testing.assert_series_equal(ours.reindex(theirs.index), theirs, check_names=False, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # backtesting.py's mean of nothing
def test_barssince_and_quantile_read_as_backtesting_libs(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(0, 8))
        values = rng.integers(0, 4, n).astype(float)
        condition = values > 1
        for form in (condition, list(condition)):
            assert tickstep.lib.barssince(form) == backtesting.lib.barssince(form)
            assert tickstep.lib.barssince(form, -1) == backtesting.lib.barssince(form, -1)
        if n:
            values[rng.random(n) < 0.2] = np.nan
        ours, theirs = tickstep.lib.quantile(values), backtesting.lib.quantile(values)
        assert ours == theirs or (np.isnan(ours) and np.isnan(theirs))
        if np.isfinite(values).any():
            for q in (0.0, 0.1, 0.5, 1.0):
                assert tickstep.lib.quantile(values, q) == backtesting.lib.quantile(values, q)
    with pytest.raises(tickstep.ConfigError, match=r"quantile\(quantile=10\): a fraction in \[0, 1\]"):
        tickstep.lib.quantile([1.0, 2.0], 10)


class OurQuickStart(quick_start(tickstep.Strategy)):  # type: ignore[misc]
    """The quick-start for tickstep's batch workers, which take the class by its name."""


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_multi_backtest_runs_each_frame_alone_as_backtesting_libs():
    frames = [frame(seed, 300) for seed in range(3)]
    options = {"cash": 100_000, "commission": 0.002}
    ours = tickstep.lib.MultiBacktest(frames, OurQuickStart, **options)
    theirs = backtesting.lib.MultiBacktest(frames, ReferenceQuickStart, **options)
    table = ours.run(n1=10, n2=20)
    assert list(table.columns) == [0, 1, 2]
    for k, data in enumerate(frames):  # each column is that frame's backtest alone
        alone = tickstep.Backtest(data, OurQuickStart, **options).run(n1=10, n2=20).stats
        for label in table.index:
            assert table.loc[label, k] == alone[label] or (pd.isna(table.loc[label, k]) and pd.isna(alone[label]))
    reference = theirs.run(n1=10, n2=20)
    same = ["Equity Final [$]", "Equity Peak [$]", "Commissions [$]", "Return [%]", "# Trades",
            "Win Rate [%]", "Max. Drawdown [%]"]
    np.testing.assert_allclose(table.loc[same].to_numpy(float), reference.loc[same].to_numpy(float),
                               rtol=1e-9)

    heatmaps = ours.optimize(n1=[5, 10], n2=[20, 30], maximize="Equity Final [$]")
    expected = theirs.optimize(n1=[5, 10], n2=[20, 30], maximize="Equity Final [$]")
    pd.testing.assert_frame_equal(heatmaps, expected.sort_index().astype(float), rtol=1e-12)
    with pytest.raises(tickstep.ConfigError, match=r"a list of at least one DataFrame"):
        tickstep.lib.MultiBacktest([], OurQuickStart)


def test_optimize_takes_backtesting_pys_method_grid_and_refuses_sambo_naming_optuna():
    bt = tickstep.Backtest(frame(1, 200), OurQuickStart, cash=100_000)
    grid = {"n1": [5, 10], "n2": [20, 30]}
    rows = bt.optimize(method="grid", maximize="Equity Final [$]", cache=False, executor="sequential", **grid)
    same = bt.optimize(maximize="Equity Final [$]", cache=False, executor="sequential", **grid)
    pd.testing.assert_frame_equal(rows.drop(columns=["run_time"]),
                                  same.drop(columns=["run_time"]))
    with pytest.raises(tickstep.ConfigError, match=r"method='sambo': 'grid' .*'sambo' is not built "
                       r"in: method='optuna' searches the same way"):
        bt.optimize(method="sambo", max_tries=3, **grid)
    with pytest.raises(tickstep.ConfigError, match=r"return_optimization=True\): the study of a "
                       r"model-based search \(method='optuna'\)"):
        bt.optimize(return_optimization=True, **grid)

    class Methodical(OurQuickStart):  # a strategy's own parameter of that name is varied
        method = "a"

    rows = tickstep.Backtest(frame(1, 200), Methodical, cash=100_000).optimize(
        method=["a", "b"], n1=[5], cache=False, executor="sequential")
    assert sorted(rows["method"]) == ["a", "b"]
