"""Plots and the report without a browser: the tables behind them (by hand and by
invariant), downsampling, the figure, the file's self-containment and determinism."""

from __future__ import annotations

import base64
import html
import json
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars, run_script
from test_report_runs import Busy, busy_result
from tickstep.report import (
    margin_calls,
    position_values,
    rejected_orders,
    sector_breakdown,
    symbol_breakdown,
)
from tickstep.report.downsample import downsample
from tickstep.strategies import SmaCross

# --- the tables, by hand ------------------------------------------------------------------


def two_symbol_run():
    """AAA: buy 10 at bar 1's open (11), sell at bar 3's open (13): +20 less commission.
    BBB: sell 5 short at bar 2's open (21), still open at the end (last close 19): +10.
    Commission 1 per fill. Equity at every bar (5 bars, days)."""
    aaa = make_bars([(10, 10, 10, 10), (11, 11, 11, 11), (12, 12, 12, 12), (13, 13, 13, 13),
                     (14, 14, 14, 14)])
    bbb = make_bars([(20, 20, 20, 20), (20, 20, 20, 20), (21, 21, 21, 21), (19, 19, 19, 19),
                     (19, 19, 19, 19)])
    script = {
        ("AAA", 0): lambda s, sym: s.buy(sym, size=10),
        ("AAA", 2): lambda s, sym: s.close(sym),
        ("BBB", 1): lambda s, sym: s.sell(sym, size=5),
    }
    r = run_script({"AAA": aaa, "BBB": bbb}, script, cash=1000.0, commission_fixed=1.0)
    r.metadata = pd.DataFrame({"sector": ["Tech", "Tech"]}, index=pd.Index(["AAA", "BBB"], name="symbol"))
    return r


def test_symbol_breakdown_by_hand():
    r = two_symbol_run()
    table = symbol_breakdown(r)
    # AAA: -110 + 130 - 2 commissions = 18; BBB: +105 - 1 commission - 5 * 19 = 9
    assert table.loc["AAA", "P&L [$]"] == pytest.approx(18.0)
    assert table.loc["BBB", "P&L [$]"] == pytest.approx(9.0)
    assert table["P&L [$]"].sum() == pytest.approx(r.equity.iloc[-1] - 1000.0)
    assert table.loc["AAA", "Contribution [%]"] == pytest.approx(1.8)
    assert list(table["# Trades"]) == [1, 0]
    assert table.loc["AAA", "Win Rate [%]"] == 100.0 and np.isnan(table.loc["BBB", "Win Rate [%]"])
    assert list(table["Commissions [$]"]) == [2.0, 1.0]
    # Samples at the 5 bars: AAA held after bar 1 and bar 2 (sold at bar 3): 2 of 5;
    # BBB short from bar 2 to the end: 3 of 5.
    assert list(table["Exposure Time [%]"]) == pytest.approx([40.0, 60.0])
    values = position_values(r)
    np.testing.assert_allclose(values["AAA"], [0, 110, 120, 0, 0])
    np.testing.assert_allclose(values["BBB"], [0, 0, -105, -95, -95])
    equity = r.equity.to_numpy()
    assert table.loc["BBB", "Avg. Exposure [%]"] == pytest.approx(
        np.mean(np.array([0, 0, 105, 95, 95]) / equity) * 100)


def test_symbol_breakdown_of_contracts_is_in_money(tmp_path):
    # The same run with AAA's units worth 50 a point: its P&L 50 x 20 - 2 = 998, its
    # position 50 times the value; BBB's as before. Saved and loaded, the same.
    aaa = make_bars([(10, 10, 10, 10), (11, 11, 11, 11), (12, 12, 12, 12), (13, 13, 13, 13)])
    bbb = make_bars([(20, 20, 20, 20), (20, 20, 20, 20), (21, 21, 21, 21), (19, 19, 19, 19)])
    script = {("AAA", 0): lambda s, sym: s.buy(sym, size=10),
              ("AAA", 2): lambda s, sym: s.close(sym),
              ("BBB", 1): lambda s, sym: s.sell(sym, size=5)}
    r = run_script({"AAA": aaa, "BBB": bbb}, script, cash=100_000.0, commission_fixed=1.0,
                   multiplier={"AAA": 50})
    table = symbol_breakdown(r)
    assert list(table["P&L [$]"]) == pytest.approx([998.0, 9.0])
    assert table["P&L [$]"].sum() == pytest.approx(r.equity.iloc[-1] - 100_000.0)
    np.testing.assert_allclose(position_values(r)["AAA"], [0, 5_500, 6_000, 0])
    gross = position_values(r).abs().sum(axis=1).to_numpy()
    np.testing.assert_allclose(gross, r.equity_frame["gross_exposure"].to_numpy())
    loaded = tickstep.load_result(r.save(tmp_path / "run"))
    assert list(symbol_breakdown(loaded)["P&L [$]"]) == list(table["P&L [$]"])


def test_sector_breakdown_sums_its_symbols():
    r = two_symbol_run()
    sectors = sector_breakdown(r)
    assert list(sectors.index) == ["Tech"]
    row = sectors.loc["Tech"]
    assert row["P&L [$]"] == pytest.approx(27.0)
    assert row["# Symbols"] == 2 and row["# Trades"] == 1
    # Some Tech position is held at bars 1, 2, 3, 4: 4 of 5 samples.
    assert row["Exposure Time [%]"] == pytest.approx(80.0)
    equity = r.equity.to_numpy()
    assert row["Avg. Exposure [%]"] == pytest.approx(
        np.mean(np.array([0, 110, 225, 95, 95]) / equity) * 100)
    r.metadata = None
    assert sector_breakdown(r) is None and "Sector" not in symbol_breakdown(r).columns


