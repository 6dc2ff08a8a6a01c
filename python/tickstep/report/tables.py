"""What a result holds, broken down by symbol and by sector (plain pandas, no plotting).

Positions are rebuilt from the fills: a symbol's position at an equity sample is the sum
of its signed fills up to that sample's time; its value is that position at the symbol's
last close at or before the sample. P&L per symbol is its fills' cash flow, less
commissions, plus what its open position is worth at the end and what it was paid and
charged besides (`Result.payments`), so the symbols' P&L and the account's interest on
its cash (`Result.interest`, no symbol's) add up to the account's.

Every sum here is exact (`tickstep.metrics.exact_sum`), as the statistics' are: fills
and symbols are added up in the order they are listed, which can follow the symbols'
names, and an exact sum is the same bits in any order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tickstep.config import multipliers
from tickstep.metrics import exact_sum

# A `tickstep.Result`, read through its public attributes. Not imported: `Result.plot`
# and `Result.report` delegate here, and an import back would close a circle.
Result = Any

__all__ = ["position_values", "rejected_orders", "sector_breakdown", "symbol_breakdown"]

# A position smaller than this share of the symbol's largest fill is rounding dust.
_SIZE_DUST = 1e-9


def _multipliers(result: Result) -> np.ndarray:
    """Each symbol's multiplier in the run (`tickstep.config.multipliers`), in symbol order:
    a unit's money is its size x price x this."""
    return np.array(multipliers(result.options.get("multiplier"), result.symbols))


def _signed_fills(result: Result) -> tuple[pd.DataFrame, np.ndarray]:
    fills = result.fills
    signed = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0) * fills["size"].to_numpy()
    return fills, signed


