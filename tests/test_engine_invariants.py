"""Properties of random backtests, checked against an independent reference.

Random OHLC bars (1-4 symbols, missing bars) and a random strategy (market, limit, stop and
stop-limit orders with random stop-loss / take-profit, closes and cancels, seeded by
hypothesis) are run through the engine. The results are then re-derived here:

* a reference broker, order by order, says when and at what price each order should have
  filled (the fill rules of ``rust/broker.rs``), so fills that are early, late, missing or
  at the wrong price are caught, and no order ever fills at a price of the bar on which it
  was decided;
* a reference portfolio replays the fills (FIFO lots, bracket legs closing their own lot)
  and rebuilds every closed trade (size, prices, pnl, commission, bars held, MAE/MFE);
* at every equity sample, ``cash + sum(position x last close) == equity`` with positions
  rebuilt from the fills and last closes read from the input data;
* final equity == cash0 + closed pnl + unrealised pnl of open lots - their entry
  commission not yet charged to a closed trade.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import tickstep
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from tickstep.report import position_values

CASH = 10_000.0
TOL = 1e-9

# ---------------------------------------------------------------------------------------
# random inputs


def random_market(seed: int, n_symbols: int, n_ticks: int, p_missing: float, freq: str):
    """{symbol: DataFrame} with random OHLC bars and random missing bars (>= 1 bar each)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n_ticks, freq=freq, tz="UTC").as_unit("ns")
    out = {}
    for k in range(n_symbols):
        keep = rng.random(n_ticks) >= p_missing
        if not keep.any():
            keep[rng.integers(n_ticks)] = True
        n = int(keep.sum())
        start = float(rng.uniform(20, 200))
        close = start * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        gap = np.exp(rng.normal(0, 0.01, n))
        open_ = np.concatenate(([start], close[:-1])) * gap
        # Prices on a cent grid so that touches and ties with order prices happen.
        open_, close = np.round(open_, 2), np.round(close, 2)
        high = np.ceil(np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n)) * 100) / 100
        low = np.floor(np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n)) * 100) / 100
        out[f"S{k}"] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": 1000.0},
            index=index[keep],
        )
    return out


class RandomTrader(tickstep.Strategy):
    """Places random orders from a seeded generator, and checks what it can see."""

    seed = 0
    frames = None  # the input, for checks of what the strategy sees

    def init(self):
        self.rng = random.Random(self.seed)
        # Orders at the open or the close from a generator of their own, so that the
        # main one draws as it always did (the pinned examples below stay what they were).
        self.moments = random.Random(self.seed ^ 0x0C105E)
        self.problems = []
        self.calls = []
        # What the order records do not say, for the reference: order id -> options.
        self.specs = {}

    # What the strategy sees must be exactly the input up to now, never beyond.
    def _check_view(self, symbol, active):
        if not hasattr(self, "_cols"):
            self._cols = {
                name: (f.index.as_unit("ns").asi8, *(f[c].to_numpy() for c in ("open", "high", "low", "close")))
                for name, f in self.frames.items()
            }
        ts, o, h, lo, c = self._cols[symbol]
        seen = int(np.searchsorted(ts, self.now, side="right"))
        hist = self.data(symbol)
        if len(hist) != seen:
            self.problems.append(f"{symbol} at {self.now}: {len(hist)} bars visible, {seen} seen")
            return
        if seen == 0:
            return
        k = seen - 1
        if hist.close[-1] != c[k] or hist.ts[-1] != ts[k]:
            self.problems.append(f"{symbol} at {self.now}: data().close[-1] is not the last close")
        if active and hist.ts[-1] != self.now:
            self.problems.append(f"{symbol} at {self.now}: active but its last bar is older")
        if self.price(symbol) != c[k]:
            self.problems.append(f"{symbol} at {self.now}: price() {self.price(symbol)} != {c[k]}")
        bar = self.bar(symbol)
        if tuple(bar)[1:5] != (o[k], h[k], lo[k], c[k]):
            self.problems.append(f"{symbol} at {self.now}: bar() {bar} is not the last bar")

    def _check_equity(self):
        marked = 0.0
        scale = abs(self.cash)
        for s in self.symbols:
            size = self.position(s).size
            if size:
                marked += size * self.price(s)
                scale += abs(size * self.price(s))
        if abs(self.equity - (self.cash + marked)) > TOL * max(scale, CASH):
            self.problems.append(
                f"at {self.now}: equity {self.equity!r} != cash {self.cash!r} + marked {marked!r}"
            )

    def next(self, symbol):
        self.calls.append((self.now, symbol))
        if not self.has_data(symbol):
            self.problems.append(f"next({symbol}) at {self.now} without data")
        self._check_view(symbol, active=True)
        self._act(symbol)

    def on_tick(self):
        self._check_equity()
        for s in self.symbols:
            if not self.has_data(s):
                self._check_view(s, active=False)
        if self.rng.random() < 0.3:
            self._act(self.rng.choice(self.symbols))

    def _act(self, symbol):
        rng = self.rng
        x = rng.random()
        ref = self.price(symbol)  # NaN before the symbol's first bar
        buy = rng.random() < 0.5
        # None: the backtest's sizer (95% of equity) decides, which tests the margin check.
        size = rng.choice([1, 2, 5, 10, 25, rng.uniform(0.5, 40), None])
        if x < 0.07:
            self.close(symbol)
            return
        if x < 0.10:
            portion = rng.choice([0.25, 0.5])
            oid = self.close(symbol, portion=portion)
            if oid is not None:
                self.specs[oid] = {"portion": portion}
            return
        if x < 0.20:
            working = self.orders(symbol)
            if working:
                self.cancel(rng.choice(working))
            return
        if x < 0.45:
            return
        if ref != ref:  # no price yet: only a bare market order makes sense
            self.buy(symbol, size=size) if buy else self.sell(symbol, size=size)
            return
        kind = rng.choice(["market", "market", "limit", "stop", "stop_limit", "trail", "oco"])
        if kind == "trail":  # a stand-alone trailing stop, by a distance or a percentage
            trail = rng.choice([round(ref * rng.uniform(0.005, 0.04), 2), f"{rng.choice([1, 2, 3])}%"])
            place = self.buy if buy else self.sell
            oid = place(symbol, size=size, trail=trail)
            if oid is not None:
                gap = ("fraction", float(trail[:-1]) / 100) if isinstance(trail, str) else ("distance", trail)
                self.specs[oid] = {"trail": gap, "anchor": ref}
            return
        if kind == "oco":  # a straddle of stops, one cancels the other
            up = round(ref * (1 + rng.uniform(0.001, 0.04)), 2)
            down = round(ref * (1 - rng.uniform(0.001, 0.04)), 2)
            first = self.buy(symbol, size=size, stop=up)
            if first is not None:
                second = self.sell(symbol, size=size, stop=down, oco=first)
                if second is not None:
                    self.specs[first] = {"oco": first}
                    self.specs[second] = {"oco": first}
            return
        tif = {}
        if rng.random() < 0.3:
            tif = rng.choice([{"valid": rng.choice([1, 2, 3])}, {"tif": "day"}])
            if kind == "limit" and rng.random() < 0.3:
                tif = {"tif": "ioc"}
        if kind in ("market", "limit") and self.moments.random() < 0.25:
            tif = {"tif": self.moments.choice(["opg", "close", "fok"])}
        limit = stop = None
        if kind == "limit":
            limit = round(ref * (1 + rng.uniform(-0.04, 0.04)), 2)
        elif kind == "stop":
            stop = round(ref * (1 + rng.uniform(-0.04, 0.04)), 2)
        elif kind == "stop_limit":
            stop = round(ref * (1 + rng.uniform(-0.04, 0.04)), 2)
            limit = round(stop * (1 + rng.uniform(-0.02, 0.02)), 2)
        entry = limit if limit is not None else stop if stop is not None else ref
        sign = 1 if buy else -1
        sl = tp = None
        if rng.random() < 0.5:
            sl = round(entry * (1 - sign * rng.uniform(0.005, 0.05)), 2)
        if rng.random() < 0.5:
            tp = round(entry * (1 + sign * rng.uniform(0.005, 0.05)), 2)
        if sl is not None and (sl - entry) * sign >= 0:
            sl = None  # rounding put it on the wrong side
        if tp is not None and (tp - entry) * sign <= 0:
            tp = None
        place = self.buy if buy else self.sell
        oid = place(symbol, size=size, limit=limit, stop=stop, sl=sl, tp=tp, **tif)
        if oid is not None and tif:
            self.specs[oid] = {**tif, "placed_tick": self.now}


