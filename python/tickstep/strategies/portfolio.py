"""A portfolio strategy: rank every symbol's signal at each tick, keep the book diversified
across sectors, hold at most ``max_positions`` positions."""

from __future__ import annotations

from collections import Counter
from numbers import Integral
from typing import NamedTuple

import pandas as pd

from tickstep.strategies._sizing import risk_size
from tickstep.strategy import Strategy

__all__ = ["Candidate", "RankedPortfolio"]

#: Sector of symbols the metadata says nothing about.
NO_SECTOR = "(no sector)"


class Candidate(NamedTuple):
    """A symbol that may be bought at this tick."""

    symbol: str
    score: float
    price: float
    atr: float


class RankedPortfolio(Strategy):
    """Long-only momentum across many symbols, ranked with a sector-diversity penalty.

    In ``next`` each flat symbol is scored: ``score = (close - SMA) / ATR``, how far the
    close stands above its moving average in units of its average true range. A symbol
    scoring at least ``min_score`` is a candidate. In ``on_tick``, once all symbols have
    been seen, free slots (``max_positions`` minus open positions and entries still
    waiting to fill) are filled greedily by the best ``score x 1 / (1 + k)``, where ``k``
    counts the positions already held or just chosen in the candidate's sector: a second
    stock of a sector has to score twice as high as a stock of an empty sector.

    Each entry is a market order for the next bar with a stop-loss ``stop_atr`` ATRs below
    the close and a take-profit ``reward_risk`` times that distance above it, sized so the
    stop loses ``risk_per_trade`` of current equity (:class:`~tickstep.RiskPerTrade`),
    capped at ``max_weight`` of equity. A position still open after ``max_bars`` of its
    symbol's bars is closed (time stop).

    Sectors come from the backtest's symbol metadata (column ``sector_column``), read
    once in ``init``; without it, all symbols share one sector.

    Parameters
    ----------
    max_positions : int, default 5
        Most positions open (or waiting to fill) at any time.
    sma_period : int, default 50
    atr_period : int, default 14
    min_score : float, default 1.0
        Lowest score that makes a candidate.
    risk_per_trade : float, default 0.01
        Fraction of equity lost if a stop-loss is hit.
    stop_atr : float, default 2.0
        Stop-loss distance below the close, in ATRs.
    reward_risk : float or None, default 3.0
        Take-profit distance as a multiple of the stop distance; None: no take-profit.
    max_bars : int or None, default 20
        Time stop in the symbol's bars; None: none.
    max_weight : float or None, default None
        Largest position value as a fraction of equity; None: ``0.95 / max_positions``,
        so a full book fits without leverage.
    sector_column : str, default "sector"

    Examples
    --------
    >>> import tickstep
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), RankedPortfolio, cash=100_000)
    >>> result = bt.run(max_positions=3)
    >>> len(result.trades) > 0
    True
    """

    max_positions = 5
    sma_period = 50
    atr_period = 14
    min_score = 1.0
    risk_per_trade = 0.01
    stop_atr = 2.0
    reward_risk: float | None = 3.0
    max_bars: int | None = 20
    max_weight: float | None = None
    sector_column = "sector"

    def init(self) -> None:
        if not (isinstance(self.max_positions, Integral) and self.max_positions >= 1):
            raise ValueError(f"max_positions must be an integer >= 1, got {self.max_positions!r}")
        if not self.stop_atr > 0:
            raise ValueError(f"stop_atr must be positive, got {self.stop_atr!r}")
        self.trend = self.sma(self.sma_period)
        self.true_range = self.atr(self.atr_period)
        self.sectors = self.load_sectors()
        self.candidates: dict[str, Candidate] = {}
        self.bars_held = dict.fromkeys(self.symbols, 0)
        self._entries: dict[str, int] = {}  # symbol -> entry order id not yet filled

    def load_sectors(self) -> dict[str, str]:
        """Symbol -> sector from the metadata; symbols without one share a sector."""
        sectors = dict.fromkeys(self.symbols, NO_SECTOR)
        meta = self.metadata
        if meta is not None and self.sector_column in getattr(meta, "columns", ()):
            column = meta[self.sector_column]
            for symbol in self.symbols:
                value = column.get(symbol)
                if isinstance(value, str) and value:
                    sectors[symbol] = value
                elif value is not None and not pd.isna(value):
                    sectors[symbol] = str(value)
        return sectors

    def score(self, symbol: str) -> float:
        """Momentum score of ``symbol`` at its latest bar (NaN while warming up)."""
        atr = self.true_range.value
        return (self.price(symbol) - self.trend.value) / atr if atr > 0 else float("nan")

    def next(self, symbol: str) -> None:
        if self.position_size(symbol) != 0:
            self._entries.pop(symbol, None)
            held = self.bars_held[symbol] = self.bars_held[symbol] + 1
            if self.max_bars is not None and held >= self.max_bars and not self._closing(symbol):
                self.close(symbol)
            return
        self.bars_held[symbol] = 0
        if symbol in self._entries or self.orders(symbol):
            return
        score = self.score(symbol)
        if score >= self.min_score:  # False while NaN
            self.candidates[symbol] = Candidate(
                symbol, score, self.price(symbol), self.true_range.value
            )

    def _closing(self, symbol: str) -> bool:
        # A flatten order is the only working order without a bracket's trade behind it.
        legs = {leg for t in self.open_trades(symbol) for leg in (t["sl_order"], t["tp_order"])}
        return any(o not in legs for o in self.orders(symbol))

    def busy_symbols(self) -> list[str]:
        """Symbols holding a position or waiting for an entry to fill."""
        for symbol, order_id in list(self._entries.items()):
            if self.position_size(symbol) != 0 or order_id not in self.orders(symbol):
                del self._entries[symbol]
        return [s for s in self.symbols if s in self._entries or self.position_size(s) != 0]

    def on_tick(self) -> None:
        if not self.candidates:
            return
        candidates, self.candidates = self.candidates, {}
        busy = self.busy_symbols()
        slots = self.max_positions - len(busy)
        if slots <= 0:
            return
        in_sector = Counter(self.sectors[s] for s in busy)
        max_weight = self.max_weight if self.max_weight is not None else 0.95 / self.max_positions
        while slots > 0 and candidates:
            best = max(
                candidates.values(), key=lambda c: c.score / (1 + in_sector[self.sectors[c.symbol]])
            )
            del candidates[best.symbol]
            stop = best.price - self.stop_atr * best.atr
            if not stop > 0:
                continue
            target = (
                None
                if self.reward_risk is None
                else best.price + self.reward_risk * (best.price - stop)
            )
            size = risk_size(
                self, best.symbol, 1, best.price, stop, self.risk_per_trade, max_fraction=max_weight
            )
            if not size > 0:
                continue
            order_id = self.buy(best.symbol, size=size, sl=stop, tp=target)
            if order_id is None:
                continue
            self._entries[best.symbol] = order_id
            in_sector[self.sectors[best.symbol]] += 1
            slots -= 1
