"""A second sweep of bad inputs, tried as a new user would: a table of cases per class.

Data shapes and dtypes, timezones, options, stream=/history=, strategy parameters and
grids, orders and the strategy's own calls, timeframe strings, store files, records
tables, extra columns, signals mode and the command line. Each case asserts the
exception type -- tickstep's own class, which is also the natural builtin -- and words of
the message naming the culprit (the option, parameter, symbol, column, row or file) and
the rule. Nothing here is coerced into something else: a refused value never runs.
"""

from __future__ import annotations

import datetime
import decimal
import math
import os
import subprocess
import sys
import zoneinfo

import duckdb
import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from tickstep.signals import SignalStrategy
from tickstep.strategies import SmaCross


def bars(n: int = 60, start: str = "2024-01-02 14:30", **extra) -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="min", tz="UTC", name="ts")
    close = 10 + np.sin(np.arange(n) / 3)
    frame = pd.DataFrame(
        {"open": close, "high": close + 0.5, "low": close - 0.5, "close": close + 0.1, "volume": 100.0},
        index=index,
    )
    return frame.assign(**extra)


B = bars()
N = len(B)


def long_frame() -> pd.DataFrame:
    return pd.concat([B.assign(symbol="AAA"), B.assign(symbol="BBB")]).reset_index()


def store_with_sig() -> td.Store:
    store = td.Store()
    store.ingest({"AAA": bars(sig=np.arange(60.0)), "BBB": bars()})
    return store


def check(call, exc, builtin, words):
    with pytest.raises(exc) as info:
        call()
    assert isinstance(info.value, tickstep.TickstepError), type(info.value)
    assert isinstance(info.value, builtin), type(info.value).__mro__
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


# ---- data shapes and dtypes -----------------------------------------------------------------

DATA_CASES = {
    "a Series of closes": (lambda: td.resolve(B["close"]), ["Series"]),
    "a mapping of Series": (lambda: tickstep.Backtest({"A": B["close"]}, SmaCross), ["'A'", "Series"]),
    "columns in three levels": (
        lambda: td.resolve(pd.concat({"x": pd.concat({"AAPL": B, "MSFT": B}, axis=1)}, axis=1)),
        ["3 levels", "('x', 'AAPL', 'open')", "{symbol: frame}"],
    ),
    "columns in two levels, neither the bars' fields": (
        lambda: td.resolve(pd.concat({"AAPL": B.drop(columns="volume"),
                                      "MSFT": B.drop(columns="volume")}, axis=1)),
        ["2 levels", "('AAPL', 'open')", "neither of them open, high, low, close and volume"],
    ),
    "columns in two levels, a symbol without a field": (
        lambda: td.resolve(pd.concat({"AAPL": B.drop(columns="volume"), "MSFT": B}, axis=1)),
        ["symbol 'AAPL'", "missing column(s) volume"],
    ),
    "columns in two levels, both named like the fields": (
        lambda: td.resolve(pd.concat({"open": B, "high": B, "low": B, "close": B, "volume": B},
                                     axis=1)),
        ["2 levels", "both of them", "neither is the symbols"],
    ),
    "columns in two levels, a symbol without a value": (
        lambda: td.resolve(pd.concat({"AAPL": B, "MSFT": B * np.nan}, axis=1)),
        ["'MSFT'", "no value in any row"],
    ),
    "columns in two levels, a bar missing its close": (
        lambda: td.resolve(pd.concat({"AAPL": B, "MSFT": B.assign(close=B.close.where(
            np.arange(N) != 7))}, axis=1).swaplevel(axis=1)),
        ["symbol 'MSFT', row 7", "close finite"],
    ),
    "columns in two levels in one symbol's table": (
        lambda: td.resolve({"X": pd.concat({"AAPL": B, "MSFT": B}, axis=1)}),
        ["2 levels", "('AAPL', 'open')"],
    ),
    "a numpy array": (lambda: td.resolve(B.to_numpy()), ["ndarray", "DataFrame"]),
    "a list of frames": (lambda: td.resolve([B, B]), ["list", "mapping symbol -> table"]),
    "None": (lambda: tickstep.Backtest(None, SmaCross), ["NoneType"]),
    "complex prices": (lambda: td.resolve(B.assign(close=B.close.astype(complex))), ["'close'", "real numbers", "complex"]),
    "complex extra column": (lambda: td.resolve(B.assign(sig=np.ones(N, complex))), ["'sig'", "not numeric", "complex"]),
    "Decimal prices": (lambda: td.resolve(B.assign(close=[decimal.Decimal("10.5")] * N)), ["'close'", "numeric", "Decimal"]),
    "timedelta prices": (lambda: td.resolve(B.assign(close=pd.to_timedelta(B.close, unit="s"))), ["'close'", "timedelta64"]),
    "timestamps as prices": (lambda: td.resolve(B.assign(close=B.index)), ["'close'", "datetime64"]),
    "a PeriodIndex": (lambda: td.resolve(B.set_index(B.index.tz_localize(None).to_period("min"))), ["row 0", "Period"]),
    "bytes as symbol names": (lambda: td.resolve(pd.concat([B.assign(symbol=b"A"), B.assign(symbol=b"B")]).reset_index()), ["symbol names", "b'A'"]),
    "a null volume (Int64)": (lambda: td.resolve(B.assign(volume=pd.array([1] * 59 + [None], dtype="Int64"))), ["row 59", "volume finite"]),
    "the same timestamp twice": (lambda: td.resolve(pd.concat([B.iloc[:3], B.iloc[2:5]])), ["row 3", "unique timestamps"]),
    "timestamps going back": (lambda: td.resolve(B.iloc[::-1]), ["row 1", "timestamps increasing", "never sorted"]),
    "high below low": (lambda: td.resolve(B.assign(high=B.low - 1)), ["row 0", "high >= low"]),
    "a zero open": (lambda: td.resolve(B.assign(open=0.0)), ["row 0", "open > 0"]),
    "a long frame repeating a symbol's bars": (
        lambda: td.resolve(pd.concat([B.assign(symbol="A"), B.iloc[:2].assign(symbol="A")]).reset_index()),
        ["symbol 'A'", "row 60", "timestamps increasing"],
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES), ids=str)
def test_bad_data(case):
    call, words = DATA_CASES[case]
    check(call, td.DataError, ValueError, words)


