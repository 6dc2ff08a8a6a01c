"""Which parameter sets a batch runs: the grid (every set the constraint keeps, or a
random draw of them), or a model-based search that proposes sets in rounds, learning from
the objective of the sets run before.

A batch asks its search for a round of sets, runs them (with the results cache, on the
executor's workers), tells the search each set's objective, and asks again until the
search has no more. The grid answers once with all its sets. The model-based search
(``method="optuna"``) is optuna's: its sampler (TPE by default, seeded by
``random_state``) proposes ``ROUND`` sets at a time (or ``round_size``: a cluster of many
workers wants larger rounds, at some cost to how closely the model follows), so the same
seed proposes the same sets on any machine, whatever its cores, and a search run again is
answered from the results cache set by set.

How the grid is shown to the sampler: a parameter whose values are whole numbers in
steps (``range(5, 50, 5)``) is an integer from the first to the last value in that step;
other numbers are ordinal, the rank of the value among those given; anything else is a
category. A proposal the constraint refuses is told as pruned (the sampler learns to
avoid it); one already run is told as failed and not run again (its row is the first
run's). When a round's proposals bring a round's worth of refusals or repeats, it is filled
with sets not yet run, drawn at random with the same seed, so a search always runs its
``max_tries`` sets (or all the constraint keeps, if fewer).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tickstep._core import ConfigError
from tickstep.batch.jobs import Params, expand_grid, grid_axes, indexed_grid, sample_sets, tries_of

__all__ = ["ROUND", "GridSearch", "ModelSearch", "option_of", "search_of"]

#: Sets a model-based search proposes before it is told how they did. Fixed, not the
#: machine's cores: the proposals depend on it, and a seed must give the same search
#: everywhere. Eight keep two to eight workers busy and the model close behind.
ROUND = 8


class GridSearch:
    """Every set of the grid the constraint keeps (or ``max_tries`` of them drawn at
    random), in one round."""

    def __init__(self, sets: list[dict[str, Any]]) -> None:
        self.total = len(sets)
        self._sets: list[dict[str, Any]] | None = sets

    def propose(self) -> list[dict[str, Any]]:
        sets, self._sets = self._sets or [], None
        return sets

    def tell(self, values: Sequence[float | tuple[float, ...] | None]) -> None:
        """The grid learns nothing from how its sets did."""

    @property
    def study(self) -> None:
        return None


class _Axis:
    """One varied parameter as the sampler sees it: ``suggest`` draws a position along
    the axis (an index into the values given), ``encode`` is a position as the sampler
    would have drawn it (for the sets the search adds itself)."""

    def __init__(self, name: str, values: list[Any]) -> None:
        self.name = name
        n = len(values)
        numbers = all(isinstance(v, (int, float, np.integer, np.floating))
                      and not isinstance(v, (bool, np.bool_)) and math.isfinite(v) for v in values)
        whole = numbers and all(isinstance(v, (int, np.integer)) for v in values)
        steps = {int(b) - int(a) for a, b in zip(values, values[1:])} if whole else set()
        if whole and len(steps) == 1 and next(iter(steps)) > 0:
            # range(5, 50, 5): the sampler draws the values themselves.
            self.kind, self.low, self.step = "int", int(values[0]), steps.pop()
            self.high = int(values[-1])
        elif numbers and len(set(values)) == n:
            # Ordered, unevenly spaced: the sampler draws the rank of the value.
            self.kind = "rank"
            self.order = sorted(range(n), key=lambda i: values[i])
            self.rank_of = {i: r for r, i in enumerate(self.order)}
        else:
            self.kind = "category"
            self.n = n

    def suggest(self, trial: Any) -> int:
        if self.kind == "int":
            return (trial.suggest_int(self.name, self.low, self.high, step=self.step)
                    - self.low) // self.step
        if self.kind == "rank":
            return self.order[trial.suggest_int(self.name, 0, len(self.order) - 1)]
        return int(trial.suggest_categorical(self.name, list(range(self.n))))

    def encode(self, position: int) -> int:
        if self.kind == "int":
            return self.low + position * self.step
        if self.kind == "rank":
            return self.rank_of[position]
        return position


@contextmanager
def _optuna_quietly() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns its features are experimental; a
    search's rows say what it did. The user's own settings are restored after."""
    import optuna

    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)


