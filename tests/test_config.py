"""BacktestConfig: one place for every option, its default and its rule."""

from __future__ import annotations

import dataclasses
import doctest
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from tickstep import BacktestConfig, ConfigError, FixedSize, PercentOfEquity
from tickstep.batch import run_batch
from tickstep.config import split_options


def test_defaults():
    config = BacktestConfig()
    assert config.options() == {
        "cash": 10_000.0,
        "commission": 0.0,
        "commission_fixed": 0.0,
        "commission_per_unit": 0.0,
        "commission_min": 0.0,
        "commission_cap": None,
        "commission_maker": None,
        "commission_by_symbol": None,
        "multiplier": None,
        "slippage": 0.0,
        "slippage_by_symbol": None,
        "trade_on_close": False,
        "limit_fill": "touch",
        "leverage": 1.0,
        "maintenance_margin": 0.0,
        "margin_by_symbol": None,
        "funding_column": None,
        "dividend_column": None,
        "volume_limit": None,
        "volume_impact": 0.0,
        "shortable": True,
        "shortable_column": None,
        "close_delisted": False,
        "exclusive_orders": False,
        "order_delay": 0,
        "sizer": PercentOfEquity(0.95),
        "record_every_bar": False,
        "timezone": "UTC",
        "risk_free_rate": 0.0,
        "benchmark": None,
        "borrow_rate": 0.0,
        "borrow_rate_by_symbol": None,
        "borrow_rate_column": None,
        "margin_rate": 0.0,
        "cash_rate": 0.0,
        "periods_per_year": None,
        "on_reject": "warn",
        "trade_start": None,
        "stream": None,
        "history": None,
    }


def test_frozen_picklable_and_comparable():
    config = BacktestConfig(cash=50_000, commission=0.001, sizer=FixedSize(3), timezone="Europe/Paris")
    again = pickle.loads(pickle.dumps(config))
    assert again == config and hash(repr(again)) == hash(repr(config))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cash = 1.0  # type: ignore[misc]
    assert config.replace(cash=1.0).cash == 1.0 and config.cash == 50_000.0


def test_numbers_are_kept_as_floats_not_coerced_from_text():
    config = BacktestConfig(cash=np.int64(20_000), leverage=2, slippage=np.float32(1.5))
    assert type(config.cash) is float and config.cash == 20_000.0
    assert type(config.leverage) is float and config.slippage == 1.5


def test_engine_options_are_the_cores_spelling():
    config = BacktestConfig(cash=5_000, commission=0.002, commission_fixed=1.0, slippage=3.0,
                            trade_on_close=True, leverage=2.0, record_every_bar=True,
                            exclusive_orders=True, commission_per_unit=0.005, commission_min=1,
                            commission_cap=0.01, commission_maker=0.0002, maintenance_margin=0.25,
                            limit_fill="through")
    assert config.engine_options() == {
        "cash": 5_000.0, "commission": 0.002, "commission_fixed": 1.0, "commission_per_unit": 0.005,
        "commission_min": 1.0, "commission_cap": 0.01, "commission_maker": 0.0002, "slippage_bps": 3.0,
        "fill_at": "close", "limit_fill": "through", "leverage": 2.0, "maintenance_margin": 0.25, "funding_column": None,
        "dividend_column": None, "volume_limit": None, "volume_impact": 0.0,
        "exclusive_orders": True,
        "order_delay": 0,
        "record_every_bar": True,
        "borrow_rate": 0.0, "margin_rate": 0.0, "cash_rate": 0.0, "borrow_rate_column": None,
        "shortable_column": None,
    }
    tickstep._core.Engine(_tiny_market(), **config.engine_options())  # the core takes them


def test_every_option_is_documented_and_has_a_rule():
    for f in dataclasses.fields(BacktestConfig):
        assert f"{f.name} :" in BacktestConfig.__doc__, f.name
        assert callable(f.metadata["rule"]), f.name