# ---- options (also the rates as fractions), stream= and history= ---------------------------

OPTION_CASES = [
    ({"cash": True}, ["cash=True", "got bool"]),
    ({"cash": decimal.Decimal("5000")}, ["cash=Decimal('5000')", "got Decimal"]),
    ({"cash": [1000]}, ["cash=[1000]", "got list"]),
    ({"commission": True}, ["commission=True", "got bool"]),
    ({"commission": -0.001}, ["commission=-0.001", "[0, 1)"]),
    ({"commission": math.nan}, ["commission=nan", "[0, 1)"]),
    ({"commission": "0.1%"}, ["commission='0.1%'", "got str"]),
    ({"slippage": None}, ["slippage=None", ">= 0"]),
    ({"slippage": "1bp"}, ["slippage='1bp'", "got str"]),
    ({"leverage": True}, ["leverage=True", "got bool"]),
    ({"leverage": math.inf}, ["leverage=inf", "finite"]),
    ({"on_reject": "skip"}, ["on_reject='skip'", "'warn', 'raise' or 'ignore'"]),
    ({"periods_per_year": 0}, ["periods_per_year=0", "whole number >= 1"]),
    ({"periods_per_year": 252.5}, ["periods_per_year=252.5", "got float"]),
    ({"trade_start": "yesterday"}, ["trade_start='yesterday'", "a time"]),
    ({"benchmark": 5}, ["benchmark=5", "a symbol of the data or a price Series"]),
    ({"risk_free_rate": 5}, ["risk_free_rate=5", "fraction", "below 1"]),
    ({"risk_free_rate": 2.0}, ["risk_free_rate=2.0", "0.02 = 2%"]),
    ({"margin_rate": 5}, ["margin_rate=5", "fraction in [0, 1)"]),
    ({"cash_rate": 1.0}, ["cash_rate=1.0", "fraction in [0, 1)"]),
    ({"margin_rate": -1}, ["margin_rate=-1", "[0, 1)"]),
    ({"borrow_rate": math.nan}, ["borrow_rate=nan", "finite"]),
    ({"sizer": 0.5}, ["sizer=0.5", "callable"]),
    ({"record_every_bar": "yes"}, ["record_every_bar='yes'", "True or False"]),
    ({"timezone": 5}, ["timezone=5", "IANA", "got int"]),
    ({"timezone": ""}, ["timezone=''", "IANA"]),
    ({"timezone": "utc"}, ["timezone='utc'", "unknown timezone"]),
    ({"timezone": "+05:00"}, ["timezone='+05:00'", "unknown timezone"]),
    ({"timezone": "../../etc/passwd"}, ["timezone='../../etc/passwd'", "unknown timezone"]),
    ({"timezone": datetime.UTC}, ["timezone=datetime.timezone.utc", "IANA"]),
    ({"timezone": zoneinfo.ZoneInfo("America/New_York")}, ["ZoneInfo", "IANA", "name"]),
    ({"stream": "5X"}, ["stream='5X'", "window length"]),
    ({"stream": "0D"}, ["stream='0D'", "window length"]),
    ({"stream": "-1D"}, ["stream='-1D'", "window length"]),
    ({"stream": 5}, ["stream=5", "got int"]),
    ({"stream": "1D", "history": -1}, ["history=-1", "whole number of bars >= 1"]),
    ({"stream": "1D", "history": 1.5}, ["history=1.5", "got float"]),
    ({"stream": "1D", "history": "10"}, ["history='10'", "got str"]),
    ({"stream": "1D", "history": True}, ["history=True"]),
    ({"stream": "1D", "history": 0}, ["history=0"]),
]


@pytest.mark.parametrize(("options", "words"), OPTION_CASES, ids=str)
def test_bad_options(options, words):
    check(lambda: tickstep.Backtest(B, SmaCross, **options), tickstep.ConfigError, ValueError, words)


def test_a_benchmark_that_is_not_a_symbol_is_named_before_any_run():
    check(
        lambda: tickstep.Backtest({"SPX": B, "AAA": B}, SmaCross, benchmark="SPY"),
        tickstep.UnknownSymbolError,
        KeyError,
        ["benchmark 'SPY'", "did you mean 'SPX'"],
    )


def test_a_trade_start_after_the_data_is_refused():
    check(lambda: tickstep.Backtest(B, SmaCross, trade_start="2030-01-01").run(),
          tickstep.ConfigError, ValueError, ["trade_start=2030-01-01", "after the data's last bar"])


