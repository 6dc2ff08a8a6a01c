"""What clients send and get back, checked by pydantic at the edge.

A batch names its strategy by the registered name only: the service never runs code or
unpickles anything a client sends. Values are JSON scalars; each parameter and engine
option is then checked against its declared default's type (`check_batch`), so ``2.7``
for an int parameter or ``"no"`` for a bool is refused with the field's name instead of
being coerced.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from tickstep.hints import did_you_mean

__all__ = [
    "BatchAccepted",
    "BatchRequest",
    "WalkForwardRequest",
    "BatchStatus",
    "Problem",
    "check_batch",
]

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class WalkForwardRequest(BaseModel):
    """A batch's walk-forward: on each train window the grid runs and the best set by
    ``maximize`` trades the next test window (`tickstep.Backtest.walk_forward`)."""

    model_config = ConfigDict(extra="forbid")

    train: StrictStr = Field(max_length=40, description="Train window length: a duration "
                             "such as '365D' or '6h'.")
    test: StrictStr = Field(max_length=40, description="Test window length; test windows "
                            "follow each other without overlap.")
    warmup: StrictStr | None = Field(None, max_length=40, description="Bars before each "
                                     "window fed to indicators, the strategy not called.")
    anchored: StrictBool = Field(False, description="Train windows all start at the first "
                                 "one's start (growing).")


class BatchRequest(BaseModel):
    """``POST /batches``: one strategy over symbols x parameter sets."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=200,
                          description="A registered strategy name (see GET /strategies).")
    params: dict[str, Scalar | list[Scalar]] | list[dict[str, Scalar]] | None = Field(
        None, description="A grid {name: [values]} (every combination) or a list of "
        "parameter sets; none: the strategy's defaults.")
    max_tries: StrictInt | StrictFloat | None = Field(
        None, description="A random search: that many of the parameter sets (a whole number), "
        "or that fraction of them (in (0, 1]), drawn without replacement; none: every set.")
    random_state: StrictInt = Field(0, ge=0, description="The search's seed: the same "
                                    "one draws the same parameter sets.")
    method: Literal["grid", "optuna"] = Field(
        "grid", description="How the parameter sets are chosen: grid (every set, or max_tries "
        "of them drawn at random) or optuna (a model-based search of max_tries sets for each "
        "symbol group, optuna's TPE sampler seeded by random_state, by maximize).")
    round_size: StrictInt | None = Field(None, ge=1, description="With method optuna: the "
                                         "sets proposed at a time (8 by default).")
    maximize: (Annotated[StrictStr, Field(max_length=100)]
               | Annotated[list[Annotated[StrictStr, Field(max_length=100)]], Field(max_length=8)]
               | Annotated[dict[Annotated[StrictStr, Field(max_length=100)],
                                Literal["max", "min"]], Field(max_length=8)]) = Field(
        "Sharpe Ratio", description="The statistic a model-based search maximizes, and a "
        "walk-forward chooses by; or several (a list, each maximized, or {statistic: 'max' "
        "or 'min'}): a multi-objective search, and the results' Pareto Rank column (each "
        "symbol group ranked by Pareto dominance; see tickstep.batch.objectives).")
    walk_forward: WalkForwardRequest | None = Field(
        None, description="Walk forward instead: each symbol group (each symbol alone, all "
        "of them with portfolio, or the named groups) walks forward over the grid; the "
        "batch's jobs are its walk-forwards, its rows each test window's run (GET "
        "/batches/{id}/walk-forward has the windows and the stitched statistics).")
    symbols: list[StrictStr] | dict[str, list[StrictStr]] | None = Field(
        None, description="Symbols (each its own backtest), or named groups {name: [symbols]} "
        "(one portfolio each); none: every symbol of the store.")
    portfolio: bool = Field(False, description="All symbols in one backtest.")
    parallel: bool = Field(True, description="Worker processes (false: one after another).")
    cache: bool = Field(True, description="Answer from, and add to, the results cache "
                        "(false: compute every job and keep nothing there).")
    returns: bool = Field(False, description="Keep each run's daily returns (GET "
                          "/runs/{id}/returns): then GET /batches/{id}/overfitting and "
                          "/reality-check judge whether the best set's edge is luck, and "
                          "the batch's report says so. Not with walk_forward.")
    start: datetime | date | None = Field(None, description="First time used (inclusive).")
    end: datetime | date | None = Field(None, description="Last time used (inclusive).")
    options: dict[str, Scalar | list[StrictStr] | dict[str, StrictInt | StrictFloat]
                  | dict[str, dict[str, StrictInt | StrictFloat]]] = Field(
        default_factory=dict, description="Engine options: cash, commission, slippage, ...; "
        "commission_by_symbol and margin_by_symbol as {symbol: {part: number}} (margin as "
        "leverage and maintenance_margin, or initial_margin_per_unit and "
        "maintenance_margin_per_unit); multiplier "
        "as a number or {symbol: number}; borrow_rate_by_symbol and slippage_by_symbol as {symbol: number}; "
        "shortable as true, false or a list of symbols.")
    data: str | None = Field(None, max_length=500, description="A store file inside the "
                             "service's data directory (default: the service's store).")
    regular_hours: bool = Field(False, description="Only bars inside exchange sessions.")
    timeframe: str | None = Field(None, max_length=20, description="Resample to this bar length.")


