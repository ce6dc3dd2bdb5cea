"""Timing and memory helpers shared by the speed benches (`speed`, `scale`)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["percentiles", "rss_mb", "time_each"]


def rss_mb() -> float:
    """Resident memory now, after handing freed heap pages back to the system (glibc)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentiles(seconds: Sequence[float]) -> tuple[float, float, float]:
    """P50, P99 and P99.9 of `seconds`, in microseconds."""
    p50, p99, p999 = np.percentile(np.asarray(seconds) * 1e6, [50, 99, 99.9])
    return float(p50), float(p99), float(p999)


def time_each(call: Callable[[int], object], n: int, warmup: int = 200) -> list[float]:
    """Seconds of each of `n` calls `call(i)` after `warmup` untimed ones, with GC off."""
    for i in range(warmup):
        call(i)
    gc.disable()
    try:
        timings = []
        for i in range(n):
            start = time.perf_counter()
            call(i)
            timings.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return timings