class ModelSearch:
    """Optuna's sampler over the grid's sets (see the module notes): ``total`` sets in
    rounds of ``round_size``, the study kept as ``study``; ``directions``: optuna's, one
    per objective (several make a multi-objective study, its front ``study.best_trials``)."""

    def __init__(self, grid: list[tuple[tuple[int, ...], dict[str, Any]]],
                 axes: Mapping[str, list[Any]], tries: int, sampler: Any,
                 random_state: int, round_size: int = ROUND,
                 directions: Sequence[str] = ("maximize",)) -> None:
        import optuna

        self.total = min(tries, len(grid))
        self._round = round_size
        self._sets = {at: p for at, p in grid}
        # Only the varied parameters are the sampler's; a fixed one is at position 0.
        self._axes = [(k, _Axis(name, values)) for k, (name, values) in enumerate(axes.items())
                      if len(values) > 1]
        self._width = len(axes)
        self._seen: set[tuple[int, ...]] = set()
        self._asked: list[tuple[Any, tuple[int, ...]]] = []
        self._rng = np.random.default_rng(random_state)
        self._spares: Iterator[tuple[int, ...]] | None = None
        with _optuna_quietly():
            self.study = optuna.create_study(directions=list(directions), sampler=sampler)

    def _position(self, trial: Any) -> tuple[int, ...]:
        at = [0] * self._width
        for k, axis in self._axes:
            at[k] = axis.suggest(trial)
        return tuple(at)

    def _spare(self) -> tuple[int, ...]:
        """A set not run yet, drawn at random (the seed's order of the grid)."""
        if self._spares is None:
            keys = list(self._sets)
            self._spares = (keys[i] for i in self._rng.permutation(len(keys)))
        for at in self._spares:
            if at not in self._seen:
                return at
        raise AssertionError("a search asked for more sets than the grid has")

    def propose(self) -> list[dict[str, Any]]:
        from optuna.trial import TrialState

        want = min(self._round, self.total - len(self._seen))
        fruitless = 0
        with _optuna_quietly():
            while len(self._asked) < want:
                if fruitless >= self._round:
                    at = self._spare()
                    self.study.enqueue_trial({axis.name: axis.encode(at[k])
                                              for k, axis in self._axes})
                trial = self.study.ask()
                at = self._position(trial)
                if at not in self._sets:
                    trial.set_user_attr("refused", "the constraint refused this set")
                    self.study.tell(trial, state=TrialState.PRUNED)
                    fruitless += 1
                elif at in self._seen:
                    trial.set_user_attr("repeat", "this set ran before; not run again")
                    self.study.tell(trial, state=TrialState.FAIL)
                    fruitless += 1
                else:
                    self._seen.add(at)
                    self._asked.append((trial, at))
        return [self._sets[at] for _, at in self._asked]

    def tell(self, values: Sequence[float | tuple[float, ...] | None]) -> None:
        """Each proposed set's objective (a tuple of them, for several), in the order
        proposed (None or one not finite: the run failed or left it undefined, and the
        sampler leaves the set out)."""
        from optuna.trial import TrialState

        with _optuna_quietly():
            for (trial, at), given in zip(self._asked, values, strict=True):
                trial.set_user_attr("params", {k: _plain(v) for k, v in self._sets[at].items()})
                value = given if isinstance(given, tuple) else (np.nan if given is None else given,)
                if not all(math.isfinite(v) for v in value):
                    self.study.tell(trial, state=TrialState.FAIL)
                else:
                    self.study.tell(trial, value[0] if len(value) == 1 else list(value))
        self._asked = []


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def search_of(method: Any, params: Any, constraint: Callable[[Params], bool] | None,
              max_tries: int | float | None, random_state: int,
              check: Callable[[dict[str, Any]], dict[str, Any]],
              round_size: int | None = None,
              directions: Sequence[str] = ("maximize",)) -> Callable[[], GridSearch | ModelSearch]:
    """How a batch picks its sets: a maker of a fresh search for each symbol group (each
    group's model learns from its own runs). ``check`` validates a set (names and
    declared types) and returns it as the runs take it; every set the grid keeps is
    checked here, before any data is read. ``round_size``: the sets a model-based search
    proposes at a time (`ROUND` by default); ``directions``: optuna's, one per objective
    (`tickstep.batch.objectives.Objective.directions`)."""
    if round_size is not None:
        if isinstance(round_size, bool) or not isinstance(round_size, (int, np.integer)) \
                or round_size < 1:
            raise ConfigError(f"round_size={round_size!r}: how many sets a model-based search "
                              "proposes at a time, a whole number >= 1")
        if method == "grid":
            raise ConfigError(f"round_size={round_size!r}: the rounds of a model-based search "
                              "(method='optuna'); a grid runs every set in one")
    if method == "grid":
        sets = [check(p) for p in sample_sets(expand_grid(params, constraint), max_tries,
                                              random_state)]
        if not sets:
            raise ConfigError("no parameter set to run (the constraint refused them all)")
        return lambda: GridSearch(list(sets))
    _check_method(method)
    if not isinstance(params, Mapping):
        raise ConfigError(f"method={_name(method)}: a model-based search draws from ranges "
                          "({name: values}), not a list of parameter sets")
    if max_tries is None:
        raise ConfigError(f"method={_name(method)}: needs max_tries=, how many parameter sets "
                          "to run (e.g. max_tries=200); without it, method='grid' runs them all")
    grid = [(at, check(p)) for at, p in indexed_grid(params, constraint)]
    if not grid:
        raise ConfigError("no parameter set to run (the constraint refused them all)")
    tries = tries_of(len(grid), max_tries, random_state)
    if tries >= len(grid):
        # Every set runs: nothing for a model to choose.
        return lambda: GridSearch([p for _, p in grid])
    axes = grid_axes(params)
    sampler = _sampler(method, random_state)
    size = ROUND if round_size is None else int(round_size)
    return lambda: ModelSearch(grid, axes, tries, copy.deepcopy(sampler), random_state, size,
                               directions)