class BatchAccepted(BaseModel):
    batch_id: str
    status: str
    jobs_total: int
    location: str


class BatchStatus(BaseModel):
    batch_id: str
    strategy: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    jobs_done: int
    jobs_total: int
    jobs_cached: int
    jobs_failed: int = Field(0, description="Runs (of those done) that raised or killed "
                             "their worker: their rows' status is not 'ok'.")
    runs_with_rejections: int = Field(0, description="Runs (of those done) with orders the "
                                      "broker rejected: their rows' '# Orders Rejected'.")
    orders_rejected: int = Field(0, description="Orders rejected in all those runs.")
    rate: float | None = Field(None, description="Jobs per second.")
    seconds_left: float | None = None
    error: str | None = None
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None


class Problem(ValueError):
    """A request refused after parsing: where (a location like FastAPI's) and why."""

    def __init__(self, loc: tuple[str | int, ...], msg: str, status: int = 422) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.status = status

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": list(self.loc), "msg": self.msg, "type": "value_error"}]


def _hint(name: str, known: list[str]) -> str:
    return did_you_mean(name, known)


def _check_value(loc: tuple[str | int, ...], value: Any, default: Any) -> None:
    """``value`` must have the type of ``default`` (an int may stand for a float)."""
    name = loc[-1]
    if isinstance(value, float) and not math.isfinite(value):
        raise Problem(loc, f"{name}: {value!r} is not a finite number")
    if default is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        want = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        want = "a string"
    else:
        raise Problem(loc, f"{name} cannot be set over HTTP (its default is {default!r})")
    if not ok:
        raise Problem(loc, f"{name}: expected {want} like its default {default!r}, got {value!r}")


def check_params(cls: type, params: Any) -> int:
    """Names and types of the parameter sets; returns how many sets there are."""
    defaults = cls.parameters()
    known = list(defaults)
    sets = params if isinstance(params, list) else [params] if params is not None else []
    count = 1
    if isinstance(params, dict):
        for values in params.values():
            count *= len(values) if isinstance(values, list) else 1
    elif isinstance(params, list):
        count = len(params)
    for i, one in enumerate(sets):
        base: tuple[str | int, ...] = ("body", "params") if isinstance(params, dict) else ("body", "params", i)
        for name, values in one.items():
            if name not in defaults:
                raise Problem((*base, name), f"{cls.__name__} has no parameter {name!r}"
                              f"{_hint(name, known)} (parameters: {', '.join(known) or 'none'})")
            if isinstance(values, list):
                if not values:
                    raise Problem((*base, name), f"{name}: no values to try")
                for v in values:
                    _check_value((*base, name), v, defaults[name])
            else:
                _check_value((*base, name), values, defaults[name])
    return count


def check_options(options: dict[str, Any]) -> None:
    from tickstep.service.options import ENGINE_DEFAULTS, FLAG_OR_SYMBOLS

    known = list(ENGINE_DEFAULTS)
    for name, value in options.items():
        if name not in ENGINE_DEFAULTS:
            raise Problem(("body", "options", name), f"unknown engine option {name!r}"
                          f"{_hint(name, known)} (options: {', '.join(known)})")
        if isinstance(value, list) and name in FLAG_OR_SYMBOLS:
            continue  # the symbols: the config's rule checks them
        _check_value(("body", "options", name), value, ENGINE_DEFAULTS[name])
    from tickstep import ConfigError
    from tickstep.service.options import check_config

    try:
        check_config(options)
    except ConfigError as exc:
        name = next((n for n in options if str(exc).startswith(f"{n}=")), None)
        raise Problem(("body", "options", *([name] if name else [])), str(exc)) from None


def inside(directory: Path, requested: str, loc: tuple[str | int, ...]) -> Path:
    """``requested`` (a relative path) resolved inside ``directory``, or a refusal."""
    if "\x00" in requested or "://" in requested:
        raise Problem(loc, "must name a file inside the service's data directory")
    candidate = Path(requested)
    if candidate.is_absolute():
        raise Problem(loc, "must be a path relative to the service's data directory")
    root = directory.resolve()
    full = (root / candidate).resolve()
    if not full.is_relative_to(root):
        raise Problem(loc, f"{requested!r} is outside the service's data directory")
    if not full.is_file():
        raise Problem(loc, f"no store {requested!r} in the service's data directory")
    return full