# ---------------------------------------------------------------------------------------
# reference broker: one order alone against the bars


@dataclass
class Bars:
    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray

    @classmethod
    def of(cls, frame):
        return cls(frame.index.as_unit("ns").asi8, *(frame[c].to_numpy() for c in ("open", "high", "low", "close")))

    def at(self, ts):
        i = int(np.searchsorted(self.ts, ts))
        return i if i < len(self.ts) and self.ts[i] == ts else None

    def after(self, ts):
        return int(np.searchsorted(self.ts, ts, side="right"))


@dataclass(frozen=True)
class Event:
    bar: int
    raw: float
    at_open: bool
    barrier: bool = False
    # At the bar's close, its last moment, in the bar's batch (``tif="close"``).
    at_close: bool = False

    @property
    def stage(self) -> int:
        """Where the batch's walk of the bar reaches it: the open, within, the close."""
        return 0 if self.at_open else 2 if self.at_close else 1


def fills_limit(buy, price, limit, through):
    """Whether ``price`` fills a limit (``limit_fill``): at a touch, or only past it."""
    if through:
        return price < limit if buy else price > limit
    return price <= limit if buy else price >= limit


def moment_fill(tif, kind, buy, limit, B: Bars, start: int, through=False):
    """The fill of an order at the open (``tif="opg"``) or at the close (``"close"``): at
    that price of bar ``start`` only, a limit only if it is at or better than the limit."""
    if start >= len(B.ts):
        return None
    price = B.o[start] if tif == "opg" else B.c[start]
    if kind == "limit" and not fills_limit(buy, price, limit, through):
        return None
    return Event(start, price, tif == "opg", at_close=tif == "close")


def first_fill(kind, buy, limit, stop, B: Bars, start: int, no_open_at_start=False, through=False):
    """Bar index, raw price and moment of the first fill of one order from bar ``start``."""
    triggered = False
    for i in range(start, len(B.ts)):
        o, h, lo = B.o[i], B.h[i], B.l[i]
        open_ok = not (no_open_at_start and i == start)
        if kind == "market":
            return Event(i, o, True)
        if kind == "stop_limit" and not triggered:
            if open_ok and (o >= stop if buy else o <= stop):
                trig, at_open = o, True
            elif h >= stop if buy else lo <= stop:
                trig, at_open = stop, False
            else:
                continue
            if fills_limit(buy, trig, limit, through):
                return Event(i, trig, at_open)
            triggered = True  # rests as a limit from the next bar on
            continue
        if kind == "limit" or triggered:
            if open_ok and fills_limit(buy, o, limit, through):
                return Event(i, o, True)
            if fills_limit(buy, lo if buy else h, limit, through):
                return Event(i, limit, False)
        elif kind == "stop":
            if open_ok and (o >= stop if buy else o <= stop):
                return Event(i, o, True)
            if h >= stop if buy else lo <= stop:
                return Event(i, stop, False)
    return None


def trail_fill(buy, gap, anchor, B: Bars, start: int):
    """The first fill of a stand-alone trailing stop (``gap`` = (kind, value)) placed when
    the last close was ``anchor``: each bar the open moves the best price and the stop (a
    gap through it fills at the open), then the stop is checked against the adverse
    extreme, and only then does the favourable extreme move it."""
    kind, value = gap

    def stop_of(best):
        g = best * value if kind == "fraction" else value
        return best + g if buy else best - g

    def better(price, best):
        return price < best if buy else price > best

    def tighter(stop, candidate):
        return min(stop, candidate) if buy else max(stop, candidate)

    best = anchor
    stop = stop_of(best)
    for i in range(start, len(B.ts)):
        o, h, lo = B.o[i], B.h[i], B.l[i]
        if better(o, best):
            best = o
        stop = tighter(stop, stop_of(best))
        if o >= stop if buy else o <= stop:
            return Event(i, o, True)
        if h >= stop if buy else lo <= stop:
            return Event(i, stop, False)
        favourable = lo if buy else h
        if better(favourable, best):
            best = favourable
        stop = tighter(stop, stop_of(best))
    return None


def day_end(union, placed):
    """The last tick of the UTC day of the first tick after ``placed`` (None: no tick)."""
    j = int(np.searchsorted(union, placed, side="right"))
    if j >= len(union):
        return None
    day = union[j] // 86_400_000_000_000
    while j + 1 < len(union) and union[j + 1] // 86_400_000_000_000 == day:
        j += 1
    return int(union[j])


def kind_of(o) -> str:
    has_limit, has_stop = not np.isnan(o["limit"]), not np.isnan(o["stop"])
    return {(False, False): "market", (True, False): "limit", (False, True): "stop"}.get(
        (has_limit, has_stop), "stop_limit"
    )


def slips(kind) -> bool:
    return kind in ("market", "stop")


def slipped(raw, buy, bps):
    return raw if bps == 0 else raw * (1.0 + (1 if buy else -1) * bps * 1e-4)


# ---------------------------------------------------------------------------------------
# the checks


class Row(dict):
    """A record whose fields read as attributes too."""

    __getattr__ = dict.__getitem__


@dataclass
class Lot:
    id: int
    direction: int
    size: float
    price: float
    commission: float
    entry_bar: int
    entry_barrier: bool
    exits: list = field(default_factory=list)


def reference_fee(size, price, *, commission, fixed, per_unit=0.0, minimum=0.0, cap=None,
                  maker=None, limit=None):
    """A fill's commission as the options' documentation states it: the rate on the
    notional (the maker's rate for a limit order filled at its ``limit``), the fixed part
    and the fee per unit, at least the minimum, at most the cap (a fraction of the
    notional)."""
    rate = maker if maker is not None and limit is not None and price == limit else commission
    fee = size * price * rate + fixed + size * per_unit
    if minimum > 0:  # (no minimum keeps a rebate one)
        fee = max(fee, minimum)
    return fee if cap is None else min(fee, cap * size * price)


