"""Synthetic but realistic bars, fixed by a seed, for demos, tests and benchmarks.

The model, per symbol: a daily volatility that drifts (log-AR(1)) and switches between
calm and stressed regimes; minute returns made of a market factor, a sector factor and
fat-tailed idiosyncratic noise; a U-shaped intraday profile for both volatility and
volume; an overnight gap (with rare earnings-sized jumps) at each session's first bar;
prices on a one-cent grid; and minutes with no trade -- hence no bar -- that are common
for thin symbols and in extended hours. Everything is vectorised over symbols x bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from tickstep.data._calendars import get_calendar
from tickstep.data._columns import DataError, MarketColumns, SymbolBars, check_bars
from tickstep.data._memory import to_market_columns
from tickstep.timeframes import NS_PER_DAY, NS_PER_MINUTE

__all__ = ["example_daily", "sample", "sample_daily"]

TICK = 0.01

SECTORS = (
    "Information Technology",
    "Financials",
    "Health Care",
    "Consumer Discretionary",
    "Industrials",
    "Communication Services",
    "Consumer Staples",
    "Energy",
    "Utilities",
    "Materials",
    "Real Estate",
)
_CONSONANTS = "BCDFGHKLMNPRSTVWXZ"
_VOWELS = "AEIOUY"


def symbol_names(count: int) -> list[str]:
    """``count`` distinct, ticker-like names; the same for every seed.

    Examples
    --------
    >>> symbol_names(3)
    ['LORC', 'BARP', 'TEW']
    """
    rng = np.random.default_rng(7_919)
    names: list[str] = []
    seen = set()
    while len(names) < count:
        letters = [
            _CONSONANTS[rng.integers(len(_CONSONANTS))],
            _VOWELS[rng.integers(len(_VOWELS))],
            _CONSONANTS[rng.integers(len(_CONSONANTS))],
        ]
        if rng.random() < 0.6:
            letters.append((_VOWELS + _CONSONANTS)[rng.integers(len(_VOWELS + _CONSONANTS))])
        name = "".join(letters)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _resolve_symbols(symbols: int | Sequence[str]) -> list[str]:
    if isinstance(symbols, (int, np.integer)):
        if symbols < 1:
            raise DataError(f"symbols must be at least 1, got {symbols}")
        return symbol_names(int(symbols))
    names = list(symbols)
    if not names or len(set(names)) != len(names):
        raise DataError("symbols must be a non-empty list of distinct names")
    return names


def _calendar(exchange: str, start: pd.Timestamp, days: int):
    return get_calendar(exchange, start, start + pd.Timedelta(days=int(days * 1.6) + 15))


def _sessions(
    hours: str, days: int, start: pd.Timestamp, exchange: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Per session: first bar ns, end ns (exclusive), regular open ns, regular close ns."""
    if hours == "24h":
        first = start.value + np.arange(days, dtype=np.int64) * NS_PER_DAY
        return first, first + NS_PER_DAY, first, first + NS_PER_DAY, "UTC"
    cal = _calendar(exchange, start, days)
    schedule = cal.schedule.loc[start.tz_localize(None) :].iloc[:days]
    if len(schedule) < days:
        raise DataError(f"the {exchange} calendar has only {len(schedule)} sessions from {start}")
    opens = schedule["open"].dt.tz_convert(None).dt.as_unit("ns").to_numpy().view(np.int64)
    closes = schedule["close"].dt.tz_convert(None).dt.as_unit("ns").to_numpy().view(np.int64)
    if hours == "regular":
        return opens, closes, opens, closes, str(cal.tz)
    # US-style extended hours: pre-market from 04:00, after-hours until 20:00 (local).
    pre = opens - 330 * NS_PER_MINUTE
    post = closes + 240 * NS_PER_MINUTE
    return pre, post, opens, closes, str(cal.tz)


