"""tickstep: event-driven multi-symbol backtesting with a Rust core.

>>> import tickstep
>>> tickstep.Strategy, tickstep.Backtest  # doctest: +ELLIPSIS
(<class 'tickstep.strategy.Strategy'>, <class 'tickstep.backtest.Backtest'>)
"""

from tickstep import data, metrics, sizing
from tickstep._core import ConfigError, OrderError, StateError, TickstepError, UnknownSymbolError
from tickstep._core import __version__ as __version__
from tickstep.backtest import Backtest
from tickstep.config import BacktestConfig
from tickstep.parameters import ParameterError
from tickstep.rejections import RejectedOrdersError, RejectedOrderWarning, TickstepWarning
from tickstep.results import Result, load_result
from tickstep.signals import SignalStrategy
from tickstep.sizing import FixedSize, Limits, PercentOfEquity, RiskPerTrade, SizingRequest
from tickstep.strategy import Order, Position, Strategy, Trade

__all__ = [
    "Backtest",
    "BacktestConfig",
    "ConfigError",
    "FixedSize",
    "Limits",
    "Order",
    "OrderError",
    "ParameterError",
    "PercentOfEquity",
    "Position",
    "RejectedOrderWarning",
    "RejectedOrdersError",
    "Result",
    "RiskPerTrade",
    "SignalStrategy",
    "SizingRequest",
    "StateError",
    "Strategy",
    "TickstepError",
    "TickstepWarning",
    "Trade",
    "UnknownSymbolError",
    "data",
    "load_result",
    "metrics",
    "sizing",
]
