"""Continuous futures: a chain of contracts (ESH24, ESM24, ...) rolled into one symbol's
bars, each bar the contract held then, the prices before each roll adjusted so that the
series runs on without the gap between two contracts' prices (back-adjusted, as data
vendors' continuous contracts are) or left as traded.

The roll is decided without looking ahead: on a day count before a contract's last bar
(its expiry, a date the exchange publishes long before), or on the volumes (or open
interest) of days already complete (the next contract traded more on the day before)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._actions import _local_days, _market
from tickstep.data._columns import DataError, MarketColumns, SymbolBars
from tickstep.hints import did_you_mean

__all__ = ["roll_contracts"]

#: How the prices before a roll are adjusted: by the gap between the two contracts' closes
#: (points kept: a position's P&L in money), by their ratio (returns kept), or not at all.
ADJUSTMENTS = ("difference", "ratio", None)


def roll_contracts(data: Any, chains: Mapping[str, Sequence[str]], *, roll: int | str = "volume",
                   adjust: str | None = "difference", timezone: str = "UTC",
                   column: str = "contract", **load_options: Any) -> MarketColumns:
    """The bars of ``data`` with each chain of futures contracts rolled into one symbol.

    Parameters
    ----------
    data : MarketColumns or anything `tickstep.data.resolve` takes
        The bars of the contracts (and of any other symbols, kept as they are).
    chains : mapping
        ``{symbol: [contract, ...]}``: each continuous symbol's contracts in the order
        they expire (``{"ES": ["ESH24", "ESM24", "ESU24"]}``); each a symbol of the data,
        in one chain. The symbol takes the place of its first contract in the call order
        (and its metadata row); its contracts leave the data.
    roll : int or str, default "volume"
        When a contract gives way to the next. ``"volume"``: from the first day after a
        day on which the next contract traded more (the sum of its bars' volumes in that
        day) than the one held, or after the held one's last bar if that never happens.
        The name of an extra column (``"open_interest"``): the same, on that column's
        value at each contract's last bar of the day. A whole number n >= 0: from the
        start of the held contract's n-th last day with bars (0: after its last bar; 5:
        its last five days are the next contract's).
    adjust : "difference", "ratio" or None, default "difference"
        How the prices before a roll are adjusted, at each roll by the gap between the
        two contracts at the last bar held of the old one (its close, and the new one's
        latest close then): ``"difference"`` adds the new one's close minus the old one's
        (the points between two bars, and so a contract's P&L in money, are the contracts'
        own; the prices of long histories can fall to 0 or below, refused: take
        ``"ratio"``); ``"ratio"`` multiplies by new over old (returns are the contracts'
        own); None leaves the prices as traded (the series jumps at each roll).
    timezone : str, default "UTC"
        The calendar of the days the roll counts (the exchange's for intraday bars).
    column : str, default "contract"
        An extra column of the continuous symbol: the position in its chain of the
        contract each bar is from (0, 1, 2, ...). A strategy sees a roll in it.

    Returns
    -------
    MarketColumns
        The data with each chain's contracts replaced by its continuous symbol: the held
        contract's bars (times, prices adjusted, volume, extra columns; an extra column
        some contracts lack is NaN on their bars) and ``column``.

    Notes
    -----
    The adjustment scales or shifts the prices before a roll by what the later rolls
    found, as a split's adjustment does: no price a strategy sees tells it more than
    its contract's own moves. Holding through a roll earns what holding each contract
    in turn earns, without the roll's costs (a sale and a purchase: model them in the
    strategy, on a change of ``column``, if they matter). Refused, by name: a contract
    the data lacks or listed twice, a symbol the data holds already, a roll or an
    adjustment not among the above, a contract held for no bar, a roll with no bar of
    the new contract at or before it to measure the gap, and prices a difference
    adjustment takes to 0 or below.

    Examples
    --------
    >>> import pandas as pd, tickstep.data as td
    >>> days = pd.date_range("2024-03-11", periods=4, freq="D", tz="UTC")
    >>> def bars(closes, volumes):
    ...     return pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes,
    ...                          "volume": volumes}, index=days)
    >>> data = {"ESH24": bars([5100.0, 5110.0, 5120.0, 5130.0], [900.0, 500.0, 100.0, 50.0]),
    ...         "ESM24": bars([5150.0, 5162.0, 5171.0, 5185.0], [300.0, 800.0, 900.0, 950.0])}
    >>> es = td.roll_contracts(data, {"ES": ["ESH24", "ESM24"]})["ES"]
    >>> es.close.tolist()          # ESM24 traded more on March 12: held from March 13
    [5152.0, 5162.0, 5171.0, 5185.0]
    >>> es.extra["contract"].tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    market = _market(data, load_options)
    if adjust not in ADJUSTMENTS:
        raise DataError(f"roll_contracts: adjust={adjust!r} is not one of "
                        f"{', '.join(map(repr, ADJUSTMENTS))}", rule="an adjustment")
    days_before = isinstance(roll, (int, np.integer)) and not isinstance(roll, bool) and roll >= 0
    if not (days_before or (isinstance(roll, str) and roll)):
        raise DataError(f"roll_contracts: roll={roll!r} must be 'volume', the name of an extra "
                        "column (open interest) or a whole number of days >= 0 before a "
                        "contract's last bar", rule="a roll")
    _check_chains(market, chains)
    if isinstance(roll, str) and roll != "volume":
        for contracts in chains.values():
            for c in contracts:
                if roll not in market[c].extra:
                    raise DataError(f"roll_contracts: roll={roll!r}: contract {c!r} has no such "
                                    f"column{did_you_mean(roll, sorted(market[c].extra))} (its "
                                    f"extra columns: {', '.join(sorted(market[c].extra)) or 'none'})",
                                    symbol=c, rule="a roll")
    rolled = {name: _continuous(name, [market[c] for c in contracts], roll, adjust, timezone, column)
              for name, contracts in chains.items()}
    first = {contracts[0]: name for name, contracts in chains.items()}
    gone = {c for contracts in chains.values() for c in contracts}
    order = [first.get(s, s) for s in market.call_order if s in first or s not in gone]
    bars = sorted([b for b in market.bars if b.symbol not in gone] + list(rolled.values()),
                  key=lambda b: b.symbol)
    metadata = market.metadata
    if metadata is not None:
        metadata = metadata.rename(index=first).drop(index=[c for c in gone if c not in first],
                                                     errors="ignore")
    return dataclasses.replace(market, bars=bars, metadata=metadata, order=tuple(order))


