"""Type stubs for tickstep's compiled core (``tickstep._core``)."""

from collections.abc import Callable, Iterable
from typing import Any, Self, TypeAlias, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

__version__: str
__all__ = ["ConfigError", "Context", "CrossingBase", "Engine", "FillLog", "HistoryBase", "IndicatorBase", "Market", "OrderError", "OrderLog", "OrdersBase", "PositionBase", "StateError", "StrategyBase", "TickstepError", "TradeLog", "UnknownSymbolError", "__version__", "exact_row_sums", "exact_sum", "round_to_lot", "run_signal_summaries", "run_signals", "trade_sums"]

class TickstepError(Exception): ...
class OrderError(TickstepError, ValueError): ...
class UnknownSymbolError(TickstepError, KeyError): ...
class ConfigError(TickstepError, ValueError): ...
class StateError(TickstepError, RuntimeError): ...

@final
class Market:
    """Immutable market data shared by any number of engine runs."""

    def __new__(
        cls,
        symbols: list[str],
        ts: list[npt.NDArray[np.int64]],
        open: list[npt.NDArray[np.float64]],
        high: list[npt.NDArray[np.float64]],
        low: list[npt.NDArray[np.float64]],
        close: list[npt.NDArray[np.float64]],
        volume: list[npt.NDArray[np.float64]],
        adopt: list[bool] | None = None,
        columns: list[str] | None = None,
        extra: list[list[npt.NDArray[np.float64] | None]] | None = None,
        order: list[int] | None = None,
    ) -> Market: ...
    @staticmethod
    def window(
        symbols: list[str],
        ts: list[npt.NDArray[np.int64]],
        open: list[npt.NDArray[np.float64]],
        high: list[npt.NDArray[np.float64]],
        low: list[npt.NDArray[np.float64]],
        close: list[npt.NDArray[np.float64]],
        volume: list[npt.NDArray[np.float64]],
        base: list[int],
        start: int,
        adopt: list[bool] | None = None,
        order: list[int] | None = None,
        columns: list[str] | None = None,
        extra: list[list[npt.NDArray[np.float64] | None]] | None = None,
    ) -> Market: ...
    def following(
        self,
        keep: int,
        ts: list[npt.NDArray[np.int64]],
        open: list[npt.NDArray[np.float64]],
        high: list[npt.NDArray[np.float64]],
        low: list[npt.NDArray[np.float64]],
        close: list[npt.NDArray[np.float64]],
        volume: list[npt.NDArray[np.float64]],
        adopt: list[bool] | None = None,
        extra: list[list[npt.NDArray[np.float64] | None]] | None = None,
    ) -> Market: ...
    def base(self, symbol: int) -> int: ...
    @property
    def symbols(self) -> list[str]: ...
    @property
    def call_order(self) -> list[int]: ...
    @property
    def columns(self) -> list[str]: ...
    def has_column(self, symbol: int, name: str) -> bool: ...
    def timeline(self) -> npt.NDArray[np.int64]: ...
    def bar_count(self) -> int: ...
    def last_times(self) -> npt.NDArray[np.int64]: ...
    def column(self, symbol: int, name: str, start: int, stop: int) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...

