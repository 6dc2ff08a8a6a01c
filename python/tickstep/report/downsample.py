"""Fewer points for display: a long series drawn with the shape a reader would see.

MinMax-LTTB (tsdownsample's Rust implementation): the min and max of fine buckets are
kept as candidates, then Largest-Triangle-Three-Buckets picks the points that keep the
visual shape. Spikes and drawdown troughs survive, unlike every-n-th sampling.
"""

from __future__ import annotations

import numpy as np

from tickstep.report._deps import tsdownsample

__all__ = ["DEFAULT_POINTS", "downsample"]

#: Points per line in plots and reports: more than a screen is wide, far fewer than bars.
DEFAULT_POINTS = 2000


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` samples of the line ``(x, y)`` to draw.

    Parameters
    ----------
    x : array of int64 (e.g. ns timestamps) or float, sorted ascending
    y : array of float, same length (NaN is allowed)
    max_points : int
        At least 3. All indices are returned when the series is no longer.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices, always including the first and the last sample.
    """
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    n = len(y)
    if len(x) != n:
        raise ValueError(f"x and y differ in length: {len(x)} vs {n}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    x = np.ascontiguousarray(x)
    ts = tsdownsample()
    sampler = ts.NaNMinMaxLTTBDownsampler() if np.isnan(y).any() else ts.MinMaxLTTBDownsampler()
    idx = np.asarray(sampler.downsample(x, y, n_out=max_points), dtype=np.int64)
    # LTTB keeps both ends; make it explicit so a line always spans the whole run.
    return np.unique(np.concatenate(([0], idx, [n - 1])))
