"""Errors: a strategy's own exception, bad parameters, bad orders, bad data, bad options."""

from __future__ import annotations

import math
import traceback

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars  # tests/ is on sys.path (rootdir conftest)
from tickstep.data import DataError

ROWS = [(100, 101, 99, 100), (101, 102, 100, 101), (102, 103, 101, 102), (103, 104, 102, 103)]


def two_symbols():
    return {"AAA": make_bars(ROWS), "BBB": make_bars(ROWS)}


class MyError(Exception):
    pass


class Boom(tickstep.Strategy):
    where = "next"  # next | on_tick | init
    symbol = "BBB"
    bar = 2

    def init(self):
        self.raised = []
        if self.where == "init":
            self._raise()

    def _raise(self):
        err = MyError("boom")
        err.payload = {"kept": True}
        self.raised.append(err)
        raise err

    def next(self, symbol):
        if self.where == "next" and symbol == self.symbol and len(self.data()) - 1 == self.bar:
            self._raise()

    def on_tick(self):
        if self.where == "on_tick" and self.time == pd.Timestamp("2024-01-02", tz="UTC"):
            self._raise()


def _frames(exc):
    return [(f.name, f.filename) for f in traceback.extract_tb(exc.__traceback__)]


def test_strategy_exception_comes_back_as_itself_with_a_note():
    bt = tickstep.Backtest(two_symbols(), Boom)
    with pytest.raises(MyError) as info:
        bt.run()
    exc = info.value
    assert str(exc) == "boom"
    assert exc.payload == {"kept": True}  # the very object, not a copy or a wrapper
    # The user's own frames are in the traceback.
    names = [name for name, filename in _frames(exc) if filename == __file__]
    assert "next" in names and "_raise" in names
    notes = getattr(exc, "__notes__", [])
    assert len(notes) == 1
    # Raised at BBB's bar 2, i.e. 2024-01-03.
    assert "BBB" in notes[0] and "AAA" not in notes[0]
    assert "2024-01-03" in notes[0] and "00:00:00" in notes[0]


def test_exception_in_on_tick_names_the_time():
    bt = tickstep.Backtest(two_symbols(), Boom)
    with pytest.raises(MyError) as info:
        bt.run(where="on_tick")
    notes = info.value.__notes__
    assert len(notes) == 1 and "2024-01-02" in notes[0]
    assert "on_tick" in [name for name, _ in _frames(info.value)]


def test_exception_in_init():
    bt = tickstep.Backtest(two_symbols(), Boom)
    with pytest.raises(MyError) as info:
        bt.run(where="init")
    assert "init" in [name for name, _ in _frames(info.value)]


def test_backtest_can_run_again_after_a_failure():
    bt = tickstep.Backtest(two_symbols(), Boom)
    with pytest.raises(MyError):
        bt.run()
    r = bt.run(symbol="nobody")
    assert len(r.equity) == 4


class Params(tickstep.Strategy):
    fast = 10
    slow = 30

    def next(self, symbol):
        pass


def test_unknown_parameter_suggests_the_closest():
    bt = tickstep.Backtest(make_bars(ROWS), Params)
    with pytest.raises(TypeError, match=r"did you mean 'fast'"):
        bt.run(fsat=5)
    with pytest.raises(TypeError) as info:
        bt.run(zzzzzz=5)
    assert "did you mean" not in str(info.value)
    assert "fast" in str(info.value) and "slow" in str(info.value)
    assert bt.run(fast=5).params["fast"] == 5


# --- orders refused at the door ---------------------------------------------------------


class Orders(tickstep.Strategy):
    request = None  # kwargs of one buy/sell, placed at bar 1 of AAA
    side = "buy"
    catch = False

    def init(self):
        self.caught = []

    def next(self, symbol):
        if symbol != "AAA" or len(self.data()) != 2:
            return
        place = self.buy if self.side == "buy" else self.sell
        if self.catch:
            try:
                place(**self.request)
            except (tickstep.OrderError, tickstep.UnknownSymbolError) as exc:
                self.caught.append(exc)
        else:
            place(**self.request)


BAD_ORDERS = [
    ("buy", dict(size=0), "size"),
    ("buy", dict(size=-5), "size"),
    ("sell", dict(size=math.nan), "size"),
    ("buy", dict(size=math.inf), "size"),
    ("buy", dict(size=1, limit=-3), "limit"),
    ("buy", dict(size=1, stop=math.nan), "stop"),
    # AAA's close at bar 1 is 101: a long's sl must be below, its tp above; a short mirrors.
    ("buy", dict(size=1, sl=102), "sl"),
    ("buy", dict(size=1, sl=101), "sl"),
    ("buy", dict(size=1, tp=100), "tp"),
    ("sell", dict(size=1, sl=100), "sl"),
    ("sell", dict(size=1, tp=102), "tp"),
    # With a limit the limit is the reference: sl 96 is above a buy limit at 95.
    ("buy", dict(size=1, limit=95, sl=96), "sl"),
]


@pytest.mark.parametrize("side, request_, word", BAD_ORDERS)
def test_bad_orders_raise_order_error(side, request_, word):
    bt = tickstep.Backtest(two_symbols(), Orders)
    with pytest.raises(tickstep.OrderError, match=word) as info:
        bt.run(request=request_, side=side)
    assert isinstance(info.value, ValueError)
    assert "AAA" in str(info.value)  # the message names the symbol
    notes = info.value.__notes__
    assert "AAA" in notes[0] and "2024-01-02" in notes[0]


def test_refused_orders_leave_no_trace():
    bt = tickstep.Backtest(two_symbols(), Orders)
    r = bt.run(request=dict(size=0), catch=True)
    assert len(r.strategy.caught) == 1
    assert r.orders.empty and r.fills.empty
    assert list(r.equity) == [10000.0] * 4