# ---- parameters and grids --------------------------------------------------------------------

PARAMETER_CASES = [
    ({"fast": math.nan}, ["SmaCross", "fast=nan", "int"]),
    ({"fast": math.inf}, ["fast=inf", "int"]),
    ({"fast": decimal.Decimal("5")}, ["fast=Decimal('5')", "got Decimal"]),
    ({"fast": np.array([5])}, ["fast=array([5])", "got ndarray"]),
    ({"reverse": "no"}, ["reverse='no'", "bool"]),
    ({"fst": 5}, ["no parameter 'fst'", "did you mean 'fast'"]),
]


@pytest.mark.parametrize(("params", "words"), PARAMETER_CASES, ids=str)
def test_bad_parameters(params, words):
    check(lambda: tickstep.Backtest(B, SmaCross).run(**params), tickstep.ParameterError, TypeError, words)


GRID_CASES = [
    ({"fast": "5"}, tickstep.ParameterError, TypeError, ["fast='5'", "int"]),
    ({"fats": [5]}, tickstep.ParameterError, TypeError, ["'fats'", "did you mean 'fast'"]),
    ({"method": "random", "fast": [5]}, tickstep.ConfigError, ValueError, ["method='random'", "'grid'"]),
    ({"methd": "grid", "fast": [5]}, tickstep.ParameterError, TypeError, ["no parameter 'methd'"]),
    ({"fast": range(0)}, tickstep.ConfigError, ValueError, ["'fast'", "no values to try"]),
    ({"fast": [5], "maximize": None}, tickstep.ConfigError, ValueError, ["maximize=None", "statistic's name"]),
    ({"fast": [5], "maximize": "sharpe"}, tickstep.ConfigError, ValueError, ["maximize='sharpe'", "did you mean 'Sharpe Ratio'"]),
    ({"fast": [5], "constraint": "fast < slow"}, tickstep.ConfigError, ValueError, ["constraint='fast < slow'", "function"]),
    ({"fast": [5, 50], "constraint": lambda p: False}, tickstep.ConfigError, ValueError, ["no parameter set", "constraint"]),
]


@pytest.mark.parametrize(("grid", "exc", "builtin", "words"), GRID_CASES, ids=str)
def test_bad_grids(grid, exc, builtin, words):
    check(lambda: tickstep.Backtest(B, SmaCross).optimize(cache=False, executor="sequential", **grid),
          exc, builtin, words)


# ---- orders and the strategy's own calls -----------------------------------------------------


def in_next(call):
    """A backtest whose strategy makes ``call(self)`` once, in its first next()."""

    class Calls(tickstep.Strategy):
        def next(self, symbol):
            if not getattr(self, "_called", False):
                self._called = True
                call(self)

    return lambda: tickstep.Backtest(B, Calls).run()


def in_init(call):
    class Declares(tickstep.Strategy):
        def init(self):
            call(self)

    return lambda: tickstep.Backtest(B, Declares).run()


ORDER_CASES = {
    "size -1": (lambda s: s.buy(size=-1), ["size", "positive", "-1"]),
    "size NaN": (lambda s: s.buy(size=math.nan), ["size", "NaN"]),
    "size as text": (lambda s: s.buy(size="1"), ["size='1'", "a number", "got str"]),
    "size True": (lambda s: s.buy(size=True), ["size=True", "got bool"]),
    "limit as text": (lambda s: s.buy(size=1, limit="10"), ["limit='10'", "a number"]),
    "limit -5": (lambda s: s.buy(size=1, limit=-5), ["limit price", "positive", "-5"]),
    "stop 0": (lambda s: s.buy(size=1, stop=0), ["stop price", "positive"]),
    "stop-loss above a buy's price": (lambda s: s.buy(size=1, sl=1000), ["sl 1000", "below the entry price"]),
    "take-profit below a buy's price": (lambda s: s.buy(size=1, tp=1), ["tp 1", "above the entry price"]),
    "stop-loss NaN": (lambda s: s.buy(size=1, sl=math.nan), ["sl price", "NaN"]),
    "tif unknown": (lambda s: s.buy(size=1, tif="forever"), ["tif=\"forever\"", "'gtc', 'day', 'ioc', 'fok', 'opg' or 'close'"]),
    "tag as text": (lambda s: s.buy(size=1, tag="x"), ["tag='x'", "whole number"]),
    "tag 1.5": (lambda s: s.buy(size=1, tag=1.5), ["tag=1.5", "whole number"]),
    "trail 'x%'": (lambda s: s.buy(size=1, trail="x%"), ["trail='x%'", "'2%'"]),
    "trail -1": (lambda s: s.buy(size=1, trail=-1), ["trail", "positive"]),
    "oco of no order": (lambda s: s.buy(size=1, limit=5, oco=999), ["oco=999", "no such order"]),
    "close portion 2": (lambda s: s.close(portion=2), ["portion", "(0, 1]", "2"]),
    "valid 0 bars": (lambda s: s.buy(size=1, limit=5, valid=0), ["valid=0", "at least 1 bar"]),
}


@pytest.mark.parametrize("case", list(ORDER_CASES), ids=str)
def test_bad_orders(case):
    call, words = ORDER_CASES[case]
    check(in_next(call), tickstep.OrderError, ValueError, words)