def test_breakdown_adds_up_to_the_account_on_a_busy_run():
    r = busy_result()
    table = symbol_breakdown(r)
    assert table["P&L [$]"].sum() == pytest.approx(r.equity.iloc[-1] - r.initial_cash, abs=1e-6)
    assert table["# Trades"].sum() == len(r.trades)
    assert table["Commissions [$]"].sum() == pytest.approx(r.fills["commission"].sum())
    # The positions rebuilt from fills are worth what the engine says is exposed.
    gross = position_values(r).abs().sum(axis=1).to_numpy()
    np.testing.assert_allclose(gross, r.equity_frame["gross_exposure"].to_numpy(), rtol=1e-9, atol=1e-6)
    sectors = sector_breakdown(r)
    assert sectors["P&L [$]"].sum() == pytest.approx(table["P&L [$]"].sum())
    rejected = rejected_orders(r)
    assert len(rejected) == (r.orders["status"] == "rejected").sum() > 0
    assert set(rejected["reason"]) == {"insufficient margin"}


class _Listed:
    """``result`` with its symbols listed in the order ``symbols`` (what other names would
    make of it: the engine lists symbols by name) and the sectors ``metadata``."""

    def __init__(self, result, symbols, metadata):
        self.symbols = list(symbols)
        self.fills = result.fills.assign(
            symbol=result.fills["symbol"].cat.reorder_categories(self.symbols))
        self.trades = result.trades.assign(
            symbol=result.trades["symbol"].cat.reorder_categories(self.symbols))
        self.metadata = metadata
        self.equity, self.positions = result.equity, result.positions
        self.initial_cash, self.prices = result.initial_cash, result.prices
        self.options = result.options
        self.payments = result.payments  # by name: the table reads them in its own order


def test_the_breakdowns_are_exact_sums_the_same_bits_in_any_order_of_the_symbols():
    """Each sector's figures are math.fsum of its symbols' (per sample for the exposure),
    so listing the symbols in another order gives the same bits; four symbols a sector
    (with two, any sum is the same either way round)."""
    import math

    r = busy_result()
    metadata = pd.DataFrame({"sector": ["Odd", "Even"] * 4}, index=pd.Index(r.symbols, name="symbol"))
    base = _Listed(r, r.symbols, metadata)
    by_symbol, sectors = symbol_breakdown(base), sector_breakdown(base)
    values = position_values(base).abs()
    for sector, members in (("Odd", r.symbols[0::2]), ("Even", r.symbols[1::2])):
        for column in ("P&L [$]", "Contribution [%]", "Commissions [$]"):
            assert sectors.loc[sector, column] == math.fsum(by_symbol.loc[members, column]) + 0.0
        held = [math.fsum(row) for row in values[members].to_numpy()]
        want = math.fsum(np.array(held) / np.abs(r.equity.to_numpy())) / len(held) * 100.0
        assert sectors.loc[sector, "Avg. Exposure [%]"] == want
    # Each symbol's P&L and commissions: math.fsum of its fills.
    fills = r.fills
    for symbol in r.symbols:
        mine = fills[fills["symbol"] == symbol]
        assert by_symbol.loc[symbol, "Commissions [$]"] == math.fsum(mine["commission"]) + 0.0
    rng = np.random.default_rng(7)
    for _ in range(6):
        listed = _Listed(r, [r.symbols[k] for k in rng.permutation(len(r.symbols))], metadata)
        pd.testing.assert_frame_equal(sector_breakdown(listed), sectors, check_exact=True)
        pd.testing.assert_frame_equal(symbol_breakdown(listed).loc[r.symbols], by_symbol,
                                      check_exact=True)


# --- downsampling -------------------------------------------------------------------------


def test_downsampling_keeps_shape_and_ends():
    x = np.arange(100_000, dtype=np.int64) * 60_000_000_000
    y = np.sin(np.arange(100_000) / 5000.0)
    y[31_337] = 25.0  # a spike every-n-th sampling would miss
    y[77_777] = -25.0
    keep = downsample(x, y, 1000)
    assert len(keep) <= 1002 and keep[0] == 0 and keep[-1] == len(y) - 1
    assert np.all(np.diff(keep) > 0)
    assert 31_337 in keep and 77_777 in keep
    np.testing.assert_array_equal(downsample(x[:500], y[:500], 1000), np.arange(500))
    y[10] = np.nan
    assert len(downsample(x, y, 1000)) <= 1002
    with pytest.raises(ValueError, match="at least 3"):
        downsample(x, y, 2)


# --- the figure and the file --------------------------------------------------------------