def check_backtest(frames, result, *, trade_on_close, slippage_bps, commission, fixed, leverage,
                   per_unit=0.0, minimum=0.0, cap=None, maker=None, by_symbol=None, margins=None,
                   through=False, locates=False, delay=0):
    problems: list[str] = []
    account = dict(commission=commission, fixed=fixed, per_unit=per_unit, minimum=minimum, cap=cap,
                   maker=maker)

    def schedule_of(symbol):
        """A symbol's own schedule (its parts not given are 0 or none), or the account's."""
        own = (by_symbol or {}).get(symbol)
        return account if own is None else {"commission": 0.0, "fixed": 0.0, **own}

    names = sorted(frames)
    B = {s: Bars.of(frames[s]) for s in names}
    # Plain rows: much faster to read than pandas rows.
    orders = {int(r["order_id"]): Row(r) for r in result.orders.to_dict("records")}
    fill_rows = [Row(r) for r in result.fills.to_dict("records")]
    fills = result.fills
    ns = lambda t: int(pd.Timestamp(t).value)  # noqa: E731

    # -- every fill is on a bar of its symbol, priced from that bar ----------------------
    fill_of: dict[int, pd.Series] = {}
    for f in fill_rows:
        oid = int(f.order_id)
        if oid in fill_of:
            problems.append(f"order {oid} filled twice")
        fill_of[oid] = f
        o = orders[oid]
        # (a close order's side is decided at fill time: the position may have flipped)
        if o.symbol != f.symbol or (o.side != f.side and o.role != "close"):
            problems.append(f"fill of order {oid} has another symbol/side")
        # An order that flips a position executes its reducing part at once; if the rest is
        # then refused for margin, the order is "rejected" with the reduced units filled.
        partial = o.status == "rejected" and o.role == "entry" and f["size"] < o["size"]
        if (o.status != "filled" and not partial) or o.closed_time != f.time:
            problems.append(f"order {oid} filled at {f.time} but recorded {o.status} {o.closed_time}")
        if not math.isclose(o.filled_size, f["size"], rel_tol=1e-12) or o.fill_price != f.price:
            problems.append(f"order {oid}: record says {o.filled_size} @ {o.fill_price}, fill {f['size']} @ {f.price}")
        if o.filled_side != f.side:
            problems.append(f"order {oid}: record says it executed {o.filled_side!r}, the fill {f.side!r}")
        if B[f.symbol].at(ns(f.time)) is None:
            problems.append(f"fill of order {oid} at {f.time}: {f.symbol} has no bar then")
        limit = None if pd.isna(o.limit) else o.limit
        fee = reference_fee(f["size"], f.price, limit=limit, **schedule_of(f.symbol))
        if partial:  # the units executed pay their share of the whole order's commission
            fee = (reference_fee(o["size"], f.price, limit=limit, **schedule_of(f.symbol))
                   * f["size"] / o["size"])
        if not math.isclose(f.commission, fee, rel_tol=1e-12, abs_tol=1e-12):
            problems.append(f"fill of order {oid}: commission {f.commission} != {fee}")
        if not trade_on_close and o.role in ("entry", "close") and not f.time > o.placed_time:
            problems.append(f"look-ahead: order {oid} placed {o.placed_time} filled {f.time}")
        if o.role in ("stop_loss", "take_profit") and not f.time >= o.placed_time:
            problems.append(f"leg {oid} filled before it existed")
    for oid, o in orders.items():
        if o.status == "filled" and oid not in fill_of:
            problems.append(f"order {oid} marked filled without a fill")

    # -- reference portfolio: replay the fills ---------------------------------------------
    legs = [oid for oid, o in orders.items() if o.role in ("stop_loss", "take_profit")]
    legs_left = deque(legs)
    leg_lot: dict[int, int] = {}
    leg_entry: dict[int, tuple] = {}  # leg -> (symbol, entry bar, entry event)
    lots: dict[str, deque] = {s: deque() for s in names}
    lot_closer: dict[int, pd.Series] = {}  # lot id -> the fill that closed it
    next_lot = 1
    cash = CASH
    rebuilt = []
    expected: dict[int, Event | None] = {}

    specs = result.strategy.specs
    union = np.unique(np.concatenate([B[s].ts for s in names]))

    def window(oid):
        """(last bar index it may fill on or None, expiry ts or None) from its time in force."""
        spec, o = specs.get(oid, {}), orders[oid]
        b, placed = B[o.symbol], ns(o.placed_time)
        start = b.after(placed) + delay  # (order_delay: bars more before it can fill)
        if "valid" in spec:
            last = start + spec["valid"] - 1
            return last, (int(b.ts[last]) if last < len(b.ts) else None)
        if spec.get("tif") in ("ioc", "fok", "opg", "close"):
            return start, (int(b.ts[start]) if start < len(b.ts) else None)
        if spec.get("tif") == "day":
            end = day_end(union, placed)
            if end is None:
                return -1, None
            last = int(np.searchsorted(b.ts, end, side="right")) - 1
            return last, (end if union[-1] > end else None)
        return None, None

    def alone(oid, start=None) -> Event | None:
        """The first fill event of an entry/close order on its own."""
        o = orders[oid]
        b, kind, placed = B[o.symbol], kind_of(o), ns(o.placed_time)
        i_now = b.at(placed)
        spec = specs.get(oid, {})
        start = b.after(placed) + delay if start is None else start
        moment = spec.get("tif") if spec.get("tif") in ("opg", "close") else None
        if "trail" in spec:
            ev = trail_fill(o.side == "buy", spec["trail"], spec["anchor"], b, start)
        elif trade_on_close and kind == "market" and i_now is not None and moment != "opg":
            ev = Event(i_now, b.c[i_now], False, barrier=True)
        elif moment is not None:
            ev = moment_fill(moment, kind, o.side == "buy", o.limit, b, start, through)
        else:
            ev = first_fill(kind, o.side == "buy", o.limit, o.stop, b, start, through=through)
        last, _ = window(oid)
        if ev is not None and last is not None and ev.bar > last and not ev.barrier:
            ev = None
        return ev

    def rank(e, k):
        """Which leg of a one-cancels-other group fills first within a bar."""
        return (e.bar, not e.at_open, abs(e.raw - B[orders[k].symbol].o[e.bar]), k)

    def expect(oid) -> Event | None:
        """The reference broker's first fill event for an entry/close order (a group leg
        that came second to a sibling which filled is cancelled: checked below)."""
        if oid in expected:
            return expected[oid]
        ev = alone(oid)
        expected[oid] = ev
        return ev

    def close_part(lot, take, f, bar, barrier, symbol):
        b = B[symbol]
        share = take / lot.size
        ec = lot.commission * share
        xc = f.commission * take / f["size"]
        lot.commission -= ec
        lot.exits.append(f.price)
        first = lot.entry_bar + (1 if lot.entry_barrier else 0)
        last = bar + (1 if barrier else 0)
        lo = min([lot.price, *lot.exits, *b.l[first:last]])
        hi = max([lot.price, *lot.exits, *b.h[first:last]])
        adverse, favourable = (lo, hi) if lot.direction > 0 else (hi, lo)
        pnl = lot.direction * (f.price - lot.price) * take - (ec + xc)
        rebuilt.append(
            dict(
                symbol=symbol, side="long" if lot.direction > 0 else "short", size=take,
                entry_price=lot.price, exit_price=f.price, pnl=pnl, commission=ec + xc,
                trade_id=lot.id, bars_held=bar - lot.entry_bar, exit_order=int(f.order_id),
                mae=lot.direction * (adverse / lot.price - 1),
                mfe=lot.direction * (favourable / lot.price - 1),
            )
        )
        lot.size -= take
        return lot.size <= take * 1e-9

    for f in fill_rows:
        s, oid = f.symbol, int(f.order_id)
        o = orders[oid]
        d = 1 if f.side == "buy" else -1
        bar = B[s].at(ns(f.time))
        if bar is None:
            continue
        barrier = trade_on_close and o.role in ("entry", "close") and f.time == o.placed_time
        # A fill at a bar's close comes after its whole range, as one at the barrier does:
        # a lot it opens counts its excursions from the next bar, one it closes to its bar.
        after_range = barrier or (specs.get(oid, {}).get("tif") == "close")
        cash -= d * f["size"] * f.price + f.commission
        book = lots[s]
        position = sum(x.direction * x.size for x in book)
        remaining = f["size"]
        if o.role in ("stop_loss", "take_profit"):
            lot = next((x for x in book if x.id == leg_lot.get(oid)), None)
            if lot is None:
                problems.append(f"leg {oid} filled but its trade is not open")
                continue
            if not math.isclose(f["size"], lot.size, rel_tol=1e-12) or d != -lot.direction:
                problems.append(f"leg {oid} filled {f['size']} {f.side}, its trade is {lot.size}")
            if close_part(lot, min(remaining, lot.size), f, bar, after_range, s):
                book.remove(lot)
                lot_closer[lot.id] = f
            remaining = 0.0
        else:
            portion = specs.get(oid, {}).get("portion", 1.0)
            if o.role == "close" and (
                not np.isclose(f["size"], abs(position) * portion, rtol=1e-12) or d * position >= 0
            ):
                problems.append(f"close order {oid} filled {f.side} {f['size']}, position {position}")
            while remaining > 0 and book and book[0].direction != d:
                lot = book[0]
                take = min(remaining, lot.size)
                if close_part(lot, take, f, bar, after_range, s):
                    book.popleft()
                    lot_closer[lot.id] = f
                remaining -= take
                if remaining <= f["size"] * 1e-9:
                    remaining = 0.0
        if remaining > f["size"] * 1e-9:
            lot = Lot(next_lot, d, remaining, f.price, f.commission * remaining / f["size"], bar, after_range)
            next_lot += 1
            book.append(lot)
            if o.role == "entry":
                # Its bracket legs are the next legs in the order log.
                ev = expect(oid)
                for role, price_col, price in (("stop_loss", "stop", o.sl), ("take_profit", "limit", o.tp)):
                    if np.isnan(price):
                        continue
                    if not legs_left:
                        problems.append(f"entry {oid} opened a trade but has no {role} leg")
                        continue
                    leg = orders[legs_left.popleft()]
                    if leg.role != role or leg[price_col] != price or leg.symbol != s or leg.placed_time != f.time:
                        problems.append(f"entry {oid}: leg {leg.order_id} does not match ({role} {price})")
                    leg_lot[int(leg.order_id)] = lot.id
                    leg_entry[int(leg.order_id)] = (s, bar, ev)
        elif o.role == "entry" and not (np.isnan(o.sl) and np.isnan(o.tp)):
            pass  # closed existing trades only: no bracket
    if legs_left:
        problems.append(f"legs {list(legs_left)} belong to no entry fill")

    # -- closed trades rebuilt from the fills -----------------------------------------------
    trades = result.trades
    if len(trades) != len(rebuilt):
        problems.append(f"{len(trades)} trades, {len(rebuilt)} rebuilt from the fills")
    else:
        # Trades are listed in the order they were closed; fills are listed per order when
        # the order is done (an order that flips a position closes trades with its reducing
        # part, before other symbols' increases of the same batch): compare by identity.
        rebuilt.sort(key=lambda r: (r["trade_id"], r["exit_order"]))
        by_id = trades.sort_values(["trade_id", "exit_order"], kind="stable")
        for (_, t), ref in zip(by_id.iterrows(), rebuilt):
            for key, want in ref.items():
                got = t[key]
                ok = math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9) if isinstance(want, float) else got == want
                if not ok:
                    problems.append(f"trade {t.trade_id} ({t.symbol}): {key} {got!r}, expected {want!r}")
            if not np.isclose(t.return_pct, t.pnl / (t.entry_price * t["size"] + t.commission), rtol=1e-12):
                problems.append(f"trade {t.trade_id}: return_pct")

    # -- every order's outcome against the reference broker --------------------------------
    for oid, o in orders.items():
        s, b = o.symbol, B[o.symbol]
        kind = kind_of(o)
        closed = None if pd.isna(o.closed_time) else ns(o.closed_time)
        if o.role in ("entry", "close"):
            ev = expect(oid)
        else:
            if oid not in leg_entry:
                continue
            _, e_bar, e_ev = leg_entry[oid]
            entry_open = e_ev is not None and e_ev.at_open and not e_ev.barrier
            same_bar = o.role == "stop_loss" or entry_open
            if e_ev is not None and (e_ev.barrier or e_ev.at_close):
                same_bar = False  # an entry at the close: its legs watch from the next bar
            start = e_bar if same_bar else e_bar + 1
            ev = first_fill(
                kind, o.side == "buy", o.limit, o.stop, b, start,
                no_open_at_start=(start == e_bar and not entry_open), through=through,
            )
        ev_ts = None if ev is None else int(b.ts[ev.bar])
        where = f"order {oid} ({o.role} {kind} {o.side} {s} limit={o.limit} stop={o.stop})"
        if o.status == "filled":
            f = fill_of.get(oid)
            if ev is None:
                problems.append(f"{where} filled at {o.closed_time} but should never fill")
            elif f is not None:
                # A close order's side is the fill's (decided at fill time: an entry filled
                # before it in the same batch may have flipped the position it closes).
                buy = (f.side if o.role == "close" else o.side) == "buy"
                want = slipped(ev.raw, buy, slippage_bps) if slips(kind) else ev.raw
                if ns(f.time) != ev_ts or not math.isclose(f.price, want, rel_tol=1e-12, abs_tol=0):
                    problems.append(
                        f"{where} filled {f.time} @ {f.price}, expected {pd.Timestamp(ev_ts, tz='UTC')} @ {want}"
                    )
        elif o.status == "rejected" or o.reason == "position already flat":
            if ev is None or closed != ev_ts:
                problems.append(f"{where} {o.status} at {o.closed_time}, its fill was due at {ev_ts}")
        elif o.status == "cancelled" and o.reason == "cancelled by the strategy":
            # The strategy cancels after the market phase of its tick, but before the
            # barrier where a trade-on-close market order would fill.
            if ev is not None and (ev_ts < closed or (ev_ts == closed and not ev.barrier)):
                problems.append(f"{where} cancelled at {o.closed_time}, should have filled at {ev_ts}")
        elif o.status == "cancelled" and o.reason == "its trade was closed":
            if ev is not None and ev_ts < closed:
                problems.append(f"{where} cancelled at {o.closed_time}, should have filled at {ev_ts}")
            elif ev is not None and ev_ts == closed:
                closer = lot_closer.get(leg_lot.get(oid))
                if closer is not None:
                    c_ord = orders[int(closer.order_id)]
                    if c_ord.role in ("entry", "close"):
                        c_ev = expect(int(closer.order_id))
                    else:
                        c_ev = Event(ev.bar, closer.price, closer.price == b.o[ev.bar])
                    # (an untriggered stop-limit is matched with the stops, in id order)
                    c_limit = kind_of(c_ord) == "limit"
                    if c_ev is not None and not c_ev.barrier:
                        if ev.at_open and not c_ev.at_open:
                            problems.append(f"{where}: through at the open but a later fill closed its trade")
                        elif not ev.at_open and not c_ev.at_open and kind == "stop" and c_limit:
                            problems.append(f"{where}: a stop-loss lost to a limit in the same bar")
                        elif c_ev.at_close and not ev.at_close:
                            problems.append(f"{where}: due within the bar, lost to a fill at its close")
        elif o.status == "expired":
            last, expiry = window(oid)
            if ev is not None:
                problems.append(f"{where} expired at {o.closed_time}, should have filled at {ev_ts}")
            elif expiry is None or closed != expiry:
                problems.append(f"{where} expired at {o.closed_time}, its time ran out at {expiry}")
        elif o.status == "cancelled" and o.reason == "its one-cancels-other group filled":
            group = specs.get(oid, {}).get("oco")
            winners = [k for k, v in specs.items() if v.get("oco") == group and k != oid
                       and orders[k].filled_size > 0 and orders[k].closed_time == o.closed_time]
            if not winners:
                problems.append(f"{where}: cancelled for its group, but no other leg filled then")
            elif ev is not None:
                w = expect(winners[0])
                if w is None or rank(ev, oid) < rank(w, winners[0]):
                    problems.append(f"{where}: its group's leg {winners[0]} filled though this one came first")
        elif o.status == "open":
            _, expiry = window(oid)
            if ev is not None:
                problems.append(f"{where} still open, should have filled at {ev_ts}")
            elif expiry is not None:
                problems.append(f"{where} still open, its time ran out at {expiry}")

    problems += check_margin(
        B, orders, fill_rows, expected, trade_on_close=trade_on_close, leverage=leverage,
        slippage_bps=slippage_bps, schedule_of=schedule_of, margins=margins,
        locates={s: frames[s]["locate"].to_numpy() for s in names} if locates else None,
        at_the_close={k for k, v in specs.items() if v.get("tif") == "close"},
    )

    # -- equity at every sample ---------------------------------------------------------------
    eq = result.equity_frame
    f_ts = fills["time"].map(lambda t: t.value).to_numpy() if len(fills) else np.array([], dtype=np.int64)
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["size"].to_numpy() if len(fills) else np.array([])
    flows = signed * fills["price"].to_numpy() + fills["commission"].to_numpy() if len(fills) else np.array([])
    sym = fills["symbol"].astype(str).to_numpy() if len(fills) else np.array([])
    for t, row in zip(eq.index.as_unit("ns").asi8, eq.itertuples()):
        done = f_ts <= t
        cash_t = CASH - flows[done].sum()
        marked = gross = 0.0
        for s in names:
            pos = signed[done & (sym == s)].sum()
            if pos:
                i = B[s].after(t) - 1
                marked += pos * B[s].c[i]
                gross += abs(pos) * B[s].c[i]
        scale = max(abs(cash_t), gross, CASH)
        if abs(row.cash - cash_t) > TOL * scale:
            problems.append(f"cash at {pd.Timestamp(t, tz='UTC')}: {row.cash!r}, fills say {cash_t!r}")
        if abs(row.equity - (row.cash + marked)) > TOL * scale:
            problems.append(
                f"equity at {pd.Timestamp(t, tz='UTC')}: {row.equity!r} != cash {row.cash!r} + marked {marked!r}"
            )
        if abs(row.gross_exposure - gross) > TOL * scale:
            problems.append(f"gross exposure at {pd.Timestamp(t, tz='UTC')}: {row.gross_exposure!r} != {gross!r}")

    # -- final identity ----------------------------------------------------------------------
    final = eq["equity"].iloc[-1]
    unrealised = unallocated = 0.0
    for s in names:
        last_close = B[s].c[-1]
        for lot in lots[s]:
            unrealised += lot.direction * (last_close - lot.price) * lot.size
            unallocated += lot.commission
    identity = CASH + trades["pnl"].sum() + unrealised - unallocated
    if abs(final - identity) > TOL * max(abs(final), CASH):
        problems.append(f"final equity {final!r} != cash0 + pnl + unrealised - fees {identity!r}")
    open_now = {s: sum(x.direction * x.size for x in lots[s]) for s in names}
    for s in names:
        got = result.positions["size"].get(s, 0.0)
        if not math.isclose(got, open_now[s], rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"final position {s}: {got}, fills say {open_now[s]}")
    # equity is sampled at every tick of the union timeline
    union = np.unique(np.concatenate([B[s].ts for s in names]))
    if not np.array_equal(eq.index.as_unit("ns").asi8, union):
        problems.append("equity is not sampled at every tick")
    return problems


