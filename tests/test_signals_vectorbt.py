"""Signals mode against an independent reference: vectorbt's ``Portfolio.from_signals``.

Where the two libraries define the same thing, they must agree on every fill (its bar,
side, size, price and fee), on the final equity, and on the statistics both define alike
(`test_trade_statistics_agree_with_vectorbts`). These are random walks with random
signals: long and short, reversals, market fills at the signal bar's close or at the next
bar's open, commission and slippage, stop-losses and take-profits, one symbol or several.

Where they differ by design, the comparison is kept to the ground they share, and each
difference is named here:

- vectorbt executes at most one order per bar and column. A stop that fills on a bar
  leaves that bar's entry signal unacted; tickstep acts on it, at that bar's close or
  the next open, as a strategy's ``buy`` in ``next`` would. A first tickstep run finds
  such bars, and their entries are left out of the compared signals.
- A reversal is one order in vectorbt and two fills in tickstep (the close, then the
  entry) at one price: they are compared as their sum. A fixed fee per fill would then
  differ, so runs with reversals charge none.
- A stop-loss and a take-profit both inside one bar: tickstep fills the one nearer the
  open, vectorbt the stop-loss. The bars drawn here are narrower than the distance between
  the two.
- With fills at the next open, an entry of ``size_type="value"`` is priced at the signal
  bar's close in tickstep (what ``buy`` in ``next`` knows) and at the fill price in
  vectorbt, and its stops are set from the signal bar's close in tickstep and from the
  fill bar's close in vectorbt: those runs size in units and carry no stops.
- Slippage on stops: tickstep slips a stop's fill like a market order's (a triggered
  stop is one); vectorbt fills stops at the stop price. The runs with stops charge none.
- ``size_type="percent"``: a fraction of equity here, units priced at the close; in
  vectorbt a fraction of the cash at the fill, fees and slippage included. They coincide
  from flat without fees or slippage, as that run is. ``size_type="percent_at_fill"`` is
  vectorbt's: a fraction of the buying power at the fill (the cash, from flat without
  leverage), over the slipped price and the fee; compared long only (vectorbt reverses
  no position sized so) with both; on several symbols sharing one account (vectorbt's
  ``cash_sharing``, sales first) with at most one entry a bar: entries filling together
  take their fractions of one base here and of what the ones before left there.
- Trailing stops: tickstep raises the best price with the bar's open before checking the
  bar's low against it; vectorbt raises it with the highs of the bars before only. They
  are not compared.

Signals that contradict each other or the position (an entry and an exit of one side on
one bar, both entries, an entry against the position) are read by rules each library
sets its own default for; they are compared with the same readings asked of both
(`test_signals_that_contradict_each_other_or_the_position_are_read_as_vectorbt_reads_them`).

An exit that closes a portion of the position (``exit_portion``) is vectorbt's exit with
accumulation (``accumulate="both"``, or ``"removeonly"`` without pyramiding) sized by
``Percent``: a sale of that share of the units held. vectorbt's ``Percent`` purchase is of
the cash, not of a short held, so partial exits are compared long only.

A fixed fee per fill is charged only in runs of ``size_type="percent_at_fill"``, long only
(no reversal): there both take it off the money before the units are worked out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
import vectorbt as vbt
from conftest import walk
from tickstep.signals import CONFLICT_RULES

CASH = 1_000_000.0


def draw_signals(seed: int, n: int, symbols: int, p: float, shorts: bool) -> dict[str, np.ndarray]:
    """Random entries and exits; at most one signal per bar and column (no conflicts for
    either library to resolve its own way)."""
    rng = np.random.default_rng(seed + 1_000)
    kinds = ["entries", "exits"] + (["short_entries", "short_exits"] if shorts else [])
    which = rng.integers(0, len(kinds), (n, symbols))
    fires = rng.random((n, symbols)) < p
    return {k: fires & (which == j) for j, k in enumerate(kinds)}


def tickstep_run(bars, signals, *, next_open: bool, options: dict, run: dict):  # type: ignore[no-untyped-def]
    n, symbols = bars["close"].shape
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    names = [f"S{k}" for k in range(symbols)]
    data = {name: pd.DataFrame({c: bars[c][:, k] for c in ("open", "high", "low", "close")}
                               | {"volume": 1.0}, index=index)
            for k, name in enumerate(names)}
    bt = tickstep.Backtest(data, cash=CASH, trade_on_close=not next_open, **options)
    frames = {k: pd.DataFrame(v, index=index, columns=names) for k, v in signals.items()}
    return bt.run_signals(**frames, **run), index, names


def tickstep_fills(result, index, names) -> list[tuple]:  # type: ignore[no-untyped-def]
    """(bar, symbol, side, size, price, fee) per fill, the legs of one order at one price
    and bar (a reversal's close and entry) summed."""
    f = result.fills
    rows = [(int(index.get_loc(t)), names.index(str(s)), side, size, price, fee)
            for t, s, side, size, price, fee in zip(f["time"], f["symbol"], f["side"], f["size"],
                                                   f["price"], f["commission"])]
    merged: list[tuple] = []
    for row in sorted(rows, key=lambda r: (r[1], r[0])):  # stable: fills' order within a bar
        last = merged[-1] if merged else None
        if last is not None and last[:3] == row[:3] and last[4] == row[4]:
            merged[-1] = (*last[:3], last[3] + row[3], last[4], last[5] + row[5])
        else:
            merged.append(row)
    return merged


def vectorbt_run(bars, signals, *, next_open: bool, options: dict, run: dict):  # type: ignore[no-untyped-def]
    n, symbols = bars["close"].shape
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min")
    frame = lambda a: pd.DataFrame(a, index=index)  # noqa: E731
    # vectorbt's `percent` is of the cash at the fill: tickstep's "percent_at_fill".
    size_type = {"percent_at_fill": "percent"}.get(run["size_type"], run["size_type"])
    kw = {"size": run["size"], "size_type": size_type, "init_cash": CASH, "freq": "1min",
          "fees": options.get("commission", 0.0), "fixed_fees": options.get("commission_fixed", 0.0),
          "slippage": options.get("slippage", 0.0) / 1e4,
          "open": frame(bars["open"]), "high": frame(bars["high"]), "low": frame(bars["low"])}
    # A stop per symbol ({name: fraction}; NaN for one left out) is one per column there,
    # one per bar ((bars, symbols), NaN: none) the same array.
    for ours, theirs in (("sl", "sl_stop"), ("tp", "tp_stop")):
        if ours in run:
            stop = run[ours]
            if isinstance(stop, dict):
                stop = np.array([stop.get(f"S{k}", np.nan) for k in range(symbols)])
            kw[theirs] = stop
    # How signals that contradict each other or the position are read, where given.
    for ours, theirs in (("conflict", ("upon_long_conflict", "upon_short_conflict")),
                         ("side_conflict", ("upon_dir_conflict",)),
                         ("opposite_entry", ("upon_opposite_entry",))):
        kw.update((name, run[ours]) for name in theirs if ours in run)
    sig = dict(signals)
    if "exit_portion" in run:
        # An exit closing a portion of the position: with accumulation (its exits reduce
        # the position by their size), a sale of `Percent` sells that share of the units
        # held. tickstep's `accumulate` is vectorbt's "both"; without, "removeonly".
        portion = np.broadcast_to(run["exit_portion"], (n, symbols))
        kw["size"] = np.where(sig["exits"], portion, run["size"])
        kw["size_type"] = np.where(sig["exits"], vbt.portfolio.enums.SizeType.Percent,
                                   getattr(vbt.portfolio.enums.SizeType, size_type.capitalize()))
        kw["accumulate"] = "both" if run.get("accumulate") else "removeonly"
    if next_open:
        # Decided at bar t's close, filled at bar t+1's open: vectorbt is told so.
        sig = {k: np.vstack([np.zeros((1, symbols), bool), v[:-1]]) for k, v in sig.items()}
        kw["price"] = frame(bars["open"])
        for k in ("size", "size_type"):
            if isinstance(kw[k], np.ndarray) and kw[k].ndim == 2:  # per bar: shifted alike
                kw[k] = np.vstack([kw[k][:1], kw[k][:-1]])
    pf = vbt.Portfolio.from_signals(frame(bars["close"]), frame(sig["entries"]), frame(sig["exits"]),
                                    short_entries=frame(sig["short_entries"]) if "short_entries" in sig else None,
                                    short_exits=frame(sig["short_exits"]) if "short_exits" in sig else None,
                                    **kw)
    o = pf.orders.records_arr
    fills = sorted(((int(r["idx"]), int(r["col"]), "buy" if r["side"] == 0 else "sell",
                     float(r["size"]), float(r["price"]), float(r["fees"])) for r in o),
                   key=lambda r: (r[1], r[0]))
    # Each column is its own account of CASH: the profits add up to the one account's.
    return fills, float(np.sum(pf.final_value().to_numpy() - CASH))


def assert_fills_agree(result, index, names, vectorbt, at_least):  # type: ignore[no-untyped-def]
    """Every fill of tickstep's run (its bar, symbol, side, size, price and fee) and its
    profit as vectorbt's run gives them (``vectorbt``: `vectorbt_run`'s fills and profit),
    with more than ``at_least`` fills to compare; tickstep's fills."""
    ours = tickstep_fills(result, index, names)
    theirs, profit = vectorbt
    assert len(ours) > at_least, "too few fills to compare"
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    np.testing.assert_allclose([r[3] for r in ours], [r[3] for r in theirs], rtol=1e-12)
    np.testing.assert_allclose([r[4] for r in ours], [r[4] for r in theirs], rtol=1e-12)
    np.testing.assert_allclose([r[5] for r in ours], [r[5] for r in theirs], rtol=1e-9, atol=1e-12)
    equity = float(result.stats["Equity Final [$]"])
    assert equity - CASH == pytest.approx(profit, rel=1e-9, abs=1e-7)
    return ours


def acted_only_by_tickstep(result, index, names, signals) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Where a stop filled on a bar with an entry signal (vectorbt's one order per bar
    leaves that entry unacted): a mask of those bars and columns."""
    mask = np.zeros_like(signals["entries"])
    f = result.fills
    stops = f[f["role"].isin(["stop_loss", "take_profit"])]
    for t, s in zip(stops["time"], stops["symbol"]):
        mask[index.get_loc(t), names.index(str(s))] = True
    return mask


CASES = {
    "at the close, long and short, commission and slippage": dict(
        next_open=False, shorts=True, options={"commission": 0.001, "slippage": 3.0},
        run={"size": 2.0, "size_type": "amount"}),
    "at the close, long only, sized by value": dict(
        next_open=False, shorts=False, options={"commission": 0.002},
        run={"size": 1_000.0, "size_type": "value"}),
    "at the close, long only, sized by percent of equity": dict(
        next_open=False, shorts=False, options={},
        run={"size": 0.3, "size_type": "percent"}),
    "at the next open, long only, a percent of the cash at the fill, commission and slippage": dict(
        next_open=True, shorts=False, options={"commission": 0.001, "slippage": 4.0},
        run={"size": 0.7, "size_type": "percent_at_fill"}),
    "at the next open, long only, all of the cash at the fill, a fixed fee too": dict(
        next_open=True, shorts=False, options={"commission": 0.001, "commission_fixed": 7.5, "slippage": 4.0},
        run={"size": 1.0, "size_type": "percent_at_fill"}),
    "at the next open, long only, a percent of the cash at the fill, a fixed fee only": dict(
        next_open=True, shorts=False, options={"commission_fixed": 25.0},
        run={"size": 0.4, "size_type": "percent_at_fill"}),
    "at the next open, long and short, commission and slippage": dict(
        next_open=True, shorts=True, options={"commission": 0.0005, "slippage": 5.0},
        run={"size": 3.0, "size_type": "amount"}),
    "at the close, stop-loss and take-profit, long and short": dict(
        next_open=False, shorts=True, options={"commission": 0.001},
        run={"size": 1.0, "size_type": "amount", "sl": 0.01, "tp": 0.015}),
    "at the close, stops and commission, three symbols": dict(
        next_open=False, shorts=True, options={"commission": 0.0002}, symbols=3,
        run={"size": 5.0, "size_type": "amount", "sl": 0.008, "tp": 0.02}),
    "at the close, stop-losses per bar and take-profits per symbol, three symbols": dict(
        next_open=False, shorts=True, options={"commission": 0.0002}, symbols=3,
        run={"size": 5.0, "size_type": "amount",
             "sl": np.where(np.random.default_rng(5).random((2_000, 3)) < 0.2, np.nan,
                            0.005 + 0.005 * np.random.default_rng(6).random((2_000, 3))),
             "tp": {"S0": 0.02, "S2": 0.03}}),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("case", list(CASES), ids=str)
def test_signals_mode_fills_as_vectorbt_does_where_both_define_the_same(case, seed):
    c = CASES[case]
    symbols = c.get("symbols", 1)
    bars = walk(seed, 2_000, symbols)
    signals = draw_signals(seed, 2_000, symbols, 0.08, c["shorts"])
    same = dict(next_open=c["next_open"], options=c["options"], run=c["run"])
    result, index, names = tickstep_run(bars, signals, **same)
    # Keep to the ground both share: entries on a bar where a stop filled go (a few
    # rounds: leaving one out can move a later stop).
    for _ in range(20):
        clash = acted_only_by_tickstep(result, index, names, signals) & signals["entries"]
        if "short_entries" in signals:
            clash |= acted_only_by_tickstep(result, index, names, signals) & signals["short_entries"]
        if not clash.any():
            break
        signals = {k: v & ~clash if k.endswith("entries") else v for k, v in signals.items()}
        result, index, names = tickstep_run(bars, signals, **same)
    else:
        pytest.fail("the entries on stop bars did not settle")
    assert_fills_agree(result, index, names, vectorbt_run(bars, signals, **same), at_least=20)
    if "sl" in c["run"]:
        roles = set(result.fills["role"])
        assert {"stop_loss", "take_profit"} <= roles, roles  # the stops were exercised


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("next_open", [False, True], ids=["at the close", "at the next open"])
@pytest.mark.parametrize("readings", [("ignore", "ignore", "reverse"), ("entry", "long", "close"),
                                      ("exit", "short", "ignore"), ("ignore", "short", "close")],
                         ids="-".join)
def test_signals_that_contradict_each_other_or_the_position_are_read_as_vectorbt_reads_them(
        readings, next_open, seed):
    # Each kind drawn on its own: many bars have an entry and an exit of one side, both
    # entries, or an entry against the position. tickstep's `conflict`, `side_conflict`
    # and `opposite_entry` against vectorbt's `upon_long_conflict` and
    # `upon_short_conflict`, `upon_dir_conflict` and `upon_opposite_entry`.
    conflict, side_conflict, opposite_entry = readings
    n, symbols = 2_000, 2
    bars = walk(seed, n, symbols)
    rng = np.random.default_rng(seed + 2_000)
    signals = {k: rng.random((n, symbols)) < 0.1
               for k in ("entries", "exits", "short_entries", "short_exits")}
    assert (signals["entries"] & signals["exits"]).sum() > 20
    assert (signals["entries"] & signals["short_entries"]).sum() > 20
    run = {"size": 2.0, "size_type": "amount", "conflict": conflict,
           "side_conflict": side_conflict, "opposite_entry": opposite_entry}
    same = dict(next_open=next_open, options={"commission": 0.001, "slippage": 2.0}, run=run)
    result, index, names = tickstep_run(bars, signals, **same)
    ours = assert_fills_agree(result, index, names, vectorbt_run(bars, signals, **same), at_least=100)
    # Each reading changed the run: the default readings give other fills.
    default = {k: v for k, v in run.items() if k not in CONFLICT_RULES}
    plain, _, _ = tickstep_run(bars, signals, **{**same, "run": default})
    assert tickstep_fills(plain, index, names) != ours


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("next_open", [False, True], ids=["at the close", "at the next open"])
@pytest.mark.parametrize("accumulate", [False, True], ids=["no pyramiding", "pyramiding"])
@pytest.mark.parametrize("frame", [False, True], ids=["an array", "a frame by time"])
def test_exits_closing_a_portion_of_the_position_sell_as_vectorbts_reductions_do(
        frame, accumulate, next_open, seed):
    # Long only (vectorbt's `Percent` of a purchase is of the cash, not of a short held).
    # Portions per bar, some of them all of it (one portion below 1 on every exit would
    # halve a position for ever, and vectorbt drops what is left below its precision).
    n, symbols = 2_000, 2
    bars = walk(seed, n, symbols)
    signals = draw_signals(seed, n, symbols, 0.1, shorts=False)
    rng = np.random.default_rng(seed + 3_000)
    portion = rng.choice([0.25, 0.5, 0.8, 1.0], (n, symbols))
    run = {"size": 3.0, "size_type": "amount", "accumulate": accumulate, "exit_portion": portion}
    same = dict(next_open=next_open, options={"commission": 0.001, "slippage": 2.0}, run=run)
    ours_run = run
    if frame:
        index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
        ours_run = {**run, "exit_portion": pd.DataFrame(portion, index=index, columns=["S0", "S1"])}
    result, index, names = tickstep_run(bars, signals, **{**same, "run": ours_run})
    ours = assert_fills_agree(result, index, names, vectorbt_run(bars, signals, **same), at_least=150)
    # Exits sold a part of what was held: the run differs from exits closing it all.
    whole, _, _ = tickstep_run(bars, signals, **{**same, "run": {**run, "exit_portion": None}})
    assert tickstep_fills(whole, index, names) != ours
    held = np.zeros(symbols)
    parts = 0
    for _bar, s, side, size, _price, _fee in ours:
        parts += side == "sell" and size < held[s] - 1e-9
        held[s] += size if side == "buy" else -size
    assert parts > 50


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("commission", [0.0, 0.001])
def test_trade_statistics_agree_with_vectorbts(seed, commission):
    """The statistics both libraries define alike, on the same run: return, the number of
    closed trades, win rate, profit factor and expectancy (P&L net of fees in both), and,
    without fees, the best, worst and average trade's return and the maximum drawdown of
    equity sampled at every bar. (With fees, a trade's return here is its P&L over what it
    cost, fees included, and vectorbt's over its entry value; vectorbt's drawdown starts
    from the first bar's value, here from the starting cash. Sharpe and the other
    annualised ratios are computed here from daily returns, in vectorbt from the bars'.)"""
    n = 2_000
    bars, signals = walk(seed, n, 1), draw_signals(seed, n, 1, 0.08, shorts=True)
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    data = {"S0": pd.DataFrame({c: bars[c][:, 0] for c in ("open", "high", "low", "close")}
                               | {"volume": 1.0}, index=index)}
    bt = tickstep.Backtest(data, cash=CASH, commission=commission, trade_on_close=True,
                           record_every_bar=True)
    ours = bt.run_signals(**{k: pd.DataFrame(v, index=index, columns=["S0"])
                             for k, v in signals.items()}, size=2.0, size_type="amount").stats
    frame = lambda a: pd.DataFrame(a, index=index.tz_localize(None))  # noqa: E731
    pf = vbt.Portfolio.from_signals(frame(bars["close"]), frame(signals["entries"]),
                                    frame(signals["exits"]),
                                    short_entries=frame(signals["short_entries"]),
                                    short_exits=frame(signals["short_exits"]), size=2.0,
                                    size_type="amount", fees=commission, init_cash=CASH,
                                    freq="1min")
    closed = pf.trades.closed
    theirs = {
        "Return [%]": pf.total_return().iloc[0] * 100,
        "# Trades": closed.count().iloc[0],
        "Win Rate [%]": closed.win_rate().iloc[0] * 100,
        "Profit Factor": closed.profit_factor().iloc[0],
        "Expectancy [$]": closed.expectancy().iloc[0],
    }
    if commission == 0:
        theirs |= {
            "Best Trade [%]": closed.returns.max().iloc[0] * 100,
            "Worst Trade [%]": closed.returns.min().iloc[0] * 100,
            "Avg. Trade [%]": closed.returns.mean().iloc[0] * 100,
            "Max. Drawdown [%]": pf.max_drawdown().iloc[0] * 100,
        }
    assert theirs["# Trades"] > 30
    for name, value in theirs.items():
        assert float(ours[name]) == pytest.approx(float(value), rel=1e-9), name


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("next_open", [True, False], ids=["at the next open", "at the close"])
@pytest.mark.parametrize(("fraction", "options"), [
    (0.5, {"commission": 0.001, "slippage": 4.0}),
    (0.95, {"commission": 0.0005}),
], ids=["half, commission and slippage", "almost all, commission"])
def test_several_symbols_on_one_account_sized_at_the_fill_as_vectorbt_shares_cash(
        seed, next_open, fraction, options):
    # Three symbols on one account (vectorbt: `cash_sharing=True`, sells before buys in a
    # bar: `call_seq="auto"`), long only, entries at most one a bar across the symbols
    # (where both libraries then size it alike: on the cash after the bar's sales, whatever
    # column sold), exits anywhere. Every fill and the final equity agree.
    n, symbols = 2_000, 3
    bars = walk(seed, n, symbols)
    signals = draw_signals(seed, n, symbols, 0.12, shorts=False)
    rng = np.random.default_rng(seed + 5)
    keep = rng.integers(0, symbols, n)
    signals["entries"] &= np.arange(symbols)[None, :] == keep[:, None]
    # Rotations: at half of the entries' bars, an exit of another symbol (a column of its
    # own, so still one signal per bar and column).
    rows = np.flatnonzero(signals["entries"].any(axis=1) & (rng.random(n) < 0.5))
    other = (keep[rows] + rng.integers(1, symbols, len(rows))) % symbols
    signals["exits"][rows, other] = True
    run = {"size": fraction, "size_type": "percent_at_fill"}
    result, index, names = tickstep_run(bars, signals, next_open=next_open, options=options, run=run)
    ours = tickstep_fills(result, index, names)

    frame = lambda a: pd.DataFrame(a, index=pd.date_range("2024-01-02 09:30", periods=n, freq="1min"))  # noqa: E731
    # At the next open vectorbt is told the signals a bar late and the open as the price.
    late = {k: np.vstack([np.zeros((1, symbols), bool), v[:-1]]) for k, v in signals.items()}
    sig, price = (late, bars["open"]) if next_open else (signals, bars["close"])
    pf = vbt.Portfolio.from_signals(
        frame(bars["close"]), frame(sig["entries"]), frame(sig["exits"]),
        price=frame(price), open=frame(bars["open"]), high=frame(bars["high"]),
        low=frame(bars["low"]), size=fraction, size_type="percent", init_cash=CASH, freq="1min",
        fees=options.get("commission", 0.0), slippage=options.get("slippage", 0.0) / 1e4,
        cash_sharing=True, group_by=True, call_seq="auto")
    theirs = sorted(((int(r["idx"]), int(r["col"]), "buy" if r["side"] == 0 else "sell",
                      float(r["size"]), float(r["price"]), float(r["fees"])) for r in pf.orders.records_arr),
                    key=lambda r: (r[1], r[0]))
    # The ground the test stands on: a bar where one symbol is sold and another bought.
    sold = {(r[0], r[1]) for r in ours if r[2] == "sell"}
    rotations = [r for r in ours if r[2] == "buy" and any((r[0], c) in sold for c in range(symbols) if c != r[1])]
    assert len(rotations) >= 3, "too few bars where a sale and a buy of another symbol fill together"
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    np.testing.assert_allclose([r[3] for r in ours], [r[3] for r in theirs], rtol=1e-12)
    np.testing.assert_allclose([r[4] for r in ours], [r[4] for r in theirs], rtol=1e-12)
    np.testing.assert_allclose([r[5] for r in ours], [r[5] for r in theirs], rtol=1e-9, atol=1e-12)
    final = float(pf.final_value())
    assert float(result.stats["Equity Final [$]"]) == pytest.approx(final, rel=1e-9)