def test_an_order_for_an_unknown_symbol():
    check(in_next(lambda s: s.buy("ASSTE", size=1)), tickstep.UnknownSymbolError, KeyError,
          ["'ASSTE'"])


CALL_CASES = {
    "sma(-5)": (in_init(lambda s: s.sma(-5)), ["sma(n=-5)", "whole number from 1"]),
    "sma(2.5)": (in_init(lambda s: s.sma(2.5)), ["sma(n=2.5)", "whole number"]),
    "sma('5')": (in_init(lambda s: s.sma("5")), ["sma(n='5')"]),
    "sma(True)": (in_init(lambda s: s.sma(True)), ["sma(n=True)"]),
    "sma(10**30)": (in_init(lambda s: s.sma(10**30)), ["4,294,967,296"]),
    "rsi(-1)": (in_init(lambda s: s.rsi(-1)), ["rsi(n=-1)"]),
    "ema(nan)": (in_init(lambda s: s.ema(math.nan)), ["ema(n=nan)"]),
    "sma of an unknown source": (in_init(lambda s: s.sma(5, source="nope")), ["unknown source \"nope\"", "close"]),
    "an indicator of the wrong length": (in_init(lambda s: s.I(lambda frame: np.zeros(3))), ["shape (3,)", "expected (60,)"]),
    "timeframe(15.0)": (in_init(lambda s: s.timeframe(15.0)), ["period", "must be a string", "15.0"]),
    "timeframe(['1h'])": (in_init(lambda s: s.timeframe(["1h"])), ["period", "got list"]),
    "timeframe('0.5h')": (in_init(lambda s: s.timeframe("0.5h")), ["period='0.5h'", "whole number and a unit"]),
    "timeframe('1T')": (in_init(lambda s: s.timeframe("1T")), ["'T'", "write 'min' or 'm'"]),
    "timeframe('1q')": (in_init(lambda s: s.timeframe("1q")), ["quarter"]),
    "timeframe('5ms')": (in_init(lambda s: s.timeframe("5ms")), ["unknown unit 'ms'", "accepted units"]),
    "data(count=-1)": (in_next(lambda s: s.data(s.symbols[0], count=-1)), ["data(count=-1)", ">= 0"]),
    "data(count='3')": (in_next(lambda s: s.data(s.symbols[0], count="3")), ["data(count='3')"]),
}


@pytest.mark.parametrize("case", list(CALL_CASES), ids=str)
def test_bad_calls_in_a_strategy(case):
    call, words = CALL_CASES[case]
    check(call, tickstep.ConfigError, ValueError, words)


# ---- timeframe strings and bounds of a store load, store files --------------------------------


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sweep") / "s.duckdb")
    with td.Store(path) as store:
        store.ingest({"AAA": B, "BBB": B})
    return path


LOAD_CASES = [
    ({"timeframe": 2.5}, td.DataError, ["timeframe", "must be a string", "2.5"]),
    ({"timeframe": "0.5h"}, td.DataError, ["'0.5h'", "whole number and a unit"]),
    ({"timeframe": "-5min"}, td.DataError, ["'-5min'"]),
    ({"timeframe": ""}, td.DataError, ["timeframe=''"]),
    ({"timeframe": "15"}, td.DataError, ["timeframe='15'", "accepted units"]),
    ({"timeframe": "1w"}, td.DataError, ["'1w'", "divide a day"]),
    ({"timeframe": "2D"}, td.DataError, ["'2D'", "one day (1D)"]),
    ({"start": 2024.0}, td.DataError, ["start=2024.0", "a float is not a date"]),
    ({"end": 1.5}, td.DataError, ["end=1.5", "a float is not a date"]),
    ({"regular_hours": "yes"}, tickstep.ConfigError, ["regular_hours='yes'", "True or False"]),
    ({"regular_hours": 1}, tickstep.ConfigError, ["regular_hours=1", "True or False"]),
    ({"symbols": 5}, td.DataError, ["symbols must be a name or a list of names"]),
    ({"symbols": "AAA,BBB"}, td.DataError, ["'AAA,BBB'", "did you mean"]),
]


@pytest.mark.parametrize(("options", "exc", "words"), LOAD_CASES, ids=str)
def test_bad_store_loads(store_path, options, exc, words):
    check(lambda: td.resolve(store_path, **options), exc, ValueError, words)


def _write(path, content):
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    return str(path)


def _other_duckdb(path):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    return str(path)