def check_margin(B, orders, fills, expected, *, trade_on_close, leverage, slippage_bps, schedule_of,
                 at_the_close=frozenset(), margins=None, locates=None):
    """A fill that grows a position keeps gross exposure <= leverage x equity (with
    symbols' own terms, ``margins``: the initial margin summed over the positions, each
    worth / its leverage or units x its margin per unit, <= equity); a rejected order
    would have broken that rule.

    The engine checks at the moment of the fill with every position marked at its latest
    price: within a tick's market phase (one batch for all symbols), every symbol with a
    bar at this tick is at its open, the rest at their previous close; at the barrier all
    are at the close. The filling symbol is at the price its order matched at (before
    slippage: a stop's or a limit's fills inside the bar, where the market has moved from
    the open), the units it held as well as those it adds; what the fill pays beyond that
    price is lost from equity at once.
    """
    names = sorted(B)
    problems = []

    def initial_margin(symbol, units, worth):
        """What a position requires to be opened: at the symbol's own terms, else the
        account's leverage."""
        own = (margins or {}).get(symbol, {})
        if "initial_margin_per_unit" in own:
            return units * own["initial_margin_per_unit"]
        return worth / own.get("leverage", leverage)

    def marks(t, s, barrier):
        out = {}
        for j in names:
            b = B[j]
            i_now = b.at(t)
            if i_now is not None and barrier:
                out[j] = b.c[i_now]
            elif i_now is not None:
                out[j] = b.o[i_now]
            else:
                k = b.after(t - 1) - 1  # last bar strictly before t
                out[j] = b.c[k] if k >= 0 else np.nan
        return out

    def verdict(cash, pos, t, s, barrier, d, size, price, raw, fee):
        """(grows, fits) for this fill (at ``price``, matched at ``raw``) in this state;
        fits with a tolerance either way."""
        m = dict(marks(t, s, barrier))
        m[s] = mark = raw
        held = {j: p for j, p in pos.items() if p}
        equity = cash + sum(p * m[j] for j, p in held.items())
        gross = sum(abs(p) * m[j] for j, p in held.items())
        old = pos.get(s, 0.0)
        new = old + d * size
        grows = abs(new) > abs(old) * (1 + 1e-9)
        eq_after = equity - fee + d * size * (mark - price)
        gross_after = gross + (abs(new) - abs(old)) * mark
        slack = 1e-9 * max(gross_after, abs(eq_after), 1.0)
        if margins:
            after = dict(held, **{s: new})
            required = sum(initial_margin(j, abs(p), abs(p) * (mark if j == s else m[j]))
                           for j, p in after.items() if p)
            fits_loose = eq_after > -slack and required <= eq_after + slack
            fits_strict = eq_after > slack and required <= eq_after - slack
            return grows, fits_loose, fits_strict
        fits_loose = eq_after > -slack and gross_after <= eq_after * leverage + slack
        fits_strict = eq_after > slack and gross_after <= eq_after * leverage - slack
        return grows, fits_loose, fits_strict

    cash, pos = CASH, {}
    states_at: dict[int, list] = {}  # tick -> states (cash, positions) seen during it

    # Fills at one moment (a tick's market phase, or its barrier) form one batch, replayed
    # by the book's rule (`rust/book.rs`): each symbol's bar is walked in its own order, a
    # reduction (or the reducing part of a flip) executing as soon as it is reached; at an
    # increase the walk pauses until every symbol has reached its first increase, then the
    # increases execute one at a time, those matched at the open first, then by placement
    # (order id), each checked against the buying power then, and its symbol's walk
    # resumes. A symbol's rows come in its walk's order (a row is written when its order
    # is done, and the walk waits for each increase). An order whose increase was refused
    # waits its turn all the same: after its reducing part when that filled, else (no row
    # in the log) where the book's walk of its bar matches it: fills at the open first,
    # then stop-type orders, then limits, each in placement order (`book/matching.rs`).
    # At the barrier (market orders filling at the close) there is no walk: the orders
    # join in placement order, each executing its reducing part as it joins, then their
    # increases go in placement order (`Book::admit_pending`).
    def batches():
        group, key = [], None
        for f in fills:
            o = orders[int(f.order_id)]
            barrier = trade_on_close and o.role in ("entry", "close") and f.time == o.placed_time
            k = (int(f.time.value), barrier)
            if group and k != key:
                yield key, group
                group = []
            key = k
            group.append(f)
        if group:
            yield key, group

    def at_open(f, t, barrier):
        """Whether the row's order matched at its bar's open (the price is the open's,
        slipped for a market or stop order)."""
        if barrier:
            return False
        b = B[f.symbol]
        i = b.at(t)
        if i is None:
            return False
        open_ = b.o[i]
        kind = kind_of(orders[int(f.order_id)])
        want = slipped(open_, f.side == "buy", slippage_bps) if slips(kind) else open_
        return math.isclose(f.price, want, rel_tol=1e-12, abs_tol=0.0)

    def stage_of(f, t, barrier):
        """Where the walk of its bar reached the row's order: 0 at the open, 1 within the
        bar, 2 at the close (an order at the close, ``at_the_close``)."""
        if at_open(f, t, barrier):
            return 0
        return 2 if not barrier and int(f.order_id) in at_the_close else 1

    def walk_key(oid, price, stage):
        """Where the book's walk of a bar matches an order: at the open, then stop-type
        orders (a stop-limit whose stop triggered it here), then limits, then orders at
        the close; by id within."""
        o = orders[oid]
        kind = kind_of(o)
        stop_type = kind == "stop" or (kind == "stop_limit" and price == o.stop)
        return (0 if stage == 0 else 3 if stage == 2 else 1 if stop_type else 2, oid)

    def locate(s, t):
        """What symbol ``s``'s bar at ``t`` says of shorting it (NaN: nothing)."""
        i = B[s].at(t)
        return np.nan if locates is None or i is None else locates[s][i]

    # A refusal for want of a locate: a sale at a bar saying 0 (its margin aside).
    for oid, o in orders.items():
        if o.status == "rejected" and o.reason == NOT_SHORTABLE:
            t = int(pd.Timestamp(o.closed_time).value)
            if o.side != "sell" or locate(o.symbol, t) != 0.0:
                problems.append(f"order {oid} refused as not shortable at {o.closed_time}, "
                                f"its bar's locate {locate(o.symbol, t)}")

    refused_at: dict[int, list[int]] = {}  # tick -> entry orders refused there, nothing filled
    filled_ids = {int(f.order_id) for f in fills}
    for oid, o in orders.items():
        if (o.status == "rejected" and o.reason != NOT_SHORTABLE and oid not in filled_ids
                and expected.get(oid) is not None):
            refused_at.setdefault(int(pd.Timestamp(o.closed_time).value), []).append(oid)

    def refusal_wrong(oid, states):
        """Whether order ``oid``'s refusal is wrong: it fits the margin in every state."""
        o, ev = orders[oid], expected[oid]
        t, buy, size = int(pd.Timestamp(o.closed_time).value), o.side == "buy", o["size"]
        price = slipped(ev.raw, buy, slippage_bps) if slips(kind_of(o)) else ev.raw
        fee = reference_fee(size, price, limit=None if pd.isna(o.limit) else o.limit,
                            **schedule_of(o.symbol))
        verdicts = [verdict(c, p, t, o.symbol, ev.barrier, 1 if buy else -1, size, price, ev.raw, fee)
                    for c, p in states]
        return all(grows and fits_strict for grows, _, fits_strict in verdicts)

    def replay(t, barrier, group, placement, cash, pos):
        """The batch ``group`` from ``cash`` and ``pos`` (copied), each refused order of
        ``placement`` at its place in its symbol's walk: (problems, states, cash, pos)."""
        pos, states, problems = dict(pos), [], []

        def execute(f, size, d, check):
            nonlocal cash
            s = f.symbol
            fee = f.commission * size / f["size"]
            if check:
                # The price matched (before slippage, which moves market and stop fills).
                o = orders[int(f.order_id)]
                raw = f.price / (1.0 + d * slippage_bps * 1e-4) if slips(kind_of(o)) else f.price
                grows, fits, _ = verdict(cash, pos, t, s, barrier, d, size, f.price, raw, fee)
                if grows and not fits:
                    problems.append(f"order {int(f.order_id)} filled at {f.time} beyond the margin")
                if d < 0 and locate(s, t) == 0.0:
                    problems.append(f"order {int(f.order_id)} sold short at {f.time} without a locate")
            cash -= d * size * f.price + fee
            pos[s] = pos.get(s, 0.0) + d * size
            states.append((cash, dict(pos)))

        def walk(s):
            """Run `s`'s rows up to its next increase, which is queued."""
            while walks[s]:
                f = walks[s].popleft()
                if isinstance(f, tuple):  # an increase refused, nothing filled: its turn
                    _, oid, stage = f
                    heapq.heappush(queue, (stage, oid, s, None, 0.0, 0))
                    return
                d, size = (1 if f.side == "buy" else -1), f["size"]
                old = pos.get(s, 0.0)
                reduce = min(size, abs(old)) if old * d < 0 else 0.0
                if reduce > 0:
                    execute(f, reduce, d, False)
                refused = orders[int(f.order_id)].status == "rejected"  # after its reducing part
                if size - reduce > size * 1e-9 or refused:
                    units = size - reduce if size - reduce > size * 1e-9 else 0.0
                    heapq.heappush(queue, (stage_of(f, t, barrier), int(f.order_id), s, f, units, d))
                    return

        if barrier:
            # Market orders filling at the close join in placement order, each executing its
            # reducing part as it joins; then their increases, in placement order.
            increases = []
            for f in sorted(group, key=lambda f: int(f.order_id)):
                d, size, s = (1 if f.side == "buy" else -1), f["size"], f.symbol
                old = pos.get(s, 0.0)
                reduce = min(size, abs(old)) if old * d < 0 else 0.0
                if reduce > 0:
                    execute(f, reduce, d, False)
                if size - reduce > size * 1e-9:
                    increases.append((f, size - reduce, d))
            for f, units, d in increases:
                execute(f, units, d, True)
            return problems, states, cash, pos
        walks: dict[str, deque] = {}
        for f in group:
            walks.setdefault(f.symbol, deque()).append(f)
        # The places are among the batch's own rows: the last first, so that each insert
        # leaves the places before it where they were.
        for oid, k in sorted(placement.items(), key=lambda x: (-x[1], -x[0])):
            walks[orders[oid].symbol].insert(k, ("refused", oid, expected[oid].stage))
        queue: list = []  # (stage, order id, symbol, row, units, direction)
        for s in walks:
            walk(s)
        while queue:
            _, _, s, f, units, d = heapq.heappop(queue)
            if units > 0:
                execute(f, units, d, True)
            walk(s)
        return problems, states, cash, pos

    for (t, barrier), group in batches():
        # Refused orders of a symbol moving in this batch: their place in its walk is not
        # in the log. The book's rule places them (`walk_key`); where a group's legs race
        # (one-cancels-other: the nearest the open wins) that can differ, so any place
        # that explains the batch (every fill within the margin, every refusal beyond it)
        # is taken, the rule's first.
        moving = {f.symbol: [] for f in group}
        for f in group:
            moving[f.symbol].append(f)
        refused = [oid for oid in ([] if barrier else refused_at.get(t, []))
                   if orders[oid].symbol in moving and B[orders[oid].symbol].at(t) == expected[oid].bar
                   and not expected[oid].barrier]
        ruled = {}
        for oid in refused:
            key = walk_key(oid, expected[oid].raw, expected[oid].stage)
            rows = moving[orders[oid].symbol]
            ruled[oid] = next((i for i, f in enumerate(rows) if walk_key(
                int(f.order_id), f.price, stage_of(f, t, barrier)) > key), len(rows))
        places = [range(len(moving[orders[oid].symbol]) + 1) for oid in refused]
        # Every combination is a handful in these markets; a pathological batch keeps the
        # rule's place alone rather than replaying thousands.
        many = math.prod(len(p) for p in places) > 256
        options = [ruled, *([] if many else (dict(zip(refused, ks))
                                              for ks in itertools.product(*places)))]
        before = (cash, dict(pos))
        chosen = None
        for placement in options:
            out = replay(t, barrier, group, placement, cash, pos)
            wrong = [oid for oid in refused if refusal_wrong(oid, [before, *out[1]])]
            if not out[0] and not wrong:
                chosen = out
                break
            chosen = chosen or out
        batch_problems, states, cash, pos = chosen
        problems += batch_problems
        states_at.setdefault(t, []).extend([before, *states])
    # the state before any fill of a tick is the state after the last fill before it
    timeline = sorted(states_at)
    for oid, o in orders.items():
        if o.status != "rejected" or o.reason == NOT_SHORTABLE or expected.get(oid) is None:
            continue
        t = int(pd.Timestamp(o.closed_time).value)
        before = [x for x in timeline if x < t]
        states = list(states_at.get(t, []))
        states.append(states_at[before[-1]][-1] if before else (CASH, {}))
        if refusal_wrong(oid, states):
            problems.append(f"order {oid} rejected at {o.closed_time} though it fits the margin")
    return problems


