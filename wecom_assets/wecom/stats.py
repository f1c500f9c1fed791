"""Call counters of one client, safe to update from many threads."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of what a client has done so far.

    Attributes:
        calls: API path -> HTTP requests made, retries included (``"gettoken"`` included).
        retries: Attempts repeated after a transient failure or a token refresh.
        errcodes: Non-zero errcode -> times WeCom answered it.
        token_fetches: ``gettoken`` HTTP requests made by this client.
        api_seconds: Wall time during which at least one client call was running.
    """

    calls: Mapping[str, int]
    retries: int
    errcodes: Mapping[int, int]
    token_fetches: int
    api_seconds: float

    @property
    def total_calls(self) -> int:
        """HTTP requests made in all, ``gettoken`` included."""
        return sum(self.calls.values())


class StatsRecorder:
    """Accumulates the numbers behind :class:`ClientStats`.

    ``api_seconds`` is the length of the union of busy intervals, so concurrent calls are not
    counted twice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._errcodes: Counter[int] = Counter()
        self._retries = 0
        self._active = 0
        self._busy_since = 0.0
        self._busy_seconds = 0.0

    def record_call(self, path: str) -> None:
        """Count one HTTP request to ``path``."""
        with self._lock:
            self._calls[path] += 1

    def record_errcode(self, errcode: int) -> None:
        """Count one non-zero errcode answer."""
        with self._lock:
            self._errcodes[errcode] += 1

    def record_retry(self) -> None:
        """Count one repeated attempt."""
        with self._lock:
            self._retries += 1

    def enter(self) -> None:
        """Mark the start of a client call (nesting and concurrency allowed)."""
        with self._lock:
            if self._active == 0:
                self._busy_since = self._clock()
            self._active += 1

    def leave(self) -> None:
        """Mark the end of a client call started with :meth:`enter`."""
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._busy_seconds += self._clock() - self._busy_since

    def snapshot(self) -> ClientStats:
        """Return the counters as an immutable :class:`ClientStats`."""
        with self._lock:
            busy = self._busy_seconds
            if self._active:
                busy += self._clock() - self._busy_since
            return ClientStats(
                calls=dict(self._calls),
                retries=self._retries,
                errcodes=dict(self._errcodes),
                token_fetches=self._calls["gettoken"],
                api_seconds=busy,
            )
