"""A tiny progress bar on stderr: ``\\r[#####.....] 120/500``.

On a terminal it redraws at most ``max_rate`` times a second (a redraw per item
would cost more than the work on fast batches); elsewhere (a log file, a test
capturing stderr) it prints only the final line, so logs don't fill with
carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self,
        label: str = "",
        *,
        stream: TextIO | None = None,
        width: int = 30,
        max_rate: float = 10.0,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = 1.0 / max_rate
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._state = (0, 0)
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        self._state = (done, total)
        now = time.monotonic()
        if self.interactive and (now - self._last_draw >= self.interval or done >= total):
            self._last_draw = now
            self._draw()

    def _line(self) -> str:
        done, total = self._state
        filled = self.width if total <= 0 else min(self.width, self.width * done // total)
        prefix = f"{self.label} " if self.label else ""
        return f"{prefix}[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"

    def _draw(self) -> None:
        self.stream.write("\r" + self._line())
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.interactive:
            self._draw()
            self.stream.write("\n")
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()