# ---------------------------------------------------------------------------------------
# the property


@st.composite
def scenarios(draw):
    return dict(
        market=dict(
            seed=draw(st.integers(0, 2**32 - 1)),
            n_symbols=draw(st.integers(1, 4)),
            n_ticks=draw(st.integers(2, 40)),
            p_missing=draw(st.sampled_from([0.0, 0.2, 0.5])),
            freq=draw(st.sampled_from(["D", "min", "h"])),
        ),
        strategy_seed=draw(st.integers(0, 2**32 - 1)),
        commission=draw(st.sampled_from([0.0, 0.001])),
        commission_fixed=draw(st.sampled_from([0.0, 1.0])),
        slippage=draw(st.sampled_from([0.0, 5.0])),
        leverage=draw(st.sampled_from([1.0, 3.0])),
        trade_on_close=draw(st.booleans()),
        # A broker's schedule on top now and then: a fee per unit, a minimum and a cap
        # that bind on some of these fills (prices about 100, a few units to hundreds).
        schedule=draw(st.sampled_from([
            {},
            dict(per_unit=0.05, minimum=2.0),
            dict(per_unit=0.01, minimum=5.0, cap=0.002),
            dict(minimum=1.0, cap=0.01),
            dict(maker=0.0),
            dict(maker=0.0005, minimum=1.0),
            dict(maker=-0.0002),
        ])),
        # Some symbols' own margin terms now and then: a leverage, or money per unit held
        # (prices are about 100); no maintenance (no margin calls to replay).
        # Limits filled only through their price now and then.
        limit_fill=draw(st.sampled_from(["touch", "touch", "through"])),
        # Locates quoted per bar now and then (shortable_column): no new short where 0.
        locates=draw(st.sampled_from([False, False, True])),
        # Orders that wait bars now and then (order_delay; not with fills at the close).
        order_delay=draw(st.sampled_from([0, 0, 0, 1, 2])),
        margins=draw(st.sampled_from([
            None,
            {"S0": {"leverage": 5.0}},
            {"S1": {"initial_margin_per_unit": 30.0, "maintenance_margin_per_unit": 0.0},
             "S0": {"leverage": 0.5}},
        ])),
        # Some symbols' own schedules now and then (a symbol the market lacks is left out).
        by_symbol=draw(st.sampled_from([
            None,
            {"S0": dict(per_unit=0.05, minimum=2.0)},
            {"S1": dict(commission=0.002, fixed=0.5, maker=-0.0002), "S2": dict(cap=0.001, minimum=1.0)},
        ])),
        # Orders without a size sized at their fill now and then (`PercentOfEquity(at="fill")`,
        # whole units or any), beside the default sizer's at placement.
        at_fill=draw(st.sampled_from(["no", "no", "whole units", "any units"])),
    )


