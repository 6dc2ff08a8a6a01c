"""Bad options, parameters and timeframes are refused clearly: a table of cases per class.

Each case asserts the exception type and that the message names the culprit (the
option, the parameter, the value) and the rule. Nothing is coerced: a refused value
never runs.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
import tickstep
from conftest import make_bars
from tickstep.batch import run_batch
from tickstep.strategies import RsiMeanReversion, SmaCross


@pytest.fixture(scope="module")
def bars():
    rows = [(10 + (i % 7), 11 + (i % 7), 9 + (i % 7), 10.5 + (i % 7)) for i in range(60)]
    return make_bars(rows)


# ---- options: every way in (BacktestConfig, Backtest, run_batch) --------------------------

OPTION_CASES = [
    # (options, exception, words the message must hold)
    ({"cash": "lots"}, tickstep.ConfigError, ["cash='lots'", "positive finite number"]),
    ({"cash": None}, tickstep.ConfigError, ["cash=None", "number"]),
    ({"cash": -1}, tickstep.ConfigError, ["cash=-1", "positive"]),
    ({"commission": None}, tickstep.ConfigError, ["commission=None", "fraction"]),
    ({"commission": 2}, tickstep.ConfigError, ["commission=2", "[0, 1)"]),
    ({"commission_fixed": math.inf}, tickstep.ConfigError, ["commission_fixed=inf", "finite"]),
    ({"slippage": -3}, tickstep.ConfigError, ["slippage=-3", ">= 0"]),
    ({"trade_on_close": "no"}, tickstep.ConfigError, ["trade_on_close='no'", "True or False"]),
    ({"trade_on_close": "False"}, tickstep.ConfigError, ["trade_on_close='False'", "True or False"]),
    ({"trade_on_close": 0}, tickstep.ConfigError, ["trade_on_close=0", "True or False"]),
    ({"record_every_bar": 1.0}, tickstep.ConfigError, ["record_every_bar=1.0", "True or False"]),
    ({"leverage": 0.0}, tickstep.ConfigError, ["leverage=0.0", "positive"]),
    ({"sizer": "half"}, tickstep.ConfigError, ["sizer='half'", "callable"]),
    ({"timezone": None}, tickstep.ConfigError, ["timezone=None", "IANA"]),
    ({"timezone": "Mars/Phobos"}, tickstep.ConfigError, ["timezone='Mars/Phobos'", "unknown timezone"]),
    ({"timezone": "EST5EDT/x"}, tickstep.ConfigError, ["timezone='EST5EDT/x'", "unknown timezone"]),
    ({"risk_free_rate": math.nan}, tickstep.ConfigError, ["risk_free_rate=nan", "finite"]),
    ({"risk_free_rate": "0.02"}, tickstep.ConfigError, ["risk_free_rate='0.02'", "got str"]),
    ({"comission": 0.001}, tickstep.ConfigError, ["unknown option 'comission'", "did you mean 'commission'"]),
    ({"levrage": 2}, tickstep.ConfigError, ["unknown option 'levrage'", "did you mean 'leverage'"]),
    ({"regular_hour": True}, tickstep.ConfigError, ["unknown option 'regular_hour'", "did you mean 'regular_hours'"]),
    ({"timeframes": "1h"}, tickstep.ConfigError, ["unknown option 'timeframes'", "did you mean 'timeframe'"]),
]


def _check(info, words):
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(("options", "exc", "words"), OPTION_CASES)
def test_bad_options_in_backtest(bars, options, exc, words):
    with pytest.raises(exc) as info:
        tickstep.Backtest(bars, SmaCross, **options)
    _check(info, words)


@pytest.mark.parametrize(("options", "exc", "words"), OPTION_CASES)
def test_bad_options_in_run_batch(bars, options, exc, words):
    with pytest.raises(exc) as info:
        run_batch(SmaCross, bars, cache=False, executor="sequential", **options)
    _check(info, words)


def test_a_config_must_be_a_config(bars):
    with pytest.raises(TypeError, match="config must be a tickstep.BacktestConfig, got dict"):
        tickstep.Backtest(bars, SmaCross, {"cash": 1})


# ---- parameters: checked against the declared type, named ------------------------------


class Typed(tickstep.Strategy):
    """Parameters typed by their default and by annotations."""

    window = 5  # int
    threshold = 0.5  # float
    enabled = True  # bool
    mode = "fast"  # str
    limit: float | None = None  # annotated: a number or None
    side: Literal["long", "short"] = "long"
    count: int = 3
    anything = None  # no type declared: any value


PARAM_CASES = [
    ({"window": 2.7}, ["Typed", "window=2.7", "int"]),
    ({"window": "5"}, ["window='5'", "int"]),
    ({"window": True}, ["window=True", "int"]),
    ({"window": None}, ["window=None", "int"]),
    ({"threshold": "0.5"}, ["threshold='0.5'", "float"]),
    ({"threshold": None}, ["threshold=None", "float"]),
    ({"threshold": False}, ["threshold=False", "float"]),
    ({"enabled": "no"}, ["enabled='no'", "bool"]),
    ({"enabled": 0}, ["enabled=0", "bool"]),
    ({"enabled": 1.0}, ["enabled=1.0", "bool"]),
    ({"mode": 3}, ["mode=3", "str"]),
    ({"mode": None}, ["mode=None", "str"]),
    ({"limit": "high"}, ["limit='high'", "float | None"]),
    ({"side": "sideways"}, ["side='sideways'", "'long'", "'short'"]),
    ({"count": 1.5}, ["count=1.5", "int"]),
    ({"windw": 3}, ["no parameter 'windw'", "did you mean 'window'"]),
]


@pytest.mark.parametrize(("params", "words"), PARAM_CASES)
def test_bad_parameters_are_refused_naming_the_parameter(bars, params, words):
    bt = tickstep.Backtest(bars, Typed)
    with pytest.raises(TypeError) as info:
        bt.run(**params)
    _check(info, words)
    with pytest.raises(TypeError) as info:
        run_batch(Typed, bars, params=params, cache=False, executor="sequential")
    _check(info, words)


@pytest.mark.parametrize(
    ("params", "kept"),
    [
        ({"window": 7}, {"window": 7}),
        ({"window": np.int64(7)}, {"window": 7}),
        ({"window": 7.0}, {"window": 7}),  # a whole number, e.g. read back from a grid
        ({"threshold": 1}, {"threshold": 1.0}),  # a float parameter runs with a float
        ({"threshold": np.float32(0.25)}, {"threshold": 0.25}),
        ({"enabled": np.bool_(False)}, {"enabled": False}),
        ({"limit": None}, {"limit": None}),
        ({"limit": 2}, {"limit": 2.0}),
        ({"side": "short"}, {"side": "short"}),
        ({"anything": [1, "x"]}, {"anything": [1, "x"]}),
    ],
)
def test_good_parameters_run_with_their_values(bars, params, kept):
    result = tickstep.Backtest(bars, Typed).run(**params)
    for name, value in kept.items():
        got = getattr(result.strategy, name)
        assert got == value and type(got) is type(value), (name, got)
    if "window" in params:
        assert type(result.strategy.window) is int


def test_shipped_strategies_check_their_parameters(bars):
    with pytest.raises(TypeError, match=r"SmaCross.*fast=2\.7.*int"):
        tickstep.Backtest(bars, SmaCross).run(fast=2.7)
    with pytest.raises(TypeError, match=r"RsiMeanReversion.*short='no'.*bool"):
        tickstep.Backtest(bars, RsiMeanReversion).run(short="no")
    with pytest.raises(TypeError, match=r"oversold='30'"):
        tickstep.Backtest(bars, RsiMeanReversion).optimize(oversold=[25.0, "30"], cache=False)


# ---- timeframes and names ----------------------------------------------------------------

TIMEFRAME_CASES = [
    ("1M", ["'1M'", "ambiguous", "accepted units"]),
    ("3mo", ["'3mo'", "month"]),
    ("1y", ["'1y'", "year"]),
    ("2.5h", ["'2.5h'", "whole number"]),
    ("fortnight", ["'fortnight'", "unknown unit"]),
    ("0h", ["'0h'", "positive"]),
]


class Declares(tickstep.Strategy):
    period = "1h"

    def init(self):
        self.timeframe(self.period)


@pytest.mark.parametrize(("period", "words"), TIMEFRAME_CASES)
def test_bad_timeframes_are_refused_with_the_accepted_spellings(period, words):
    minutes = make_bars([(1, 2, 0.5, 1.5)] * 10, freq="min")
    with pytest.raises(tickstep.ConfigError) as info:
        tickstep.Backtest(minutes, Declares).run(period=period)
    _check(info, ["period=", *words])


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda b: run_batch("sma_crosss", b, cache=False), LookupError, ["'sma_crosss'", "did you mean 'sma_cross'"]),
        (lambda b: run_batch(SmaCross, b, maximize="Sharpe", cache=False), ValueError, ["maximize='Sharpe'", "did you mean 'Sharpe Ratio'"]),
        (lambda b: run_batch(SmaCross, b, params={"fast": []}, cache=False), ValueError, ["'fast'", "no values"]),
        (lambda b: tickstep.Backtest(b, object), TypeError, ["subclass of tickstep.Strategy"]),
    ],
)
def test_bad_names_and_shapes(bars, call, exc, words):
    with pytest.raises(exc) as info:
        call(bars)
    _check(info, words)
