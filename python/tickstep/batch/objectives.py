"""What a batch ranks its runs by: one objective (a statistic, or a score a function of
the statistics returns), or several statistics at once.

One objective orders the rows best first. Several rarely agree on a best set (the set
with the highest return is seldom the one with the shallowest drawdown), so the rows are
ranked by Pareto dominance instead: a set dominates another when it is at least as good
by every objective and better by one. The sets no other dominates are the first front
(``Pareto Rank`` 1); without them, the sets none of the rest dominates are the second,
and so on. Each symbol group is ranked on its own (its sets are one experiment). Within
a rank the rows follow the first objective, then job order. A run whose objectives are
not all defined (it failed, or made no trade and has no Sharpe Ratio) has no rank and
comes last.

``maximize=["Return [%]", "Max. Drawdown [%]"]`` maximises both (a drawdown is negative:
the larger, the shallower); ``maximize={"Return [%]": "max", "Volatility (Ann.) [%]":
"min"}`` says each objective's direction.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError
from tickstep.hints import did_you_mean
from tickstep.metrics import STAT_LABELS

__all__ = ["PARETO_RANK", "Objective", "pareto_ranks"]

#: The column of a batch's rows that ranks them when several objectives are given.
PARETO_RANK = "Pareto Rank"

_DIRECTIONS = {"max": 1.0, "min": -1.0}


class Objective:
    """``maximize`` as a batch reads it (checked): the columns it ranks by, each one's
    direction, a run's values and the order of the rows."""

    def __init__(self, maximize: Any) -> None:
        self.maximize = maximize
        self.function: Callable[[pd.Series], float] | None = None
        if isinstance(maximize, str):
            pairs = [(maximize, "max")]
        elif callable(maximize):
            self.function = maximize
            pairs = [("score", "max")]
        elif isinstance(maximize, Mapping):
            pairs = list(maximize.items())
        elif isinstance(maximize, Sequence) and not isinstance(maximize, (bytes, bytearray)):
            pairs = [(name, "max") for name in maximize]
        else:
            raise ConfigError(
                f"maximize={maximize!r}: a statistic's name (e.g. 'Sharpe Ratio'), a function "
                "of a run's statistics returning a number, or several statistics (a list, or "
                "{statistic: 'max' or 'min'})")
        if not pairs:
            raise ConfigError(f"maximize={maximize!r}: names no statistic")
        for name, direction in pairs:
            if self.function is None:
                if not isinstance(name, str):
                    raise ConfigError(
                        f"maximize={maximize!r}: {name!r} is not a statistic's name; of several "
                        "objectives each is a statistic (a function's score ranks alone)")
                if name not in STAT_LABELS:
                    what = "" if isinstance(maximize, str) else f": {name!r}"
                    raise ConfigError(f"maximize={maximize!r}{what} is not a statistic"
                                      f"{did_you_mean(name, STAT_LABELS)}")
            if not isinstance(direction, str) or direction not in _DIRECTIONS:
                raise ConfigError(f"maximize={maximize!r}: the direction of {name!r} is "
                                  f"{direction!r}; 'max' or 'min'")
        names = [name for name, _ in pairs]
        if len(set(names)) < len(names):
            raise ConfigError(f"maximize={maximize!r}: names a statistic twice")
        self.columns: list[str] = names
        self.signs: list[float] = [_DIRECTIONS[d] for _, d in pairs]

    @property
    def several(self) -> bool:
        """Whether the rows are ranked by Pareto dominance (more than one objective)."""
        return len(self.columns) > 1

    @property
    def directions(self) -> list[str]:
        """Optuna's names of the objectives' directions."""
        return ["maximize" if s > 0 else "minimize" for s in self.signs]

    def describe(self) -> str:
        """The objectives as a message names them."""
        if self.function is not None:
            return "the score maximize= returns"
        if not self.several:
            return repr(self.columns[0])
        return ", ".join(f"{name!r} ({'max' if s > 0 else 'min'})"
                         for name, s in zip(self.columns, self.signs))

    def values(self, row: Mapping[str, Any]) -> tuple[float, ...]:
        """A run's objectives (a row of a batch: its ``status`` and ``stats``); NaN for a
        run that failed or left one undefined. A duration counts by its length."""
        if row["status"] != "ok":
            return (np.nan,) * len(self.columns)
        if self.function is not None:
            return (float(self.function(pd.Series(row["stats"], name="stats"))),)
        return tuple(_number(row["stats"].get(name, np.nan)) for name in self.columns)

    def rank(self, frame: pd.DataFrame, values: np.ndarray | None) -> pd.DataFrame:
        """``frame`` (one row per job, ``job`` its index, ``symbols`` its group, a column
        per objective) best first, ties in job order; ``values``: each row's objectives
        (rows × objectives; read only for several). Several objectives add the ``Pareto
        Rank`` column (see the module notes)."""
        if not self.several:
            return frame.sort_values([self.columns[0], "job"],
                                     ascending=[self.signs[0] < 0, True],
                                     na_position="last", kind="stable")
        assert values is not None
        ranks = self.pareto_ranks(frame["symbols"].to_numpy(), values)
        frame = frame.assign(**{PARETO_RANK: ranks})
        return frame.iloc[self.front_order(ranks, values, frame.index.to_numpy())]

    def front_order(self, ranks: np.ndarray, values: np.ndarray, jobs: np.ndarray) -> np.ndarray:
        """The rows' order by Pareto rank (unranked last), then the first objective best
        first, then ``jobs``."""
        first = values[:, 0] * self.signs[0]
        return np.lexsort((jobs, -np.nan_to_num(first, nan=-np.inf),
                           np.nan_to_num(ranks, nan=np.inf)))

    def pareto_ranks(self, groups: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Each row's Pareto rank within its symbol group (``groups``: each row's label;
        ``values``: rows × objectives, each in its own direction)."""
        directed = values * np.asarray(self.signs)
        ranks = np.full(len(values), np.nan)
        for label in pd.unique(groups):
            at = np.flatnonzero(groups == label)
            ranks[at] = pareto_ranks(directed[at])
        return ranks

    def values_of(self, frame: pd.DataFrame) -> np.ndarray:
        """The objectives of a table of runs laid out as a batch's rows (a column per
        statistic, ``status``), rows × objectives: NaN where a run failed or a value is
        not a number; a duration by its length in seconds."""
        out = np.full((len(frame), len(self.columns)), np.nan)
        ok = (frame["status"] == "ok").to_numpy()
        for k, name in enumerate(self.columns):
            column = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
            if pd.api.types.is_timedelta64_dtype(column):
                numbers = column.dt.total_seconds()
            else:
                numbers = pd.to_numeric(column, errors="coerce")
            out[:, k] = np.where(ok, numbers.to_numpy(dtype=float, na_value=np.nan), np.nan)
        return out


def _number(value: Any) -> float:
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, (int, float, np.number)) else np.nan


def pareto_ranks(points: np.ndarray) -> np.ndarray:
    """Each point's Pareto rank, every objective maximised (rows × objectives): 1 for
    the points no other dominates, 2 for those only points of rank 1 dominate, and so
    on; NaN for a point with an objective not finite. Equal points share a rank.

    The points are visited in decreasing lexicographic order, where whatever dominates a
    point comes before it, so a point's rank is one more than the highest rank among its
    dominators, all ranked by then. Fronts nest (whatever dominates a point of front
    k + 1 is dominated by a point of front k, which came earlier), so the fronts that
    hold a dominator of a point are the first few: a binary search over the fronts finds
    its rank, O(n log fronts) checks in all (50,000 sets of two objectives: a tenth of a
    second; of three, each check a binary search: a third of a second)."""
    points = np.asarray(points, dtype=float)
    ranks = np.full(len(points), np.nan)
    ok = np.flatnonzero(np.isfinite(points).all(axis=1))
    if not len(ok):
        return ranks
    width = points.shape[1]
    order = ok[np.lexsort(tuple(-points[ok, j] for j in reversed(range(width))))]
    if width == 2:
        _ranks_of_pairs(points, order, ranks)
        return ranks
    if width == 3:
        _ranks_of_triples(points, order, ranks)
        return ranks
    fronts: list[_Front] = []
    for i in order:
        point = points[i]
        lo, hi = 0, len(fronts)
        while lo < hi:  # the first front holding no dominator of the point
            mid = (lo + hi) // 2
            if fronts[mid].dominates(point):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(fronts):
            fronts.append(_Front(width))
        fronts[lo].add(point)
        ranks[i] = lo + 1
    return ranks


def _ranks_of_pairs(points: np.ndarray, order: np.ndarray, ranks: np.ndarray) -> None:
    """`pareto_ranks` of two objectives. Visited by the first objective decreasing (ties
    by the second), each front's points come with the second objective increasing, so a
    front holds a dominator of a point exactly when its latest point dominates it: one
    comparison per front searched."""
    xs, ys = points[order, 0].tolist(), points[order, 1].tolist()
    last_x: list[float] = []
    last_y: list[float] = []
    for i, x, y in zip(order.tolist(), xs, ys):
        lo, hi = 0, len(last_y)
        while lo < hi:
            mid = (lo + hi) // 2
            if last_y[mid] > y or (last_y[mid] == y and last_x[mid] > x):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(last_y):
            last_x.append(x)
            last_y.append(y)
        else:
            last_x[lo], last_y[lo] = x, y
        ranks[i] = lo + 1


def _ranks_of_triples(points: np.ndarray, order: np.ndarray, ranks: np.ndarray) -> None:
    """`pareto_ranks` of three objectives. Whatever of a front came before a point is at
    least as good by the first objective, so one of them dominates the point exactly
    when one is at least as good by the other two and is not the same point. Each front
    keeps the staircase of its points by the second and third objectives (the points no
    other of the front is at least as good as by both: the second increasing, the third
    decreasing, of equal pairs the one with the best first objective, the earliest): the
    first step at or past the point's second objective has the best third among those,
    so one comparison tells (O(n log fronts log n) in all)."""
    fronts: list[_Staircase] = []
    for i, (x, y, z) in zip(order.tolist(), points[order].tolist()):
        lo, hi = 0, len(fronts)
        while lo < hi:
            mid = (lo + hi) // 2
            if fronts[mid].dominates(x, y, z):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(fronts):
            fronts.append(_Staircase())
        fronts[lo].add(x, y, z)
        ranks[i] = lo + 1


class _Staircase:
    """A front's points of three objectives, as `_ranks_of_triples` keeps them."""

    def __init__(self) -> None:
        self.ys: list[float] = []  # increasing
        self.zs: list[float] = []  # decreasing
        self.xs: list[float] = []

    def _first_at_or_past(self, y: float) -> int:
        return bisect.bisect_left(self.ys, y)

    def dominates(self, x: float, y: float, z: float) -> bool:
        """Whether a point of the front (each at least as good by the first objective)
        dominates ``(x, y, z)``."""
        k = self._first_at_or_past(y)
        if k == len(self.ys) or self.zs[k] < z:
            return False
        return not (self.ys[k] == y and self.zs[k] == z and self.xs[k] == x)

    def add(self, x: float, y: float, z: float) -> None:
        k = self._first_at_or_past(y)
        if k < len(self.ys) and self.zs[k] >= z:
            return  # as good by both already (the same point): the staircase stands
        # The steps it is at least as good as by both go: one of its own second
        # objective, and those just before it.
        last = k + 1 if k < len(self.ys) and self.ys[k] == y else k
        first = k
        while first > 0 and self.zs[first - 1] <= z:
            first -= 1
        self.ys[first:last] = [y]
        self.zs[first:last] = [z]
        self.xs[first:last] = [x]


class _Front:
    """The points of one front found so far (a buffer grown by doubling)."""

    def __init__(self, width: int) -> None:
        self.points = np.empty((4, width))
        self.size = 0

    def add(self, point: np.ndarray) -> None:
        if self.size == len(self.points):
            self.points = np.concatenate([self.points, np.empty_like(self.points)])
        self.points[self.size] = point
        self.size += 1

    def dominates(self, point: np.ndarray) -> bool:
        """Whether one of its points is at least as good by every objective as ``point``
        and better by one."""
        held = self.points[: self.size]
        return bool(((held >= point).all(axis=1) & (held > point).any(axis=1)).any())