def option_of(strategy: Any, ranges: dict[str, Any], name: str, default: Any) -> Any:
    """An option of backtesting.py's optimize (``method``, ``return_optimization``) taken
    out of ``ranges``, unless the strategy has a parameter of that name: it varies that
    instead, and the option keeps its default."""
    if name in strategy.parameters():
        return default
    return ranges.pop(name, default)


def _name(method: Any) -> str:
    return repr(method) if isinstance(method, str) else type(method).__name__


def _sampler(method: Any, random_state: int) -> Any:
    """Optuna's sampler for ``method`` (checked): "optuna" (TPE, seeded by
    ``random_state``) or a sampler of the user's (its own seed)."""
    import optuna

    if method == "optuna":
        return optuna.samplers.TPESampler(seed=random_state)
    return method


def _check_method(method: Any) -> None:
    """``method`` is "optuna" or an optuna sampler, and optuna is installed."""
    if method == "optuna" or not isinstance(method, str):
        try:
            import optuna
        except ImportError:
            raise ImportError(f"method={_name(method)} needs optuna: pip install "
                              "'tickstep[search]'") from None
        if method == "optuna" or isinstance(method, optuna.samplers.BaseSampler):
            return
    raise ConfigError(
        f"method={_name(method)}: 'grid' (every set, or a random draw of them with "
        "max_tries=), 'optuna' (a model-based search of max_tries sets, optuna's TPE sampler "
        "seeded by random_state) or an optuna sampler (optuna.samplers.TPESampler(...), "
        "CmaEsSampler, GPSampler, ...); backtesting.py's 'sambo' is not built in: "
        "method='optuna' searches the same way, by a model of the sets run")