def test_plot_draws_every_part():
    import plotly.graph_objects as go

    r = busy_result()
    fig = r.plot(symbols=["BYN", "XEL"])
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names[:6] == ["equity", "peak", "buy & hold", "drawdown [%]", "exposure [%]", "BYN"]
    assert "XEL" in names
    assert [t.type for t in fig.data][-2:] == ["heatmap", "bar"]
    # The time rows zoom together; every fill of the drawn symbols is marked.
    assert fig.layout.xaxis5.matches == "x"
    fills = r.fills[r.fills["symbol"].isin(["BYN", "XEL"])]
    markers = sum(len(t.x) for t in fig.data if getattr(t, "mode", None) == "markers")
    assert markers == len(fills)
    # Every stop-loss leg of BYN is drawn as a level from its placing to its end.
    (stops,) = [t for t in fig.data if t.name == "BYN stop-loss level"]
    legs = r.orders[(r.orders["symbol"] == "BYN") & (r.orders["role"] == "stop_loss")]
    np.testing.assert_array_equal(np.asarray(stops.y, dtype=float)[0::3], legs["stop"].to_numpy())
    np.testing.assert_array_equal(np.asarray(stops.x, dtype=float)[0::3],
                                  pd.DatetimeIndex(legs["placed_time"]).asi8 / 1e6)
    with pytest.raises(KeyError, match="no symbol 'NOPE'"):
        r.plot(symbols=["NOPE"])


def test_plot_downsamples_long_lines():
    data = tickstep.data.sample(symbols=2, days=5, seed=1)
    r = tickstep.Backtest(data, Busy, record_every_bar=True).run(cycle=300)
    assert len(r.equity) > 1500
    fig = r.plot(max_points=300)
    lines = [t for t in fig.data if t.type == "scatter" and t.mode is None]
    assert len(lines) == 5 + 2  # equity, peak, buy & hold, drawdown, exposure, two prices
    for trace in lines:
        assert 3 <= len(trace.x) <= 302


def test_report_is_self_contained_and_deterministic(tmp_path):
    r = busy_result()
    a = r.report(tmp_path / "a.html").read_bytes()
    b = r.report(tmp_path / "b.html").read_bytes()
    assert a == b
    text = a.decode()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import", text)
    assert text.count('id="plotly-js-gzip"') == 1  # Plotly once
    # Each figure's lines are at most max_points long (data as typed arrays).
    specs = re.findall(r'<script type="application/json" id="([^"]+)-data">(.*?)</script>', text)
    assert [s[0] for s in specs] == ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"]
    for _, spec in specs:
        for trace in json.loads(spec)["data"]:
            x = trace["x"]
            if isinstance(x, dict):
                assert len(base64.b64decode(x["bdata"])) // 8 <= 2002


def test_the_report_says_how_likely_luck_is_and_with_bootstrap_the_ranges(tmp_path):
    r = busy_result()
    text = r.report(tmp_path / "a.html").read_text()
    psr = r.probabilistic_sharpe()
    assert f'id="luck">Probabilistic Sharpe Ratio: {psr:.4f}:' in text
    assert 'id="bootstrap"' not in text  # only when asked: it draws histories
    drawn = r.report(tmp_path / "b.html", bootstrap=200).read_text()
    assert drawn == r.report(tmp_path / "c.html", bootstrap=200).read_text()  # seed 0
    body = re.search(r'<table id="bootstrap">.*?<tbody>(.*?)</tbody>', drawn).group(1)
    rows = re.findall(r'<tr><td class="label">(.*?)</td>(.*?)</tr>', body)
    expected = r.bootstrap(200, seed=0).quantile([0.05, 0.5, 0.95]).T
    assert [html.unescape(label) for label, _ in rows] == list(expected.index)
    printed = [[float(v) for v in re.findall(r"<td>(.*?)</td>", cells)] for _, cells in rows]
    np.testing.assert_allclose(printed, expected.to_numpy(), rtol=1e-5)  # 6 figures
    with pytest.raises(tickstep.ConfigError, match=r"report\(bootstrap=0\): how many histories"):
        r.report(tmp_path / "d.html", bootstrap=0)


def test_the_report_lists_the_positions_margin_calls_closed(tmp_path):
    # Two symbols bought with four times leverage (cash -20,002 after 1.00 a fill); day
    # 2's closes put equity (-20,002 + 200 x 60 + 200 x 45 = 999) below 25% of the
    # exposure (5,250): both closed there.
    days = [(c, c, c, c) for c in (100, 100, 60, 60)]
    other = [(c, c, c, c) for c in (50, 50, 45, 45)]
    script = {("A", 0): lambda s, sym: s.buy(sym, size=200),
              ("B", 0): lambda s, sym: s.buy(sym, size=200)}
    r = run_script({"A": make_bars(days), "B": make_bars(other)}, script, cash=10_000,
                   leverage=4, maintenance_margin=0.25, commission_fixed=1.0)
    called = margin_calls(r)
    assert list(called["symbol"]) == ["A", "B"]
    assert list(called["price"]) == [60.0, 45.0]
    assert list(called["side"]) == ["sell", "sell"]
    assert set(called["time"]) == {pd.Timestamp("2024-01-03", tz="UTC")}
    assert list(called["commission"]) == [1.0, 1.0]
    text = r.report(tmp_path / "called.html").read_text()
    table = re.search(r'<table id="margin-calls">.*?</table>', text).group(0)
    assert table.count("<tr>") == 1 + 2 and "1 margin call(s)" in text
    assert 'id="margin-calls-none"' not in text
    calm = busy_result()
    assert margin_calls(calm).empty
    idle = tickstep.Backtest(tickstep.data.example_daily(), tickstep.Strategy).run()
    assert idle.orders.empty and margin_calls(idle).empty
    assert 'id="margin-calls-none"' in calm.report(tmp_path / "calm.html").read_text()


def test_a_loaded_result_gives_the_same_report(tmp_path):
    r = busy_result()
    original = r.report(tmp_path / "original.html").read_bytes()
    loaded = tickstep.load_result(r.save(tmp_path / "saved"))
    assert loaded.report(tmp_path / "loaded.html").read_bytes() == original


