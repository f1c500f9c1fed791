"""Fault selection: which call fails and how, from a seeded generator.

Each fault kind mirrors a failure seen in front of the real API: WeCom's own "system busy"
(errcode -1), a gateway answering 502/503, a connection reset, a response cut off mid-body, a
body that is not valid JSON, and a full outage after some number of calls.
"""

from __future__ import annotations

import random

from wecom_assets.sandbox.config import FaultConfig

BUSY = "busy"
HTTP_5XX = "http_5xx"
DROP = "drop"
TRUNCATE = "truncate"
BAD_JSON = "bad_json"
OUTAGE = "outage"
FAULT_KINDS = (BUSY, HTTP_5XX, DROP, TRUNCATE, BAD_JSON, OUTAGE)

_RATE_OF = (
    (BUSY, "busy_rate"),
    (HTTP_5XX, "http_5xx_rate"),
    (DROP, "drop_rate"),
    (TRUNCATE, "truncate_rate"),
    (BAD_JSON, "bad_json_rate"),
)


class FaultInjector:
    """Decides per call which fault, if any, to inject. Not thread-safe: the caller serialises."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._calls_since_fail_after = 0

    def reseed(self, seed: int) -> None:
        """Restart the generator, so a given seed gives the same fault sequence again."""
        self._rng = random.Random(seed)

    def restart_outage_count(self) -> None:
        """Count calls towards ``fail_after`` from now on (when it is set or stats reset)."""
        self._calls_since_fail_after = 0

    def pick(self, faults: FaultConfig) -> str | None:
        """The fault kind for the next call, or None to answer normally."""
        self._calls_since_fail_after += 1
        if faults.fail_after is not None and self._calls_since_fail_after > faults.fail_after:
            return OUTAGE
        roll = self._rng.random()
        threshold = 0.0
        for kind, attribute in _RATE_OF:
            threshold += getattr(faults, attribute)
            if roll < threshold:
                return kind
        return None

    def gateway_status(self) -> int:
        """502 or 503, as a reverse proxy in front of the API would answer."""
        return self._rng.choice((502, 503))