FILE_CASES = {
    "a directory": (lambda p: str(p), ["cannot open store", "directory"]),
    "an empty file": (lambda p: _write(p / "z.duckdb", ""), ["z.duckdb", "not a valid DuckDB"]),
    "a DuckDB file that is not a store": (lambda p: _other_duckdb(p / "o.duckdb"), ["o.duckdb", "not a tickstep store"]),
    "a corrupt .csv.gz": (lambda p: _write(p / "c.csv.gz", b"\x1f\x8bnot gzip"), ["c.csv.gz", "cannot read it"]),
    "a CSV separated by semicolons": (
        lambda p: _write(p / "semi.csv", "ts;open;high;low;close;volume\n2024-01-02;1;1;1;1;1\n"),
        ["semi.csv", "missing column(s)", "ts;open;high"],
    ),
    "a Parquet file without timestamps": (
        lambda p: (B.reset_index(drop=True).to_parquet(p / "nots.parquet"), str(p / "nots.parquet"))[1],
        ["nots.parquet", "no timestamps"],
    ),
    "a home path that is not there": (lambda p: "~/no-such-store.duckdb", ["'~/no-such-store.duckdb'", "does not exist"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES), ids=str)
def test_bad_store_files(case, tmp_path):
    make, words = FILE_CASES[case]
    path = make(tmp_path)
    check(lambda: td.resolve(path), td.DataError, ValueError, words)


def test_writing_to_a_read_only_store_is_refused_before_any_work(store_path):
    with td.Store(store_path, read_only=True) as store:
        for write in (lambda: store.ingest({"ZZZ": B}),
                      lambda: store.ingest_metadata(pd.DataFrame({"symbol": ["AAA"], "sector": ["x"]})),
                      lambda: store.ingest_records("zones", pd.DataFrame({"symbol": ["AAA"], "ts": [B.index[1]], "level": [1.0]}))):
            check(write, td.DataError, ValueError, ["read-only", "s.duckdb"])
    with td.Store(store_path, read_only=True) as store:
        assert store.symbols()["bars"].tolist() == [N, N]


# ---- records tables and extra columns --------------------------------------------------------

RECORDS = pd.DataFrame(
    {"symbol": ["AAA", "AAA"], "ts": [B.index[1], B.index[5]], "level": [1.0, 2.0]}
)

RECORD_CASES = {
    "an upper-case table name": (lambda s: s.ingest_records("Zones", RECORDS), ["'Zones'", "lower-case identifier"]),
    "SQL as a table name": (lambda s: s.ingest_records("zones; drop table bars", RECORDS), ["lower-case identifier"]),
    "a number as a table name": (lambda s: s.ingest_records(5, RECORDS), ["records table name 5"]),
    "no key time": (lambda s: s.ingest_records("zones", RECORDS.drop(columns="ts")), ["'zones'", "no timestamp column"]),
    "keys going back": (lambda s: s.ingest_records("zones", RECORDS.iloc[::-1]), ["'zones'", "row 1", "comes after"]),
    "an unknown symbol": (lambda s: s.ingest_records("zones", RECORDS.assign(symbol="ZZZ")), ["'ZZZ'", "not in the store"]),
    "on_conflict='merge'": (lambda s: s.ingest_records("zones", RECORDS, on_conflict="merge"), ["on_conflict", "'merge'"]),
    "a list in a field": (lambda s: s.ingest_records("zones", RECORDS.assign(level=[[1], [2]])), ["'level'", "row 0", "one kind"]),
    "a misspelt table": (lambda s: (s.ingest_records("zones", RECORDS), s.load_records("zone")), ["'zone'", "did you mean 'zones'"]),
    "records= of a number": (lambda s: tickstep.Backtest(s, tickstep.Strategy, records=5), ["records=int"]),
    "records= of an unknown table": (lambda s: tickstep.Backtest(s, tickstep.Strategy, records=["nope"]), ["'nope'", "no records table"]),
}


@pytest.mark.parametrize("case", list(RECORD_CASES), ids=str)
def test_bad_records(case):
    call, words = RECORD_CASES[case]
    check(lambda: call(store_with_sig()), td.DataError, ValueError, words)


COLUMN_CASES = {
    "an unknown column of a store": (lambda: store_with_sig().load(columns=["nope"]), td.DataError, ["columns=['nope']", "extra columns present: sig"]),
    "a misspelt column of a frame": (lambda: td.resolve(bars(signal=1.0), columns=["signl"]), td.DataError, ["'signl'", "did you mean 'signal'"]),
    "columns=5": (lambda: store_with_sig().load(columns=5), tickstep.ConfigError, ["columns=5", "list of column names"]),
    "allow_nan of an unknown column": (lambda: store_with_sig().load(allow_nan=["nope"]), td.DataError, ["allow_nan", "'nope'", "extra columns: sig"]),
    "a text column beside OHLCV": (lambda: td.resolve(bars(note="x")), td.DataError, ["'note'", "not numeric", "columns=[...]"]),
    "a gap in an extra column": (lambda: td.resolve(bars(sig=[np.nan] + [1.0] * 59)), td.DataError, ["row 0", "sig present", "allow_nan=['sig']"]),
    "an infinite extra value": (lambda: td.resolve(bars(sig=[np.inf] + [1.0] * 59)), td.DataError, ["row 0", "sig not infinite"]),
    "'Close' beside 'close'": (lambda: td.resolve(bars(Close=1.0)), td.DataError, ["'close', 'Close'", "differ only by case"]),
    "a second timestamp column": (lambda: td.resolve(bars(timestamp=1.0)), td.DataError, ["more than one place", "'timestamp'"]),
}


@pytest.mark.parametrize("case", list(COLUMN_CASES), ids=str)
def test_bad_extra_columns(case):
    call, exc, words = COLUMN_CASES[case]
    check(call, exc, ValueError, words)


# ---- signals mode -----------------------------------------------------------------------------

ENTRY = np.zeros(N, bool)
ENTRY[5] = True

SIGNAL_CASES = {
    "int entries": ({"entries": ENTRY.astype(int)}, ["entries of ASSET", "booleans", "int64"]),
    "float entries with NaN": ({"entries": np.where(ENTRY, 1.0, np.nan)}, ["entries", "booleans", "float64"]),
    "one bar short": ({"entries": ENTRY[:-1]}, ["59 values for its 60 bars"]),
    "three columns for one symbol": ({"entries": np.zeros((N, 3), bool)}, ["shape (bars, 1 symbols)", "(60, 3)"]),
    "a Series on other times": ({"entries": pd.Series(ENTRY, index=B.index + pd.Timedelta("1D"))}, ["no row for the bar", "every bar time"]),
    "a frame indexed by dates as text": ({"entries": pd.DataFrame({"ASSET": ENTRY}, index=B.index.astype(str))}, ["indexed by time", "dtype", "pd.to_datetime"]),
    "a frame indexed by bar numbers in reverse": ({"entries": pd.DataFrame({"ASSET": ENTRY}, index=np.arange(N)[::-1])}, ["by position (0, 1, 2, ...)", "starting 59"]),
    "a frame of an unknown symbol": ({"entries": pd.DataFrame({"ASSTE": ENTRY}, index=B.index)}, ["'ASSTE'", "not a symbol", "did you mean 'ASSET'"]),
    "a mapping of an unknown symbol": ({"entries": {"NOPE": ENTRY}}, ["'NOPE'", "not a symbol"]),
    "text as entries": ({"entries": "yes"}, ["entries", "shape"]),
    "size -1": ({"entries": ENTRY, "size": -1}, ["size = -1", "> 0"]),
    "size 0": ({"entries": ENTRY, "size": 0}, ["size = 0"]),
    "size NaN": ({"entries": ENTRY, "size": math.nan}, ["size = NaN"]),
    "size as text": ({"entries": ENTRY, "size": "1"}, ["size='1'", "number"]),
    "size_type 'pct'": ({"entries": ENTRY, "size_type": "pct"}, ["size_type='pct'", "did you mean 'percent'"]),
    "sl -0.1": ({"entries": ENTRY, "sl": -0.1}, ["sl = -0.1", "(0, 1)"]),
    "sl 1.5": ({"entries": ENTRY, "sl": 1.5}, ["sl = 1.5", "(0, 1)"]),
    "tp NaN": ({"entries": ENTRY, "tp": math.nan}, ["tp = NaN", "> 0"]),
    "tp '5%'": ({"entries": ENTRY, "tp": "5%"}, ["tp='5%'", "number"]),
    "a negative stop price": ({"entries": ENTRY, "sl_price": np.full(N, -1.0)}, ["sl_price of ASSET", "positive", "row 0"]),
    "no entries at all": ({}, ["give entries and/or short_entries"]),
}


@pytest.mark.parametrize("case", list(SIGNAL_CASES), ids=str)
def test_bad_signals(case):
    kwargs, words = SIGNAL_CASES[case]
    check(lambda: tickstep.Backtest(B, tickstep.Strategy).run_signals(**kwargs),
          tickstep.ConfigError, ValueError, words)


class Signals(SignalStrategy):
    def signals(self, symbol, bars):
        return type(self).made(bars)


def signal_strategy(made, **params):
    cls = type("Made", (Signals,), {"made": staticmethod(made)})
    return lambda: tickstep.Backtest(B, cls).run(**params)


SIGNAL_STRATEGY_CASES = {
    "signals() returning a list": (signal_strategy(lambda b: [1, 2]), ["Made.signals('ASSET', bars)", "returned list", "mapping"]),
    "signals() returning None": (signal_strategy(lambda b: None), ["returned NoneType"]),
    "a misspelt signal": (signal_strategy(lambda b: {"entry": np.zeros(len(b), bool)}), ["unknown signal 'entry'", "did you mean 'entries'"]),
    "entries too short": (signal_strategy(lambda b: {"entries": np.zeros(3, bool)}), ["3 values for its 60 bars"]),
    "int entries": (signal_strategy(lambda b: {"entries": np.zeros(len(b), int)}), ["booleans", "int64"]),
    "size=-1": (signal_strategy(lambda b: {"entries": np.zeros(len(b), bool)}, size=-1.0), ["size = -1"]),
    "size_type='pct'": (signal_strategy(lambda b: {"entries": np.zeros(len(b), bool)}, size_type="pct"), ["size_type='pct'"]),
    "sl=2": (signal_strategy(lambda b: {"entries": np.zeros(len(b), bool)}, sl=2.0), ["sl = 2", "(0, 1)"]),
}


@pytest.mark.parametrize("case", list(SIGNAL_STRATEGY_CASES), ids=str)
def test_bad_signal_strategies(case):
    call, words = SIGNAL_STRATEGY_CASES[case]
    check(call, tickstep.ConfigError, ValueError, words)


def test_a_signal_strategys_own_error_reaches_the_user_unchanged_with_where():
    with pytest.raises(ZeroDivisionError) as info:
        signal_strategy(lambda b: 1 / 0)()
    assert "Made.signals('ASSET', bars)" in "\n".join(getattr(info.value, "__notes__", []))


# ---- the command line ----------------------------------------------------------------------


def tickstep_cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "tickstep", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    where = tmp_path_factory.mktemp("cli")
    with td.Store(where / "s.duckdb") as store:
        store.ingest({"AAA": B, "BBB": B})
    (where / "notes.csv").write_text("not,a,database\n")
    return where


CLI_CASES = {
    "a misspelt strategy": (["run", "sma_crosss", "-d", "s.duckdb"], 2, ["'sma_crosss'", "did you mean 'sma_cross'"]),
    "a parameter that is not a number": (["run", "sma_cross", "-d", "s.duckdb", "-p", "fast=abc"], 2, ["fast=abc", "whole number"]),
    "a parameter without a value": (["run", "sma_cross", "-d", "s.duckdb", "-p", "fast"], 2, ["'fast'", "NAME=VALUE"]),
    "a misspelt option": (["run", "sma_cross", "-d", "s.duckdb", "-o", "comission=0.1"], 2, ["'comission'", "did you mean 'commission'"]),
    "an option that is not a number": (["run", "sma_cross", "-d", "s.duckdb", "-o", "cash=abc"], 2, ["cash=abc"]),
    "a rate written as a percent": (["run", "sma_cross", "-d", "s.duckdb", "-o", "risk_free_rate=5"], 1, ["risk_free_rate=5", "fraction"]),
    "an unknown timezone": (["run", "sma_cross", "-d", "s.duckdb", "-o", "timezone=Mars/Phobos"], 1, ["'Mars/Phobos'", "unknown timezone"]),
    "a store that is not there": (["run", "sma_cross", "-d", "nope.duckdb"], 2, ["'nope.duckdb'", "no such file"]),
    "an unknown symbol": (["run", "sma_cross", "-d", "s.duckdb", "-s", "AAB"], 1, ["'AAB'"]),
    "start after end": (["run", "sma_cross", "-d", "s.duckdb", "--start", "2024-01-05", "--end", "2024-01-01"], 1, ["start='2024-01-05'", "after end"]),
    "a report in a missing directory": (["run", "sma_cross", "-d", "s.duckdb", "--report", "no/such/dir/r.html"], 2, ["--report", "does not exist"]),
    "a runs database that is not one": (["runs", "--results", "notes.csv"], 2, ["--results 'notes.csv'", "not a runs database"]),
    "an empty grid value": (["batch", "sma_cross", "-d", "s.duckdb", "-p", "fast="], 2, ["'fast='", "empty value"]),
}


@pytest.mark.parametrize("case", list(CLI_CASES), ids=str)
def test_bad_command_lines(case, cli_dir):
    args, code, words = CLI_CASES[case]
    done = tickstep_cli(*args, cwd=cli_dir)
    assert done.returncode == code, (done.returncode, done.stderr)
    error = done.stderr.strip().splitlines()[-1]
    assert error.lower().startswith("error:"), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in error, (word, error)
    assert not (cli_dir / "no").exists()  # nothing written where it was refused


# ---- a misspelt option in every data path ------------------------------------------------


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory):
    """The same bars as each kind of data tickstep reads: in memory (frames, a mapping,
    Arrow, MarketColumns), files (CSV, Parquet), DuckDB (a path, an open store) and, when
    a server is configured, PostgreSQL (a URL, an open store)."""
    import pyarrow as pa

    root = tmp_path_factory.mktemp("paths")
    frame = long_frame()
    frame.to_csv(root / "bars.csv", index=False)
    frame.to_parquet(root / "bars.parquet")
    with td.Store(root / "bars.duckdb") as store:
        store.ingest({"AAA": B, "BBB": B})
    paths = {
        "long frame": frame,
        "mapping": {"AAA": B, "BBB": B},
        "arrow": pa.Table.from_pandas(frame, preserve_index=False),
        "market": td.resolve({"AAA": B, "BBB": B}),
        "csv": str(root / "bars.csv"),
        "parquet": str(root / "bars.parquet"),
        "duckdb path": str(root / "bars.duckdb"),
        "duckdb store": td.Store(root / "bars.duckdb", read_only=True),
    }
    url = os.environ.get("TICKSTEP_PG_URL")
    pg = None
    if url:
        import uuid

        schema = f"tickstep_sweep_{uuid.uuid4().hex[:8]}"
        pg = td.PostgresStore(url, schema=schema)
        pg.ingest({"AAA": B, "BBB": B})
        paths["postgres store"] = pg
        paths["postgres url"] = f"{url}?options=-csearch_path%3D{schema}"
    yield paths
    paths["duckdb store"].close()
    if pg is not None:
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