def test_a_missing_plot_extra_says_what_to_install(monkeypatch, tmp_path):
    r = busy_result()
    for name in ("plotly", "plotly.offline", "plotly.graph_objects"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'tickstep\[plot\]'"):
        r.report(tmp_path / "r.html")
    with pytest.raises(ImportError, match=r"pip install 'tickstep\[plot\]'"):
        r.plot()
    assert not (tmp_path / "r.html").exists()


# --- the examples in the docstrings run ---------------------------------------------------


@pytest.mark.parametrize("module", ["tickstep.metrics", "tickstep.results", "tickstep.walkforward",
                                    "tickstep.report.heatmap", "tickstep.report.downsample"])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    import doctest
    import importlib

    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failures == 0 and (tried > 0 or module.endswith("downsample"))


def test_walk_forward_docstring_example_runs():
    import doctest

    finder = doctest.DocTestFinder()
    (test,) = finder.find(tickstep.Backtest.walk_forward, "walk_forward",
                          globs={"tickstep": tickstep})
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.attempted > 0 and result.failed == 0


def test_demo_writes_a_report_and_prints_its_path(tmp_path, capsys):
    from tickstep.cli import main

    store = tmp_path / "demo" / "market.duckdb"
    assert main(["demo", "--store", str(store), "--symbols", "2", "--days", "2"]) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "demo" / "report.html").resolve()
    assert f"report: {report}" in out.splitlines()
    assert "tickstep backtest report" in report.read_text()
    # Its own report is replaced on the next run; a file it did not make is not.
    mine = tmp_path / "mine.html"
    mine.write_text("my notes")
    assert main(["demo", "--store", str(store), "--symbols", "2", "--days", "2",
                 "--report", str(mine)]) == 2
    assert mine.read_text() == "my notes" and "never overwrites" in capsys.readouterr().err


def test_monthly_heatmap_uses_the_months_of_the_statistics():
    # Samples at the end of New York days: 2024-01-31 19:00 NY is February 1st in UTC.
    idx = pd.DatetimeIndex(["2024-01-15 21:00", "2024-02-01 00:00", "2024-02-20 21:00"], tz="UTC")
    eq = pd.Series([110.0, 121.0, 96.8], index=idx)
    from tickstep.metrics import monthly_returns

    ny = monthly_returns(eq, 100.0, "America/New_York")
    assert ny.round(9).tolist() == [0.21, -0.2]  # January ends at 121, February at 96.8
    utc = monthly_returns(eq, 100.0)
    assert utc.round(9).tolist() == [0.1, -0.12]


# --- the strategy's indicators ------------------------------------------------------------


def SMA(values, n):  # noqa: N802 (backtesting.py's spelling)
    return pd.Series(values).rolling(n).mean()


def RSI(values, n):  # noqa: N802
    change = pd.Series(values).diff()
    up = change.clip(lower=0).rolling(n).mean()
    down = (-change.clip(upper=0)).rolling(n).mean()
    return 100 - 100 / (1 + up / down)


def bands(values, n):
    mean, spread = SMA(values, n), pd.Series(values).rolling(n).std()
    return mean + 2 * spread, mean - 2 * spread


class Charted(tickstep.Strategy):
    """Indicators of every kind the report draws, read at every bar."""

    def init(self):
        close = self.data.Close
        self.fast = self.I(SMA, close, 10)
        self.slow = self.I(SMA, close, 20, color="black")
        self.again = self.I(SMA, close, 10)  # the same label as `fast`: numbered
        self.rsi = self.I(RSI, close, 14)  # 0-100: drawn below the prices
        self.upper, self.lower = self.I(bands, close, 20, color=["red", "green"])
        self.flat = self.I(lambda c: c * 0 + 1, close, overlay=True, scatter=True, name="one")
        self.hidden = self.I(SMA, close, 5, plot=False)
        self.weekly = self.I(SMA, 4, timeframe="1w")
        self.read = []

    def next(self, symbol):
        self.read.append((symbol, self.time, self.fast[-1], self.rsi[-1], self.lower[-1], self.weekly[-1]))
        if self.fast.prev <= self.slow.prev and self.fast.value > self.slow.value:
            self.buy(size=10)
        elif self.fast.prev >= self.slow.prev and self.fast.value < self.slow.value and self.position:
            self.position.close()


@pytest.fixture(scope="module")
def charted():
    return tickstep.Backtest(tickstep.data.example_daily(), Charted, cash=100_000).run()


NAMES = ["SMA(Close, 10)", "SMA(Close, 20)", "SMA(Close, 10) (2)", "RSI(Close, 14)",
         "bands(Close, 20) 0", "bands(Close, 20) 1", "one", "SMA(close, 4)@1w"]


def test_a_result_keeps_each_charted_indicator_as_the_strategy_read_it(charted):
    read = pd.DataFrame(charted.strategy.read, columns=["symbol", "time", "fast", "rsi", "lower", "weekly"])
    for symbol in charted.symbols:
        kept = charted.indicators(symbol)
        assert list(kept.columns) == NAMES  # plot=False left out
        assert kept.index.equals(charted.prices(symbol).index)
        mine = read[read["symbol"] == symbol].set_index("time")
        for column, name in [("fast", NAMES[0]), ("rsi", NAMES[3]), ("lower", NAMES[5]), ("weekly", NAMES[7])]:
            np.testing.assert_array_equal(kept[name].to_numpy(), mine[column].to_numpy())
        assert kept[NAMES[7]].notna().sum() > 100  # the weekly mean is shown once weeks complete


