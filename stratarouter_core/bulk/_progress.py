"""Progress of a bulk job on standard error: rows done, share, rate; at most twice a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Prints ``route-bulk: 120,000/1,000,000 rows (12%), 45,000 rows/s`` as rows are routed.

    On a terminal the line is rewritten in place; otherwise (a log, a pipe) a line is printed
    at most every `interval` seconds, and a last one at `close`.
    """

    def __init__(
        self, total: int | None, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        """`total` rows are expected (None when unknown)."""
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.5 if self._tty else 10.0
        self._last = self.start

    def update(self, rows: int) -> None:
        """`rows` more rows were routed."""
        self.done += rows
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._print(now, final=False)

    def close(self) -> None:
        """Print the final line."""
        if self.enabled:
            self._print(time.perf_counter(), final=True)

    @property
    def seconds(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self.start

    def _print(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self.start, 1e-9)
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        total = f"/{self.total:,}" if self.total is not None else ""
        line = (
            f"route-bulk: {self.done:,}{total} rows{share}, {self.done / elapsed:,.0f} rows/s, "
            f"{elapsed:.1f} s"
        )
        if self._tty:
            self.stream.write(f"\r{line}" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