#: The schedule's parts by the options' names.
OPTION_OF = {"per_unit": "commission_per_unit", "minimum": "commission_min", "cap": "commission_cap",
             "maker": "commission_maker", "commission": "commission", "fixed": "commission_fixed"}


def symbols_own(sc, kind="by_symbol"):
    """The scenario's own schedules (or margin terms: ``kind="margins"``) of the symbols
    its market has."""
    names = {f"S{k}" for k in range(sc["market"]["n_symbols"])}
    return {s: own for s, own in (sc.get(kind) or {}).items() if s in names}


NOT_SHORTABLE = "not shortable (shortable): it would sell short"


def with_locates(frames, seed):
    """Each frame with a ``locate`` column: 1 (may be shorted), 0 (may not) or NaN."""
    rng = np.random.default_rng(seed ^ 0x10CA7E)
    return {s: f.assign(locate=rng.choice([1.0, 1.0, 0.0, np.nan], len(f))) for s, f in frames.items()}


def run_random(sc):
    frames = random_market(**sc["market"])
    locates = {}
    if sc.get("locates"):
        frames = with_locates(frames, sc["market"]["seed"])
        locates = dict(shortable_column="locate", allow_nan=["locate"])
    bt = tickstep.Backtest(
        frames,
        RandomTrader,
        cash=CASH,
        commission=sc["commission"],
        commission_fixed=sc["commission_fixed"],
        **{OPTION_OF[k]: v for k, v in sc.get("schedule", {}).items()},
        commission_by_symbol={s: {OPTION_OF[k]: v for k, v in own.items()}
                              for s, own in symbols_own(sc).items()},
        slippage=sc["slippage"],
        leverage=sc["leverage"],
        margin_by_symbol=symbols_own(sc, "margins") or None,
        limit_fill=sc.get("limit_fill", "touch"),
        trade_on_close=sc["trade_on_close"],
        order_delay=0 if sc["trade_on_close"] else sc.get("order_delay", 0),
        record_every_bar=True,
        **locates,
        **({} if sc.get("at_fill", "no") == "no" else {"sizer": tickstep.PercentOfEquity(
            0.95, lot_size=1 if sc["at_fill"] == "whole units" else None, at="fill")}),
    )
    return frames, bt, bt.run(seed=sc["strategy_seed"], frames=frames)


