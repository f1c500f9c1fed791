"""Client-side rate limiter: a sliding window per API path.

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
# After a rate-limit answer the allowance never drops below this fraction of the configured
# limit, so a burst of 45009s cannot throttle a sync to a crawl for good.
_FLOOR_FRACTION = 16
# Concurrent workers hit 45009 together; within this part of a window they count as one signal.
_SLOW_DOWN_COOLDOWN_FRACTION = 12


class RateLimiter:
    """Per-path sliding-window limiter shared by all threads of one client.

    ``acquire`` blocks (sleeps) until a call may start; it never fails. ``slow_down`` is the
    adaptive part: when WeCom answers 45009/45033 anyway (another process or host shares the
    corp's quota), the path's allowance drops to half of the calls made in the current window,
    which pauses the path until WeCom's window has moved on. The configured allowance returns
    once a full window passes without another slow-down.
    """

    def __init__(
        self,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create a limiter.

        Args:
            limit: Calls allowed per path in any window (at least 1).
            window: Window length in seconds (WeCom counts per minute).
            clock: Monotonic clock in seconds (injectable for tests).
            sleep: Sleep function (injectable for tests).

        Raises:
            ValueError: ``limit`` is below 1 or ``window`` not positive.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self._limit = limit
        self._window = window
        self._floor = max(1, limit // _FLOOR_FRACTION)
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

    def acquire(self, path: str, max_wait: float | None = None) -> float | None:
        """Wait until a call to ``path`` fits in the window, then record it.

        Args:
            path: API path (each path has its own window, as WeCom counts per API).
            max_wait: Longest wait acceptable; None waits as long as it takes.

        Returns:
            Seconds spent waiting, or None (at once, without a slot) when the wait would
            exceed ``max_wait``.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                starts = self._window_of(path, now)
                limit = self._current_limit(path, now)
                if len(starts) < limit:
                    starts.append(now)
                    return waited
                # A slot frees when the (len - limit + 1)-th oldest call leaves the window.
                delay = starts[len(starts) - limit] + self._window - now
            delay = max(delay, 0.001)
            if max_wait is not None and waited + delay > max_wait:
                return None
            self._sleep(delay)
            waited += delay

    def slow_down(self, path: str) -> None:
        """Reduce the allowance for ``path`` after WeCom reported a rate or concurrency limit.

        Args:
            path: API path that answered 45009 or 45033.
        """
        with self._lock:
            now = self._clock()
            reduced = self._reduced.get(path)
            if (
                reduced is not None
                and now - reduced[1] < self._window / _SLOW_DOWN_COOLDOWN_FRACTION
            ):
                return
            recent = len(self._window_of(path, now))
            current = self._current_limit(path, now)
            self._reduced[path] = (max(self._floor, min(current, recent) // 2), now)

    def _window_of(self, path: str, now: float) -> deque[float]:
        starts = self._starts.setdefault(path, deque())
        horizon = now - self._window
        while starts and starts[0] <= horizon:
            starts.popleft()
        return starts

    def _current_limit(self, path: str, now: float) -> int:
        reduced = self._reduced.get(path)
        if reduced is None:
            return self._limit
        limit, since = reduced
        if now - since >= self._window:
            del self._reduced[path]
            return self._limit
        return limit
