"""Rejected orders are never silent: one warning (or error) at the end of a run.

An order the broker refuses (a fill that would take gross exposure past ``leverage`` x
equity, "insufficient margin"; one that would sell short a symbol ``shortable`` does not
allow, "not shortable") ends with status ``rejected`` in
``Result.orders``. A run with any such order then, by ``BacktestConfig.on_reject``:

- ``"warn"`` (default): warns once, a `RejectedOrderWarning`, with the counts by reason
  and the first few orders; filter it or turn it into an error with the `warnings`
  module (``warnings.simplefilter("error", tickstep.RejectedOrderWarning)``);
- ``"raise"``: raises `RejectedOrdersError` with the same text, after the run;
- ``"ignore"``: says nothing.

Either way the statistics carry ``# Orders Rejected``.

Many runs in one call (`tickstep.batch.run_batch`, ``Backtest.optimize``,
``Backtest.run_signal_grid``) warn once for the whole call rather than once per run: a
grid of hundreds of runs would otherwise print hundreds of warnings (from worker
processes, where the caller's filters do not reach), and a count in a column alone
would be silent. Each run is run with ``on_reject="ignore"`` under ``"warn"``
(`quiet_runs`); the call then warns with how many runs had rejections and which
(`warn_of_rejected_runs`). ``"raise"`` fails each run that has any, as it would alone.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import TickstepError

__all__ = [
    "ON_REJECT",
    "RejectedOrderWarning",
    "RejectedOrdersError",
    "TickstepWarning",
    "check_rejections",
    "quiet_runs",
    "warn_of_rejected_runs",
]

#: The accepted values of ``BacktestConfig.on_reject``.
ON_REJECT = ("warn", "raise", "ignore")
_REJECTED = 3  # the core's order status code (see results._STATUS)
_SHOWN = 5


class TickstepWarning(UserWarning):
    """Base class of tickstep's warnings."""


class RejectedOrderWarning(TickstepWarning):
    """A backtest ran with orders the broker rejected."""


class RejectedOrdersError(TickstepError):
    """A backtest with ``on_reject="raise"`` ran with orders the broker rejected."""


def check_rejections(orders: dict[str, Any], symbols: list[str], on_reject: str) -> int:
    """Count the rejected orders of a run's order log (the core's columns: every order,
    or only the rejected ones, `Engine.rejected_orders`) and warn or raise about them as
    ``on_reject`` says. Returns the count."""
    rejected = np.flatnonzero(np.asarray(orders["status"]) == _REJECTED)
    if len(rejected) == 0 or on_reject == "ignore":
        return len(rejected)
    message = _describe(orders, symbols, rejected)
    if on_reject == "raise":
        raise RejectedOrdersError(message)
    warnings.warn(message, RejectedOrderWarning, stacklevel=caller_outside_tickstep())
    return len(rejected)


def quiet_runs(config: Any) -> Any:
    """The config each of many runs in one call is run with: ``on_reject="warn"`` becomes
    ``"ignore"`` (the call warns once, `warn_of_rejected_runs`); the others are kept."""
    return config.replace(on_reject="ignore") if config.on_reject == "warn" else config


#: Where a call's rejections are counted run by run, as its warning says (the default: a
#: table with a row per run).
PER_RUN = "The '# Orders Rejected' column counts each run's"


def warn_of_rejected_runs(counts: Iterable[tuple[str, Any]], on_reject: str, *,
                          where: str = PER_RUN) -> int:
    """Warn once, under ``on_reject="warn"``, about the runs of one call that had orders
    rejected. ``counts`` gives each run's label (its symbols and parameters, or its key)
    and its ``# Orders Rejected`` (None or NaN for a run that failed: not counted);
    ``where`` says where the caller finds each run's count. Returns how many runs had any."""
    counts = list(counts)
    hit = [(label, int(n)) for label, n in counts if n is not None and n == n and n > 0]
    if not hit or on_reject != "warn":
        return len(hit)
    total = sum(n for _, n in hit)
    lines = [f"{len(hit)} of {len(counts)} runs had orders the broker rejected ({total} "
             f"order(s) in all); the first:"]
    lines += [f"  {label}: {n} order(s)" for label, n in hit[:_SHOWN]]
    lines.append(f"{where}; a run alone lists its orders (Result.orders). "
                 "BacktestConfig(on_reject='raise' | 'ignore') changes this warning.")
    warnings.warn("\n".join(lines), RejectedOrderWarning, stacklevel=caller_outside_tickstep())
    return len(hit)


def _describe(orders: dict[str, Any], symbols: list[str], rejected: np.ndarray) -> str:
    reasons = Counter(orders["reason"][i] for i in rejected)
    by_reason = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    lines = [f"{len(rejected)} order(s) rejected ({by_reason}); the first:"]
    for i in rejected[:_SHOWN]:
        side = "buy" if orders["side"][i] > 0 else "sell"
        when = pd.Timestamp(int(orders["closed_ts"][i]), tz="UTC")
        lines.append(f"  order {int(orders['order_id'][i])}: {side} {orders['size'][i]:g} "
                     f"{symbols[int(orders['symbol'][i])]} at {when} ({orders['reason'][i]})")
    lines.append("Result.orders lists them all (status 'rejected'); "
                 "BacktestConfig(on_reject='raise' | 'ignore') changes this warning.")
    return "\n".join(lines)


def caller_outside_tickstep() -> int:
    """The stacklevel of the first frame outside the tickstep package: the warning points
    at the user's line that ran the backtest."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
