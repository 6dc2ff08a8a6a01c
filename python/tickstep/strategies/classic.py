"""Two textbook single-symbol strategies, run on every symbol: :class:`SmaCross` and
:class:`RsiMeanReversion`; and :class:`BuyAndHold`, the benchmark they have to beat.

Signals are computed on a bar's close and orders fill at the symbol's next bar (its open,
or its close with ``trade_on_close``); sizes come from the backtest's sizer.
"""

from __future__ import annotations

import math

from tickstep.strategy import Strategy

__all__ = ["BuyAndHold", "RsiMeanReversion", "SmaCross"]


class SmaCross(Strategy):
    """Long on a golden cross of two simple moving averages, out on a death cross.

    A golden cross is a bar where the fast average closes above the slow one after being
    at or below it on the bar before; a death cross is the reverse. With ``reverse=True``
    the strategy is always in the market once the first cross happens: a death cross
    closes the long and opens a short, a golden cross closes the short and opens a long.

    Parameters
    ----------
    fast : int, default 10
        Bars in the fast average.
    slow : int, default 30
        Bars in the slow average (more than ``fast``).
    reverse : bool, default False
        Go short on a death cross instead of only closing the long.

    Examples
    --------
    >>> import tickstep
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    >>> result = bt.run(fast=10, slow=30)
    >>> set(result.trades["side"])
    {'long'}
    """

    fast = 10
    slow = 30
    reverse = False

    def init(self) -> None:
        if not (0 < self.fast < self.slow):
            raise ValueError(f"need 0 < fast < slow, got fast={self.fast!r}, slow={self.slow!r}")
        self.fast_sma = self.sma(self.fast)
        self.slow_sma = self.sma(self.slow)
        # +1 on a golden cross, -1 on a death cross, 0 on every other bar: one attribute
        # read per bar (the engine sets it before each next()).
        self.cross = self.crossing(self.fast_sma, self.slow_sma)

    def next(self, symbol: str) -> None:
        cross = self.cross.value
        if not cross:
            return
        size = self.position_size(symbol)
        if cross > 0:
            if size < 0:
                self.close(symbol)
            if size <= 0:
                self.buy(symbol)
        else:
            if size > 0:
                self.close(symbol)
            if self.reverse and size >= 0:
                self.sell(symbol)


class RsiMeanReversion(Strategy):
    """Buy oversold, sell overbought, on the RSI of each symbol's bars (meant for daily).

    When flat and the RSI closes below ``oversold``, buy at the next bar; when long and
    the RSI closes above ``overbought``, close. With ``short=True`` the mirror trade is
    taken too: short when flat and above ``overbought``, cover below ``oversold``.

    Parameters
    ----------
    rsi_period : int, default 14
        RSI length (Wilder's smoothing).
    oversold : float, default 30
    overbought : float, default 70
    short : bool, default False
        Also sell short when overbought.

    Examples
    --------
    >>> import tickstep
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), RsiMeanReversion, cash=100_000)
    >>> len(bt.run(oversold=25).trades) > 0
    True
    """

    rsi_period = 14
    oversold = 30.0
    overbought = 70.0
    short = False

    def init(self) -> None:
        if not (0 <= self.oversold < self.overbought <= 100):
            raise ValueError(
                "need 0 <= oversold < overbought <= 100, "
                f"got {self.oversold!r} and {self.overbought!r}"
            )
        self.rsi_line = self.rsi(self.rsi_period)

    def next(self, symbol: str) -> None:
        rsi = self.rsi_line.value
        if math.isnan(rsi):  # still warming up
            return
        size = self.position_size(symbol)
        if size == 0:
            if self.orders(symbol):
                return
            if rsi < self.oversold:
                self.buy(symbol)
            elif self.short and rsi > self.overbought:
                self.sell(symbol)
        elif (rsi > self.overbought if size > 0 else rsi < self.oversold) and not self.orders(
            symbol
        ):
            self.close(symbol)


class BuyAndHold(Strategy):
    """Each symbol bought at its first bar and held to the end: the benchmark a timing
    strategy has to beat, run through the same broker as the strategy.

    At each symbol's first bar a market order targets ``fraction`` of equity split
    equally among the run's symbols (``fraction / N`` of equity, marked to market at that
    bar's close; `Strategy.order_target`), filled like any market order (at the next bar's
    open; at that close with ``trade_on_close``) with the backtest's commission and
    slippage; the backtest's sizer is not asked. A symbol whose data start later is bought at its own
    first bar, from the equity of then. Nothing is rebalanced or sold (a delisting closes
    a position as for any strategy); the positions are open at the end, marked at the
    last closes. An order the broker rejects (the cash short at the fill: a ``fraction``
    near 1 and a gap up) is not placed again: that symbol's share stays in cash, and the
    run's rejections say so.

    A results row's ``Buy & Hold Return [%]`` is the frictionless basket (each symbol's
    first to last close, equal weights: this strategy's return with ``fraction=1``,
    ``trade_on_close=True``, no costs, and symbols that start together); a run of this
    strategy pays what a trader pays,
    and its daily returns can be the benchmark of a reality check:
    ``reality_check(rows, benchmark=bt.run().daily_returns())`` with ``bt`` this strategy
    on the rows' data (`tickstep.significance.reality_check`).

    Parameters
    ----------
    fraction : float, default 0.98
        The share of equity invested, > 0 (above 1 needs ``leverage``); the rest is left
        for the gap to the next open and the commission.

    Examples
    --------
    >>> import tickstep
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), BuyAndHold, cash=100_000)
    >>> result = bt.run()
    >>> len(result.fills) == len(result.positions) == len(result.symbols)
    True
    """

    fraction = 0.98

    def init(self) -> None:
        if not (self.fraction > 0 and math.isfinite(self.fraction)):
            raise ValueError(f"need fraction > 0 (the share of equity invested), got "
                             f"{self.fraction!r}")
        self._share = self.fraction / len(self.symbols)
        self._bought: set[str] = set()

    def next(self, symbol: str) -> None:
        if symbol not in self._bought:
            self._bought.add(symbol)
            self.order_target(symbol, percent=self._share)