@final
class Engine:
    """One backtest run over a Market."""

    def __new__(
        cls,
        market: Market,
        *,
        cash: float = 10_000.0,
        commission: float = 0.0,
        commission_fixed: float = 0.0,
        commission_per_unit: float = 0.0,
        commission_min: float = 0.0,
        commission_cap: float | None = None,
        commission_maker: float | None = None,
        slippage_bps: float = 0.0,
        fill_at: str = "next_open",
        limit_fill: str = "touch",
        leverage: float = 1.0,
        maintenance_margin: float = 0.0,
        funding_column: str | None = None,
        dividend_column: str | None = None,
        borrow_rate_column: str | None = None,
        shortable_column: str | None = None,
        volume_limit: float | None = None,
        volume_impact: float = 0.0,
        record_every_bar: bool = False,
        exclusive_orders: bool = False,
        order_delay: int = 0,
        borrow_rate: float = 0.0,
        margin_rate: float = 0.0,
        cash_rate: float = 0.0,
    ) -> Engine: ...
    def set_session_ends(self, ends: npt.NDArray[np.bool_]) -> None: ...
    def set_wall_clock(self, starts: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]) -> None: ...
    def set_account_opens(self, ts: int) -> None: ...
    def carrying_costs(self) -> float: ...
    def dividends(self) -> float: ...
    def interest(self) -> float: ...
    def exposure_ticks(self) -> tuple[int, int]: ...
    def margin_calls(self) -> int: ...
    def set_symbol_commission(
        self,
        symbol: str,
        *,
        commission: float = 0.0,
        commission_fixed: float = 0.0,
        commission_per_unit: float = 0.0,
        commission_min: float = 0.0,
        commission_cap: float | None = None,
        commission_maker: float | None = None,
    ) -> None: ...
    def set_symbol_margin(
        self,
        symbol: str,
        *,
        leverage: float | None = None,
        maintenance_margin: float | None = None,
        initial_margin_per_unit: float | None = None,
        maintenance_margin_per_unit: float | None = None,
    ) -> None: ...
    def set_multiplier(self, symbol: str, multiplier: float) -> None: ...
    def set_borrow_rate(self, symbol: str, rate: float) -> None: ...
    def set_slippage(self, symbol: str, bps: float) -> None: ...
    def set_delistings(self, times: npt.NDArray[np.int64]) -> None: ...
    def set_shortable(self, symbol: str, shortable: bool) -> None: ...
    def indicator_values(self, id: int, symbol: int) -> npt.NDArray[np.float64] | None: ...
    def run(
        self,
        ctx: Context,
        init: Callable[[], Any] | None = None,
        next: Callable[[str], Any] | Callable[[], Any] | None = None,
        on_tick: Callable[[], Any] | None = None,
        next_takes_symbol: bool = True,
    ) -> None: ...
    def run_stream(
        self,
        ctx: Context,
        windows: Iterable[tuple[Market, npt.NDArray[np.bool_]]],
        init: Callable[[], Any] | None = None,
        next: Callable[[str], Any] | Callable[[], Any] | None = None,
        on_tick: Callable[[], Any] | None = None,
        next_takes_symbol: bool = True,
    ) -> None: ...
    def set_history(self, bars: int | None) -> None: ...
    @property
    def equity_value(self) -> float: ...
    @property
    def cash(self) -> float: ...
    @property
    def market(self) -> Market: ...
    def fills(self) -> dict[str, npt.NDArray[Any]]: ...
    def trades(self) -> dict[str, npt.NDArray[Any]]: ...
    def orders(self) -> dict[str, Any]: ...
    def rejected_orders(self) -> dict[str, Any]: ...
    def trade_stat_columns(self) -> dict[str, npt.NDArray[Any]]: ...
    def take_logs(self) -> tuple[OrderLog, FillLog, TradeLog]: ...
    def equity(self) -> dict[str, npt.NDArray[Any]]: ...
    def positions(self) -> dict[str, npt.NDArray[np.float64]]: ...