PATH_KINDS = ["long frame", "mapping", "arrow", "market", "csv", "parquet", "duckdb path",
              "duckdb store", "postgres store", "postgres url"]


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_a_misspelt_option_gets_the_hint_in_every_data_path(data_paths, kind):
    from tickstep.batch import run_batch

    if kind not in data_paths:
        pytest.skip("needs TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
    data = data_paths[kind]
    hint = ["unknown option 'comission'", "did you mean 'commission'"]
    check(lambda: tickstep.Backtest(data, SmaCross, comission=0.1), tickstep.ConfigError, ValueError, hint)
    check(lambda: run_batch(SmaCross, data, comission=0.1, cache=False, executor="sequential"),
          tickstep.ConfigError, ValueError, hint)
    load_hint = ["unknown option 'regular_hour'", "did you mean 'regular_hours'"]
    check(lambda: tickstep.Backtest(data, SmaCross, regular_hour=True), tickstep.ConfigError, ValueError, load_hint)
    # The data's own load: a store's method, the door for the rest (td.load for paths).
    if hasattr(data, "load"):
        load = data.load
    elif isinstance(data, str):
        load = lambda **o: td.load(data, **o)  # noqa: E731
    else:
        load = lambda **o: td.resolve(data, **o)  # noqa: E731
    check(lambda: load(regular_hour=True), tickstep.ConfigError, ValueError, load_hint)
    check(lambda: load(timefram="1h"), tickstep.ConfigError, ValueError,
          ["unknown option 'timefram'", "did you mean 'timeframe'"])


def test_a_stores_writes_and_records_refuse_misspelt_options_with_the_hint():
    store = store_with_sig()
    rows = store.symbols()["bars"].sum()
    check(lambda: store.ingest({"CCC": B}, on_conflcit="replace"), tickstep.ConfigError, ValueError,
          ["Store.ingest()", "unknown option 'on_conflcit'", "did you mean 'on_conflict'"])
    check(lambda: store.load_records("notes", strat="2024-01-02"), tickstep.ConfigError, ValueError,
          ["Store.load_records()", "'strat'", "did you mean 'start'"])
    check(lambda: store.ingest_records("notes", pd.DataFrame(), symbl="AAA"), tickstep.ConfigError,
          ValueError, ["'symbl'", "did you mean 'symbol'"])
    assert store.symbols()["bars"].sum() == rows  # nothing written


# ---- files tickstep did not create are never overwritten ---------------------------------


def test_cli_outputs_never_overwrite_a_users_file_but_replace_their_own(cli_dir):
    """--report, --out and a store to write: a user's file (of any name) is refused before
    any work and left byte for byte; what tickstep wrote there itself is replaced."""
    mine = {name: cli_dir / name for name in ("notes.html", "rows.csv", "rows.json",
                                              "rows.parquet", "prices.csv", "sheet.duckdb")}
    for name, path in mine.items():
        if name.endswith(".parquet"):
            pd.DataFrame({"price": [1.0, 2.0]}).to_parquet(path)
        else:
            path.write_text(f"my own {name}\n")
    before = {name: path.read_bytes() for name, path in mine.items()}
    cases = [
        (["run", "sma_cross", "-d", "s.duckdb", "--report", "notes.html"], ["--report", "notes.html", "never overwrites"]),
        (["batch", "sma_cross", "-d", "s.duckdb", "--no-cache", "--out", "rows.csv"], ["--out", "rows.csv", "never overwrites"]),
        (["batch", "sma_cross", "-d", "s.duckdb", "--no-cache", "--out", "rows.json"], ["--out", "rows.json", "never overwrites"]),
        (["batch", "sma_cross", "-d", "s.duckdb", "--no-cache", "--out", "rows.parquet"], ["--out", "rows.parquet", "never overwrites"]),
        (["data", "sample", "--symbols", "1", "--days", "1", "--out", "prices.csv"], ["--out", "prices.csv", "not a store"]),
        (["data", "ingest", "prices.csv", "--metadata", "rows.csv"], ["STORE", "prices.csv", "not a store"]),
        (["data", "sample", "--symbols", "1", "--days", "1", "--out", "sheet.duckdb"], ["sheet.duckdb"]),
    ]
    for args, words in cases:
        done = subprocess.run([sys.executable, "-m", "tickstep", *args], cwd=cli_dir,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr, done.stderr
        for word in words:
            assert word in done.stderr, (args, word, done.stderr)
    assert {name: path.read_bytes() for name, path in mine.items()} == before
    # Their own outputs: written, then replaced by the same command.
    for args in (["run", "sma_cross", "-d", "s.duckdb", "--report", "own.html"],
                 ["batch", "sma_cross", "-d", "s.duckdb", "--no-cache", "--out", "own.csv"],
                 ["batch", "sma_cross", "-d", "s.duckdb", "--no-cache", "--out", "own.parquet"]):
        for _ in range(2):
            done = subprocess.run([sys.executable, "-m", "tickstep", *args], cwd=cli_dir,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (args, done.stderr)


# ---- the door fuzzed through files and stores ----------------------------------------------

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_data_bad_inputs import perturbed_bars, small_tables  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(small_tables(), perturbed_bars()), st.sampled_from(["csv", "parquet", "store"]))
def test_fuzzed_tables_as_files_and_ingests_run_or_are_refused_by_tickstep(drawn, where):
    """The same small random tables written to a CSV or Parquet file, or ingested into a
    store holding other bars: a run, or one of tickstep's own errors -- never another
    exception -- and a refused ingest leaves the store's rows as they were."""
    import tempfile

    frame, _ = drawn
    with tempfile.TemporaryDirectory() as tmp:
        if where == "store":
            store = td.Store()
            store.ingest({"KEEP": B})
            rows = int(store.symbols()["bars"].sum())
            try:
                store.ingest({"AAA": frame})
            except tickstep.TickstepError:
                assert int(store.symbols()["bars"].sum()) == rows
                assert list(store.symbols().index) == ["KEEP"]
                return
            data = store
        else:
            path = os.path.join(tmp, f"AAA.{where}")
            named = isinstance(frame.index, pd.DatetimeIndex)
            try:
                if where == "csv":
                    frame.to_csv(path, index=named)
                else:
                    frame.to_parquet(path, index=named)
            except Exception:  # noqa: BLE001 - a table the format cannot hold (the test's own write)
                assume(False)
            data = path
        try:
            market = td.resolve(data)
        except tickstep.TickstepError:
            return
        result = tickstep.Backtest(market, tickstep.Strategy).run()
        assert len(result.equity) >= 1
