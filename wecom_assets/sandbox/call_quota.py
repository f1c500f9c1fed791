"""Call limits as WeCom enforces them: sliding windows that answer 45009, and WeCom's blocks.

WeCom counts calls per corp and API and per client IP, each in a minute and an hour window
(频率限制). :class:`CallQuota` checks every limit that applies to a call at once, so a call is
counted against all of them or against none.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The limits WeCom documents, as a 45009's errmsg and the stats name them.
API_MINUTE = "per-API minute limit"
API_HOUR = "per-API hour limit"
IP_MINUTE = "per-IP minute limit"
IP_HOUR = "per-IP hour limit"
LIMIT_NAMES = (API_MINUTE, API_HOUR, IP_MINUTE, IP_HOUR)


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
        calls = _recent(self._calls.setdefault(key, deque()), now - window)
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True


@dataclass(frozen=True)
class Quota:
    """One limit that applies to a call.

    Attributes:
        key: What is counted: ``"api:user/list"``, ``"ip:127.0.0.1"``.
        limit: Calls allowed in any window.
        window: Window length in seconds.
        name: The limit in words, for the errmsg and the stats (``"per-IP hour limit"``).
    """

    key: str
    limit: int
    window: float
    name: str


class CallQuota:
    """Several limits per call, counted together. Not thread-safe: the caller serialises."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}

    def admit(self, quotas: Sequence[Quota], *, blocks: bool) -> Quota | None:
        """Count a call against every quota, or refuse it and count it against none.

        Args:
            quotas: The limits that apply to the call.
            blocks: Whether going over a limit blocks its key for the limit's whole window, as
                WeCom does, rather than until the oldest counted call leaves the window.

        Returns:
            None when the call may go ahead; else the quota that refuses it.
        """
        now = self._clock()
        for quota in quotas:
            if self._blocked_until.get((quota.key, quota.name), now) > now:
                return quota
        windows = []
        for quota in quotas:
            slot = (quota.key, quota.name)
            calls = _recent(self._calls.setdefault(slot, deque()), now - quota.window)
            if len(calls) >= quota.limit:
                if blocks:
                    self._blocked_until[slot] = now + quota.window
                return quota
            windows.append(calls)
        for calls in windows:
            calls.append(now)
        return None


def _recent(calls: deque[float], horizon: float) -> deque[float]:
    while calls and calls[0] <= horizon:
        calls.popleft()
    return calls