def assert_consistent(sc):
    frames, _, result = run_random(sc)
    problems = list(result.strategy.problems)
    problems += check_backtest(
        frames,
        result,
        trade_on_close=sc["trade_on_close"],
        slippage_bps=sc["slippage"],
        commission=sc["commission"],
        fixed=sc["commission_fixed"],
        leverage=sc["leverage"],
        **sc.get("schedule", {}),
        by_symbol=symbols_own(sc),
        margins=symbols_own(sc, "margins"),
        through=sc.get("limit_fill") == "through",
        locates=sc.get("locates", False),
        delay=0 if sc["trade_on_close"] else sc.get("order_delay", 0),
    )
    assert not problems, "\n".join(problems[:20])
    assert_spans_are_the_samples(result)
    return result


def assert_spans_are_the_samples(result):
    """Each symbol's spans of held ticks, worked out from its lots' lives, are the ticks
    at whose samples (every tick is sampled here) its position, summed from the fills
    alone, is open."""
    held_by_fills = position_values(result).to_numpy() != 0.0
    assert len(held_by_fills) == result.exposure_ticks[1]
    held = np.zeros_like(held_by_fills)
    spans = result.holding_spans
    for code, a, b in zip(spans["symbol"].cat.codes, spans["from_tick"], spans["to_tick"]):
        held[a:b, code] = True
    np.testing.assert_array_equal(held, held_by_fills)


def _pinned(seed, symbols, ticks, missing, freq, strategy, commission, slippage, leverage, on_close):
    return dict(market=dict(seed=seed, n_symbols=symbols, n_ticks=ticks, p_missing=missing,
                            freq=freq),
                strategy_seed=strategy, commission=commission, commission_fixed=0.0,
                slippage=slippage, leverage=leverage, trade_on_close=on_close)


# Derandomized (the same examples every run: a failure is reproducible, never flaky) and
# no shrinking (an engine bug would make it run for minutes; the failing scenario is small
# enough to read as is, and reproduces with run_random). Runs of 10,000 random examples
# (derandomize=False) found only the reference's own gaps, each pinned below: a close
# whose side flipped in its batch slips as the side it fills; an entry's reducing part
# executes before a later increase is judged; a refused order holds its symbol's walk
# (twice); two legs of a group racing to a refusal; at the barrier, an order's reducing
# part executes before an earlier-placed increase.
@example(sc=_pinned(1258581, 2, 28, 0.5, "h", 19162992, 0.001, 5.0, 1.0, False))
@example(sc=_pinned(27, 3, 27, 0.2, "min", 301, 0.0, 5.0, 1.0, True))
@example(sc=_pinned(4, 4, 25, 0.5, "h", 25, 0.001, 0.0, 1.0, False))
@example(sc=_pinned(11427, 3, 40, 0.2, "D", 980666, 0.001, 0.0, 1.0, False))
@example(sc=_pinned(61, 3, 17, 0.2, "h", 1_000_000_000, 0.0, 0.0, 1.0, True))
@example(sc=_pinned(21535318, 2, 30, 0.0, "min", 125, 0.001, 5.0, 3.0, False))
@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(scenarios())
def test_random_backtests_match_the_reference(sc):
    assert_consistent(sc)


def test_the_reference_is_not_vacuous():
    """The random strategy really trades: fills of every kind, legs, rejections, cancels."""
    roles, kinds, statuses = set(), set(), set()
    for seed in range(12):
        sc = dict(
            market=dict(seed=seed, n_symbols=3, n_ticks=40, p_missing=0.2, freq="D"),
            strategy_seed=seed, commission=0.001, commission_fixed=1.0, slippage=5.0,
            leverage=1.0, trade_on_close=seed % 2 == 1,
        )
        r = assert_consistent(sc)
        filled = r.orders[r.orders.status == "filled"]
        roles |= set(filled.role)
        kinds |= {kind_of(o) for _, o in filled.iterrows()}
        statuses |= set(r.orders.status) | set(r.orders.reason)
    assert roles == {"entry", "stop_loss", "take_profit", "close"}
    assert kinds == {"market", "limit", "stop", "stop_limit"}
    assert {"filled", "cancelled", "rejected", "expired", "cancelled by the strategy",
            "its trade was closed", "insufficient margin",
            "its one-cancels-other group filled", "at the open: not filled at its bar's open",
            "at the close: not filled at its bar's close",
            "fill or kill: not filled whole on its bar"} <= statuses