@pytest.mark.parametrize(
    ("options", "culprit", "says"),
    [
        ({"cash": "lots"}, "cash='lots'", "positive finite number"),
        ({"limit_fill": "thru"}, "limit_fill='thru'", "'touch' (a price at the limit fills it) or 'through'"),
        ({"order_delay": -1}, "order_delay=-1", "a whole number of bars >= 0"),
        ({"order_delay": 1.5}, "order_delay=1.5", "got float"),
        ({"order_delay": True}, "order_delay=True", "got bool"),
        ({"order_delay": 2, "trade_on_close": True}, "order_delay=2 with trade_on_close=True",
         "cannot also wait"),
        ({"limit_fill": True}, "limit_fill=True", "'through'"),
        ({"cash": 0}, "cash=0", "positive"),
        ({"cash": -5.0}, "cash=-5.0", "positive"),
        ({"cash": math.inf}, "cash=inf", "finite"),
        # Beyond what the account keeps exactly: 1e-300 would be kept as nothing (a run
        # that did nothing reported -100%), 1e300 overflowed at the first bar.
        ({"cash": 1e-300}, "cash=1e-300", "at least 2**-20"),
        ({"cash": 2.0**-21}, "cash=4.76837158203125e-07", "at least 2**-20"),
        ({"cash": 1e300}, "cash=1e+300", "below 2**72"),
        ({"cash": 2.0**72}, "cash=4.722366482869645e+21", "below 2**72"),
        ({"cash": True}, "cash=True", "got bool"),
        ({"cash": None}, "cash=None", "got NoneType"),
        ({"commission": None}, "commission=None", "fraction"),
        ({"commission": 1.0}, "commission=1.0", "[0, 1)"),
        ({"maintenance_margin": 25}, "maintenance_margin=25", "fraction of gross exposure in [0, 1)"),
        ({"commission_by_symbol": [("AAPL", 0.001)]}, "commission_by_symbol=[", "mapping of symbols"),
        ({"commission_by_symbol": {"AAPL": 0.001}}, "commission_by_symbol['AAPL']=0.001",
         "mapping of commission parts"),
        ({"commission_by_symbol": {"AAPL": {}}}, "commission_by_symbol['AAPL']={}",
         "at least one part"),
        ({"commission_by_symbol": {"AAPL": {"commission": 5}}},
         "commission_by_symbol['AAPL']['commission']=5", "[0, 1)"),
        ({"commission_by_symbol": {"AAPL": {"commission_min": -1}}},
         "commission_by_symbol['AAPL']['commission_min']=-1", ">= 0"),
        ({"commission_by_symbol": {"AAPL": {"commission_cap": 0}}},
         "commission_by_symbol['AAPL']['commission_cap']=0", "(0, 1)"),
        ({"commission_by_symbol": {"AAPL": {"commision": 0.001}}}, "'commision' is not a part",
         "did you mean 'commission'"),
        ({"commission_by_symbol": {"AAPL": {"commission": "0.1%"}}},
         "commission_by_symbol['AAPL']['commission']='0.1%'", "got str"),
        ({"maintenance_margin": -0.1}, "maintenance_margin=-0.1", "[0, 1)"),
        ({"borrow_rate_by_symbol": 0.25}, "borrow_rate_by_symbol=0.25", "got float"),
        ({"slippage_by_symbol": {"SHIB": -5}}, "slippage_by_symbol['SHIB']=-5", ">= 0"),
        ({"slippage_by_symbol": ["SHIB"]}, "slippage_by_symbol=['SHIB']", "got list"),
        ({"borrow_rate_by_symbol": {"GME": -0.1}}, "borrow_rate_by_symbol['GME']=-0.1", ">= 0"),
        ({"borrow_rate_by_symbol": {"": 0.1}}, "borrow_rate_by_symbol=", "symbols by name"),
        ({"margin_by_symbol": {"ES": 20}}, "margin_by_symbol['ES']=20", "mapping of margin parts"),
        ({"margin_by_symbol": {"ES": {}}}, "margin_by_symbol['ES']={}", "at least one part"),
        ({"margin_by_symbol": {"ES": {"leverage": 0}}}, "margin_by_symbol['ES']['leverage']=0",
         "positive"),
        ({"margin_by_symbol": {"ES": {"maintenance_margin": 1.0}}},
         "margin_by_symbol['ES']['maintenance_margin']=1.0", "[0, 1)"),
        ({"margin_by_symbol": {"ES": {"leverge": 20}}}, "'leverge' is not a part of margin terms",
         "did you mean 'leverage'"),
        ({"margin_by_symbol": {"ES": {"commission": 0.1}}}, "'commission' is not a part of margin terms",
         "leverage, maintenance_margin"),
        ({"maintenance_margin": True}, "maintenance_margin=True", "got bool"),
        ({"funding_column": ""}, "funding_column=''", "name of a column"),
        ({"funding_column": ["funding_rate"]}, "funding_column=[", "got list"),
        ({"dividend_column": 1.5}, "dividend_column=1.5", "got float"),
        ({"commission": -0.001}, "commission=-0.001", "commission_maker=, which may be negative"),
        ({"commission": "0.1%"}, "commission='0.1%'", "got str"),
        ({"commission_fixed": -1}, "commission_fixed=-1", ">= 0"),
        ({"commission_per_unit": -0.005}, "commission_per_unit=-0.005", ">= 0"),
        ({"commission_per_unit": "0.5c"}, "commission_per_unit='0.5c'", "got str"),
        ({"commission_min": math.inf}, "commission_min=inf", "finite"),
        ({"commission_min": True}, "commission_min=True", "got bool"),
        ({"commission_cap": 0}, "commission_cap=0", "fraction of notional in (0, 1)"),
        ({"commission_cap": 1.0}, "commission_cap=1.0", "fraction of notional in (0, 1)"),
        ({"commission_cap": "1%"}, "commission_cap='1%'", "got str"),
        ({"commission_maker": -0.2}, "commission_maker=-0.2", "[-0.1, 1)"),
        ({"commission_maker": True}, "commission_maker=True", "got bool"),
        ({"slippage": math.nan}, "slippage=nan", "finite"),
        ({"slippage": [1]}, "slippage=[1]", "got list"),
        ({"trade_on_close": "no"}, "trade_on_close='no'", "True or False"),
        ({"trade_on_close": 1}, "trade_on_close=1", "True or False"),
        ({"trade_on_close": None}, "trade_on_close=None", "True or False"),
        ({"record_every_bar": "yes"}, "record_every_bar='yes'", "True or False"),
        ({"leverage": 0}, "leverage=0", "positive"),
        ({"leverage": "2x"}, "leverage='2x'", "got str"),
        ({"sizer": 0.5}, "sizer=0.5", "callable"),
        ({"timezone": None}, "timezone=None", "IANA timezone"),
        ({"timezone": "Mars/Phobos"}, "timezone='Mars/Phobos'", "unknown timezone"),
        ({"timezone": ""}, "timezone=''", "IANA timezone"),
        ({"timezone": 5}, "timezone=5", "got int"),
        ({"risk_free_rate": math.nan}, "risk_free_rate=nan", "finite"),
        ({"risk_free_rate": -1.0}, "risk_free_rate=-1.0", "above -1"),
        ({"risk_free_rate": "2%"}, "risk_free_rate='2%'", "got str"),
        ({"comission": 0.001}, "unknown option 'comission'", "did you mean 'commission'"),
        ({"cahs": 1}, "unknown option 'cahs'", "did you mean 'cash'"),
        ({"trade_on_closed": True}, "unknown option 'trade_on_closed'", "did you mean 'trade_on_close'"),
        ({"zzz": 1}, "unknown option 'zzz'", "options: cash, commission"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_the_rule(options, culprit, says):
    for make in (lambda: BacktestConfig(**options), lambda: BacktestConfig().replace(**options)):
        with pytest.raises(ConfigError) as info:
            make()
        assert culprit in str(info.value) and says in str(info.value), str(info.value)
    assert issubclass(ConfigError, ValueError)


def _tiny_market():
    from tickstep.simulation import market_from_columns

    return market_from_columns(tickstep.data.to_market_columns(make_bars([(1, 2, 0.5, 1.5)] * 3)))


class _Hold(tickstep.Strategy):
    def next(self, symbol):
        if not self.position():
            self.buy(size=1)


@pytest.fixture(scope="module")
def bars():
    rows = [(10 + i, 11 + i, 9 + i, 10.5 + i) for i in range(20)]
    return make_bars(rows)


@pytest.fixture(scope="module")
def sources(bars, tmp_path_factory):
    """The same bars in memory, as a CSV file and in a DuckDB store."""
    root = tmp_path_factory.mktemp("sources")
    csv = root / "AAA.csv"
    bars.rename_axis("time").to_csv(csv)
    store_path = root / "bars.duckdb"
    with tickstep.data.Store(store_path) as store:
        store.ingest(bars, symbol="AAA")
    return {"memory": bars, "file": str(csv), "store": str(store_path)}


@pytest.mark.parametrize("kind", ["memory", "file", "store"])
@pytest.mark.parametrize(
    ("name", "hint"),
    [("comission", "commission"), ("slipage", "slippage"), ("regular_hour", "regular_hours"),
     ("timezon", "timezone")],
)
def test_misspelled_options_get_a_hint_in_every_data_path(sources, kind, name, hint):
    with pytest.raises(ConfigError) as info:
        tickstep.Backtest(sources[kind], _Hold, **{name: 1})
    assert f"unknown option {name!r} — did you mean {hint!r}?" in str(info.value)
    with pytest.raises(ConfigError, match=f"unknown option {name!r} — did you mean {hint!r}"):
        run_batch(_Hold, sources[kind], cache=False, executor="sequential",
                                 **{name: 1})


@pytest.mark.parametrize("kind", ["memory", "file", "store"])
def test_bad_values_are_refused_before_the_data_is_read(sources, kind):
    with pytest.raises(ConfigError, match="trade_on_close='no'"):
        tickstep.Backtest(sources[kind], _Hold, trade_on_close="no")
    with pytest.raises(ConfigError, match="timezone=None"):
        tickstep.Backtest(sources[kind], _Hold, timezone=None)


def test_a_config_and_named_options_give_the_same_runs(bars):
    config = BacktestConfig(cash=1_000, commission=0.01, trade_on_close=True)
    by_config = tickstep.Backtest(bars, _Hold, config).run()
    by_name = tickstep.Backtest(bars, _Hold, cash=1_000, commission=0.01, trade_on_close=True).run()
    pd.testing.assert_series_equal(by_config.stats, by_name.stats)
    # Named options override the config's.
    bt = tickstep.Backtest(bars, _Hold, config, cash=2_000)
    assert bt.config == config.replace(cash=2_000)
    # trade_on_close reached the core: the first buy fills at the first bar's close.
    assert by_config.fills["price"].iloc[0] == bars["close"].iloc[0]
    assert tickstep.Backtest(bars, _Hold).run().fills["price"].iloc[0] == bars["open"].iloc[1]


def test_split_options_separates_load_options():
    config, load = split_options({"cash": 1.0, "regular_hours": True}, ["regular_hours"])
    assert config == {"cash": 1.0} and load == {"regular_hours": True}
    with pytest.raises(ConfigError, match="did you mean 'regular_hours'"):
        split_options({"regular_hour": True}, ["regular_hours"])


@pytest.mark.parametrize("module", ["tickstep.config", "tickstep.timeframes", "tickstep.hints"])
def test_docstring_examples_run(module):
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_a_symbols_own_schedule_is_kept_frozen_hashable_and_picklable():
    given = {"AAPL": {"commission_per_unit": 0.005, "commission_min": 1}}
    config = BacktestConfig(commission=0.001, commission_by_symbol=given)
    given["AAPL"]["commission_min"] = 99  # the caller's dict changing later changes nothing
    assert config.commission_by_symbol == {"AAPL": {"commission_per_unit": 0.005, "commission_min": 1.0}}
    assert type(config.commission_by_symbol["AAPL"]["commission_min"]) is float
    with pytest.raises(TypeError):
        config.commission_by_symbol["AAPL"] = {}  # type: ignore[index]
    again = pickle.loads(pickle.dumps(config))
    assert again == config and hash(again) == hash(config)
    assert hash(config) != hash(config.replace(commission_by_symbol={"AAPL": {"commission": 0.002}}))
