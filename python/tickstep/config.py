"""`BacktestConfig`: every engine and accounting option, its default and its rule.

One frozen, picklable value holds what a run needs besides the data, the strategy and
its parameters. `tickstep.Backtest`, `tickstep.batch.run_batch`, the command line and
the service all build or take one; the core receives its engine part as one set of
keyword options (`BacktestConfig.engine_options`).

Each option is declared once, below, by a single `_option(...)` line: its default, the
rule its value must follow, and how the core spells it. Adding an option is adding
one line there (and its entry in the class docstring).

Values are checked, never coerced: ``trade_on_close='no'`` is refused rather than read
as True, ``cash='lots'`` or ``risk_free_rate=nan`` are refused naming the option and the
rule, and a misspelled name gets a hint (``unknown option 'comission' — did you mean
'commission'?``). Every refusal is a `tickstep.ConfigError` (a ``ValueError``).

Examples
--------
>>> from tickstep import BacktestConfig
>>> config = BacktestConfig(cash=50_000, commission=0.001)
>>> config.cash, config.trade_on_close
(50000.0, False)
>>> config.replace(trade_on_close=True).engine_options()["fill_at"]
'close'
>>> from tickstep import ConfigError
>>> try:
...     BacktestConfig(comission=0.001)
... except ConfigError as exc:
...     print(exc)  # doctest: +ELLIPSIS
unknown option 'comission' — did you mean 'commission'? (options: cash, ...)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError, UnknownSymbolError
from tickstep.hints import did_you_mean
from tickstep.metrics import BenchmarkPrices
from tickstep.rejections import ON_REJECT
from tickstep.sizing import PercentOfEquity, Sizer
from tickstep.timeframes import duration

__all__ = ["BacktestConfig", "ConfigError", "split_options"]


# ---- rules: each takes (name, value) and returns the value to keep, or refuses ------------


def _refuse(name: str, value: Any, rule: str, *, wrong_type: bool = False) -> ConfigError:
    got = f", got {type(value).__name__}" if wrong_type else ""
    return ConfigError(f"{name}={value!r}: must be {rule}{got}")


def _number(name: str, value: Any, rule: str) -> float:
    # bool is an int to Python, never an amount to a trader; strings are never parsed.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _refuse(name, value, rule, wrong_type=True)
    number = float(value)
    if not math.isfinite(number):
        raise _refuse(name, value, rule)
    return number


def _positive(name: str, value: Any) -> float:
    rule = "a positive finite number"
    number = _number(name, value, rule)
    if number <= 0:
        raise _refuse(name, value, rule)
    return number


#: The account keeps its sums exact, in whole units of 2**-52 below 2**72 (the core's
#: `Money`): a starting cash beyond that could never be summed; one below 2**-20 would
#: be kept to fewer than 32 bits (1e-300 as nothing at all).
CASH_RANGE = (2.0**-20, 2.0**72)


def _cash(name: str, value: Any) -> float:
    low, high = CASH_RANGE
    rule = (f"a positive finite number, at least 2**-20 ({low:.3g}) and below 2**72 "
            f"({high:.3g}): the range the account keeps its sums exact in (units of 2**-52)")
    number = _number(name, value, rule)
    if not low <= number < high:
        raise _refuse(name, value, rule)
    return number


def _non_negative(name: str, value: Any) -> float:
    rule = "a finite number >= 0"
    number = _number(name, value, rule)
    if number < 0:
        raise _refuse(name, value, rule)
    return number


def _cap(name: str, value: Any) -> float | None:
    rule = "None (no cap) or a fraction of notional in (0, 1) (0.01 = 1%)"
    if value is None:
        return None
    number = _number(name, value, rule)
    if not 0 < number < 1:
        raise _refuse(name, value, rule)
    return number


def _fraction(name: str, value: Any, rule: str) -> float:
    """A number in [0, 1): a fraction written as a percent (5 for 5%) is refused by
    ``rule``, never read as one."""
    number = _number(name, value, rule)
    if not 0 <= number < 1:
        raise _refuse(name, value, rule)
    return number


def _commission_rate(name: str, value: Any) -> float:
    # A taker pays: a negative rate here is a mistake (a rebate is a maker's).
    return _fraction(name, value, "a fraction of notional in [0, 1) (0.001 = 0.1%; a maker's "
                                  "rebate is commission_maker=, which may be negative)")


def _maker_rate(name: str, value: Any) -> float | None:
    # A maker may be paid: a rebate down to -10%.
    rule = "None or a fraction of notional in [-0.1, 1) (0.0002 = 0.02%; negative: a rebate)"
    if value is None:
        return None
    number = _number(name, value, rule)
    if not -0.1 <= number < 1:
        raise _refuse(name, value, rule)
    return number


def _annual_rate(name: str, value: Any) -> float:
    # A fraction per year: 5 would be 500% a year, almost surely 5% written as a percent.
    rule = "a finite annual rate as a fraction, above -1 and below 1 (0.02 = 2%)"
    number = _number(name, value, rule)
    if not -1 < number < 1:
        raise _refuse(name, value, rule)
    return number


def _annual_cost(name: str, value: Any) -> float:
    # As for the risk-free rate: a fraction per year, so 5 (meant as 5%) is refused.
    return _fraction(name, value, "a finite annual rate as a fraction in [0, 1) (0.05 = 5%)")


def _volume_limit(name: str, value: Any) -> float | None:
    rule = "None (no limit) or a fraction of a bar's volume in (0, 1] (0.1 = 10%)"
    if value is None:
        return None
    number = _number(name, value, rule)
    if not 0 < number <= 1:
        raise _refuse(name, value, rule)
    return number


def _impact(name: str, value: Any) -> float:
    rule = "a finite coefficient >= 0 (0.1: a fill of a tenth of its bar's volume pays 0.1%)"
    number = _number(name, value, rule)
    if not number >= 0:
        raise _refuse(name, value, rule)
    return number


def _maintenance(name: str, value: Any) -> float:
    # 1 or more would call an account with no borrowing at all.
    return _fraction(name, value, "a fraction of gross exposure in [0, 1) (0.25 = 25%; 0: only "
                                  "when equity is gone)")


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping that hashes and compares by its items: the value of an option
    given as a mapping (a config is frozen and hashable)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._items == dict(other.items())

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMapping, (self._items,))


#: The parts of a fill's commission, each by the rule of the account's option of that name.
COMMISSION_PARTS = ("commission", "commission_fixed", "commission_per_unit", "commission_min",
                    "commission_cap", "commission_maker")


#: The parts of a symbol's own margin terms (``margin_by_symbol``): as fractions of worth,
#: the account's options of those names; or as money per unit held (a futures exchange's
#: margin per contract), both given and no fraction beside them.
MARGIN_PARTS = ("leverage", "maintenance_margin")
MARGIN_PER_UNIT_PARTS = ("initial_margin_per_unit", "maintenance_margin_per_unit")


def _terms_by_symbol(name: str, value: Any, parts_allowed: tuple[str, ...], kind: str, what: str,
                     example: str, empty: str,
                     own_rules: Mapping[str, Callable[[str, Any], float]] | None = None,
                     ) -> FrozenMapping | None:
    # {symbol: {part: number}}: each symbol listed has terms of its own (`what`: a schedule
    # of `kind` commission's parts, or margin terms), its parts named and ruled as the
    # account's options of those names (one place for each rule: the fields'), or by
    # `own_rules` for parts no account's option has.
    rule = f"None or a mapping of symbols to {what} of their own, e.g. {example}"
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _refuse(name, value, rule, wrong_type=True)
    rules = {f.name: f.metadata["rule"] for f in dataclasses.fields(BacktestConfig)}
    rules.update(own_rules or {})
    terms = {}
    for symbol, parts in value.items():
        if not isinstance(symbol, str) or not symbol:
            raise _refuse(name, value, rule + " (symbols by name)")
        where = f"{name}[{symbol!r}]"
        if not isinstance(parts, Mapping):
            raise _refuse(where, parts, f"a mapping of {kind} parts to numbers", wrong_type=True)
        if not parts:
            # Most likely terms left unfilled.
            raise _refuse(where, parts, f"{what} with at least one part ({empty})")
        for part in parts:
            if part not in parts_allowed:
                raise ConfigError(f"{where}: {part!r} is not a part of {what}; the parts "
                                  f"are {', '.join(parts_allowed)}{did_you_mean(str(part), parts_allowed)}")
        terms[symbol] = FrozenMapping({part: rules[part](f"{where}[{part!r}]", number)
                                       for part, number in parts.items()})
    return FrozenMapping(terms)


def _by_symbol(name: str, value: Any) -> FrozenMapping | None:
    # Each symbol listed pays its own schedule.
    return _terms_by_symbol(name, value, COMMISSION_PARTS, "commission", "a schedule",
                            "{'AAPL': {'commission_per_unit': 0.005}}",
                            "a symbol that pays nothing: {'commission': 0}")


def _margin_by_symbol(name: str, value: Any) -> FrozenMapping | None:
    # Each symbol listed has margin terms of its own: as fractions of worth, the parts it
    # leaves out the account's; or as money per unit, both parts and nothing else.
    per_unit = dict.fromkeys(MARGIN_PER_UNIT_PARTS, _positive)
    per_unit["maintenance_margin_per_unit"] = _non_negative
    terms = _terms_by_symbol(name, value, MARGIN_PARTS + MARGIN_PER_UNIT_PARTS, "margin",
                             "margin terms",
                             "{'ES': {'leverage': 20, 'maintenance_margin': 0.04}} or "
                             "{'ES': {'initial_margin_per_unit': 12000, "
                             "'maintenance_margin_per_unit': 11000}}",
                             "a symbol on the account's terms is left out", per_unit)
    for symbol, parts in (terms or {}).items():
        given = [part for part in MARGIN_PER_UNIT_PARTS if part in parts]
        if not given:
            continue
        where = f"{name}[{symbol!r}]"
        fractions = [part for part in MARGIN_PARTS if part in parts]
        if fractions:
            raise ConfigError(f"{where}: margin per unit ({', '.join(given)}) or as fractions "
                              f"of worth ({', '.join(fractions)}), not both")
        if len(given) == 1:
            missing, = set(MARGIN_PER_UNIT_PARTS) - set(given)
            raise ConfigError(f"{where}: {missing} is missing: a margin per unit gives both "
                              "the initial and the maintenance margin")
        initial, maintenance = (parts[part] for part in MARGIN_PER_UNIT_PARTS)
        if maintenance > initial:
            raise _refuse(f"{where}['maintenance_margin_per_unit']", maintenance,
                          f"at most initial_margin_per_unit={initial!r} (a broker asks no "
                          "more to keep a position than to open it)")
    return terms


def _multiplier(name: str, value: Any) -> float | FrozenMapping | None:
    # One number for every symbol, or {symbol: number} for those listed (the others 1).
    rule = ("None (1: shares, coins), a finite number above 0 for every symbol, or a mapping "
            "of symbols to theirs, e.g. {'ES': 50, 'NQ': 20}")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        number = _number(name, value, rule)
        if number <= 0:
            raise _refuse(name, value, rule)
        return number
    return _numbers_by_symbol(name, value, rule, _positive)


def _numbers_by_symbol(name: str, value: Mapping[Any, Any], rule: str,
                       each: Callable[[str, Any], float]) -> FrozenMapping:
    # {symbol: number}, each number by `each`, the rule of the account's option it stands in for.
    for symbol in value:
        if not isinstance(symbol, str) or not symbol:
            raise _refuse(name, value, rule + " (symbols by name)")
    return FrozenMapping({symbol: each(f"{name}[{symbol!r}]", number)
                          for symbol, number in value.items()})


def _borrow_by_symbol(name: str, value: Any) -> FrozenMapping | None:
    # The symbols whose shorts pay a fee of their own; the others `borrow_rate`.
    return _own_numbers(name, value, "annual borrow fees, e.g. {'GME': 0.25}", _non_negative)


def _slippage_by_symbol(name: str, value: Any) -> FrozenMapping | None:
    # The symbols whose fills slip by their own basis points; the others `slippage`'s.
    return _own_numbers(name, value, "slippage in basis points, e.g. {'SHIB': 50}", _non_negative)


def _own_numbers(name: str, value: Any, what: str,
                 each: Callable[[str, Any], float]) -> FrozenMapping | None:
    # None, or {symbol: number} by the rule of the account's option it stands in for.
    rule = f"None or a mapping of symbols to their {what}"
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _refuse(name, value, rule, wrong_type=True)
    return _numbers_by_symbol(name, value, rule, each)


def _shortable(name: str, value: Any) -> bool | tuple[str, ...]:
    # Every symbol (True), none (False: a long-only account), or the symbols named.
    return _flag_or_symbols(name, value, "True (every symbol may be sold short), False (none: "
                                         "long only) or the symbols that may, e.g. ['SPY', 'QQQ']")


def _close_delisted(name: str, value: Any) -> bool | tuple[str, ...]:
    # Every symbol whose bars end early (True), none (False), or the symbols named.
    return _flag_or_symbols(name, value, "True (every symbol whose bars end before the run's), "
                                         "False (none) or the symbols delisted, e.g. ['LEH']")


def _flag_or_symbols(name: str, value: Any, rule: str) -> bool | tuple[str, ...]:
    # A flag for every symbol, or the symbols it applies to (sorted: one config per set).
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _refuse(name, value, rule, wrong_type=True)
    symbols = list(value)
    if not all(isinstance(s, str) and s for s in symbols):
        raise _refuse(name, value, rule + " (symbols by name)")
    return tuple(sorted(set(symbols)))


def _column(name: str, value: Any) -> str | None:
    rule = "None or the name of a column of the data, e.g. 'funding_rate' or 'dividend'"
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refuse(name, value, rule, wrong_type=True)
    if not value:
        raise _refuse(name, value, rule)
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise _refuse(name, value, "True or False", wrong_type=True)
    return bool(value)


def _timezone(name: str, value: Any) -> str:
    rule = "an IANA timezone name such as 'UTC' or 'America/New_York'"
    if not isinstance(value, str) or not value.strip():
        raise _refuse(name, value, rule, wrong_type=not isinstance(value, str))
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}={value!r}: unknown timezone; must be {rule}") from None
    return value


def _benchmark(name: str, value: Any) -> str | BenchmarkPrices | None:
    if value is None or isinstance(value, BenchmarkPrices):
        return value
    if isinstance(value, str):
        if not value:
            raise _refuse(name, value, "a symbol of the data or a price Series")
        return value
    if hasattr(value, "index") and hasattr(value, "to_numpy"):  # a pandas Series
        try:
            return BenchmarkPrices(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name}: {e}") from None
    raise _refuse(name, value, "a symbol of the data or a price Series", wrong_type=True)


def _periods_per_year(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise _refuse(name, value, "None (from the data's calendar) or a whole number >= 1, e.g. 252 or 365",
                      wrong_type=not isinstance(value, numbers.Integral))
    return int(value)


#: When a price reaching a limit fills it (``limit_fill``).
LIMIT_FILLS = ("touch", "through")


def _limit_fill(name: str, value: Any) -> str:
    if not (isinstance(value, str) and value in LIMIT_FILLS):
        raise _refuse(name, value, "'touch' (a price at the limit fills it) or 'through' (only "
                      "a price past it does)")
    return value


def _on_reject(name: str, value: Any) -> str:
    if not (isinstance(value, str) and value in ON_REJECT):
        raise _refuse(name, value, ", ".join(map(repr, ON_REJECT[:-1])) + f" or {ON_REJECT[-1]!r}")
    return value


def _instant(name: str, value: Any) -> pd.Timestamp | None:
    rule = "None or a time: '2024-03-01', '2024-03-01 14:30', a Timestamp or UTC ns"
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_, float)):
        raise _refuse(name, value, rule, wrong_type=True)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise _refuse(name, value, rule, wrong_type=not isinstance(value, str)) from None
    if ts is pd.NaT:
        raise _refuse(name, value, rule)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).as_unit("ns")


def _stream(name: str, value: Any) -> pd.Timedelta | None:
    rule = "None (hold every bar), True (one-day windows) or a window length such as '5D' or '6h'"
    if value is None or value is False:
        return None
    if value is True:
        return pd.Timedelta(days=1)
    if isinstance(value, (bool, np.bool_, float, int)):
        raise _refuse(name, value, rule, wrong_type=True)
    try:
        span = duration(value)
    except (ValueError, TypeError):
        raise _refuse(name, value, rule, wrong_type=not isinstance(value, str)) from None
    if span is pd.NaT or span <= pd.Timedelta(0):
        raise _refuse(name, value, rule)
    return span


def _bars(name: str, value: Any) -> int:
    whole = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not whole or value < 0:
        raise _refuse(name, value, "a whole number of bars >= 0 (0: none)", wrong_type=not whole)
    return int(value)


def _history(name: str, value: Any) -> int | None:
    rule = "None (every bar held) or a whole number of bars >= 1"
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise _refuse(name, value, rule, wrong_type=not isinstance(value, numbers.Integral))
    return int(value)


def _sizer(name: str, value: Any) -> Sizer:
    if not callable(value):
        raise _refuse(name, value, "a sizer: a callable taking a SizingRequest (e.g. FixedSize(10))",
                      wrong_type=True)
    return value


# ---- the options ----------------------------------------------------------------------------


def _option(
    default: Any = dataclasses.MISSING,
    *,
    rule: Callable[[str, Any], Any],
    engine: str | None = None,
    to_engine: Callable[[Any], Any] | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """One option: its default, its rule, and its keyword for ``_core.Engine`` (if any)."""
    meta = {"rule": rule, "engine": engine, "to_engine": to_engine}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _refuse_unknown_names(cls: type) -> type:
    """Give the generated ``__init__`` a "did you mean" for misspelled option names."""
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self: Any, *args: Any, **options: Any) -> None:
        if args:
            raise ConfigError("BacktestConfig takes options by name, e.g. BacktestConfig(cash=10_000)")
        check_names(options)
        generated(self, **options)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_refuse_unknown_names
@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """Every option of a backtest besides its data, strategy and parameters.

    Parameters
    ----------
    cash : float, default 10_000
        Starting cash of the one account all symbols share: at least 2**-20 (about 1e-6)
        and below 2**72 (about 4.7e21), the range the account keeps its sums exact in.
    commission : float, default 0
        Fraction of each fill's notional charged as commission, in [0, 1) (0.001 = 0.1%).
    commission_fixed : float, default 0
        Fixed amount charged per fill, on top (>= 0).
    commission_per_unit : float, default 0
        Amount charged per unit filled (a share, a contract, a coin), on top (>= 0):
        0.005 is half a cent a share.
    commission_min : float, default 0
        The least a fill pays (>= 0): a fill whose commission comes to less pays this.
        0 is no minimum, so that a rebate stays one.
    commission_cap : float, optional
        The most a fill pays, as a fraction of its notional in (0, 1); where it is below
        ``commission_min`` (a small fill), the cap is what the fill pays. A broker's
        schedule of half a cent a share, at least 1.00 and at most 1% of the trade's
        value is ``commission_per_unit=0.005, commission_min=1.0, commission_cap=0.01``.
        Every part is per fill, and an order fills once: per order too.
    commission_maker : float, optional
        The fraction of notional a maker's fill pays instead of ``commission``, in [-0.1,
        1), as exchanges charge makers less than takers (``commission=0.0004,
        commission_maker=0.0002``). A negative rate is a rebate: the fill is paid (down
        to -10%), as exchanges pay some makers. A maker's fill is a limit order's (an entry, a
        take-profit, a triggered stop-limit) at its own limit price: it rested until the
        market came to it. A limit filled at a better price (the bar opened through it)
        and every market or stop fill are takers'. The other parts apply to both.
    commission_by_symbol : mapping, optional
        Symbols whose fills pay a schedule of their own: ``{symbol: {part: number}}``,
        the parts named and ruled as the options above (``commission``,
        ``commission_fixed``, ``commission_per_unit``, ``commission_min``,
        ``commission_cap``, ``commission_maker``). A symbol listed pays its schedule
        alone: the parts it does not give are 0 (none), not the account's. A portfolio of
        shares and coins: ``commission=0.001, commission_by_symbol={"AAPL":
        {"commission_per_unit": 0.005, "commission_min": 1.0}}``. Every symbol must be
        one of the data's when all its symbols run (with a ``symbols=`` selection, the
        schedule of a symbol left out is kept for the runs that have it).
    multiplier : float or mapping, optional
        A futures contract's multiplier: the money one unit gains per point its price
        rises (50 for the E-mini S&P 500, 1,000 for crude oil), one number for every
        symbol or ``{symbol: number}`` (the others 1); 1 by default (shares, coins).
        Prices, sizes and stops stay as quoted; every amount of money is units x price
        x multiplier: cash paid and received at fills, positions' values and gross
        exposure, trades' P&L, a commission's rate (of that notional; a per-unit
        commission is per contract), funding and dividends. Sizing by value or by a
        share of equity (the sizers, ``order_target``, ``rebalance``, signals mode) buys
        units worth price x multiplier. Symbols named must be the data's, as for
        ``commission_by_symbol``.
    slippage : float, default 0
        Basis points against the trader on market and stop fills; limits never slip (>= 0).
    slippage_by_symbol : mapping, optional
        Symbols whose market and stop fills slip by basis points of their own rather than
        ``slippage``: ``{symbol: bps}`` (a thin coin beside liquid ones:
        ``slippage=2, slippage_by_symbol={"SHIB": 50}``). Symbols named must be the
        data's.
    trade_on_close : bool, default False
        Fill market orders at the close of the bar on which they are placed instead of
        the next bar's open.
    limit_fill : str, default "touch"
        When a price reaching a limit fills it: ``"touch"``, a price at the limit does (a
        buy limit at 100 fills when the low is 100); ``"through"``, only a price past it
        (the low below 100), as orders resting at 100 before this one may have taken all
        that traded there. It rules every fill at a limit price: limit orders, take-profits,
        a stop-limit's limit (its trigger must then be better than the limit), orders at
        the open or the close with a limit; a gap through the limit still fills at the
        open.
    exclusive_orders : bool, default False
        Each order a strategy places first cancels its symbol's entry orders still working
        and closes its position, as backtesting.py's option of that name: at most one
        trade per symbol, on the side of the latest order (the close fills just before
        the order). Not with ``order_target``/``rebalance`` (they trade the difference from
        what is held), nor in signals mode, whose rules already say what an entry against
        a position does.
    order_delay : int, default 0
        Bars of its symbol an order waits before it can fill, after the one it could
        first fill on: the time it takes to reach the market. 0: an order placed at a bar
        can fill on the symbol's next bar (a market order at its open); 1: on the bar after
        that; and so on. Every order placed waits (limits, stops, closes, targets, an exit
        set on a trade, ``tif="opg"``/``"close"`` orders at that later bar's open or close;
        ``valid=n`` counts its bars from the first it can fill on; a day order still ends
        with its day); a bracket's legs protect its trade from the fill at once, and a
        change of an order already working (``modify``) applies from the next bar. Not
        with ``trade_on_close=True`` (a fill at the close it is placed at cannot also
        wait), nor in signals mode (its rules read the position at each signal bar, which
        a waiting order has not changed yet: shift the signals instead).
    leverage : float, default 1
        Gross exposure may reach ``leverage`` x equity; fills beyond it are rejected (> 0).
    maintenance_margin : float, default 0
        The least equity the account keeps, as a fraction of its gross exposure, in [0,
        1): at a tick whose closes put equity below ``maintenance_margin`` x gross
        exposure, or at zero or below whatever this is, the broker makes a margin call:
        every working order is cancelled and every position closed at its latest close
        (a market order, slipped and charged as any), before the strategy's turn at that
        tick. Their rows in ``Result.orders`` give the reason ``margin call``, and the
        statistics count the calls (``# Margin Calls``). 0.25 is a stock broker's usual
        maintenance; with ``leverage=4`` (an initial margin of 25%) an account fully
        invested would be called at once, so keep it below ``1 / leverage``.
    margin_by_symbol : mapping, optional
        Symbols with margin terms of their own: ``{symbol: {part: number}}``, the parts
        ``leverage`` and ``maintenance_margin``, ruled as the options above; a part a
        symbol does not give is the account's. Or, as a futures exchange sets them, money
        per unit held whatever the price: ``{"ES": {"initial_margin_per_unit": 12000,
        "maintenance_margin_per_unit": 11000}}``, both given (the maintenance at most the
        initial) and no fraction beside them; a position then requires ``|units| x`` each
        to open and to keep, in the account's money. Futures beside stocks in one account:
        ``leverage=2, maintenance_margin=0.25, margin_by_symbol={"ES": {"leverage": 20,
        "maintenance_margin": 0.04}}`` (an exchange's 5% initial and 4% maintenance
        margin). With it, the margin an account's positions require is summed over them,
        each at its own terms: a fill that grows a position is rejected when Σ worth /
        leverage (or ``|units| x initial_margin_per_unit``) would exceed equity, and the
        account is margin called when equity falls below Σ maintenance_margin x worth (or
        ``|units| x maintenance_margin_per_unit``), worth being ``|units| x price x
        multiplier`` at the marks. (With the same terms for every symbol that is the account's rule.)
        Symbols named must be the data's, as for ``commission_by_symbol``.
    funding_column : str, optional
        The data's column holding each bar's funding rate, as perpetual futures settle
        it (every 8 hours on most exchanges: the rate at those bars; 0 at the others, or
        NaN when the data is loaded with ``allow_nan=[column]``):
        at the close of a bar with a rate, a position held pays size x close x rate (a
        long pays a positive rate, a short receives it; a negative rate the other way
        round). The payments move cash and equity and count in ``Carrying Costs [$]``; a
        symbol without the column pays none. Signals mode settles them the same way.
    dividend_column : str, optional
        The data's column holding each bar's cash dividend per share (or unit), on the
        bar at which the symbol goes ex-dividend (0 elsewhere, or NaN when the data is
        loaded with ``allow_nan=[column]``; amounts are 0 or above): a position held into
        that bar receives size x dividend at its open, before the bar's fills (a buy
        filled there comes too late for it; a sale there still gets it), and a short
        pays it to the lender. The payments move cash and equity and count in
        ``Dividends [$]``; a symbol without the column receives none. For prices
        adjusted for splits but not for dividends, as most
        vendors' "adjusted" bars are; with prices adjusted for dividends too, leave it
        unset (the prices already hold them). Signals mode pays them the same way.
    volume_limit : float, optional
        The most of a bar's volume a symbol's fills may take in that bar, as a fraction
        in (0, 1] (0.1: a tenth of it); no limit by default. Fills take the bar's
        allowance in the order they execute (at the open, then within the bar, then at
        the close); an order it does not cover fills in part, as many units as are
        left (whole units for an order of a whole number of units), and the rest works on from the next bar as a new order on the same terms
        and time in force (a stop that filled: at market; a stop-limit's: at its limit),
        each part a fill and a trade of its own; an order meeting no volume left waits
        whole. ``Result.orders`` gives the part's reason. A margin call closes
        positions whatever the volume. Signals mode fills by the same rule.
    volume_impact : float, default 0
        A square-law market impact: a market or stop order's fill moves its price
        against the trader (buys pay more, sells receive less) by ``volume_impact`` x
        (units filled / the bar's volume)^2, as a fraction of the price, after
        ``slippage`` (0.1: a fill of a tenth of the bar's volume pays 0.1%, of all of it
        10%). Orders with a limit never fill past it and are left untouched, as for
        slippage. With an impact, a bar with no volume fills nothing (the order waits).
        Margin calls close at the marks. Signals mode fills by the same rule.
    shortable : bool or collection of str, default True
        Which symbols may be sold short: every one (True), none (False: a long-only
        account) or the symbols named (``["SPY", "QQQ"]``; the others may not). A fill
        that would open or add to a short in a symbol that may not is **rejected**
        (reason "not shortable", counted and warned of as rejections are); a sale of
        more than a long holds executes its part down to flat, the rest rejected, as
        for margin. Symbols named must be the data's. Over HTTP: true, false or a list of
        symbols; on the command line: true, false or symbols separated by commas
        (``-o shortable=SPY,QQQ``).
    shortable_column : str, optional
        The data's column saying at each bar whether its symbol may be sold short then
        (1: shares can be located to borrow, 0: none can; NaN, with ``allow_nan=[column]``:
        not quoted): a fill in a bar saying 0 that would open or add to a short is
        rejected ("not shortable"), as a fill ``shortable`` does not allow is (which still
        rules where the bar says 1 or nothing: the account's own rule). Any other value
        is refused, naming the symbol and the bar.
    close_delisted : bool or collection of str, default False
        True, or the symbols named (``["LEH", "BSC"]``: the ones known to be delisted,
        where others' bars may end early for other reasons). A symbol whose bars end
        before the run's last day (in ``timezone``'s days: a
        delisted or merged stock, an expired contract, in data free of survivorship
        bias) stops trading at its last bar: at that bar's close, after the orders of its
        tick joined, its working orders are cancelled and its position closed there
        (a market order, slipped and charged; the orders say why), freeing the cash it
        held. Off: the position stays to the end, marked at its last close, and its
        orders keep working with no bar to fill on. A streamed run finds each symbol's
        last bar before its first window (one query of a store). Symbols named must be
        the data's; over HTTP and on the command line as for ``shortable``.
    sizer : callable, default ``PercentOfEquity(0.95)``
        Sizes orders placed without ``size`` (see `tickstep.sizing`).
    record_every_bar : bool, default False
        Sample equity at every tick, not only at the end of each trading day: on bars
        shorter than a day, what ``Max. Drawdown [%]`` needs to see a fall within a day
        (``Exposure Time [%]`` counts every tick either way).
    timezone : str, default "UTC"
        IANA timezone whose calendar days are the trading days: equity is sampled at
        each day's last tick, and daily returns (hence every annualised statistic) are
        grouped by them, with or without ``record_every_bar``.
    risk_free_rate : float, default 0
        Annual rate for the Sharpe and Sortino ratios, as a fraction (0.02 = 2%; above -1
        and below 1).
    borrow_rate : float, default 0
        Annual fee on the market value of short positions (0.03 = 3%).
    borrow_rate_by_symbol : mapping, optional
        Symbols whose shorts pay an annual fee of their own rather than ``borrow_rate``:
        ``{symbol: rate}`` (>= 0), a hard-to-borrow stock's (``borrow_rate=0.003,
        borrow_rate_by_symbol={"GME": 0.25}``). Accrued as ``borrow_rate`` is, on each
        short's market value. Symbols named must be the data's.
    borrow_rate_column : str, optional
        The data's column holding each bar's annual borrow fee of its symbol (>= 0; the
        rate a broker quotes for that day, which for a hard-to-borrow stock moves day by
        day): at each day's end a short pays the rate of its symbol's latest bar (never a
        later one), accrued as ``borrow_rate`` is; where that value is NaN (data loaded
        with ``allow_nan=[column]``) or the symbol has no such column, its
        ``borrow_rate_by_symbol`` rate or ``borrow_rate``.
    margin_rate : float, default 0
        Annual interest paid on negative cash (money borrowed to buy, ``leverage`` > 1), as a
        fraction in [0, 1).
    cash_rate : float, default 0
        Annual interest earned on positive cash (short sale proceeds included), as a
        fraction in [0, 1).
        The three carrying costs accrue for each calendar day (actual/365) at the end of
        each trading day, on the balances and prices of that moment: they move cash and
        equity, and the statistics sum them in ``Carrying Costs [$]``.
    benchmark : str or pandas.Series, optional
        What alpha and beta are measured against: a symbol of the data (its closes; read
        from the data when the run's ``symbols=`` leave it out, so each symbol's backtest
        of a store measures against the same index; a single-use stream of record
        batches is then read once for both) or a price Series on a
        DatetimeIndex (kept as `tickstep.metrics.BenchmarkPrices`).
    periods_per_year : int, optional
        Daily returns in a year, to annualise statistics. Default: from the data's
        calendar, 252 for exchange data, 365 when the data trade on weekends too (round
        the clock, e.g. crypto: more than 0.6 x 2/7 of the trading days on a Saturday or
        Sunday), a return a bar for bars of a week or longer (52 weekly, 12 monthly);
        see `tickstep.metrics.periods_per_year_of`.
    on_reject : str, default "warn"
        What a run with rejected orders does at its end: "warn" (one
        `tickstep.RejectedOrderWarning`), "raise" (`tickstep.RejectedOrdersError`) or
        "ignore"; see `tickstep.rejections`.
    trade_start : time, optional
        The first instant the strategy is called (naive = UTC). Bars before it only warm
        up indicators and candles; orders, equity samples and statistics start there.
        ``Backtest(..., start=, warmup=)`` and walk-forward windows set it.
    stream : duration or True, optional
        Stream the bars from the data source in time windows of this length (``"5D"``,
        ``"6h"``; True = one day) instead of holding them all: memory stays bounded by a
        few windows plus ``history``. Same results as in memory, bit for bit. See the
        streaming guide (docs/guide/streaming.md).
    history : int, optional
        How many past bars of each symbol ``self.data(symbol, count=N)`` may read; a
        longer read is refused, naming this option. Default: every bar in memory, and
        1,000 when streaming (what a streamed run keeps).
    """

    cash: float = _option(10_000.0, rule=_cash, engine="cash")
    commission: float = _option(0.0, rule=_commission_rate, engine="commission")
    commission_fixed: float = _option(0.0, rule=_non_negative, engine="commission_fixed")
    commission_per_unit: float = _option(0.0, rule=_non_negative, engine="commission_per_unit")
    commission_min: float = _option(0.0, rule=_non_negative, engine="commission_min")
    commission_cap: float | None = _option(None, rule=_cap, engine="commission_cap")
    commission_maker: float | None = _option(None, rule=_maker_rate, engine="commission_maker")
    commission_by_symbol: Mapping[str, Mapping[str, float]] | None = _option(None, rule=_by_symbol)
    multiplier: float | Mapping[str, float] | None = _option(None, rule=_multiplier)
    slippage: float = _option(0.0, rule=_non_negative, engine="slippage_bps")
    slippage_by_symbol: Mapping[str, float] | None = _option(None, rule=_slippage_by_symbol)
    trade_on_close: bool = _option(
        False, rule=_flag, engine="fill_at", to_engine=lambda v: "close" if v else "next_open"
    )
    limit_fill: str = _option("touch", rule=_limit_fill, engine="limit_fill")
    leverage: float = _option(1.0, rule=_positive, engine="leverage")
    maintenance_margin: float = _option(0.0, rule=_maintenance, engine="maintenance_margin")
    margin_by_symbol: Mapping[str, Mapping[str, float]] | None = _option(None, rule=_margin_by_symbol)
    funding_column: str | None = _option(None, rule=_column, engine="funding_column")
    dividend_column: str | None = _option(None, rule=_column, engine="dividend_column")
    volume_limit: float | None = _option(None, rule=_volume_limit, engine="volume_limit")
    volume_impact: float = _option(0.0, rule=_impact, engine="volume_impact")
    shortable: bool | tuple[str, ...] = _option(True, rule=_shortable)
    shortable_column: str | None = _option(None, rule=_column, engine="shortable_column")
    close_delisted: bool | tuple[str, ...] = _option(False, rule=_close_delisted)
    exclusive_orders: bool = _option(False, rule=_flag, engine="exclusive_orders")
    order_delay: int = _option(0, rule=_bars, engine="order_delay")
    sizer: Sizer = _option(rule=_sizer, default_factory=lambda: PercentOfEquity(0.95))
    record_every_bar: bool = _option(False, rule=_flag, engine="record_every_bar")
    timezone: str = _option("UTC", rule=_timezone)
    risk_free_rate: float = _option(0.0, rule=_annual_rate)
    benchmark: str | BenchmarkPrices | None = _option(None, rule=_benchmark)
    borrow_rate: float = _option(0.0, rule=_non_negative, engine="borrow_rate")
    borrow_rate_by_symbol: Mapping[str, float] | None = _option(None, rule=_borrow_by_symbol)
    borrow_rate_column: str | None = _option(None, rule=_column, engine="borrow_rate_column")
    margin_rate: float = _option(0.0, rule=_annual_cost, engine="margin_rate")
    cash_rate: float = _option(0.0, rule=_annual_cost, engine="cash_rate")
    periods_per_year: int | None = _option(None, rule=_periods_per_year)
    on_reject: str = _option("warn", rule=_on_reject)
    trade_start: pd.Timestamp | None = _option(None, rule=_instant)
    stream: pd.Timedelta | None = _option(None, rule=_stream)
    history: int | None = _option(None, rule=_history)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = f.metadata["rule"](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.order_delay and self.trade_on_close:
            raise ConfigError(
                f"order_delay={self.order_delay} with trade_on_close=True: an order filled at the "
                "close of the bar it is placed at cannot also wait for later bars; use one, or "
                "tif='close' orders, which wait with the others")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The options' names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> BacktestConfig:
        """A copy with ``changes`` applied (and checked)."""
        check_names(changes)
        return dataclasses.replace(self, **changes)

    def options(self) -> dict[str, Any]:
        """Every option by name (for reports, caches and ``BacktestConfig(**options)``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def engine_options(self) -> dict[str, Any]:
        """The keyword options of ``tickstep._core.Engine`` (the core's spelling)."""
        out = {}
        for f in dataclasses.fields(self):
            name = f.metadata["engine"]
            if name is not None:
                convert = f.metadata["to_engine"]
                value = getattr(self, f.name)
                out[name] = convert(value) if convert is not None else value
        return out


_NAMES = BacktestConfig.option_names()


#: backtesting.py's ``Backtest`` options that mean nothing tickstep does, with what to
#: give instead: refused by these, not by a look-alike name's hint.
_BACKTESTING_PY_ONLY = {
    "spread": "backtesting.py's spread= moves only the price new trades are entered at; "
              "tickstep's nearest is slippage= (basis points against the trader on every "
              "market and stop fill)",
    "hedging": "backtesting.py's hedging= keeps long and short trades of one asset open "
               "together; a tickstep position is one net size per symbol",
    "finalize_trades": "backtesting.py's finalize_trades= closes the trades still open at "
                       "the end; tickstep leaves them open, marked at the last close, in "
                       "result.positions (close them in the strategy to count them as trades)",
}


def multipliers(multiplier: Any, symbols: Iterable[str]) -> list[float]:
    """Each symbol's multiplier under the option ``multiplier`` (`BacktestConfig.multiplier`,
    or its saved form in ``Result.options``): one number for every symbol, a mapping's
    for those it names, else 1."""
    if isinstance(multiplier, Mapping):
        return [float(multiplier.get(s, 1.0)) for s in symbols]
    return [1.0 if multiplier is None else float(multiplier) for _ in symbols]


def check_symbols(config: BacktestConfig, symbols: Iterable[str]) -> None:
    """Refuse a symbol an option names that the data does not have (a misspelt ticker
    would otherwise pay the account's commission without a word)."""
    known = list(symbols)
    by_symbol = config.multiplier if isinstance(config.multiplier, Mapping) else ()
    shortable = config.shortable if isinstance(config.shortable, tuple) else ()
    delisted = config.close_delisted if isinstance(config.close_delisted, tuple) else ()
    for option, named in (("commission_by_symbol", config.commission_by_symbol or ()),
                          ("margin_by_symbol", config.margin_by_symbol or ()),
                          ("borrow_rate_by_symbol", config.borrow_rate_by_symbol or ()),
                          ("slippage_by_symbol", config.slippage_by_symbol or ()),
                          ("multiplier", by_symbol), ("shortable", shortable),
                          ("close_delisted", delisted)):
        for symbol in named:
            if symbol not in known:
                raise UnknownSymbolError(f"{option}: {symbol!r} is not a symbol of the data"
                                         f"{did_you_mean(symbol, known)}")


def read_benchmark(config: BacktestConfig, data: Any, loaded: Iterable[str], *,
                   every_symbol: bool = False, start: Any = None, end: Any = None,
                   load_options: Mapping[str, Any] | None = None) -> BacktestConfig:
    """``config`` with a ``benchmark=`` symbol that is not among the ``loaded`` symbols
    read from ``data`` (its closes over the same span, with the same load options, kept
    as `tickstep.metrics.BenchmarkPrices` named by it): runs of some symbols of a store
    measured against another (each symbol's backtest against SPY). When ``loaded`` are
    ``every_symbol`` of the data, another name is refused with the closest one; what the
    data refuses (a name it does not hold, bad bars) is refused naming the option."""
    from tickstep.data import resolve
    from tickstep.data._columns import DataError

    benchmark = config.benchmark
    known = list(loaded)
    if not isinstance(benchmark, str) or benchmark in known:
        return config
    if every_symbol:
        raise UnknownSymbolError(f"benchmark {benchmark!r} is not a symbol of the data"
                                 f"{did_you_mean(benchmark, known)}")
    try:
        columns = resolve(data, symbols=[benchmark], start=start, end=end,
                          **dict(load_options or {}))
    except DataError as exc:
        raise DataError(f"benchmark={benchmark!r}: {exc}") from None
    (bars,) = columns.bars
    closes = pd.Series(np.asarray(bars.close, dtype=float),
                       index=pd.to_datetime(np.asarray(bars.ts), utc=True), name=benchmark)
    return config.replace(benchmark=closes)


def check_names(options: Iterable[str], also: Iterable[str] = ()) -> None:
    """Refuse any name that is not an option (nor one of ``also``), with a hint."""
    known = (*_NAMES, *also)
    for name in options:
        if name in _BACKTESTING_PY_ONLY and name not in known:
            raise ConfigError(f"{name}=: not an option; {_BACKTESTING_PY_ONLY[name]}")
        if name not in known:
            raise ConfigError(
                f"unknown option {name!r}{did_you_mean(name, known)} (options: {', '.join(known)})"
            )


def _backtesting_py_terms(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with backtesting.py's spellings of two terms in tickstep's, as its
    ``Backtest`` takes them: ``commission=(fixed, relative)`` is ``commission_fixed=fixed``
    and ``commission=relative`` (both per fill; one order fills once there), and
    ``margin=m``, the required margin ratio, is ``leverage=1 / m``. Given beside the
    option it stands for, or in another shape, it is refused by name."""
    out = dict(options)
    commission = out.get("commission")
    if isinstance(commission, (tuple, list)):
        if len(commission) != 2:
            raise ConfigError(f"commission={commission!r}: backtesting.py's pair is (fixed, relative), "
                              "e.g. (2.0, 0.001) for 2 per fill plus 0.1% of its notional")
        if "commission_fixed" in out:
            raise ConfigError("commission=(fixed, relative) and commission_fixed=: give the fixed "
                              "part once")
        out["commission_fixed"], out["commission"] = commission
    elif callable(commission):
        raise ConfigError(f"commission={commission!r}: a commission function is not taken; give "
                          "the schedule by its parts: commission= (a fraction of each fill's "
                          "notional), commission_fixed= (an amount per fill), commission_per_unit= "
                          "(an amount per unit), commission_min= and commission_cap= (the least a "
                          "fill pays, and the most as a fraction of its notional), "
                          "commission_maker= (the rate of a limit filled at its limit)")
    if "margin" in out:
        margin = out.pop("margin")
        if "leverage" in out:
            raise ConfigError("margin= and leverage=: give one (backtesting.py's margin m is "
                              "leverage 1 / m)")
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 < margin <= 1:
            raise ConfigError(f"margin={margin!r}: backtesting.py's required margin ratio is in "
                              "(0, 1] (leverage 1 / margin: 0.02 is 50:1)")
        out["leverage"] = 1.0 / float(margin)
    return out


def split_options(
    options: Mapping[str, Any], load_options: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` -> (config options, data load options), refusing any other name.

    ``load_options`` names what the data source accepts (e.g. ``regular_hours``); a
    name that is neither gets "unknown option ... did you mean ...?" over both lists.
    """
    loads = tuple(load_options)
    options = _backtesting_py_terms(options)
    check_names(options, loads)
    config = {k: v for k, v in options.items() if k in _NAMES}
    load = {k: v for k, v in options.items() if k not in _NAMES}
    return config, load
