"""The one timeframe grammar (tickstep.timeframes) and the one "did you mean" hint,
as every caller sees them: strategies, stores, and the shared helpers themselves."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from tickstep.hints import closest, did_you_mean
from tickstep.timeframes import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    TIMEFRAME_UNITS,
    duration,
    timeframe_ns,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30 * NS_PER_SECOND),
        ("5m", 5 * NS_PER_MINUTE),
        ("15min", 15 * NS_PER_MINUTE),
        ("15Min", 15 * NS_PER_MINUTE),
        ("2 minutes", 2 * NS_PER_MINUTE),
        ("1h", NS_PER_HOUR),
        ("4H", 4 * NS_PER_HOUR),
        ("4hrs", 4 * NS_PER_HOUR),
        ("1d", NS_PER_DAY),
        ("D", NS_PER_DAY),
        ("1W", 7 * NS_PER_DAY),
        (" 2 days ", 2 * NS_PER_DAY),
    ],
)
def test_grammar_reads_whole_numbers_and_units(text, expected):
    assert timeframe_ns(text) == expected


@pytest.mark.parametrize(
    ("ours", "pandas"),
    [("5m", "5min"), ("15min", "15min"), ("1h", "1h"), ("4h", "4h"), ("1d", "1D"), ("30s", "30s"),
     ("1W", "7D")],
)
def test_grammar_agrees_with_pandas_timedeltas(ours, pandas):
    assert timeframe_ns(ours) == pd.Timedelta(pandas).value


@pytest.mark.parametrize(("text", "pandas"), [
    ("120d", "120D"), ("6H", "6h"), ("10S", "10s"), ("2w", "14D"), ("2wk", "14D"), ("3days", "3D"),
    ("5mins", "5min"), ("h", "1h"),
    # What the grammar does not read, pandas does, as before.
    ("1 days 02:00:00", "26h"), ("1.5h", "90min"), ("500ms", "0.5s"), ("1h30m", "90min"),
])
def test_lengths_of_time_read_the_grammar_and_the_rest_as_pandas_does(text, pandas):
    # Windows, warm-ups and walk-forward spans: the grammar's spellings read without
    # pandas (which warns it will stop reading "d", "H", "S" and "w", and never read
    # "wk"), the rest as pandas reads them.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert duration(text) == pd.Timedelta(pandas)


def test_windows_warm_ups_and_walk_forward_spans_read_lengths_so():
    import warnings

    from tickstep.data._stream import window_ns
    from tickstep.walkforward import plan_windows

    days = pd.date_range("2024-01-01", periods=400, freq="D", tz="UTC").as_unit("ns").asi8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_windows(days, "120d", "2w") == plan_windows(days, "120D", "14D")
        assert tickstep.BacktestConfig(stream="5d").stream == pd.Timedelta(days=5)
        assert window_ns("6H") == 6 * NS_PER_HOUR
        bars = {"A": make_bars([(10, 11, 9, 10)] * 60, freq="D")}
        late = tickstep.Backtest(bars, tickstep.Strategy, warmup="10d")  # trading from day 11
        assert late.config.trade_start == pd.Timestamp("2024-01-11", tz="UTC")
    with pytest.raises(ValueError):
        duration("3M")  # a month: neither reads it
    with pytest.raises(ValueError, match="train='3M' is not a duration"):
        plan_windows(days, "3M", "1w")


def test_timedeltas_and_nanoseconds_are_taken_as_they_are():
    assert timeframe_ns(dt.timedelta(minutes=3)) == 3 * NS_PER_MINUTE
    assert timeframe_ns(pd.Timedelta("90min")) == 90 * NS_PER_MINUTE
    assert timeframe_ns(np.timedelta64(2, "h")) == 2 * NS_PER_HOUR
    assert timeframe_ns(NS_PER_MINUTE) == NS_PER_MINUTE


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1M", "ambiguous"),
        ("M", "ambiguous"),
        ("3MS", "month start"),
        ("1mo", "month"),
        ("2months", "month"),
        ("1y", "year"),
        ("1Q", "quarter"),
        ("5T", "old minute alias"),
        ("1ms", "unknown unit 'ms'"),
        ("banana", "unknown unit 'banana'"),
        ("1.5h", "whole number"),
        ("-5m", "whole number"),
        ("0m", "positive"),
        ("", "whole number"),
        (0, "positive"),
        (-NS_PER_MINUTE, "positive"),
        (True, "not a bar length"),
        (None, "must be a string"),
        (2.5, "must be a string"),
        (pd.NaT, "must be a string"),
        (np.timedelta64("NaT"), "not a bar length"),
    ],
)
def test_grammar_refuses_with_the_value_and_the_accepted_spellings(value, says):
    with pytest.raises(tickstep.ConfigError) as info:
        timeframe_ns(value, name="period")
    message = str(info.value)
    assert says in message
    assert message.startswith("period")  # names the argument the user passed
    if isinstance(value, str) and value and says not in ("positive",):
        assert "accepted units" in message or "whole number" in message


def test_refused_units_are_not_accepted_spellings():
    # A unit cannot be both accepted and refused, whatever its case.
    assert not {"m", "min", "h", "d"} - set(TIMEFRAME_UNITS)
    for refused in ("mo", "month", "y", "year", "q", "t"):
        assert refused not in TIMEFRAME_UNITS


class _Declares(tickstep.Strategy):
    period = "1M"

    def init(self):
        self.timeframe(self.period)


def test_strategy_timeframe_uses_the_grammar():
    bars = make_bars([(1, 2, 0.5, 1.5)] * 10, freq="min")
    with pytest.raises(tickstep.ConfigError, match=r"period='1M'.*ambiguous"):
        tickstep.Backtest(bars, _Declares).run()
    result = tickstep.Backtest(bars, _Declares).run(period="5m")
    assert result.stats["# Trades"] == 0


def test_store_timeframe_uses_the_grammar(tmp_path):
    store = tickstep.data.Store(tmp_path / "bars.duckdb")
    store.ingest(make_bars([(1, 2, 0.5, 1.5)] * 120, freq="min"), symbol="AAA")
    with pytest.raises(ValueError, match=r"'1M'.*ambiguous"):
        store.load(timeframe="1M")
    assert len(store.load(timeframe="15m")["AAA"].ts) == 8


def test_did_you_mean():
    assert did_you_mean("comission", ["cash", "commission"]) == " — did you mean 'commission'?"
    assert did_you_mean("zzz", ["cash", "commission"]) == ""
    assert closest("Sharp Ratio", ["Sharpe Ratio", "Sortino Ratio"]) == "Sharpe Ratio"
    assert closest(3, []) is None


def test_one_day_constant_in_the_python_package():
    """NS_PER_DAY lives in tickstep.timeframes; no module spells the number again."""
    root = Path(tickstep.__file__).parent
    spelled = re.compile(r"86_?400_?000_?000_?000|86_?400 \* 10\s*\*\*\s*9")
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "timeframes.py" and spelled.search(p.read_text())
    ]
    assert offenders == []
