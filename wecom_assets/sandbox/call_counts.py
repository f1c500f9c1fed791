"""What the sandbox saw: exact counts that tests and benchmarks assert on."""

from __future__ import annotations

from collections import Counter
from typing import Any

from wecom_assets.sandbox.call_quota import LIMIT_NAMES
from wecom_assets.sandbox.faults import FAULT_KINDS


class Stats:
    """Counters of calls, errcodes, faults and tokens. Not thread-safe: the caller serialises.

    ``issued_tokens`` survives :meth:`reset`, so a test can still scan logs for every token the
    server ever issued after resetting the counts between phases.
    """

    def __init__(self) -> None:
        self.issued_tokens: list[str] = []
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero every count (``issued_tokens`` is kept; ``max_in_flight`` restarts at now)."""
        self.calls: Counter[str] = Counter()
        self.gettoken = 0
        self.gettoken_failed = 0
        self.errcodes: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.tokens_invalidated = 0
        self.connections = 0
        self.max_in_flight = self.in_flight

    def begin_request(self) -> None:
        """A ``/cgi-bin/`` request started (tracks peak concurrency)."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end_request(self) -> None:
        """A ``/cgi-bin/`` request finished."""
        self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counts, safe to keep and to serialise as JSON."""
        return {
            "calls": dict(sorted(self.calls.items())),
            "gettoken": self.gettoken,
            "gettoken_failed": self.gettoken_failed,
            "errcodes": dict(sorted(self.errcodes.items())),
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
            "rate_limited": {name: self.rate_limited[name] for name in LIMIT_NAMES},
            "issued_tokens": list(self.issued_tokens),
            "tokens_invalidated": self.tokens_invalidated,
            "connections": self.connections,
            "max_in_flight": self.max_in_flight,
        }
