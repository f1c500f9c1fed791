"""What the alert sensor remembers between ticks, and what is worth a message this tick.

The memory is the sensor's cursor, JSON the UI shows on the sensor's page: how far each event
stream was read, which jobs are failing (so their next success can say "recovered") and which
checks are failing (so a freshness check that fails every hour is posted once, when it starts).
It only moves forward once a message went out, so a failed post is tried again next tick.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from wecom_assets.defs.alert_events import RunOutcome


@dataclass(frozen=True)
class AlertState:
    """The sensor's cursor.

    Attributes:
        after_failure: Storage id of the last run failure read.
        after_success: Storage id of the last run success read.
        failing_jobs: Job (and corp) -> id of the run whose failure was posted last.
        failing_checks: ``asset/check`` of the checks whose failure was posted and that have
            not passed since.
    """

    after_failure: int
    after_success: int
    failing_jobs: dict[str, str] = field(default_factory=dict)
    failing_checks: frozenset[str] = frozenset()

    def to_cursor(self) -> str:
        """The state as the sensor's cursor (compact JSON, sorted, readable in the UI)."""
        return json.dumps(
            {
                "after_failure": self.after_failure,
                "after_success": self.after_success,
                "failing_jobs": dict(sorted(self.failing_jobs.items())),
                "failing_checks": sorted(self.failing_checks),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_cursor(cls, cursor: str | None) -> AlertState | None:
        """The state kept in ``cursor``; None for a sensor's first tick or a cursor not its own."""
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
            return cls(
                after_failure=int(data["after_failure"]),
                after_success=int(data["after_success"]),
                failing_jobs={str(k): str(v) for k, v in data.get("failing_jobs", {}).items()},
                failing_checks=frozenset(str(c) for c in data.get("failing_checks", [])),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass(frozen=True)
class Digest:
    """What one message says: runs that went wrong, and jobs that recovered."""

    problems: tuple[RunOutcome, ...]
    recoveries: tuple[RunOutcome, ...]

    def __bool__(self) -> bool:
        return bool(self.problems or self.recoveries)

    def summary(self) -> str:
        """One line for the sensor's tick and log, e.g. ``2 problem(s), 1 recovery``."""
        parts = [f"{len(self.problems)} problem(s)"] if self.problems else []
        if self.recoveries:
            parts.append(f"{len(self.recoveries)} recovery(ies)")
        return ", ".join(parts) or "nothing"


def digest(outcomes: Sequence[RunOutcome], state: AlertState) -> tuple[Digest, AlertState]:
    """What to post about ``outcomes`` (oldest first), and the state once it is posted.

    A failed run is always a problem. A run that succeeded is one when a check in it failed that
    was not failing already; it ends an earlier failure of its job as a recovery.
    """
    failing_jobs = dict(state.failing_jobs)
    failing_checks = set(state.failing_checks)
    problems: list[RunOutcome] = []
    recoveries: list[RunOutcome] = []
    for outcome in outcomes:
        failing_checks -= set(outcome.passed_checks)
        new_checks = tuple(c for c in outcome.failed_checks if c.key not in failing_checks)
        failing_checks |= {check.key for check in outcome.failed_checks}
        if outcome.failed:
            problems.append(outcome)
            failing_jobs[outcome.scope] = outcome.run_id
            continue
        if new_checks:
            problems.append(replace(outcome, failed_checks=new_checks))
        if outcome.scope in failing_jobs and not outcome.failed_checks:
            recoveries.append(outcome)
            del failing_jobs[outcome.scope]
    new_state = AlertState(
        after_failure=state.after_failure,
        after_success=state.after_success,
        failing_jobs=failing_jobs,
        failing_checks=frozenset(failing_checks),
    )
    return Digest(tuple(problems), tuple(recoveries)), new_state