def _sums_by(codes: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """The exact sum of ``values`` per code ``0 .. groups - 1`` (0.0 for a code with none)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(groups + 1))
    ordered = values[order]
    return np.array([exact_sum(ordered[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])


def shares_of_equity(held: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """``held`` (absolute position values, a row per equity sample, or one value a
    sample) as a share of the equity's magnitude at each sample; NaN at a sample of an
    account wiped out to nothing, which has no share (0 / 0, or a position against
    nothing)."""
    scale = np.abs(equity) if held.ndim == 1 else np.abs(equity)[:, None]
    shares = np.full(held.shape, np.nan)
    np.divide(held, scale, out=shares, where=scale != 0.0)
    return shares


def _average_exposures(held: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """``Avg. Exposure [%]`` of each column of ``held``: the mean of its
    `shares_of_equity` over the samples with any equity; NaN for a run that never had
    equity."""
    some = equity != 0.0
    if not some.any():
        return np.full(held.shape[1], np.nan)
    return exact_sum(shares_of_equity(held[some], equity[some]), axis=0) / int(some.sum()) * 100.0


def _exposure_times(result: Result, groups: np.ndarray, n: int, held: np.ndarray) -> np.ndarray:
    """Per group ``0 .. n - 1`` of symbols (``groups[s]``: symbol ``s``'s group), the share
    of the run's ticks, in percent, at whose end any of its symbols was held: the union of
    their spans (`Result.holding_spans`) over the ticks `Result.exposure_ticks` counted.
    For a result without them (saved before they were kept), the share of the equity
    samples at which the group's positions (``held``: samples × groups) are worth any."""
    # (A stand-in for a result may lack them: the samples then.)
    spans, counted = getattr(result, "holding_spans", None), getattr(result, "exposure_ticks", None)
    if spans is None or counted is None or counted[1] == 0:
        return (held > 0).mean(axis=0) * 100.0
    group = groups[spans["symbol"].cat.codes.to_numpy()]
    # Each group's ticks on a line of its own (group k at k x (ticks + 1) on), the spans
    # in order along it: a span adds the ticks past the furthest any before it reached.
    line = group.astype(np.int64) * (counted[1] + 1)
    starts, ends = spans["from_tick"].to_numpy() + line, spans["to_tick"].to_numpy() + line
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.concatenate([[0], np.maximum.accumulate(ends)[:-1]])
    added = np.clip(ends - np.maximum(starts, reach), 0, None)
    held = np.bincount(group[order], weights=added, minlength=n)
    return held / counted[1] * 100.0


def position_values(result: Result) -> pd.DataFrame:
    """Signed value of each symbol's position at every equity sample.

    Returns
    -------
    pandas.DataFrame
        Index: the equity samples' times; one column per symbol; ``size * close *
        multiplier`` (negative for a short), 0.0 when flat.
    """
    times = result.equity.index.asi8
    fills, signed = _signed_fills(result)
    fill_times = pd.DatetimeIndex(fills["time"]).asi8
    codes = fills["symbol"].cat.codes.to_numpy()
    values = np.zeros((len(times), len(result.symbols)))
    each = _multipliers(result)
    for i, symbol in enumerate(result.symbols):
        mine = codes == i
        if not mine.any():
            continue
        held = np.cumsum(signed[mine])
        held[np.abs(held) <= _SIZE_DUST * np.abs(signed[mine]).max()] = 0.0
        after = np.searchsorted(fill_times[mine], times, side="right") - 1
        size = np.where(after >= 0, held[np.maximum(after, 0)], 0.0)
        prices = result.prices(symbol)
        at = np.searchsorted(prices.index.asi8, times, side="right") - 1
        close = prices.to_numpy()[np.maximum(at, 0)]
        values[:, i] = np.where(size != 0.0, size * close * each[i], 0.0)
    return pd.DataFrame(values, index=result.equity.index, columns=pd.Index(result.symbols, name="symbol"))


def symbol_breakdown(result: Result, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """P&L, trades and exposure of every symbol.

    Columns: ``P&L [$]`` (realised and open, net of commissions, with the dividends
    received and the carrying costs paid), ``Contribution [%]`` (P&L over initial cash),
    ``# Trades`` and ``Win Rate [%]`` (closed trades), ``Commissions [$]`` (all fills),
    ``Dividends [$]`` and ``Carrying Costs [$]`` (borrow fees and funding: the symbol's
    `Result.payments`), ``Exposure Time [%]`` (share of the run's ticks at whose end the
    symbol was held, `Result.holding_spans`, as the statistic of that name counts the
    account's; of the equity samples for a result saved before the spans were kept),
    ``Avg. Exposure [%]`` (mean of the position's absolute value over equity's at the
    samples; a sample with no equity, the account wiped out, has no share), and
    ``Sector`` when the metadata has one. Indexed by symbol in the engine's order. The symbols' P&L and the account's interest on its cash (`Result.interest`)
    sum to the run's: final equity less initial cash.
    """
    values = position_values(result) if values is None else values
    fills, signed = _signed_fills(result)
    codes = fills["symbol"].cat.codes.to_numpy()
    n = len(result.symbols)
    each = _multipliers(result)
    flow = _sums_by(codes, -signed * fills["price"].to_numpy() * each[codes], n)
    commission = _sums_by(codes, fills["commission"].to_numpy(dtype=float), n)
    positions = result.positions
    end_value = (positions["size"] * positions["last_price"]).reindex(result.symbols, fill_value=0.0)
    paid = result.payments.reindex(result.symbols)
    dividends, carried = paid["dividends"].to_numpy(), paid["carrying_costs"].to_numpy()
    pnl = flow - commission + end_value.to_numpy() * each + dividends - carried

    trades = result.trades
    trade_codes = trades["symbol"].cat.codes.to_numpy()
    count = np.bincount(trade_codes, minlength=n)
    wins = np.bincount(trade_codes, weights=(trades["pnl"].to_numpy() > 0), minlength=n)
    equity = result.equity.to_numpy()
    held = np.abs(values.to_numpy())
    frame = pd.DataFrame(
        {
            "P&L [$]": pnl,
            "Contribution [%]": pnl / result.initial_cash * 100.0,
            "# Trades": count,
            "Win Rate [%]": np.where(count > 0, wins / np.maximum(count, 1) * 100.0, np.nan),
            "Commissions [$]": commission,
            "Dividends [$]": dividends,
            "Carrying Costs [$]": carried,
            "Exposure Time [%]": _exposure_times(result, np.arange(n), n, held),
            "Avg. Exposure [%]": _average_exposures(held, equity),
        },
        index=pd.Index(result.symbols, name="symbol"),
    )
    sectors = _sectors(result)
    if sectors is not None:
        frame.insert(0, "Sector", sectors.to_numpy())
    return frame


def sector_breakdown(result: Result, values: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The symbol breakdown summed by the metadata's ``sector`` (None without sectors).

    ``Exposure Time [%]`` is the share of ticks ending with any of the sector's symbols
    held (of samples, as for the symbols, without the spans) and
    ``Avg. Exposure [%]`` the mean of the sector's summed absolute position values over
    equity; ``Win Rate [%]`` counts the sector's closed trades.
    """
    sectors = _sectors(result)
    if sectors is None:
        return None
    values = position_values(result) if values is None else values
    by_symbol = symbol_breakdown(result, values)
    names, codes = np.unique(sectors.to_numpy(), return_inverse=True)  # sectors sorted
    trades = result.trades
    trade_sector = codes[trades["symbol"].cat.codes.to_numpy()]
    count = np.bincount(trade_sector, minlength=len(names))
    wins = np.bincount(trade_sector[trades["pnl"].to_numpy() > 0], minlength=len(names))
    held = np.abs(values.to_numpy())
    # Per sample, the sector's summed absolute position values.
    held = np.column_stack([exact_sum(held[:, codes == k], axis=1) for k in range(len(names))])
    held = held.reshape(len(values), len(names))

    def summed(column: str) -> np.ndarray:
        return _sums_by(codes, by_symbol[column].to_numpy(dtype=float), len(names))

    frame = pd.DataFrame(
        {
            "P&L [$]": summed("P&L [$]"),
            "Contribution [%]": summed("Contribution [%]"),
            "# Symbols": np.bincount(codes, minlength=len(names)),
            "# Trades": count,
            "Win Rate [%]": np.where(count > 0, wins / np.maximum(count, 1) * 100.0, np.nan),
            "Commissions [$]": summed("Commissions [$]"),
            "Dividends [$]": summed("Dividends [$]"),
            "Carrying Costs [$]": summed("Carrying Costs [$]"),
            "Exposure Time [%]": _exposure_times(result, codes, len(names), held),
            "Avg. Exposure [%]": _average_exposures(held, result.equity.to_numpy()),
        },
        index=pd.Index(names, name="sector"),
    )
    return frame


def rejected_orders(result: Result) -> pd.DataFrame:
    """The orders the broker refused, with the reason, in the order they were placed."""
    orders = result.orders
    rejected = orders[orders["status"] == "rejected"]
    return rejected[["order_id", "placed_time", "closed_time", "symbol", "side", "size", "limit",
                     "stop", "role", "reason"]].reset_index(drop=True)


def margin_calls(result: Result) -> pd.DataFrame:
    """The positions margin calls closed (``BacktestConfig.maintenance_margin``): a row
    per closing fill, with its time, symbol, side, size, price and commission, in the
    order they filled."""
    orders = result.orders
    # (A run without orders has an empty column of no type: compared as text.)
    called = orders["reason"].astype(str).str.startswith("margin call")
    closes = orders[(orders["status"] == "filled") & called]
    fills = result.fills
    closed = fills[fills["order_id"].isin(closes["order_id"])]
    return closed[["time", "symbol", "side", "size", "price", "commission"]].reset_index(drop=True)


def _sectors(result: Result) -> pd.Series | None:
    meta = result.metadata
    if meta is None or "sector" not in meta.columns:
        return None
    sectors = meta["sector"].reindex(result.symbols)
    return sectors.astype(object).where(sectors.notna(), "(none)").astype(str)