def test_plot_draws_indicators_over_the_prices_or_in_a_pane_below(charted):
    symbol = charted.symbols[0]
    fig = charted.plot(symbols=[symbol])
    kept = charted.indicators(symbol)
    price = next(t for t in fig.data if t.name == symbol)
    lines = {t.name: t for t in fig.data if t.name in NAMES}
    assert sorted(lines) == sorted(NAMES)
    below = {"RSI(Close, 14)"}
    for name, trace in lines.items():
        # Drawn whole (fewer bars than points) at the bars' times.
        np.testing.assert_array_equal(np.asarray(trace.y, dtype=float), kept[name].to_numpy())
        np.testing.assert_array_equal(np.asarray(trace.x, dtype=float), kept.index.asi8 / 1e6)
        over = (trace.xaxis, trace.yaxis) == (price.xaxis, price.yaxis)
        assert over == (name not in below), name
    rsi = lines["RSI(Close, 14)"]
    assert rsi.yaxis != price.yaxis and fig.layout[rsi.yaxis.replace("y", "yaxis")].title.text == "indicators"
    assert lines["SMA(Close, 20)"].line.color == "black"
    assert (lines["bands(Close, 20) 0"].line.color, lines["bands(Close, 20) 1"].line.color) == ("red", "green")
    assert lines["one"].mode == "markers"
    # The pane below follows the price's rows and zooms with them.
    assert fig.layout[rsi.xaxis.replace("x", "xaxis")].matches == "x"


def test_a_loaded_result_keeps_its_indicators_and_draws_the_same_report(charted, tmp_path):
    loaded = tickstep.load_result(charted.save(tmp_path / "saved"))
    for symbol in charted.symbols:
        pd.testing.assert_frame_equal(loaded.indicators(symbol), charted.indicators(symbol))
    assert charted.report(tmp_path / "a.html").read_bytes() == loaded.report(tmp_path / "b.html").read_bytes()


def test_a_strategy_without_indicators_draws_no_pane():
    r = busy_result()
    assert r.indicators(r.symbols[0]).columns.empty
    fig = r.plot(symbols=[r.symbols[0]])
    assert not any(getattr(fig.layout[f"yaxis{k}"].title, "text", None) == "indicators"
                   for k in range(2, 8) if f"yaxis{k}" in fig.layout)


def test_an_open_overlay_is_decided_by_backtesting_pys_rule():
    from tickstep.report.figures import _overlays

    closes = np.linspace(100.0, 200.0, 100)
    assert _overlays(closes * 1.3, closes) and not _overlays(closes * 1.5, closes)
    assert not _overlays(closes * 0.5, closes)  # an oscillator's scale
    warm = closes.copy()
    warm[:45] = np.nan  # 55% of the bars with a value near the close: not a strong majority
    assert not _overlays(warm, closes)
    warm[:35] = closes[:35]  # 65%
    assert _overlays(warm, closes)


def test_kept_indicators_start_with_the_results_prices_after_a_warm_up(charted):
    # trade_start= leaves the bars before it out of the result: the indicators too, each
    # value still the one next() read at its bar.
    start = pd.Timestamp("2021-06-01", tz="UTC")
    later = tickstep.Backtest(tickstep.data.example_daily(), Charted, cash=100_000,
                              trade_start=start).run()
    for symbol in later.symbols:
        kept = later.indicators(symbol)
        assert kept.index.equals(later.prices(symbol).index) and kept.index[0] >= start
        whole = charted.indicators(symbol)
        pd.testing.assert_frame_equal(kept, whole.loc[kept.index])


# --- the engine's own indicators --------------------------------------------------------------


