"""Client-side rate limiter: WeCom's limits per API path, and the machine's per-IP budget.

WeCom limits each API per corp to 10,000 calls a minute (1,000 in older docs) and 150,000 an
hour, and answers 45009 once over it, then blocks the API for the rest of the window. A sliding
window admits bursts up to the limit, so a directory fetch stays bound by latency rather than by
an artificial smooth rate (a per-second limiter near 166/s would make a 2,000-department fetch
take 13 s). The per-IP limits, shared by every corp and run on the machine, are kept by a
:class:`~wecom_assets.wecom.ip_quota.SharedQuota`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from wecom_assets.wecom.ip_quota import SharedQuota
from wecom_assets.wecom.limits import HOUR, MINUTE, Limit

WINDOW_SECONDS = MINUTE
# After a rate-limit answer the allowance never drops below this fraction of the configured
# limit, so a burst of 45009s cannot throttle a sync to a crawl for good.
_FLOOR_FRACTION = 16
# Concurrent workers hit 45009 together; within this part of a window they count as one signal.
_SLOW_DOWN_COOLDOWN_FRACTION = 12


class RateLimiter:
    """Per-path sliding-window limiter shared by all threads of one client.

    ``acquire`` blocks (sleeps) until a call fits every limit: the path's minute window, its
    hour window and the machine's per-IP budget. ``slow_down`` is the adaptive part: when WeCom
    answers 45009/45033 anyway (another process or host shares the corp's quota), the path's
    minute allowance drops to half of the calls made in the current window, which pauses the
    path until WeCom's window has moved on. The configured allowance returns once a full window
    passes without another slow-down.
    """

    def __init__(
        self,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        hour_limit: int | None = None,
        hour_window: float = HOUR,
        shared: SharedQuota | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create a limiter.

        Args:
            limit: Calls allowed per path in any window (at least 1).
            window: Window length in seconds (WeCom counts per minute).
            hour_limit: Calls allowed per path in any hour window; None keeps no hour limit.
            hour_window: Length of the hour window in seconds.
            shared: The machine's per-IP budget; None keeps none.
            clock: Monotonic clock in seconds (injectable for tests).
            sleep: Sleep function (injectable for tests).

        Raises:
            ValueError: A limit is below 1 or a window not positive.
        """
        if limit < 1 or (hour_limit is not None and hour_limit < 1):
            raise ValueError("limit must be at least 1")
        if window <= 0 or hour_window <= 0:
            raise ValueError("window must be positive")
        self._limit = limit
        self._window = window
        self._minute = Limit(limit, window, hourly=False, per_ip=False)
        self._hour = (
            None
            if hour_limit is None
            else Limit(hour_limit, hour_window, hourly=True, per_ip=False)
        )
        self._hour_window = hour_window
        self._shared = shared
        self._floor = max(1, limit // _FLOOR_FRACTION)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: dict[str, deque[float]] = {}
        self._hour_starts: dict[str, deque[float]] = {}
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
        """Wait until a call to ``path`` fits every limit, then record it.

        Args:
            path: API path (each path has its own windows, as WeCom counts per API).
            max_wait: Longest wait acceptable; None waits as long as it takes.

        Returns:
            Seconds spent waiting, or None (at once, without a slot) when the wait would
            exceed ``max_wait``.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay, _ = self._path_delay(path, now)
                if delay <= 0 and self._shared is not None:
                    delay, _ = self._shared.take()
                if delay <= 0:
                    self._starts[path].append(now)
                    if self._hour is not None:
                        self._hour_starts[path].append(now)
                    return waited
            delay = max(delay, 0.001)
            if max_wait is not None and waited + delay > max_wait:
                return None
            self._sleep(delay)
            waited += delay

    def next_start(self, path: str) -> tuple[float, Limit | None]:
        """When a call to ``path`` may start, without taking a slot.

        Returns:
            Seconds from now, and the limit that makes the call wait (None when it need not).
        """
        with self._lock:
            delay, binding = self._path_delay(path, self._clock())
            if self._shared is not None:
                shared_delay, shared_binding = self._shared.next_slot()
                if shared_delay > delay:
                    return shared_delay, shared_binding
            return delay, binding

    def reached(self, path: str) -> list[Limit]:
        """The limits the client's own count of calls has reached, hour limits first.

        A 45009 that comes with one of them is that limit's block (see
        :meth:`Limit.reached_by`); without one, the count cannot say which limit WeCom applied.

        Args:
            path: API path that answered 45009.
        """
        with self._lock:
            now = self._clock()
            counted = [(self._minute, len(self._window_of(path, now)))]
            if self._hour is not None:
                counted.append((self._hour, len(self._hour_window_of(path, now))))
            reached = [limit for limit, calls in counted if limit.reached_by(calls)]
            if self._shared is not None:
                reached.extend(self._shared.reached())
            return sorted(reached, key=lambda limit: not limit.hourly)

    def close(self) -> None:
        """Give the unused part of the per-IP lease back to the machine's other processes."""
        if self._shared is not None:
            self._shared.close()

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

    def _path_delay(self, path: str, now: float) -> tuple[float, Limit | None]:
        """Seconds until ``path``'s own windows admit a call, and the limit that binds."""
        delay, binding = 0.0, None
        starts = self._window_of(path, now)
        limit = self._current_limit(path, now)
        if len(starts) >= limit:
            # A slot frees when the (len - limit + 1)-th oldest call leaves the window.
            delay, binding = starts[len(starts) - limit] + self._window - now, self._minute
        if self._hour is not None:
            hour_starts = self._hour_window_of(path, now)
            if len(hour_starts) >= self._hour.calls:
                oldest = hour_starts[len(hour_starts) - self._hour.calls]
                hour_delay = oldest + self._hour.window - now
                if hour_delay > delay:
                    delay, binding = hour_delay, self._hour
        return delay, binding

    def _window_of(self, path: str, now: float) -> deque[float]:
        return _recent(self._starts.setdefault(path, deque()), now - self._window)

    def _hour_window_of(self, path: str, now: float) -> deque[float]:
        return _recent(self._hour_starts.setdefault(path, deque()), now - self._hour_window)

    def _current_limit(self, path: str, now: float) -> int:
        reduced = self._reduced.get(path)
        if reduced is None:
            return self._limit
        limit, since = reduced
        if now - since >= self._window:
            del self._reduced[path]
            return self._limit
        return limit


def _recent(starts: deque[float], horizon: float) -> deque[float]:
    while starts and starts[0] <= horizon:
        starts.popleft()
    return starts