def _check_chains(market: MarketColumns, chains: Mapping[str, Sequence[str]]) -> None:
    """Refuse a chain naming a contract the data lacks, a contract twice, or a symbol
    the data holds already (other than its own contracts)."""
    if not isinstance(chains, Mapping) or not chains:
        raise DataError("roll_contracts: chains must be a mapping {symbol: [contract, ...]}, "
                        f"got {chains!r}", rule="chains")
    known = set(market.symbols)
    seen: dict[str, str] = {}
    for name, contracts in chains.items():
        if isinstance(contracts, str) or not isinstance(contracts, Sequence) or not contracts:
            raise DataError(f"roll_contracts: chains[{name!r}] must list its contracts in the "
                            f"order they expire, got {contracts!r}", symbol=str(name), rule="chains")
        for contract in contracts:
            if contract not in known:
                raise DataError(f"roll_contracts: chains[{name!r}]: contract {contract!r} is not "
                                f"in the data{did_you_mean(str(contract), sorted(known))}",
                                symbol=str(contract), rule="contracts of the data")
            if contract in seen:
                raise DataError(f"roll_contracts: contract {contract!r} is in chains[{seen[contract]!r}]"
                                f" and chains[{name!r}]: each contract is in one chain",
                                symbol=str(contract), rule="one chain per contract")
            seen[contract] = name
        if name in known and name not in contracts:
            raise DataError(f"roll_contracts: {name!r} is a symbol of the data already; name the "
                            "continuous symbol otherwise", symbol=str(name), rule="a new symbol")


def _continuous(name: str, contracts: list[SymbolBars], roll: int | str, adjust: str | None,
                timezone: str, column: str) -> SymbolBars:
    """One chain's continuous bars (see `roll_contracts`)."""
    for b in contracts:
        if column in b.extra:
            raise DataError(f"roll_contracts: contract {b.symbol!r} already has a column "
                            f"{column!r}; name the chain's column otherwise (column=...)",
                            symbol=b.symbol, rule="a new column")
    days = [_local_days(b.ts, timezone) for b in contracts]
    # The first time each contract after the first is held from (ns), each after the one
    # before it.
    starts: list[int] = []
    since = np.iinfo(np.int64).min
    for k in range(len(contracts) - 1):
        held, then = contracts[k], contracts[k + 1]
        start = _roll_instant(held, days[k], then, days[k + 1], roll, since)
        starts.append(start)
        since = start
    bounds = [np.iinfo(np.int64).min, *starts, np.iinfo(np.int64).max]
    pieces = []
    for k, b in enumerate(contracts):
        lo, hi = np.searchsorted(b.ts, [bounds[k], bounds[k + 1]], side="left")
        if lo >= hi:
            raise DataError(f"roll_contracts: {name!r}: contract {b.symbol!r} is held for no bar "
                            "(the roll before it comes after the one after it); roll later, or "
                            "leave it out of the chain", symbol=b.symbol, rule="a contract held")
        pieces.append((lo, hi))
    # The gap at each roll, at the last bar held of the old contract.
    gaps = np.zeros(len(contracts) - 1)
    ratios = np.ones(len(contracts) - 1)
    for k in range(len(contracts) - 1):
        old, new = contracts[k], contracts[k + 1]
        last = pieces[k][1] - 1
        at = int(np.searchsorted(new.ts, old.ts[last], side="right")) - 1
        if adjust is not None and at < 0:
            when = pd.Timestamp(int(old.ts[last]), tz="UTC")
            raise DataError(f"roll_contracts: {name!r}: contract {new.symbol!r} has no bar at or "
                            f"before {when}, the last bar of {old.symbol!r} held, to measure the "
                            "roll's gap; roll later (or adjust=None)", symbol=new.symbol,
                            rule="a gap to measure")
        if adjust == "difference":
            gaps[k] = new.close[at] - old.close[last]
        elif adjust == "ratio":
            ratios[k] = new.close[at] / old.close[last]
    # Each contract's bars move by the gaps of the rolls after it (the last one's stay).
    shift = np.append(np.cumsum(gaps[::-1])[::-1], 0.0)
    scale = np.append(np.cumprod(ratios[::-1])[::-1], 1.0)
    return _stitched(name, contracts, pieces, shift, scale, column)