def test_unknown_symbol_in_an_order():
    bt = tickstep.Backtest(two_symbols(), Orders)
    with pytest.raises(tickstep.UnknownSymbolError) as info:
        bt.run(request=dict(symbol="AAB", size=1))
    assert "AAB" in str(info.value)
    assert "did you mean 'AAA'" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_on_tick_orders_need_a_symbol():
    class NoSymbol(tickstep.Strategy):
        def on_tick(self):
            self.buy(size=1)

    with pytest.raises(tickstep.UnknownSymbolError, match="symbol"):
        tickstep.Backtest(two_symbols(), NoSymbol).run()


def test_context_is_dead_after_the_run():
    r = tickstep.Backtest(two_symbols(), Params).run()
    with pytest.raises(RuntimeError, match="only usable inside"):
        r.strategy.buy("AAA", size=1)
    with pytest.raises(RuntimeError):
        _ = r.strategy.equity


# --- bad data and options ---------------------------------------------------------------


def _bad(mutate):
    frame = make_bars(ROWS)
    frame = mutate(frame)
    with pytest.raises(DataError) as info:
        tickstep.Backtest({"AAA": make_bars(ROWS), "BAD": frame}, Params)
    return info.value


def test_unsorted_data_is_refused():
    e = _bad(lambda f: f.iloc[[0, 2, 1, 3]])
    assert (e.symbol, e.row, e.rule) == ("BAD", 2, "timestamps increasing")
    assert "BAD" in str(e) and "row 2" in str(e)


def test_duplicate_timestamp_is_refused():
    e = _bad(lambda f: f.iloc[[0, 1, 1, 2]])
    assert (e.symbol, e.row, e.rule) == ("BAD", 2, "unique timestamps")


def test_nan_price_is_refused():
    def nan(f):
        f = f.copy()
        f.iloc[3, f.columns.get_loc("close")] = np.nan
        return f

    e = _bad(nan)
    assert (e.symbol, e.row, e.rule) == ("BAD", 3, "close finite")
    assert e.timestamp == pd.Timestamp("2024-01-04", tz="UTC")


def test_high_below_low_is_refused():
    def inverted(f):
        f = f.copy()
        f.iloc[1, f.columns.get_loc("high")] = 90.0  # low 100
        return f

    e = _bad(inverted)
    assert (e.symbol, e.row) == ("BAD", 1)
    assert e.rule in ("high >= low", "low <= open <= high")
    assert "BAD" in str(e)


@pytest.mark.parametrize(
    "option",
    [dict(cash=0), dict(cash=-1), dict(commission=1.5), dict(commission=-0.1),
     dict(commission_fixed=-1), dict(slippage=-1), dict(leverage=0), dict(cash=math.nan)],
)
def test_bad_options_are_refused_at_construction(option):
    with pytest.raises(tickstep.ConfigError):
        tickstep.Backtest(make_bars(ROWS), Params, **option)


def test_not_a_strategy():
    with pytest.raises(TypeError):
        tickstep.Backtest(make_bars(ROWS), object)


# ---- one error hierarchy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (tickstep.OrderError, ValueError),
        (tickstep.ConfigError, ValueError),
        (tickstep.UnknownSymbolError, KeyError),
        (tickstep.StateError, RuntimeError),
        (DataError, ValueError),
    ],
)
def test_each_error_is_a_tickstep_error_and_its_natural_builtin(error, builtin):
    assert issubclass(error, tickstep.TickstepError)
    assert issubclass(error, builtin)
    assert issubclass(tickstep.TickstepError, Exception)
    assert not issubclass(tickstep.TickstepError, (ValueError, KeyError, RuntimeError))


def test_every_error_class_tickstep_defines_is_in_the_hierarchy():
    from tickstep.strategies import UnknownStrategyError

    assert issubclass(UnknownStrategyError, tickstep.TickstepError)
    assert issubclass(UnknownStrategyError, LookupError)
    # One definition each: the public names are the very classes the core raises.
    assert tickstep.OrderError is tickstep._core.OrderError
    assert tickstep.data.DataError is DataError


def test_the_core_raises_the_hierarchys_classes():
    with pytest.raises(tickstep.OrderError) as order:
        tickstep.Backtest(two_symbols(), _BuysNegative).run()
    assert isinstance(order.value, ValueError)
    with pytest.raises(tickstep.ConfigError):
        tickstep._core.Engine(tickstep.Backtest(two_symbols(), Params).market, fill_at="noon")
    # Market columns the core refuses come back as the door's DataError.
    ts = np.array([1, 2], dtype=np.int64)
    one, three = np.ones(2), np.ones(3)
    with pytest.raises(DataError, match="invalid market data: A: columns have different lengths"):
        tickstep._core.Market(["A"], [ts], [one], [three], [one], [one], [one])
    r = tickstep.Backtest(two_symbols(), Params).run()
    with pytest.raises(tickstep.StateError, match="only usable inside"):
        r.strategy.buy("AAA", size=1)


class _BuysNegative(tickstep.Strategy):
    def next(self, symbol):
        self.buy(size=-1)


class _DeclaresInNext(tickstep.Strategy):
    what = "sma"

    def next(self, symbol):
        if self.what == "sma":
            self.sma(5)
        elif self.what == "timeframe":
            self.timeframe("2D")
        else:
            self.I(lambda s: s, name="copy")


@pytest.mark.parametrize("what", ["sma", "timeframe", "I"])
def test_declaring_a_study_outside_init_is_refused_saying_where(what):
    with pytest.raises(tickstep.StateError, match=r"must be declared in init\(\)") as info:
        tickstep.Backtest(two_symbols(), _DeclaresInNext).run(what=what)
    assert "next()" in str(info.value)