def _regimes(rng: np.random.Generator, n_symbols: int, n_days: int) -> np.ndarray:
    """Daily volatility multipliers: a log-AR(1) drift times a two-state regime."""
    shocks = rng.normal(0.0, 0.12, (n_symbols, n_days))
    switch = rng.random((n_symbols, n_days))
    market_switch = rng.random(n_days)
    level = np.zeros(n_symbols)
    stressed = np.zeros(n_symbols, dtype=bool)
    market_stressed = False
    out = np.empty((n_symbols, n_days))
    # A loop over days (hundreds), never over bars.
    for d in range(n_days):
        level = 0.97 * level + shocks[:, d]
        market_stressed = market_stressed != (
            market_switch[d] < (0.08 if market_stressed else 0.015)
        )
        stressed = stressed != (switch[:, d] < np.where(stressed, 0.1, 0.01))
        out[:, d] = np.exp(level) * np.where(stressed | market_stressed, 1.9, 1.0)
    return out


def _fat_tails(rng: np.random.Generator, shape: tuple[int, ...], dof: float = 4.0) -> np.ndarray:
    """Student-t noise scaled to unit variance."""
    return rng.standard_t(dof, shape) * np.sqrt((dof - 2.0) / dof)


def _to_ticks(
    close_exact: np.ndarray, open_exact: np.ndarray, up: np.ndarray, down: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Round to the one-cent grid keeping low <= open, close <= high and prices > 0.

    ``up`` and ``down`` are the bar's relative excursions beyond its open/close range;
    they are overwritten (in place, to spare memory traffic on millions of bars).
    """
    cents = 1.0 / TICK
    close = np.rint(close_exact * cents)
    open_ = np.rint(open_exact * cents)
    np.maximum(close, 1.0, out=close)
    np.maximum(open_, 1.0, out=open_)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    up += 1.0
    up *= top
    high = np.rint(up, out=up)
    np.maximum(high, top, out=high)
    np.subtract(1.0, down, out=down)
    down *= bottom
    low = np.rint(down, out=down)
    np.clip(low, 1.0, bottom, out=low)
    for arr in (open_, high, low, close):
        arr /= cents  # dividing keeps 7721 -> 77.21 exact to the nearest double
    return open_, high, low, close


def _metadata(
    rng: np.random.Generator, names: list[str], exchange: str, tz: str
) -> tuple[pd.DataFrame, np.ndarray]:
    sector_idx = rng.integers(0, len(SECTORS), len(names))
    listing = rng.choice(["NYSE", "NASDAQ"], len(names)) if exchange == "XNYS" else exchange
    meta = pd.DataFrame(
        {
            "sector": np.array(SECTORS, dtype=object)[sector_idx],
            "exchange": listing,
            "timezone": tz,
            "currency": "USD",
        },
        index=pd.Index(names, name="symbol"),
    )
    return meta, sector_idx


def sample(
    symbols: int | Sequence[str] = 20,
    days: int = 100,
    *,
    seed: int = 0,
    freq: str = "1min",
    hours: str = "regular",
    missing: float = 1.0,
    start: str | pd.Timestamp = "2024-01-02",
    exchange: str = "XNYS",
) -> MarketColumns:
    """Generate realistic intraday bars for many symbols, fixed by a seed.

    Parameters
    ----------
    symbols : int or sequence of str, default 20
        How many symbols (ticker-like names, the same for every seed), or their names.
    days : int, default 100
        Number of sessions: exchange trading days for ``hours="regular"`` or
        ``"extended"`` (holidays and early closes from the exchange calendar), calendar
        days for ``hours="24h"``.
    seed : int, default 0
        Same seed, same bars, bit for bit.
    freq : str, default "1min"
        Bar length, a whole number of minutes (``"1min"``, ``"5min"``, ``"1h"``).
    hours : {"regular", "extended", "24h"}, default "regular"
        ``"regular"``: the exchange's session (09:30-16:00 New York for XNYS, 390
        minutes). ``"extended"``: also pre-market from 04:00 and after-hours until
        20:00, thinly traded. ``"24h"``: round-the-clock, every calendar day in UTC
        (1,440 minutes a day: 100 days give 144,000 bars per symbol).
    missing : float, default 1.0
        Scale of the chance that a bar has no trade, hence no row: thin symbols and
        extended hours miss bars; ``0`` gives every bar for every symbol.
    start : str or Timestamp, default "2024-01-02"
        First day; the first session on or after it.
    exchange : str, default "XNYS"
        Exchange calendar name (``exchange_calendars``) for regular/extended hours.

    Returns
    -------
    MarketColumns
        With metadata columns ``sector``, ``exchange``, ``timezone``, ``currency``.

    Examples
    --------
    >>> market = sample(symbols=3, days=2, seed=1)
    >>> len(market.symbols), list(market.metadata.columns)
    (3, ['sector', 'exchange', 'timezone', 'currency'])
    >>> sample(symbols=2, days=1, hours="24h", missing=0).bars[0].ts.size
    1440
    """
    if hours not in ("regular", "extended", "24h"):
        raise DataError(f"hours must be 'regular', 'extended' or '24h', got {hours!r}")
    if days < 1:
        raise DataError(f"days must be at least 1, got {days}")
    step_min = pd.Timedelta(freq) / pd.Timedelta(minutes=1)
    if step_min < 1 or step_min != int(step_min):
        raise DataError(f"freq must be a whole number of minutes, got {freq!r}")
    step = int(step_min) * NS_PER_MINUTE
    names = _resolve_symbols(symbols)
    start_ts = pd.Timestamp(start)
    start_ts = (
        start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    )
    start_ts = start_ts.normalize()
    rng = np.random.default_rng(seed)
    n_sym = len(names)

    first, end, opens, closes, tz = _sessions(hours, days, start_ts, exchange)
    counts = (end - first) // step
    n = int(counts.sum())
    day = np.repeat(np.arange(days), counts)
    session_start = np.repeat(np.cumsum(counts) - counts, counts)
    ts = np.repeat(first, counts) + (np.arange(n) - session_start) * step

    # Where each bar sits in its session: 0..1 over regular hours, outside for extended.
    reg_len = (closes - opens)[day].astype(np.float64)
    x = (ts - opens[day] + step / 2) / reg_len
    regular = (x >= 0) & (x <= 1)
    if hours == "24h":
        hour = (ts % NS_PER_DAY) / 3.6e12 + step / 7.2e12
        vol_shape = 0.8 + 0.35 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        volume_shape = vol_shape**2
    else:
        u = (2 * x - 1) ** 2
        vol_shape = np.where(regular, 0.75 + 0.9 * u, 0.35)
        volume_shape = np.where(regular, 0.55 + 1.6 * u**2 + 2.5 * (x > 0.97), 0.025)
    vol_shape = vol_shape / np.sqrt(np.mean(vol_shape[regular] ** 2 if regular.any() else 1.0))

    # Round-the-clock bars belong to no exchange session: their calendar is 24/7 UTC.
    listing = "24/7" if hours == "24h" else exchange
    meta, sector_idx = _metadata(rng, names, listing, tz)
    annual_vol = rng.uniform(0.16, 0.55, n_sym)
    beta = rng.uniform(0.6, 1.4, n_sym)
    price0 = np.exp(rng.uniform(np.log(8.0), np.log(450.0), n_sym))
    daily_dollar_volume = np.exp(rng.uniform(np.log(2e6), np.log(2e9), n_sym))
    trade_size = rng.uniform(60.0, 250.0, n_sym)
    drift = rng.normal(0.05, 0.1, n_sym) / 252.0

    bars_per_day = counts[0] if hours == "24h" else (closes[0] - opens[0]) // step
    sigma_day = annual_vol[:, None] / np.sqrt(252.0) * _regimes(rng, n_sym, days)
    sigma_bar = sigma_day[:, day] * vol_shape / np.sqrt(bars_per_day)

    # Factor structure: market, sector, idiosyncratic (fat-tailed).
    market = rng.standard_normal(n)
    sector = rng.standard_normal((len(SECTORS), n))
    load_m = np.clip(0.45 * beta, 0.0, 0.7)
    load_s = np.full(n_sym, 0.35)
    load_i = np.sqrt(1.0 - load_m**2 - load_s**2)
    z = load_m[:, None] * market + load_s[:, None] * sector[sector_idx]
    z += load_i[:, None] * _fat_tails(rng, (n_sym, n))
    ret = sigma_bar * z
    ret += (drift / bars_per_day)[:, None]
    firsts = np.cumsum(counts) - counts
    gap = np.zeros((n_sym, days))
    if hours != "24h":
        # Overnight gap at each session's first bar, with rare earnings-sized jumps.
        gap = rng.normal(0.0, 0.3, (n_sym, days)) * sigma_day
        jumps = rng.random((n_sym, days)) < 1 / 63
        gap += jumps * rng.normal(0.0, 4.0, (n_sym, days)) * sigma_day
        gap[:, 0] = 0.0
        ret[:, firsts] += gap
    log_close = np.cumsum(ret, axis=1)
    log_close += np.log(price0)[:, None]
    close_exact = np.exp(log_close, out=log_close)
    # A bar opens where the previous one closed, except across the overnight gap.
    open_exact = np.empty_like(close_exact)
    open_exact[:, 0] = price0
    open_exact[:, 1:] = close_exact[:, :-1]
    open_exact[:, firsts] *= np.exp(gap)
    excursion = sigma_bar * 0.6
    open_, high, low, close = _to_ticks(
        close_exact,
        open_exact,
        np.abs(rng.standard_normal((n_sym, n))) * excursion,
        np.abs(rng.standard_normal((n_sym, n))) * excursion,
    )

    shares_per_bar = (daily_dollar_volume / price0)[:, None] / bars_per_day
    activity = (1.0 + 1.5 * np.abs(z)) * (sigma_day[:, day] / sigma_day.mean(axis=1, keepdims=True))
    activity *= volume_shape / (2.2 * volume_shape[regular].mean() if regular.any() else 2.2)
    noise = np.exp(rng.normal(-0.125, 0.5, (n_sym, n)))
    volume = np.maximum(np.round(shares_per_bar * activity * noise), 1.0)
    # A bar exists when at least one trade happened: Poisson with mean volume / trade size.
    no_trade = np.exp(-volume / trade_size[:, None])
    keep = rng.random((n_sym, n)) >= missing * no_trade

    bars = []
    for k, name in enumerate(names):
        mask = keep[k]
        cols = [ts[mask], open_[k, mask], high[k, mask], low[k, mask], close[k, mask]]
        cols.append(volume[k, mask])
        check_bars(name, *cols)
        bars.append(SymbolBars._trusted(name, *cols))
    order = np.argsort(names, kind="stable")
    return MarketColumns([bars[i] for i in order], meta.iloc[order])


def sample_daily(
    symbols: int | Sequence[str] = 8,
    days: int = 756,
    *,
    seed: int = 0,
    start: str | pd.Timestamp = "2020-01-02",
    exchange: str = "XNYS",
) -> MarketColumns:
    """Generate realistic daily bars for many symbols, fixed by a seed.

    Same model as `sample`, one bar per session: regime-switching volatility, market and
    sector factors, fat tails, overnight gaps, volume rising with volatility. A daily
    bar is labelled with its session date at 00:00 UTC.

    Parameters
    ----------
    symbols : int or sequence of str, default 8
        How many symbols, or their names.
    days : int, default 756
        Number of sessions (756 is about three years).
    seed : int, default 0
        Same seed, same bars.
    start : str or Timestamp, default "2020-01-02"
        First day; the first session on or after it.
    exchange : str, default "XNYS"
        Exchange calendar name (``exchange_calendars``) giving the sessions.

    Returns
    -------
    MarketColumns
        With metadata columns ``sector``, ``exchange``, ``timezone``, ``currency``.

    Examples
    --------
    >>> market = sample_daily(symbols=2, days=10, seed=3)
    >>> [len(b) for b in market.bars]
    [10, 10]
    """
    if days < 1:
        raise DataError(f"days must be at least 1, got {days}")
    names = _resolve_symbols(symbols)
    start_ts = pd.Timestamp(start).normalize()
    start_ts = start_ts.tz_localize(None) if start_ts.tzinfo is not None else start_ts
    cal = _calendar(exchange, start_ts, days)
    sessions = cal.sessions[cal.sessions >= start_ts][:days]
    if len(sessions) < days:
        raise DataError(f"the {exchange} calendar has only {len(sessions)} sessions from {start}")
    ts = sessions.as_unit("ns").asi8.copy()
    rng = np.random.default_rng(seed)
    n_sym = len(names)
    meta, sector_idx = _metadata(rng, names, exchange, str(cal.tz))
    annual_vol = rng.uniform(0.16, 0.55, n_sym)
    beta = rng.uniform(0.6, 1.4, n_sym)
    price0 = np.exp(rng.uniform(np.log(8.0), np.log(450.0), n_sym))
    shares_per_day = np.exp(rng.uniform(np.log(3e6), np.log(3e9), n_sym)) / price0
    drift = rng.normal(0.06, 0.12, n_sym) / 252.0

    sigma = annual_vol[:, None] / np.sqrt(252.0) * _regimes(rng, n_sym, days)
    load_m = np.clip(0.5 * beta, 0.0, 0.75)
    load_s = np.full(n_sym, 0.35)
    load_i = np.sqrt(1.0 - load_m**2 - load_s**2)
    z = load_m[:, None] * rng.standard_normal(days)
    z += load_s[:, None] * rng.standard_normal((len(SECTORS), days))[sector_idx]
    z += load_i[:, None] * _fat_tails(rng, (n_sym, days))
    gap = rng.normal(0.0, 0.3, (n_sym, days)) * sigma
    gap += (rng.random((n_sym, days)) < 1 / 63) * rng.normal(0.0, 3.0, (n_sym, days)) * sigma
    gap[:, 0] = 0.0
    intraday = sigma * z + drift[:, None]
    log_close = np.log(price0)[:, None] + np.cumsum(gap + intraday, axis=1)
    excursion = sigma * 0.5
    open_, high, low, close = _to_ticks(
        np.exp(log_close),
        np.exp(log_close - intraday),
        np.abs(rng.standard_normal((n_sym, days))) * excursion,
        np.abs(rng.standard_normal((n_sym, days))) * excursion,
    )
    activity = (1.0 + 1.2 * np.abs(z)) * (sigma / sigma.mean(axis=1, keepdims=True))
    noise = np.exp(rng.normal(-0.045, 0.3, (n_sym, days)))
    volume = np.round(shares_per_day[:, None] * activity * noise)

    bars = []
    for k, name in enumerate(names):
        cols = [ts, open_[k], high[k], low[k], close[k], volume[k]]
        check_bars(name, *cols)
        bars.append(SymbolBars._trusted(name, *cols))
    order = np.argsort(names, kind="stable")
    return MarketColumns([bars[i] for i in order], meta.iloc[order])


EXAMPLE_FILE = "example_daily.csv.gz"
EXAMPLE_SYMBOLS_FILE = "example_daily_symbols.csv"


def example_daily() -> MarketColumns:
    """A small daily dataset shipped inside the package, so examples run offline.

    Eight fictional US stocks over four years of NYSE sessions (2020-2023), with sector
    metadata. The bars were made once by `sample_daily` and are stored as a compressed
    CSV (``symbol, date, open, high, low, close, volume``) beside this module.

    Returns
    -------
    MarketColumns

    Examples
    --------
    >>> market = example_daily()
    >>> len(market.symbols), market.metadata.loc[market.symbols[0], "exchange"] in {"NYSE", "NASDAQ"}
    (8, True)
    """
    here = resources.files("tickstep.data")
    with resources.as_file(here / EXAMPLE_FILE) as path:
        frame = pd.read_csv(path, dtype={"symbol": str})
    with resources.as_file(here / EXAMPLE_SYMBOLS_FILE) as path:
        meta = pd.read_csv(path, index_col="symbol")
    return to_market_columns(frame, metadata=meta)


def _write_example_daily(directory: str | None = None) -> None:
    """Regenerate the shipped example dataset (maintainers only; output is committed)."""
    import gzip
    from pathlib import Path

    target = Path(directory) if directory else Path(__file__).parent
    market = sample_daily(8, days=1006, seed=2024, start="2020-01-02")
    frame = market.to_frame()
    frame.insert(1, "date", frame.pop("ts").dt.strftime("%Y-%m-%d"))
    frame["volume"] = frame["volume"].astype(np.int64)
    text = frame.to_csv(index=False, float_format="%.2f", lineterminator="\n")
    with (
        open(target / EXAMPLE_FILE, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out,
    ):
        out.write(text.encode())
    market.metadata.to_csv(target / EXAMPLE_SYMBOLS_FILE, lineterminator="\n")