@final
class OrderLog:
    """A finished run's order log (`Engine.take_logs`), exported as columns when read."""

    def columns(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...

@final
class FillLog:
    """A finished run's fills (`Engine.take_logs`), exported as columns when read."""

    def columns(self) -> dict[str, npt.NDArray[Any]]: ...
    def __len__(self) -> int: ...

@final
class TradeLog:
    """A finished run's closed trades (`Engine.take_logs`), exported as columns when read."""

    def columns(self) -> dict[str, npt.NDArray[Any]]: ...
    def __len__(self) -> int: ...
    def holding_spans(self) -> dict[str, npt.NDArray[np.int64]]: ...

_Symbol: TypeAlias = str | int | None  # a name, an index, or None / -1 for the running symbol

@final
class Context:
    """What a running strategy talks to; a symbol is a name, an index, or None / -1
    for the running symbol."""

    def __new__(cls, market: Market, bar_class: type[tuple[Any, ...]] | None = None) -> Context: ...
    def is_running(self) -> bool: ...
    def adopt_indicator(self, indicator: IndicatorBase, outside_next: type[IndicatorBase]) -> None: ...
    def adopt_crossing(self, crossing: CrossingBase, outside_next: type[CrossingBase]) -> None: ...
    def now(self) -> int: ...
    def current(self) -> int: ...
    def has_data(self, symbol: _Symbol = None) -> bool: ...
    def active(self) -> list[int]: ...
    def price(self, symbol: _Symbol = None) -> float: ...
    def unit_value(self, symbol: _Symbol = None) -> float: ...
    def multiplier(self, symbol: _Symbol = None) -> float: ...
    def bar_index(self, symbol: _Symbol = None) -> int: ...
    def bar(self, symbol: _Symbol = None) -> tuple[int, float, float, float, float, float] | None: ...
    def history(self, symbol: _Symbol, column: str, count: int = ...) -> npt.NDArray[Any]: ...
    def index(self, symbol: _Symbol = None) -> int: ...
    def value(self, column: int, symbol: _Symbol = None) -> float: ...
    @property
    def market(self) -> Market: ...
    def sizing_request(
        self, cls: type[Any], symbol: _Symbol, buy: bool, price: Any = None, sl: Any = None
    ) -> Any: ...
    def use_sizer(
        self, sizer: Any, request: type[Any], native: tuple[str, float, float | None] | None = None
    ) -> None: ...
    def size_order(self, symbol: _Symbol, buy: bool, price: Any = None, sl: Any = None) -> float: ...
    def place(
        self,
        symbol: _Symbol,
        buy: bool,
        size: float | None,
        limit: float | None,
        stop: float | None,
        sl: float | None,
        tp: float | None,
        tag: int,
        tif: str,
        oco: int | None,
    ) -> int | None: ...
    def position(self, symbol: _Symbol = None) -> float: ...
    def average_price(self, symbol: _Symbol = None) -> float: ...
    def trades(
        self, symbol: _Symbol = None
    ) -> list[
        tuple[int, float, float, float, int, int, int | None, int | None, float | None, float | None, int]
    ]: ...
    def trades_key(self, symbol: int) -> int: ...
    def trade_size(self, symbol: int, trade: int) -> float | None: ...
    def trade_exit(self, symbol: int, trade: int, take_profit: bool) -> float | None: ...
    def closed_trades(
        self, start: int
    ) -> list[tuple[int, int, float, float, int, int, float, float, float, float, int]]: ...
    def closed_count(self) -> int: ...
    def close_trade(self, symbol: _Symbol, trade: int, portion: float = 1.0) -> int: ...
    def exclusive_orders(self) -> bool: ...
    def set_trade_exit(self, symbol: _Symbol, trade: int, which: str, price: float | None) -> int | None: ...
    def equity(self) -> float: ...
    def cash(self) -> float: ...
    def gross_exposure(self) -> float: ...
    def margin_used(self) -> float: ...
    def buying_power(self, symbol: _Symbol = None) -> float: ...
    def open_position_count(self) -> int: ...
    def pending_entry_count(self) -> int: ...
    def submit(
        self,
        symbol: _Symbol,
        buy: bool,
        size: float,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: int = 0,
        tif: str = "gtc",
        valid_bars: int | None = None,
        valid_until: int | None = None,
        trail: tuple[str, float, int | None] | None = None,
        sl_trail: tuple[str, float, int | None] | None = None,
        oco: int | None = None,
        sized: bool = False,
    ) -> int: ...
    def close_position(self, symbol: _Symbol, portion: float = 1.0) -> int | None: ...
    def modify(
        self,
        order_id: int,
        limit: float | None = None,
        stop: float | None = None,
        size: float | None = None,
    ) -> None: ...
    def cancel(self, order_id: int) -> bool: ...
    def open_orders(self, symbol: _Symbol = None) -> list[int]: ...
    def working_orders(
        self, symbol: _Symbol = None
    ) -> list[
        tuple[
            int,
            float,
            float,
            float | None,
            float | None,
            float | None,
            float | None,
            int,
            int | None,
            int,
            tuple[str, int | None, int | None, tuple[str, float] | None, int | None, int] | None,
        ]
    ]: ...
    def add_rolling(
        self,
        kind: str,
        window: int,
        source: str = "close",
        timeframe: int | None = None,
        lookback: int = 2,
    ) -> int: ...
    def add_clock_timeframe(
        self, period: int, origin: int, history: int
    ) -> int: ...
    def add_given_timeframe(
        self,
        labels: list[npt.NDArray[np.int64]],
        ends: list[npt.NDArray[np.int64]],
        history: int,
    ) -> int: ...
    def add_series(self, values: list[npt.NDArray[np.float64]]) -> int: ...
    def study_value(self, id: int, symbol: _Symbol = None) -> float: ...
    def study_prev(self, id: int, symbol: _Symbol = None) -> float: ...
    def study_ready(self, id: int, symbol: _Symbol = None) -> bool: ...
    def study_reset(self, id: int, symbol: _Symbol = None) -> None: ...
    def candles(
        self, timeframe: int, symbol: str | int | None, count: int, forming: bool = False
    ) -> dict[str, npt.NDArray[Any]]: ...
    def candle_history(
        self,
        symbol: str | int,
        *,
        timeframe: int | None = None,
        period: int | None = None,
        origin: int = 0,
        labels: npt.NDArray[np.int64] | None = None,
        ends: npt.NDArray[np.int64] | None = None,
    ) -> dict[str, npt.NDArray[Any]]: ...
    def candle_count(self, timeframe: int, symbol: str | int | None = None) -> int: ...
    def last_candle(
        self, timeframe: int, symbol: str | int | None = None
    ) -> tuple[int, int, float, float, float, float, float] | None: ...
    def candle_at(
        self, timeframe: int, symbol: str | int | None, ts: int
    ) -> tuple[int, int, float, float, float, float, float] | None: ...

@disjoint_base
class IndicatorBase:
    """The core half of `tickstep.studies.Indicator`: a declared indicator; reads are O(1)."""

    def __new__(cls, ctx: Context, id: int, name: str) -> Self: ...
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def prev(self) -> float: ...
    def get(self, symbol: str | int | None = None, ago: int = 0) -> float: ...
    def previous(self, symbol: str | int | None = None) -> float: ...
    def is_ready(self, symbol: str | int | None = None) -> bool: ...
    def reset(self, symbol: str | int | None = None) -> None: ...
    def crossed_above(self, other: IndicatorBase | float, symbol: str | int | None = None) -> bool: ...
    def crossed_below(self, other: IndicatorBase | float, symbol: str | int | None = None) -> bool: ...
    def __float__(self) -> float: ...
    @overload
    def __getitem__(self, key: int, /) -> float: ...
    @overload
    def __getitem__(self, key: slice, /) -> np.ndarray: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...

@disjoint_base
class CrossingBase:
    """The core half of `tickstep.studies.Crossing`: how an indicator crossed another
    (or a level) at its latest update, +1, -1 or 0."""

    def __new__(cls, ctx: Context, indicator: IndicatorBase, other: IndicatorBase | float, name: str) -> Self: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def get(self, symbol: str | int | None = None) -> int: ...

@disjoint_base
class StrategyBase:
    """The core half of `tickstep.Strategy`: refuses assignment to ``position``; the
    orders and reads made at many bars, one call into the core each."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...
    def _adopt_position(self, position: Any) -> None: ...
    def _adopt_context(self, ctx: Context) -> None: ...
    def buy(
        self,
        symbol: str | int | None = None,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: int = 0,
        trail: Any = None,
        sl_trail: Any = None,
        tif: str = "gtc",
        valid: Any = None,
        oco: int | None = None,
    ) -> int | None: ...
    def sell(
        self,
        symbol: str | int | None = None,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        sl: float | None = None,
        tp: float | None = None,
        tag: int = 0,
        trail: Any = None,
        sl_trail: Any = None,
        tif: str = "gtc",
        valid: Any = None,
        oco: int | None = None,
    ) -> int | None: ...
    def close(self, symbol: str | int | None = None, *, portion: float = 1.0) -> int | None: ...
    def price(self, symbol: str | int | None = None) -> float: ...
    def position_size(self, symbol: str | int | None = None) -> float: ...

@disjoint_base
class OrdersBase:
    """The core's side of a strategy's ``self.orders`` (see `tickstep.strategy.Orders`)."""

    def __new__(cls, ctx: Context, *rest: Any) -> OrdersBase: ...
    def __call__(self, symbol: _Symbol = None) -> list[int]: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...

@disjoint_base
class PositionBase:
    """The core half of `tickstep.Position`: one symbol's position (index -1: the
    running symbol's), read live."""

    def __new__(cls, ctx: Context, symbol: int, *rest: Any, kept: list[Any] | None = None) -> Self: ...
    def __call__(self, symbol: str | int | None = None) -> Any: ...
    @property
    def index(self) -> int: ...
    @property
    def size(self) -> float: ...
    @property
    def average_price(self) -> float: ...
    @property
    def value(self) -> float: ...
    @property
    def pl(self) -> float: ...
    @property
    def is_long(self) -> bool: ...
    @property
    def is_short(self) -> bool: ...
    def close(self, portion: float = 1.0) -> int | None: ...
    def __bool__(self) -> bool: ...

@disjoint_base
class HistoryBase:
    """The core half of `tickstep.History`: read-only views of one symbol's last
    ``count`` bars up to the current tick (index -1: the running symbol's)."""

    def __new__(cls, ctx: Context, symbol: int, count: int | None = None, *rest: Any) -> Self: ...
    @property
    def _ctx(self) -> Context: ...
    @property
    def symbol_index(self) -> int: ...
    @property
    def ts(self) -> npt.NDArray[np.int64]: ...
    @property
    def open(self) -> npt.NDArray[np.float64]: ...
    @property
    def high(self) -> npt.NDArray[np.float64]: ...
    @property
    def low(self) -> npt.NDArray[np.float64]: ...
    @property
    def close(self) -> npt.NDArray[np.float64]: ...
    @property
    def volume(self) -> npt.NDArray[np.float64]: ...
    def column(self, name: str) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def _serve(self, views: dict[tuple[Any, Any], Any], make: Callable[[Any, Any], Any]) -> None: ...
    def __call__(self, symbol: str | None = None, count: int | None = None) -> Any: ...

def run_signals(
    engines: list[Engine],
    entries: list[list[npt.NDArray[np.bool_] | None]],
    exits: list[list[npt.NDArray[np.bool_] | None]],
    short_entries: list[list[npt.NDArray[np.bool_] | None]],
    short_exits: list[list[npt.NDArray[np.bool_] | None]],
    *,
    size: list[float | None],
    size_type: list[str],
    sl: list[float | None],
    tp: list[float | None],
    sl_price: list[list[npt.NDArray[np.float64] | None]],
    tp_price: list[list[npt.NDArray[np.float64] | None]],
    sizes: list[list[npt.NDArray[np.float64] | None]] | None = None,
    sl_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    tp_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    trail_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    time_exits: list[list[npt.NDArray[np.float64] | None]] | None = None,
    limit_price: list[list[npt.NDArray[np.float64] | None]] | None = None,
    limit_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    sl_trail: list[float | None] | None = None,
    lot_size: list[list[float | None]] | None = None,
    accumulate: list[bool] | None = None,
    exit_after_bars: list[int | None] | None = None,
    limit: list[float | None] | None = None,
    limit_bars: list[int | None] | None = None,
    trade_start: int | None = None,
    threads: int | None = None,
) -> list[BaseException | None]:
    """Run each engine with its own signals and rules (signals mode), on ``threads``
    threads; per engine None or the exception its run ended with."""

def run_signal_summaries(
    engines: list[Engine],
    entries: list[list[npt.NDArray[np.bool_] | None]],
    exits: list[list[npt.NDArray[np.bool_] | None]],
    short_entries: list[list[npt.NDArray[np.bool_] | None]],
    short_exits: list[list[npt.NDArray[np.bool_] | None]],
    *,
    size: list[float | None],
    size_type: list[str],
    sl: list[float | None],
    tp: list[float | None],
    sl_price: list[list[npt.NDArray[np.float64] | None]],
    tp_price: list[list[npt.NDArray[np.float64] | None]],
    on_run: Callable[[int, dict[str, Any] | BaseException], object],
    sizes: list[list[npt.NDArray[np.float64] | None]] | None = None,
    sl_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    tp_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    trail_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    time_exits: list[list[npt.NDArray[np.float64] | None]] | None = None,
    limit_price: list[list[npt.NDArray[np.float64] | None]] | None = None,
    limit_fraction: list[list[npt.NDArray[np.float64] | None]] | None = None,
    sl_trail: list[float | None] | None = None,
    lot_size: list[list[float | None]] | None = None,
    accumulate: list[bool] | None = None,
    exit_after_bars: list[int | None] | None = None,
    limit: list[float | None] | None = None,
    limit_bars: list[int | None] | None = None,
    trade_start: int | None = None,
    threads: int | None = None,
) -> None:
    """``run_signals``, keeping of each run only what its statistics read: calls
    ``on_run(k, summary)`` as run ``k`` ends, the summary a dict (``equity``, ``trades``,
    ``carrying_costs``, ``dividends``, ``rejected``, ``margin_calls``) or the exception
    the run ended with. The engines are spent."""

def round_to_lot(units: float, lot_size: float) -> float:
    """``units`` (>= 0) rounded down to whole lots of ``lot_size`` (> 0)."""

def exact_sum(values: npt.NDArray[np.float64]) -> float:
    """The sum of a contiguous float64 array rounded once from its exact sum: the same bits
    in any order (``math.fsum``'s value, but +0.0 for an exactly zero sum; NaN with a NaN
    or both infinities)."""

def exact_row_sums(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``exact_sum`` of each row of a float64 matrix."""

def trade_sums(
    pnl: npt.NDArray[np.float64],
    return_pct: npt.NDArray[np.float64],
    mae: npt.NDArray[np.float64],
    mfe: npt.NDArray[np.float64],
    commission: npt.NDArray[np.float64],
    duration: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """The exact sums the trade statistics read (``results::TradeSums``) of contiguous
    float64 columns and the int64 durations (ns): ``gross_profit``, ``wins``,
    ``gross_loss``, ``losses``, ``pnl``, ``squared_deviations``, ``return_pct``, ``mae``,
    ``mfe``, ``commission``, ``duration`` (a Python int) and ``longest_duration``."""
