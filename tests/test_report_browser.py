"""The HTML report opened in a real headless Chromium (Debian's), driven by Selenium.

No console errors, every figure drawn (each trace of its spec present in the SVG, and a
screenshot of each figure that is not blank), the statistics table equal to
``result.stats``, nothing loaded from the network. Without a browser these tests FAIL
with the command that installs one: a skipped browser test would pass unseen.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import tickstep
from test_report_runs import Busy, busy_result
from tickstep.metrics import format_stat

INSTALL = ("apt-get install -y chromium chromium-driver  (Debian's headless Chromium and its "
           "WebDriver; .ci/run installs them)")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:  # pragma: no cover - selenium is in the dev extra
        pytest.fail(f"selenium is not installed ({e}): pip install -e '.[dev]'")
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail(f"the report's browser tests need Chromium and chromedriver: {INSTALL}")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_report(browser, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # forget what earlier pages logged
    browser.get(path.resolve().as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script(
            "return document.body.dataset.figuresRendered || document.body.dataset.figuresError"
        )
    )
    error = browser.execute_script("return document.body.dataset.figuresError || null")
    assert error is None, f"the report's figures failed: {error}"


def console_errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def figure_specs(path: Path) -> dict[str, dict]:
    """The figure specs embedded in the report, by figure id."""
    from html.parser import HTMLParser

    specs: dict[str, dict] = {}

    class Reader(HTMLParser):
        current: str | None = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "script" and attrs.get("type") == "application/json":
                self.current = attrs["id"].removesuffix("-data")

        def handle_data(self, data):
            if self.current:
                specs[self.current] = json.loads(data)
                self.current = None

    Reader().feed(path.read_text())
    return specs


def not_blank(png: bytes) -> float:
    """Share of a screenshot's pixels that are not the page's white."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return 1.0 - sum(histogram[245:]) / sum(histogram)


def check_report(browser, result: tickstep.Result, path: Path, figures: list[str]) -> None:
    open_report(browser, path)
    assert console_errors(browser) == []

    # Nothing came from the network: every resource is the file itself or made in place.
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [u for u in urls if not u.startswith(("file:", "data:", "blob:"))] == []

    specs = figure_specs(path)
    divs = browser.find_elements("css selector", "div.figure")
    assert [d.get_attribute("id") for d in divs] == figures
    assert sorted(specs) == sorted(figures)
    for div in divs:
        fig_id = div.get_attribute("id")
        assert div.get_attribute("data-rendered") == "true", fig_id
        drawn = browser.execute_script(
            "return arguments[0].querySelectorAll("
            "'.scatterlayer .trace, .barlayer .trace, .heatmaplayer .hm').length", div
        )
        assert drawn == len(specs[fig_id]["data"]), fig_id
        browser.execute_script("arguments[0].scrollIntoView()", div)
        # An undrawn div is all white; axes, labels and marks make a drawn one far from it.
        assert not_blank(div.screenshot_as_png) > 0.005, f"{fig_id} looks blank"

    rows = browser.find_elements("css selector", "table#stats tr")
    shown = [(r.find_element("css selector", "td.label").text,
              r.find_elements("css selector", "td")[1].text) for r in rows]
    assert shown == [(str(k), format_stat(str(k), v)) for k, v in result.stats.items()]


