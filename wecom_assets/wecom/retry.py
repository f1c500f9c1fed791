"""How long and how often one API call may keep trying: the retry budget and the backoff.

WeCom asks clients to back off on busy (-1) and rate-limit (45009/45033) answers; an unbounded
retry loop would instead hold a Dagster step for ever. Each call therefore gets a budget of
retries counted in attempts *and* in time, both on the client's (injectable) clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Rate-limit answers (45009/45033) block the API for the rest of WeCom's window: wait longer.
RATE_LIMIT_BACKOFF_FACTOR = 4.0


class RetryBudget:
    """The retries one call has left, in count and in seconds since the call started.

    Not thread-safe: each call owns its budget.
    """

    def __init__(self, max_retries: int, max_seconds: float, clock: Callable[[], float]) -> None:
        """Start a budget now.

        Args:
            max_retries: Extra attempts allowed after the first.
            max_seconds: Time the call may take in all, attempts and waits included.
            clock: Monotonic clock in seconds.
        """
        self._max_retries = max_retries
        self._max_seconds = max_seconds
        self._clock = clock
        self._deadline = clock() + max_seconds
        self._retries = 0

    @property
    def retries(self) -> int:
        """Retries taken so far."""
        return self._retries

    @property
    def max_retries(self) -> int:
        """Retries allowed in all."""
        return self._max_retries

    @property
    def max_seconds(self) -> float:
        """Seconds the call may take in all."""
        return self._max_seconds

    def remaining_seconds(self) -> float:
        """Seconds left before the deadline, never negative."""
        return max(0.0, self._deadline - self._clock())

    def exhausted(self) -> bool:
        """Whether another retry is out of the question: none left, or no time left."""
        return self._retries >= self._max_retries or self.remaining_seconds() <= 0

    def take(self) -> int:
        """Use up one retry.

        Returns:
            The number of the retry just taken (1 for the first).
        """
        self._retries += 1
        return self._retries


class Backoff:
    """Exponential backoff with full jitter, so concurrent workers do not retry in lockstep."""

    def __init__(self, base_delay: float, max_delay: float, rng: random.Random) -> None:
        """Create a backoff policy.

        Args:
            base_delay: Ceiling of the first wait in seconds; it doubles per retry.
            max_delay: Largest ceiling for busy answers and transport failures.
            rng: Source of jitter.
        """
        self._base = base_delay
        self._max = max_delay
        self._rng = rng

    def delay(self, retry: int, *, rate_limited: bool) -> float:
        """Return the wait before retry number ``retry + 1``.

        Rate-limit waits use ceilings :data:`RATE_LIMIT_BACKOFF_FACTOR` times longer and never
        drop below half their ceiling: a rate-limited API stays blocked for a while, so a
        near-zero wait would only earn another 45009.

        Args:
            retry: Retries already taken (0 before the first).
            rate_limited: Whether the last answer was a rate or concurrency limit.

        Returns:
            Seconds to wait.
        """
        factor = RATE_LIMIT_BACKOFF_FACTOR if rate_limited else 1.0
        ceiling = min(self._max * factor, self._base * factor * 2**retry)
        floor = ceiling / 2 if rate_limited else 0.0
        return self._rng.uniform(floor, ceiling)
