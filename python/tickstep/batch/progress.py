"""A progress bar for batches: jobs done / total, rate and time left, on stderr.

tqdm draws it when installed; otherwise a one-line bar of our own. By default it shows
only when stderr is a terminal, so logs and CI output stay clean.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "make_progress"]


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """A minimal text bar: ``batch [#####.....] 120/400 35.2 jobs/s ETA 00:08``.

    Parameters
    ----------
    total : int
        Number of jobs.
    initial : int
        Jobs already done (answered from the cache).
    file : text stream
        Where to draw (stderr by default).
    """

    def __init__(self, total: int, initial: int = 0, file: TextIO | None = None,
                 desc: str = "batch", width: int = 28) -> None:
        self.total = total
        self.n = initial
        self._initial = initial
        self._file = file if file is not None else sys.stderr
        self._desc = desc
        self._width = width
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more jobs as done."""
        self.n += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and self.n < self.total:
            return
        self._last = now
        elapsed = now - self._t0
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 and done else 0.0
        left = (self.total - self.n) / rate if rate else float("nan")
        frac = self.n / self.total if self.total else 1.0
        fill = int(frac * self._width)
        bar = "#" * fill + "." * (self._width - fill)
        eta = "00:00" if self.n >= self.total else _clock(left)
        self._file.write(
            f"\r{self._desc} [{bar}] {self.n}/{self.total} {rate:.1f} jobs/s ETA {eta} "
        )
        self._file.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(force=True)
        self._file.write("\n")
        self._file.flush()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(show: bool | None, total: int, initial: int, desc: str = "batch") -> Any:
    """A bar when ``show`` (or, when None, when stderr is a terminal); else a no-op."""
    if show is None:
        show = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not show or total == 0:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return Progress(total, initial, desc=desc)
    return tqdm(total=total, initial=initial, desc=desc, unit="job", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