def test_busy_report_in_a_browser(browser, tmp_path):
    result = busy_result()
    path = result.report(tmp_path / "report.html")
    check_report(browser, result, path,
                 ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"])
    by_symbol = browser.find_elements("css selector", "table#by-symbol tbody tr")
    assert len(by_symbol) == len(result.symbols)
    sectors = browser.find_elements("css selector", "table#by-sector tbody tr")
    assert len(sectors) == result.metadata["sector"].nunique()
    rejected = browser.find_elements("css selector", "table#rejected tbody tr")
    assert len(rejected) == (result.orders["status"] == "rejected").sum() > 0
    params = browser.find_elements("css selector", "table#params td.label")
    assert [p.text for p in params] == list(result.params)


class Idle(tickstep.Strategy):
    """Never trades: no trades, no fills, no rejections, no sectors."""


def test_report_of_a_run_without_trades_in_a_browser(browser, tmp_path):
    bt = tickstep.Backtest(tickstep.data.example_daily(), Idle, cash=50_000)
    result = bt.run()
    result.metadata = None
    path = result.report(tmp_path / "idle.html", symbols=[])
    check_report(browser, result, path, ["fig-equity", "fig-monthly", "fig-trades"])
    assert browser.find_elements("css selector", "#rejected-none")
    assert not browser.find_elements("css selector", "table#by-sector")


def test_minute_bars_report_in_a_browser(browser, tmp_path):
    # Every bar recorded: the lines are downsampled, the page still draws everything.
    data = tickstep.data.sample(symbols=3, days=10, seed=3)
    bt = tickstep.Backtest(data, Busy, cash=100_000,
                           record_every_bar=True)
    result = bt.run(cycle=400)
    path = result.report(tmp_path / "minutes.html", max_points=1500)
    check_report(browser, result, path, ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"])


def test_a_report_with_indicators_in_a_browser(browser, tmp_path):
    # Lines over the prices and a pane below each symbol's prices: every trace drawn.
    from test_report import Charted

    result = tickstep.Backtest(tickstep.data.example_daily(), Charted, cash=100_000).run()
    path = result.report(tmp_path / "charted.html", symbols=list(result.symbols[:2]))
    check_report(browser, result, path, ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"])
    names = [t.get("name") for t in figure_specs(path)["fig-prices"]["data"]]
    assert names.count("RSI(Close, 14)") == 2


def test_a_walk_forwards_report_in_a_browser(browser, tmp_path):
    from test_report import small_walk_forward

    wf = small_walk_forward()
    path = wf.report(tmp_path / "wf.html")
    check_report(browser, wf, path, ["fig-equity", "fig-windows"])
    rows = browser.find_elements("css selector", "table#windows tbody tr")
    assert len(rows) == len(wf.windows)


def test_a_streamed_runs_report_in_a_browser(browser, tmp_path):
    # A streamed run keeps the closes its equity was marked at: its report draws every
    # figure, prices and fills included.
    data = tickstep.data.sample(symbols=3, days=10, seed=3)
    result = tickstep.Backtest(data, Busy, cash=100_000, stream="2D").run(cycle=400)
    path = result.report(tmp_path / "streamed.html")
    check_report(browser, result, path, ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"])


def test_optimisation_report_in_a_browser(browser, tmp_path):
    # Two objectives and the daily returns: the best sets, the heatmap, the Pareto front
    # and "Is it luck?", drawn offline without a console error.
    import warnings

    from tickstep.report import write_optimization_report
    from tickstep.strategies import SmaCross

    both = ["Return [%]", "Max. Drawdown [%]"]
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(fast=[5, 10, 20, 40], slow=[50, 100, 150], returns=True,
                           cache=False, maximize=both)
    path = write_optimization_report(rows, tmp_path / "optimisation.html", maximize=both,
                                     reps=200)
    open_report(browser, path)
    assert console_errors(browser) == []
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in urls if not u.startswith(("file:", "data:", "blob:"))] == []
    specs = figure_specs(path)
    divs = browser.find_elements("css selector", "div.figure")
    assert [d.get_attribute("id") for d in divs] == ["fig-heatmap", "fig-pareto"]
    for div in divs:
        fig_id = div.get_attribute("id")
        assert div.get_attribute("data-rendered") == "true", fig_id
        drawn = browser.execute_script(
            "return arguments[0].querySelectorAll("
            "'.scatterlayer .trace, .heatmaplayer .hm').length", div)
        assert drawn == len(specs[fig_id]["data"]), fig_id
        browser.execute_script("arguments[0].scrollIntoView()", div)
        assert not_blank(div.screenshot_as_png) > 0.005, f"{fig_id} looks blank"
    best = browser.find_elements("css selector", "table#best tbody tr")
    assert [int(r.find_element("css selector", "td.label").text) for r in best] == \
        list(rows.index[:12])
    luck = {r.find_elements("css selector", "td")[0].text: r.find_elements("css selector", "td")[1].text
            for r in browser.find_elements("css selector", "table#luck-table tbody tr")}
    from tickstep.significance import backtest_overfitting, reality_check

    assert luck["probability of backtest overfitting"] == \
        f"{backtest_overfitting(rows, 16).probability:.3f}"
    assert luck["reality check p-value (no set beats cash)"] == \
        f"{reality_check(rows, reps=200, seed=0).pvalue:.3f}"


def test_a_report_with_payments_in_a_browser(browser, tmp_path):
    # Dividends, borrow fees, funding and interest on cash: the by-symbol table shows each
    # symbol's P&L with them, and the line under it the account's interest.
    from test_payments import busy_data, signals_run
    from tickstep.report import symbol_breakdown

    result = signals_run(busy_data(seed=11))
    path = result.report(tmp_path / "paid.html", symbols=["A"])
    check_report(browser, result, path, ["fig-equity", "fig-prices", "fig-monthly", "fig-trades"])
    table = browser.find_element("css selector", "table#by-symbol")
    head = [th.text for th in table.find_elements("css selector", "thead th")]
    assert {"P&L [$]", "Dividends [$]", "Carrying Costs [$]"} <= set(head)
    expected = symbol_breakdown(result)
    for row in table.find_elements("css selector", "tbody tr"):
        cells = [td.text for td in row.find_elements("css selector", "td")]
        shown = dict(zip(head[1:], cells[1:]))
        for column in ("P&L [$]", "Carrying Costs [$]"):
            assert shown[column] == format_stat(column, expected.loc[cells[0], column])
    note = browser.find_element("css selector", "p#interest").text
    assert format_stat("Carrying Costs [$]", -result.interest) in note
