"""Client-side rate limiter: a sliding 60-second window per API path.

WeCom limits each API per corp per minute (10,000/min/API today, 1,000 in older docs) and answers
45009 once over it, then blocks the API for the rest of the window. A sliding window admits bursts
up to the limit, so a directory fetch stays bound by latency rather than by an artificial smooth
rate (a per-second limiter near 166/s would make a 2,000-department fetch take 13 s).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Per-path sliding-window limiter shared by all threads of one client.

    ``acquire`` blocks (sleeps) until a call may start; it never fails. ``slow_down`` halves the
    path's allowance after WeCom answered 45009/45033 anyway (another process or host shares the
    corp's quota); the allowance returns to the configured limit once a full window passes
    without another slow-down.
    """

    def __init__(
        self,
        limit_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create a limiter.

        Args:
            limit_per_minute: Calls allowed per path in any 60-second window (at least 1).
            clock: Monotonic clock in seconds (injectable for tests).
            sleep: Sleep function (injectable for tests).

        Raises:
            ValueError: ``limit_per_minute`` is below 1.
        """
        if limit_per_minute < 1:
            raise ValueError("limit_per_minute must be at least 1")
        self._limit = limit_per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: dict[str, deque[float]] = {}
        self._reduced: dict[str, tuple[int, float]] = {}

    def limit_for(self, path: str) -> int:
        """Return the number of calls currently allowed per window for ``path``.

        Args:
            path: API path.

        Returns:
            The configured limit, or the reduced one after a recent ``slow_down``.
        """
        with self._lock:
            return self._current_limit(path, self._clock())

    def acquire(self, path: str) -> float:
        """Wait until a call to ``path`` fits in the window, then record it.

        Args:
            path: API path (each path has its own window, as WeCom counts per API).

        Returns:
            Seconds spent waiting.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                starts = self._starts.setdefault(path, deque())
                horizon = now - WINDOW_SECONDS
                while starts and starts[0] <= horizon:
                    starts.popleft()
                limit = self._current_limit(path, now)
                if len(starts) < limit:
                    starts.append(now)
                    return waited
                # The window frees a slot when the (len - limit + 1)-th oldest call ages out.
                delay = starts[len(starts) - limit] + WINDOW_SECONDS - now
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    def slow_down(self, path: str) -> None:
        """Halve the allowance for ``path`` after WeCom reported a rate or concurrency limit.

        Args:
            path: API path that answered 45009 or 45033.
        """
        with self._lock:
            now = self._clock()
            current = self._current_limit(path, now)
            self._reduced[path] = (max(1, current // 2), now)

    def _current_limit(self, path: str, now: float) -> int:
        reduced = self._reduced.get(path)
        if reduced is None:
            return self._limit
        limit, since = reduced
        if now - since >= WINDOW_SECONDS:
            del self._reduced[path]
            return self._limit
        return limit