# ---------------------------------------------------------------------------------------
# determinism and calls


@pytest.mark.parametrize("seed", [3, 11])
def test_two_runs_are_identical(seed):
    sc = dict(
        market=dict(seed=seed, n_symbols=4, n_ticks=60, p_missing=0.3, freq="min"),
        strategy_seed=seed, commission=0.001, commission_fixed=0.5, slippage=5.0,
        leverage=2.0, trade_on_close=False,
    )
    frames, bt, a = run_random(sc)
    b = bt.run(seed=seed, frames=frames)
    c = run_random(sc)[2]  # a fresh Backtest over the same data
    assert len(a.fills) > 0
    for other in (b, c):
        pd.testing.assert_frame_equal(a.trades, other.trades, check_exact=True)
        pd.testing.assert_frame_equal(a.fills, other.fills, check_exact=True)
        pd.testing.assert_frame_equal(a.orders, other.orders, check_exact=True)
        pd.testing.assert_frame_equal(a.equity_frame, other.equity_frame, check_exact=True)
        assert a.strategy.calls == other.strategy.calls


@pytest.mark.parametrize("seed", [0, 5])
def test_next_is_called_exactly_on_each_symbols_own_bars(seed):
    frames, _, r = run_random(
        dict(
            market=dict(seed=seed, n_symbols=4, n_ticks=50, p_missing=0.4, freq="min"),
            strategy_seed=seed, commission=0.0, commission_fixed=0.0, slippage=0.0,
            leverage=1.0, trade_on_close=False,
        )
    )
    expected = sorted((int(t), s) for s, f in frames.items() for t in f.index.as_unit("ns").asi8)
    calls = r.strategy.calls
    # Same set, and in time order then symbol order.
    assert calls == expected
    assert any(len(f) < 50 for f in frames.values())  # some minutes really are missing


def test_the_checker_catches_tampered_results():
    """Each family of checks fails on a result altered in one place."""
    from types import SimpleNamespace

    sc = dict(
        market=dict(seed=4, n_symbols=3, n_ticks=40, p_missing=0.2, freq="D"),
        strategy_seed=4, commission=0.001, commission_fixed=1.0, slippage=5.0,
        leverage=1.0, trade_on_close=False,
    )
    frames, _, r = run_random(sc)
    kw = dict(trade_on_close=False, slippage_bps=5.0, commission=0.001, fixed=1.0, leverage=1.0)
    assert check_backtest(frames, r, **kw) == []

    def problems_after(**changes):
        parts = ("orders", "fills", "trades", "equity_frame", "positions", "strategy")
        altered = SimpleNamespace(**{k: changes.get(k, getattr(r, k)) for k in parts})
        return check_backtest(frames, altered, **kw)

    fills = r.fills.copy()
    fills.loc[fills.index[len(fills) // 2], "price"] += 0.01
    assert problems_after(fills=fills)

    late = r.fills.copy()
    i = late.index[(late["role"] == "entry").to_numpy()][0]
    late.loc[i, "time"] = late.loc[i, "time"] + pd.Timedelta(days=1)
    assert problems_after(fills=late)

    eq = r.equity_frame.copy()
    eq.iloc[len(eq) // 2, eq.columns.get_loc("equity")] += 0.01
    assert problems_after(equity_frame=eq)

    trades = r.trades.copy()
    trades.loc[trades.index[0], "mae"] -= 0.001
    assert problems_after(trades=trades)

    orders = r.orders.copy()
    j = orders.index[(orders["status"] == "filled").to_numpy()][-1]
    orders.loc[j, "status"] = "open"
    assert problems_after(orders=orders)

    # The margin: an order refused though a thousandth of a unit fits; an entry filled at
    # two hundred times its size.
    small = r.orders.copy()
    refused = small.index[(small["reason"] == "insufficient margin").to_numpy()][0]
    small.loc[refused, "size"] = 1e-3
    oid = int(small.loc[refused, "order_id"])
    assert any(f"order {oid} rejected" in p and "fits the margin" in p
               for p in problems_after(orders=small))
    big = r.fills.copy()
    k = big.index[(big["role"] == "entry").to_numpy()][3]
    big.loc[k, ["size", "commission"]] *= 200
    oid = int(big.loc[k, "order_id"])
    assert f"order {oid} filled at {big.loc[k, 'time']} beyond the margin" in problems_after(fills=big)


def test_the_checker_holds_each_symbol_to_its_own_schedule():
    """A symbol's own schedule is what the reference charges its fills: checked against
    the account's instead, the same run's fills of that symbol are wrong."""
    sc = dict(
        market=dict(seed=4, n_symbols=3, n_ticks=40, p_missing=0.2, freq="D"),
        strategy_seed=4, commission=0.001, commission_fixed=1.0, slippage=5.0,
        leverage=1.0, trade_on_close=False, by_symbol={"S1": dict(per_unit=0.05, minimum=2.0)},
    )
    result = assert_consistent(sc)
    assert (result.fills["symbol"] == "S1").sum() > 0
    frames = random_market(**sc["market"])
    problems = check_backtest(frames, result, trade_on_close=False, slippage_bps=5.0,
                              commission=0.001, fixed=1.0, leverage=1.0)
    assert any("fill of order" in p and "commission" in p for p in problems)


def test_the_checker_catches_a_short_without_a_locate():
    """A refusal for want of a locate at a bar that had one, and a short sold at a bar
    that had none, are both reported."""
    sc = dict(market=dict(seed=4, n_symbols=3, n_ticks=40, p_missing=0.2, freq="D"),
              strategy_seed=4, commission=0.0, commission_fixed=0.0, slippage=0.0,
              leverage=1.0, trade_on_close=False, locates=True)
    frames, _, r = run_random(sc)
    kw = dict(trade_on_close=False, slippage_bps=0.0, commission=0.0, fixed=0.0, leverage=1.0,
              locates=True)
    assert check_backtest(frames, r, **kw) == []
    refused = r.orders[r.orders["reason"] == NOT_SHORTABLE]
    assert len(refused) > 0
    first = refused.iloc[0]
    said_yes = {s: f.copy() for s, f in frames.items()}
    said_yes[first["symbol"]].loc[first["closed_time"], "locate"] = 1.0
    assert any("refused as not shortable" in p for p in check_backtest(said_yes, r, **kw))
    fills = r.fills
    shorts = fills[(fills["side"] == "sell") & (fills["role"] == "entry")]
    said_no = {s: f.copy() for s, f in frames.items()}
    for _, f in shorts.iterrows():
        said_no[f["symbol"]].loc[f["time"], "locate"] = 0.0
    assert any("without a locate" in p for p in check_backtest(said_no, r, **kw))


def test_the_checker_holds_orders_to_their_delay():
    # Runs whose orders wait a bar (order_delay=1) agree with the reference told so, and
    # the reference told no delay finds them wrong: the property is not vacuous there.
    args = dict(trade_on_close=False, slippage_bps=0.0, commission=0.001, fixed=0.0, leverage=1.0)
    for seed in range(6):
        sc = dict(market=dict(seed=seed, n_symbols=3, n_ticks=30, p_missing=0.2, freq="h"),
                  strategy_seed=seed * 7 + 1, commission=0.001, commission_fixed=0.0,
                  slippage=0.0, leverage=1.0, trade_on_close=False, order_delay=1)
        frames, _, result = run_random(sc)
        assert check_backtest(frames, result, delay=1, **args) == []
        assert check_backtest(frames, result, delay=0, **args) != []
