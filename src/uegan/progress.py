"""Progress of long work, for people: a bar on a terminal, a line every few seconds elsewhere.

On a terminal :class:`Progress` shows a tqdm bar (count, rate, ETA). When the output is not a
terminal (nohup, SLURM, CI logs) a bar would be one endless line of carriage returns, so it
logs ``what: n/N unit, rate, ETA`` every ``every`` seconds instead, and once at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm

log = logging.getLogger(__name__)

DEFAULT_EVERY = 10.0  # seconds between two progress lines off a terminal


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; under a minute ``"12 s"``; from an hour ``"2 h 05 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts ``total`` items of work named ``what`` (``enabled=False``: silent)."""

    def __init__(self, total: int, what: str, unit: str = "image", *, enabled: bool = True,
                 stream: IO[str] | None = None, every: float = DEFAULT_EVERY,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.what, self.unit = total, what, unit
        self.done = 0
        self._clock = clock
        self._every = every
        self._start = self._last = clock()
        self._logged = 0  # the count of the last line logged
        stream = stream if stream is not None else sys.stderr
        terminal = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._bar: Any = (tqdm(total=total, desc=what, unit=unit, file=stream, leave=False)
                          if terminal else None)
        self._lines = enabled and not terminal and total > 0

    def line(self) -> str:
        """``what: n/N unit(s), rate, ETA`` (or the elapsed time once all is done)."""
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        speed = (f"{rate:.2f} {self.unit}s/s" if rate >= 0.1 or rate == 0 else
                 f"{format_seconds(1 / rate)} per {self.unit}")  # slow work: a time per item
        text = f"{self.what}: {self.done}/{self.total} {self.unit}s, {speed}"
        if self.done >= self.total:
            return f"{text}, done in {format_seconds(elapsed)}"
        eta = (self.total - self.done) / rate if rate > 0 else None
        return f"{text}, ETA {format_seconds(eta) if eta is not None else 'unknown'}"

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._lines and self._clock() - self._last >= self._every:
            self._last, self._logged = self._clock(), self.done
            log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self.done and self.done != self._logged:
            self._logged = self.done
            log.info("%s", self.line())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
