"""A walk-forward batch: each symbol group walks forward over the grid.

``POST /batches`` with ``"walk_forward": {"train": ..., "test": ...}``: the runner walks
each group forward in turn (`tickstep.Backtest.walk_forward`, its train grids on the
batch's executor and through the results cache), stores each test window's run as a row
of the batch (the set chosen, that window's statistics) and each group's windows and
stitched statistics (`RunsDB.put_walk_forward`). A group that cannot walk forward (no
window fits its bars) is a failed row naming why; the others go on.

What is not stored is made again on demand, as a run's details are: a group's HTML
report walks it forward again (the train grids answered from the results cache), and a
window's trades run that window's test again over its bars.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

__all__ = ["groups_of", "run_walk_forwards", "walk_forward_of", "walk_forward_report", "window_spec"]


def groups_of(request: dict[str, Any], store_symbols: list[str]) -> dict[str, list[str]]:
    """The batch's symbol groups by label, as `tickstep.batch.run_batch` makes them: the
    named groups, all the symbols as ``"portfolio"``, or each symbol alone."""
    symbols = request.get("symbols")
    if isinstance(symbols, dict):
        return {label: list(members) for label, members in symbols.items()}
    chosen = list(symbols) if symbols else list(store_symbols)
    if request.get("portfolio"):
        return {"portfolio": chosen}
    return {s: [s] for s in dict.fromkeys(chosen)}


def walk_forward_of(request: dict[str, Any], store: Any, symbols: list[str], *,
                    executor: Any = "sequential", max_workers: int | None = None) -> Any:
    """The walk-forward of ``symbols`` as the stored ``request`` asks, over the open
    ``store`` (a `tickstep.walkforward.WalkForwardResult`)."""
    import tickstep
    from tickstep.service.details import load_options_of
    from tickstep.strategies import load

    spec = request["walk_forward"]
    bt = tickstep.Backtest(store, load(request["strategy"]), symbols=symbols,
                           start=request.get("start"), end=request.get("end"),
                           **(request.get("options") or {}), **load_options_of(request))
    return bt.walk_forward(
        train=spec["train"], test=spec["test"], warmup=spec.get("warmup"),
        anchored=bool(spec.get("anchored")), maximize=request.get("maximize", "Sharpe Ratio"),
        method=request.get("method", "grid"), round_size=request.get("round_size"),
        max_tries=request.get("max_tries"),
        random_state=request.get("random_state", 0), executor=executor,
        max_workers=max_workers, cache=bool(request.get("cache", True)),
        **(request.get("params") or {}))


def run_walk_forwards(db: Any, batch_id: str, request: dict[str, Any], *, executor: Any,
                      workers: int | None) -> None:
    """Walk every group forward in turn, storing as each finishes: its windows' test runs
    (rows of the batch, numbered on from the groups before) and its walk-forward."""
    import traceback

    import tickstep
    from tickstep.service.rows import jsonable

    strategy = request["strategy"]
    db.update_batch(batch_id, only_if=("running",), jobs_done=0)  # walk-forwards, not runs
    store = tickstep.data.open_store(request["store"], read_only=True)
    try:
        groups = groups_of(request, [str(s) for s in store.symbols().index])
        job = 0
        for position, (label, symbols) in enumerate(groups.items()):
            started = time.perf_counter()
            try:
                wf = walk_forward_of(request, store, symbols, executor=executor,
                                     max_workers=workers)
            except Exception as exc:
                text = "".join(traceback.format_exception(exc)).rstrip()
                db.add_runs(batch_id, strategy, [{
                    "job": job, "params": {}, "symbols": label, "stats": {},
                    "run_time": time.perf_counter() - started, "status": "error",
                    "error": f"the walk-forward of {label} failed: {text}"}])
                db.put_walk_forward(batch_id, label, position, [], {})
                job += 1
            else:
                windows = wf.windows.reset_index()
                if len(windows) != len(wf.results):  # one test run per window, in order
                    raise AssertionError("a walk-forward's windows and test runs differ")
                seconds = (time.perf_counter() - started) / max(1, len(windows))
                rows, described = [], []
                for record, result in zip(windows.to_dict(orient="records"), wf.results):
                    chosen = {name: record[name] for name in wf.parameters}
                    rows.append({"job": job, "params": jsonable(chosen), "symbols": label,
                                 "stats": dict(result.stats.items()), "run_time": seconds,
                                 "status": "ok", "error": None})
                    described.append(jsonable({**record, "job": job}))
                    job += 1
                db.add_runs(batch_id, strategy, rows)
                db.put_walk_forward(batch_id, label, position, described,
                                    jsonable(dict(wf.stats.items())))
            db.update_batch(batch_id, only_if=("running",), jobs_done=position + 1)
    finally:
        store.close()


def walk_forward_report(request: dict[str, Any], symbols: list[str], path: str) -> str:
    """Walk one group of a stored walk-forward batch forward again (its train grids from
    the results cache) and write its HTML report to ``path``."""
    import tickstep

    store = tickstep.data.open_store(request["store"], read_only=True)
    try:
        walk_forward_of(request, store, symbols).report(path)
    finally:
        store.close()
    return path


def window_spec(request: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """What runs one window's test again (`tickstep.service.details.run_details`): its
    bars from ``warmup`` before the test window's start to its end (exclusive), trading
    from its start, as the walk-forward ran it."""
    spec = request["walk_forward"]
    start = pd.Timestamp(window["test_start"])
    lead = pd.Timedelta(spec["warmup"]) if spec.get("warmup") else pd.Timedelta(0)
    end = pd.Timestamp(window["test_end"]) - pd.Timedelta(1, "ns")
    options = dict(request.get("options") or {})
    options["trade_start"] = start.isoformat()
    return {"start": (start - lead).isoformat(), "end": end.isoformat(), "options": options}

