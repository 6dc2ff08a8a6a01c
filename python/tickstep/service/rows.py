"""Between `run_batch`'s frame and stored runs, both ways."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickstep.metrics import STAT_LABELS
from tickstep.significance import DAILY_RETURNS

__all__ = ["frame_rows", "jsonable", "runs_frame"]


def jsonable(value: Any) -> Any:
    """Statistics and parameters as JSON values: timestamps ISO 8601, durations in
    seconds, NaN and infinities null, numpy scalars as Python ones."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return None if pd.isna(value) else pd.Timedelta(value).total_seconds()
    if hasattr(value, "isoformat"):  # datetime, date
        return value.isoformat()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (int, str)):
        return value
    return str(value)


def frame_rows(rows: pd.DataFrame, param_names: Sequence[str]) -> list[dict[str, Any]]:
    """`run_batch`'s frame -> rows for `RunsDB.add_runs` (job, params, stats, ...); a
    frame made with ``returns=True`` also hands over each run's daily returns."""
    stats = [s for s in STAT_LABELS if s in rows.columns]
    if DAILY_RETURNS in rows.columns:
        stats.append(DAILY_RETURNS)
    names = [n for n in param_names if n in rows.columns]
    out = []
    for job, rec in zip(rows.index, rows.to_dict(orient="records")):
        params = {n: rec[n] for n in names if not _missing(rec[n])}
        error = rec.get("error")
        out.append({
            "job": int(job), "params": jsonable(params), "symbols": rec["symbols"],
            "stats": {s: rec[s] for s in stats if not (s == DAILY_RETURNS and _missing(rec[s]))},
            "run_time": float(rec["run_time"]), "status": rec["status"],
            "error": error if isinstance(error, str) else None,
            "cached": bool(rec["cached"]),
        })
    return out


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def runs_frame(runs: Sequence[Mapping[str, Any]], stat_columns: Mapping[str, str],
               returns: Mapping[str, pd.Series] | None = None) -> pd.DataFrame:
    """Stored runs as `run_batch` lays its rows out: parameters, ``symbols``, every
    statistic by its label, ``run_time`` (seconds), ``status``, ``error``, ``cached``;
    indexed by ``job``, in job order. With ``returns`` (`RunsDB.daily_returns`), each
    run's daily returns too, as ``run_batch(returns=True)`` keeps them (a run without:
    NaN)."""
    names: list[str] = []
    for run in runs:
        names += [n for n in run["parameters"] if n not in names]
    records = []
    for run in runs:
        rec: dict[str, Any] = {"job": run["job"]}
        rec.update({n: run["parameters"].get(n) for n in names})
        rec["symbols"] = run["symbols"]
        for label, col in stat_columns.items():
            rec[label] = run.get(col)
        rec.update(run_time=(run["calc_ms"] or 0.0) / 1000.0, status=run["status"],
                   error=run["error"], cached=run["cached"], run_id=run["run_id"])
        records.append(rec)
    columns = ["job", *names, "symbols", *stat_columns, "run_time", "status", "error", "cached",
               "run_id"]
    frame = pd.DataFrame.from_records(records, columns=columns).set_index("job").sort_index()
    if returns is not None:
        frame[DAILY_RETURNS] = pd.Series([returns.get(r, np.nan) for r in frame["run_id"]],
                                         index=frame.index, dtype=object)
    for label in ("Start", "End"):
        if label in frame:
            frame[label] = pd.to_datetime(frame[label], utc=True)
    return frame