def check_batch(req: BatchRequest, *, store_symbols: list[str], max_jobs: int,
                max_symbols: int) -> tuple[type, int]:
    """Everything pydantic cannot know: the strategy, parameter and option names and
    types, the symbols, and the size limits. Returns (strategy class, number of jobs)."""
    from tickstep.strategies import UnknownStrategyError, available, load

    try:
        cls = load(req.strategy)
    except UnknownStrategyError as exc:
        raise Problem(("body", "strategy"), str(exc)) from None
    except (ImportError, TypeError) as exc:
        known = ", ".join(available())
        raise Problem(("body", "strategy"), f"strategy {req.strategy!r} cannot be loaded: {exc} "
                      f"(available: {known})") from None
    sets = check_params(cls, req.params)
    if sets == 0:
        raise Problem(("body", "params"), "no parameter set to run")
    sets = _tried(sets, req.max_tries, req.random_state)
    _check_search(req)
    if req.walk_forward is not None:
        _check_walk_forward(req)
        if req.returns:
            raise Problem(("body", "returns"), "returns: not with walk_forward (its runs are "
                          "test windows, each its own days: their returns judge no choice "
                          "among sets); leave it out, or run the grid without walk_forward")
    check_options(req.options)
    known = set(store_symbols)
    if isinstance(req.symbols, dict):
        groups = req.symbols
        named = [s for g in groups.values() for s in g]
        for label, members in groups.items():
            if not members:
                raise Problem(("body", "symbols", label), f"symbol group {label!r} is empty")
        n_groups = len(groups)
    elif isinstance(req.symbols, list):
        if not req.symbols:
            raise Problem(("body", "symbols"), "empty: leave it out for every symbol of the store")
        named = req.symbols
        n_groups = 1 if req.portfolio else len(set(named))
    else:
        named = []
        n_groups = 1 if req.portfolio else len(store_symbols)
    if len(set(named)) > max_symbols:
        raise Problem(("body", "symbols"), f"{len(set(named))} symbols; the limit is {max_symbols}")
    unknown = sorted(set(named) - known)
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:10])
        raise Problem(("body", "symbols"), f"not in the store: {shown}"
                      + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
    # A walk-forward batch's jobs are its walk-forwards (each runs its grid on every train
    # window); the limit bounds the runs one window's grid makes for all groups.
    jobs = n_groups * sets
    if jobs > max_jobs:
        raise Problem(("body", "params"), f"the batch has {jobs:,} jobs (symbol groups x "
                      f"parameter sets); the limit is {max_jobs:,}", status=422)
    if req.start is not None and req.end is not None and _ts(req.start) > _ts(req.end):
        raise Problem(("body", "start"), f"start {req.start} is after end {req.end}")
    return cls, n_groups if req.walk_forward is not None else jobs


def _check_search(req: BatchRequest) -> None:
    """``maximize`` and ``method`` by the rules of `tickstep.batch.run_batch`."""
    from tickstep import ConfigError
    from tickstep.batch.objectives import Objective
    from tickstep.batch.search import search_of

    try:
        objective = Objective(req.maximize)
    except ConfigError as exc:
        raise Problem(("body", "maximize"), str(exc)) from None
    if objective.several and req.walk_forward is not None:
        raise Problem(("body", "maximize"), "a walk-forward trades one set per test window, "
                      "the best by one statistic; give one")
    if req.method == "grid" and req.round_size is None:
        return  # the grid's sets were counted (and max_tries checked) by `_tried`
    try:
        search_of(req.method, req.params, None, req.max_tries, req.random_state, lambda p: p,
                  req.round_size, objective.directions)
    except (ConfigError, ImportError) as exc:
        field = "round_size" if str(exc).startswith("round_size=") else "method"
        raise Problem(("body", field), str(exc)) from None


def _check_walk_forward(req: BatchRequest) -> None:
    """A walk-forward needs a grid to choose from, and durations it can plan windows by
    (`tickstep.walkforward.plan_windows`'s rule for a span)."""
    from tickstep.walkforward import _span

    spec = req.walk_forward
    assert spec is not None
    if not isinstance(req.params, dict) or not any(isinstance(v, list) and len(v) > 1
                                                    for v in req.params.values()):
        raise Problem(("body", "params"), "a walk-forward chooses among parameter sets: give "
                      "a grid {name: [values]} with at least one parameter of two values or more")
    for name in ("train", "test", "warmup"):
        value = getattr(spec, name)
        if value is None:
            continue
        try:
            _span(value, name)
        except (TypeError, ValueError) as exc:
            raise Problem(("body", "walk_forward", name), str(exc)) from None


def _tried(sets: int, max_tries: int | float | None, random_state: int) -> int:
    """How many of ``sets`` parameter sets a random search of ``max_tries`` runs, by
    the one rule of `tickstep.batch.sample_sets`, refused at ``max_tries`` by it."""
    from tickstep import ConfigError
    from tickstep.batch import sample_sets

    try:
        return len(sample_sets(list(range(sets)), max_tries, random_state))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise Problem(("body", "max_tries"), str(exc)) from None


def _ts(value: datetime | date) -> datetime:
    import pandas as pd

    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