def gappy_minutes(seed: int = 2) -> dict[str, pd.DataFrame]:
    """Three symbols of minute bars, about one in six missing, one symbol starting late,
    and an extra column ``signal`` with gaps (NaN)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(3):
        index = pd.date_range("2024-03-04 09:00", periods=900, freq="1min", tz="UTC")
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, len(index))))
        frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 5e-4, len(index))), "close": close,
                              "volume": rng.integers(1, 50, len(index)).astype(float)}, index=index)
        frame["high"] = frame[["open", "close"]].max(axis=1) * 1.001
        frame["low"] = frame[["open", "close"]].min(axis=1) * 0.999
        frame["signal"] = np.where(rng.random(len(index)) < 0.2, np.nan, rng.normal(0, 1, len(index)))
        keep = rng.random(len(index)) > 1 / 6
        if k == 2:
            keep &= index >= index[200]
        out[f"M{k}"] = frame[keep]
    return out


class EngineCharted(tickstep.Strategy):
    """The engine's indicators of every kind, on bars, on an extra column and on hourly
    candles, read at every bar; one is reset during the run."""

    def init(self):
        self.hour = self.timeframe("1h")
        self.lines = {
            "SMA(close, 10)": self.sma(10),
            "EMA(close, 30)": self.ema(30),
            "SMA(close, 10) (2)": self.sma(10),  # the same name: numbered
            "STD(close, 15)": self.rolling_std(15),
            "MAX(high, 20)": self.highest(20),
            "ATR(5)": self.atr(5),
            "SMA(signal, 4)": self.sma(4, source="signal"),
            "RSI(close, 3)@1h": self.rsi(3, timeframe=self.hour),
            "MIN(low, 2)@1h": self.lowest(2, timeframe=self.hour),
        }
        self.reset_one = self.sma(7)  # reset below: its values depend on when, not kept
        self.mean = self.I(SMA, self.data.Close, 10)  # beside them, in the order declared
        self.read = []

    def next(self, symbol):
        self.read.append({"symbol": symbol, "time": self.time}
                         | {name: line.value for name, line in self.lines.items()})
        if len(self.read) == 400:
            self.reset_one.reset()
        fast, slow = self.lines["SMA(close, 10)"], self.lines["EMA(close, 30)"]
        if fast.value > slow.value and not self.position:
            self.buy(size=10)
        elif fast.value < slow.value and self.position:
            self.position.close()


@pytest.fixture(scope="module")
def engine_charted():
    return tickstep.Backtest(gappy_minutes(), EngineCharted, cash=100_000, allow_nan=["signal"]).run()


ENGINE_NAMES = ["SMA(close, 10)", "EMA(close, 30)", "SMA(close, 10) (2)", "STD(close, 15)", "MAX(high, 20)",
                "ATR(5)", "SMA(signal, 4)", "RSI(close, 3)@1h", "MIN(low, 2)@1h"]


def test_a_result_keeps_the_engines_indicators_as_the_strategy_read_them(engine_charted):
    # Computed again once the run is over, bit for bit the values next() read at each
    # bar (NaN where it read NaN), the self.I line after them as declared.
    read = pd.DataFrame(engine_charted.strategy.read)
    assert len(engine_charted.trades) > 5
    for symbol in engine_charted.symbols:
        kept = engine_charted.indicators(symbol)
        assert list(kept.columns) == [*ENGINE_NAMES, "SMA(Close, 10)"]
        assert kept.index.equals(engine_charted.prices(symbol).index)
        mine = read[read["symbol"] == symbol].set_index("time")
        for name in ENGINE_NAMES:
            np.testing.assert_array_equal(kept[name].to_numpy(), mine[name].to_numpy(), err_msg=f"{symbol} {name}")
            assert kept[name].notna().sum() > len(kept) / 2, name
    # By hand, away from the run: the mean of the last ten closes, pandas' rolling mean.
    symbol = engine_charted.symbols[0]
    closes = engine_charted.prices(symbol)
    np.testing.assert_allclose(engine_charted.indicators(symbol)["SMA(close, 10)"],
                               closes.rolling(10).mean(), rtol=1e-12)


def test_the_engines_indicators_are_drawn_by_the_overlay_rule_and_saved(engine_charted, tmp_path):
    symbol = engine_charted.symbols[0]
    fig = engine_charted.plot(symbols=[symbol])
    price = next(t for t in fig.data if t.name == symbol)
    lines = {t.name: t for t in fig.data if t.name in ENGINE_NAMES}
    assert sorted(lines) == sorted(ENGINE_NAMES)
    kept = engine_charted.indicators(symbol)
    # Near the close: over the prices; an oscillator, a spread or a column's mean: below.
    below = {"STD(close, 15)", "ATR(5)", "SMA(signal, 4)", "RSI(close, 3)@1h"}
    for name, trace in lines.items():
        np.testing.assert_array_equal(np.asarray(trace.y, dtype=float), kept[name].to_numpy())
        over = (trace.xaxis, trace.yaxis) == (price.xaxis, price.yaxis)
        assert over == (name not in below), name
    loaded = tickstep.load_result(engine_charted.save(tmp_path / "saved"))
    pd.testing.assert_frame_equal(loaded.indicators(symbol), kept)


def test_the_engines_daily_indicator_on_local_midnight_bars_is_kept_as_read():
    # Daily candles of bars at New York midnight, across both changes of offset: the
    # kept values are computed on the same wall clock the run read them on.
    class Daily(tickstep.Strategy):
        def init(self):
            self.week = self.sma(2, timeframe=self.timeframe("1w"))
            self.read = []

        def next(self, symbol):
            self.read.append(self.week.value)

    days = pd.date_range("2024-01-01", "2024-12-31", freq="B").tz_localize("America/New_York")
    close = 100 + np.cumsum(np.random.default_rng(4).normal(0, 1, len(days)))
    frame = make_bars([(c, c + 1, c - 1, c) for c in close]).set_axis(days)
    result = tickstep.Backtest({"NYD": frame}, Daily, cash=1_000, timezone="America/New_York").run()
    kept = result.indicators("NYD")["SMA(close, 2)@1w"].to_numpy()
    np.testing.assert_array_equal(kept, np.array(result.strategy.read))
    assert np.isfinite(kept).sum() > 200


def test_a_result_pickled_before_its_indicators_are_read_keeps_them(engine_charted):
    # The engine's lines are computed when first read: a pickle computes them first, so
    # the copy holds the values, not the engine.
    import pickle

    fresh = tickstep.Backtest(gappy_minutes(), EngineCharted, cash=100_000, allow_nan=["signal"]).run()
    copy = pickle.loads(pickle.dumps(fresh))
    for symbol in fresh.symbols:
        pd.testing.assert_frame_equal(copy.indicators(symbol), engine_charted.indicators(symbol))


# --- backtesting.py's bt.plot() ---------------------------------------------------------------


def _traces(fig):
    return {t.name: (np.asarray(t.x, dtype=float), np.asarray(t.y, dtype=float)) for t in fig.data
            if t.type == "scatter"}


def test_backtest_plot_draws_the_latest_run_as_results_plot_does(tmp_path, monkeypatch):
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    with pytest.raises(tickstep.ConfigError, match=r"nothing has run yet: call run\(\)"):
        bt.plot()
    result = bt.run()
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    fig = bt.plot()  # no filename: nothing written, nothing opened
    assert opened == []
    want = _traces(result.plot())
    got = _traces(fig)
    assert sorted(got) == sorted(want)
    for name, (x, y) in want.items():
        np.testing.assert_array_equal(got[name][0], x)
        np.testing.assert_array_equal(got[name][1], y)
    # backtesting.py's filename= and open_browser=: the figure written, then opened.
    path = tmp_path / "plot.html"
    bt.plot(filename=path)
    assert opened == [path.resolve().as_uri()]
    assert "plotly" in path.read_text()[:100_000].lower()
    bt.plot(filename=tmp_path / "quiet.html", open_browser=False)
    assert len(opened) == 1 and (tmp_path / "quiet.html").exists()
    # results= draws another run.
    other = bt.run(fast=5)
    np.testing.assert_array_equal(_traces(bt.plot(results=result))["equity"][1], want["equity"][1])
    assert not np.array_equal(_traces(bt.plot())["equity"][1], want["equity"][1])
    assert other.equity.iloc[-1] != result.equity.iloc[-1]


def test_backtest_plot_takes_backtesting_pys_pane_options():
    bt = tickstep.Backtest(tickstep.data.example_daily(), Charted, cash=100_000)
    result = bt.run()
    symbol = result.symbols[0]
    full = _traces(bt.plot(symbols=[symbol]))
    bare = _traces(bt.plot(symbols=[symbol], plot_equity=False, plot_drawdown=False, plot_trades=False))
    account = {"equity", "peak", "buy & hold", "drawdown [%]", "exposure [%]"}
    marks = {name for name in full if name.startswith(f"{symbol} ")}
    assert account <= set(full) and marks
    assert set(bare) == set(full) - account - marks - {None}
    assert "drawdown [%]" not in _traces(bt.plot(plot_drawdown=False))
    assert "equity" in _traces(bt.plot(plot_drawdown=False))
    # resample=False draws every point; otherwise lines are cut to max_points.
    bars = len(result.prices(symbol))
    assert len(_traces(bt.plot(symbols=[symbol], max_points=100))[symbol][0]) <= 100 < bars
    assert len(_traces(bt.plot(symbols=[symbol], max_points=100, resample=False))[symbol][0]) == bars
    fig = bt.plot(plot_width=900, show_legend=False)
    assert (fig.layout.width, fig.layout.showlegend) == (900, False)


def test_backtest_plot_after_optimize_draws_the_best_set():
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    rows = bt.optimize(fast=[5, 10], slow=[20, 40], maximize="Equity Final [$]", cache=False,
                       executor="sequential")
    best = rows.iloc[0]
    alone = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000).run(
        fast=int(best["fast"]), slow=int(best["slow"]))
    drawn = _traces(bt.plot())["equity"][1]
    assert drawn[-1] == alone.equity.iloc[-1] == best["Equity Final [$]"]


@pytest.mark.parametrize(("options", "message"), [
    ({"plot_volume": False}, r"plot\(plot_volume=\): not an option of tickstep's plot"),
    ({"superimpose": "1W"}, r"plot\(superimpose=\): not an option"),
    ({"plot_width": 0}, r"plot\(plot_width=0\): a width in pixels"),
    ({"plot_width": 1.5}, r"plot\(plot_width=1.5\)"),
    ({"plot_width": True}, r"plot\(plot_width=True\)"),
    ({"resample": "4h"}, r"plot\(resample='4h'\): True or False"),
    ({"open_browser": 1}, r"plot\(open_browser=1\): True or False"),
    ({"results": "stats"}, r"plot\(results=str\): a tickstep Result"),
])
def test_backtest_plot_refuses_what_it_does_not_draw_by_name(options, message):
    bt = tickstep.Backtest(tickstep.data.example_daily(), Charted, cash=100_000)
    bt.run()
    with pytest.raises(tickstep.ConfigError, match=message):
        bt.plot(**options)


def test_a_result_pickled_by_the_version_before_loads_with_its_indicators(charted):
    # The version before kept the lines as `_indicators` in the pickled state.
    import pickle

    state = pickle.loads(pickle.dumps(charted)).__dict__.copy()
    state["_indicators"] = state.pop("_lines")
    del state["_pending_lines"]
    old = object.__new__(tickstep.Result)
    old.__setstate__(state)
    for symbol in charted.symbols:
        pd.testing.assert_frame_equal(old.indicators(symbol), charted.indicators(symbol))


def test_the_engines_indicators_take_self_is_chart_options():
    class Charting(tickstep.Strategy):
        def init(self):
            self.hidden = self.sma(5, plot=False)
            self.oscillator = self.rsi(14, overlay=True, color="red")  # over the prices, as asked
            self.mean = self.ema(20, color=["green"], scatter=True)
            self.range = self.atr(5, overlay=False)

    result = tickstep.Backtest(tickstep.data.example_daily(), Charting, cash=100_000).run()
    symbol = result.symbols[0]
    assert list(result.indicators(symbol).columns) == ["RSI(close, 14)", "EMA(close, 20)", "ATR(5)"]
    fig = result.plot(symbols=[symbol])
    price = next(t for t in fig.data if t.name == symbol)
    lines = {t.name: t for t in fig.data if t.name in ("RSI(close, 14)", "EMA(close, 20)", "ATR(5)")}
    on_price = {name for name, t in lines.items() if (t.xaxis, t.yaxis) == (price.xaxis, price.yaxis)}
    assert on_price == {"RSI(close, 14)", "EMA(close, 20)"}
    assert lines["RSI(close, 14)"].line.color == "red"
    assert lines["EMA(close, 20)"].mode == "markers" and lines["EMA(close, 20)"].marker.color == "green"


@pytest.mark.parametrize(("declare", "message"), [
    (lambda s: s.sma(5, overlay="yes"), r"sma\(overlay='yes'\): backtesting.py's chart option is True, False or None"),
    (lambda s: s.atr(5, plot=1), r"atr\(plot=1\): backtesting.py's chart option is True or False"),
    (lambda s: s.highest(5, color=3), r"highest\(color=3\): backtesting.py's chart option is a colour name"),
    (lambda s: s.ema(5, colour="red"), r"ema\(colour=\.\.\.\): not an option.*did you mean 'color'"),
])
def test_an_engine_indicators_bad_chart_option_is_refused_by_name(declare, message):
    class Bad(tickstep.Strategy):
        def init(self):
            declare(self)

    with pytest.raises(tickstep.ConfigError, match=message):
        tickstep.Backtest(tickstep.data.example_daily(), Bad, cash=100_000).run()


def test_a_streamed_results_plot_says_why_it_has_no_prices():
    # Streamed with an equity sample at every bar: keeping the closes each sample was marked
    # at would keep every bar's.
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000, stream="30D",
                           record_every_bar=True)
    result = bt.run()
    for draw in (bt.plot, result.plot, lambda: result.prices(result.symbols[0])):
        with pytest.raises(ValueError, match=r"keeps no prices: a streamed run \(stream=\) with "
                                             r"record_every_bar=True"):
            draw()


def small_walk_forward():
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000,
                           on_reject="ignore")
    return bt.walk_forward(train="365D", test="180D", warmup="60D", fast=[5, 10],
                           slow=[30, 50], maximize="Return [%]", cache=False,
                           executor="sequential")


def test_a_walk_forwards_report_holds_its_windows_statistics_and_figures(tmp_path):
    from html.parser import HTMLParser

    wf = small_walk_forward()
    path = wf.report(tmp_path / "wf.html")
    text = path.read_text()
    assert text == wf.report(tmp_path / "again.html").read_text()  # deterministic
    assert "tickstep walk-forward report" in text[:5000]
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import", text)
    specs = dict(re.findall(r'<script type="application/json" id="([^"]+)-data">(.*?)</script>', text))
    assert list(specs) == ["fig-equity", "fig-windows"]
    windows = json.loads(specs["fig-windows"])["data"]
    # Each window's objective in and out of sample, then each parameter chosen.
    assert [t["name"] for t in windows] == ["in sample", "out of sample", "fast", "slow"]
    decoded = [np.frombuffer(base64.b64decode(t["y"]["bdata"]), dtype=t["y"]["dtype"])
               if isinstance(t["y"], dict) else np.asarray(t["y"]) for t in windows]
    np.testing.assert_array_equal(decoded[1], wf.windows["out_of_sample"].to_numpy())
    np.testing.assert_array_equal(decoded[2], wf.windows["fast"].to_numpy(dtype=float))
    equity = json.loads(specs["fig-equity"])
    assert len(equity["layout"]["shapes"]) == len(wf.windows)

    class Tables(HTMLParser):
        rows: dict[str, int] = {}
        current: str | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.current = dict(attrs)["id"]
            elif tag == "tr" and self.current:
                self.rows[self.current] = self.rows.get(self.current, 0) + 1

    tables = Tables()
    tables.feed(text)
    assert tables.rows["windows"] == len(wf.windows) + 1  # a header row, then each window
    assert tables.rows["stats"] == len(wf.stats)
    assert wf.plot().layout.title.text == "walk-forward: out-of-sample equity"


def test_an_account_wiped_out_is_reported_without_a_share_of_nothing(tmp_path):
    # 200 A bought at 100 with twice the 10,000 (cash -10,000); at 50 equity is
    # -10,000 + 200 x 50 = 0: called, closed at 50, and the account holds nothing from there.
    days = [(c, c, c, c) for c in (100, 100, 50, 50, 50)]
    r = run_script({"A": make_bars(days)}, {("A", 0): lambda s, sym: s.buy(sym, size=200)},
                   cash=10_000, leverage=2, maintenance_margin=0.25)
    assert r.equity.tolist() == [10_000.0, 10_000.0, 0.0, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0 / 0, say
        table = symbol_breakdown(r)
        fig = r.plot()
        text = r.report(tmp_path / "wiped.html").read_text()
    # Worth 0 then 20,000 of 10,000; the three samples with nothing have no share.
    assert table.loc["A", "Avg. Exposure [%]"] == pytest.approx((0.0 + 200.0) / 2)
    (exposure,) = [t for t in fig.data if t.name == "exposure [%]"]
    shown = np.asarray(exposure.y, dtype=float)
    assert shown[:2].tolist() == [0.0, 200.0] and np.isnan(shown[2:]).all()
    # The days from nothing have no return: 0, 0 and -100% only.
    assert r.daily_returns().tolist() == [0.0, 0.0, -1.0]
    assert text.rstrip().endswith("</html>")  # the page written whole
