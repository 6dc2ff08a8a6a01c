"""One stored run again, in full: its trades, equity curve or HTML report.

A batch keeps only each run's statistics; the details come from running that one
backtest again (the engine is deterministic: same data, code and parameters give the
same result). The service calls `run_details` in a worker process, never on its event
loop.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_options_of", "run_details", "symbols_of"]


def load_options_of(request: dict[str, Any]) -> dict[str, Any]:
    """The load options a stored request names (``regular_hours``, ``timeframe``)."""
    options: dict[str, Any] = {}
    if request.get("regular_hours"):
        options["regular_hours"] = True
    if request.get("timeframe"):
        options["timeframe"] = request["timeframe"]
    return options


def symbols_of(request: dict[str, Any], label: str) -> list[str] | None:
    """The symbols a run's label stands for in its batch: a group's members, every
    requested symbol for ``"portfolio"``, or the symbol itself."""
    symbols = request.get("symbols")
    if isinstance(symbols, dict):
        return list(symbols[label])
    if request.get("portfolio"):
        return list(symbols) if symbols else None
    return [label]


def run_details(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one backtest from plain values; the result's statistics, trades, equity (each
    sample with the buy-and-hold basket's value, `tickstep.Result.buy_and_hold`, and the
    cash held in the benchmark when the run had one, `tickstep.Result.benchmark_equity`),
    its breakdown by symbol (`tickstep.report.symbol_breakdown`, a row each) and the
    account's interest on its cash (`tickstep.Result.interest`) as JSON values, or, with
    ``spec["report"]`` (a path), write its HTML report there."""
    import tickstep
    from tickstep.report.tables import symbol_breakdown
    from tickstep.service.rows import jsonable
    from tickstep.strategies import load

    store = tickstep.data.open_store(spec["store"], read_only=True)
    try:
        bt = tickstep.Backtest(store, load(spec["strategy"]), symbols=spec.get("symbols"),
                               start=spec.get("start"), end=spec.get("end"),
                               **spec.get("options", {}), **load_options_of(spec))
        result = bt.run(**spec.get("params", {}))
    finally:
        store.close()
    if spec.get("report"):
        result.report(spec["report"])
        return {"report": spec["report"]}
    trades = result.trades.copy()
    equity = result.equity.reset_index()
    equity["buy_and_hold"] = result.buy_and_hold().to_numpy()
    if result.options.get("benchmark") is not None:
        equity["benchmark"] = result.benchmark_equity().to_numpy()
    return {
        "stats": jsonable(dict(result.stats.items())),
        "trades": jsonable(trades.to_dict(orient="records")),
        "equity": jsonable(equity.to_dict(orient="records")),
        "symbols": jsonable(symbol_breakdown(result).reset_index().to_dict(orient="records")),
        "interest": result.interest,
    }
