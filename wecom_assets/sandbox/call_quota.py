"""Per-API call limits as WeCom enforces them: a sliding window per path, answering 45009."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Counts served calls per key in a sliding window. Not thread-safe: the caller serialises.

    Only calls that are let through count, so a client that backs off after 45009 gets served
    again once the window has moved on.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}

    def allow(self, key: str, limit: int | None, window: float) -> bool:
        """Record a call under ``key`` and say whether it is within ``limit`` per ``window``."""
        if limit is None:
            return True
        now = self._clock()
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - window:
            calls.popleft()
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True