def _roll_instant(held: SymbolBars, held_days: np.ndarray, then: SymbolBars, then_days: np.ndarray,
                  roll: int | str, since: int) -> int:
    """The first time (ns) ``then`` is held instead of ``held``, held from ``since``."""
    if isinstance(roll, str):
        mine = held.ts >= since
        days, ours = _daily(held_days[mine], held, roll, mine)
        other_days, other = _daily(then_days, then, roll, slice(None))
        theirs = pd.Series(other, other_days).reindex(days, fill_value=0.0).to_numpy()
        # (NaN, no value that day, is never more.)
        more = np.flatnonzero(theirs > ours)
        # Known once that day is over: the next day's first bar.
        day = days[more[0]] + 1 if len(more) else None
    else:
        distinct = np.unique(held_days)
        day = distinct[max(len(distinct) - roll, 0)] if roll > 0 else None
    # The new contract's first bar after the held one's last (held to its end).
    following = int(np.searchsorted(then.ts, held.ts[-1], side="right"))
    after_last = int(then.ts[following]) if following < len(then.ts) else None
    if day is not None:
        k = int(np.searchsorted(then_days, day, side="left"))
        if k < len(then.ts):
            start = max(int(then.ts[k]), since + 1)
            return start if after_last is None else min(start, after_last)
    if after_last is None:
        raise DataError(f"roll_contracts: contract {then.symbol!r} has no bar after the last of "
                        f"{held.symbol!r} to roll to: list a chain's contracts in the order they "
                        "expire", symbol=then.symbol, rule="contracts in order")
    return after_last


def _daily(days: np.ndarray, b: SymbolBars, by: str, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each day's (ascending) volume summed, or column ``by``'s value at its last bar, of
    ``b``'s bars ``rows`` (whose days are ``days``)."""
    unique, at = np.unique(days, return_inverse=True)
    if by == "volume":
        return unique, np.bincount(at, weights=b.volume[rows], minlength=len(unique))
    last = np.searchsorted(days, unique, side="right") - 1
    return unique, np.asarray(b.extra[by][rows], dtype=float)[last]


def _stitched(name: str, contracts: list[SymbolBars], pieces: list[tuple[int, int]],
              shift: np.ndarray, scale: np.ndarray, column: str) -> SymbolBars:
    """The continuous symbol's bars: each contract's piece, its prices moved and scaled."""
    def joined(get: Any, adjusted: bool) -> np.ndarray:
        parts = []
        for k, (b, (lo, hi)) in enumerate(zip(contracts, pieces, strict=True)):
            values = np.asarray(get(b)[lo:hi], dtype=float)
            parts.append(values * scale[k] + shift[k] if adjusted else values)
        return np.concatenate(parts)

    ts = np.concatenate([b.ts[lo:hi] for b, (lo, hi) in zip(contracts, pieces, strict=True)])
    prices = {c: joined(lambda b, c=c: getattr(b, c), True) for c in ("open", "high", "low", "close")}
    low = prices["low"]
    if (low <= 0).any():
        i = int(np.argmax(low <= 0))
        raise DataError(f"roll_contracts: {name!r}: adjusting by the differences between contracts "
                        f"takes its low to {low[i]:g} at {pd.Timestamp(int(ts[i]), tz='UTC')}; "
                        "prices must stay above 0: take adjust='ratio'", symbol=name,
                        rule="prices above 0")
    names = sorted({c for b in contracts for c in b.extra})
    extra = {c: joined(lambda b, c=c: b.extra.get(c, np.full(len(b.ts), np.nan)), False) for c in names}
    extra[column] = np.concatenate([np.full(hi - lo, float(k)) for k, (lo, hi) in enumerate(pieces)])
    return SymbolBars(name, ts, prices["open"], prices["high"], prices["low"], prices["close"],
                      joined(lambda b: b.volume, False), extra)
