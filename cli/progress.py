"""A progress bar for long commands: redrawn in place on a terminal, plain lines otherwise.

Lines printed through ``line`` go above the bar (on a terminal) or simply one after another (in a
pipe, a log file, CI), so the output stays readable in both. The bar shows how many items are
done, a few counts, what is under way and, once something finished, the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TextIO

BAR_WIDTH = 24


class Progress:
    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.counts: Mapping[str, int] = {}
        self.current = ""
        self._drawn = False

    def line(self, text: str) -> None:
        """A permanent line of output."""
        self._clear()
        print(text, file=self.stream, flush=True)
        self._draw()

    def update(self, done: int, counts: Mapping[str, int], current: str = "") -> None:
        self.done, self.counts, self.current = done, counts, current
        self._draw()

    def close(self) -> None:
        self._clear()

    def bar(self) -> str:
        """The bar's text: ``[████░░░░] 3/10  published 3 · failed 0  ETA 1m05s  ▸ current``."""
        filled = round(BAR_WIDTH * self.done / self.total) if self.total else BAR_WIDTH
        text = f"[{'█' * filled}{'░' * (BAR_WIDTH - filled)}] {self.done}/{self.total}"
        counts = " · ".join(f"{name} {count}" for name, count in self.counts.items() if count)
        if counts:
            text += f"  {counts}"
        if 0 < self.done < self.total:
            left = (self.clock() - self.started) / self.done * (self.total - self.done)
            text += f"  ETA {_duration(left)}"
        if self.current:
            text += f"  ▸ {self.current}"
        return text

    def _draw(self) -> None:
        if not self.tty:
            return
        self.stream.write("\r\x1b[2K" + self.bar())
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
