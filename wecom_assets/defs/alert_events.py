"""What the alert sensor reads from the instance: runs of this code location that ended.

Everything worth a message ends a run: a sync that fails (its step failures and the blocking
checks that stopped the publish are in its event log), and a freshness run whose checks failed
(that run itself succeeds). So the sensor follows two streams of the event log, run failures and
run successes, each by storage id, and reads the event log of the runs it watches.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import dagster as dg

_ERRCODE = re.compile(r"errcode[ :]+(-?\d+)")
RunEnd = Literal[dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS]
_FAILURE_TYPES = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


@dataclass(frozen=True)
class StepProblem:
    """A step that failed: its key, WeCom's errcode when there was one, and the reason."""

    step: str
    errcode: int | None
    reason: str


@dataclass(frozen=True)
class CheckProblem:
    """An error-severity check that failed: which, on which asset, how many rows, and why."""

    asset: str
    check: str
    offending_count: int | None
    description: str
    blocked_publish: bool

    @property
    def key(self) -> str:
        """``asset/check``, how the sensor remembers a check that keeps failing."""
        return f"{self.asset}/{self.check}"


@dataclass(frozen=True)
class RunOutcome:
    """A watched run that ended, with what went wrong in it."""

    storage_id: int
    run_id: str
    job: str
    partition: str | None
    failed: bool
    ended_at: float
    steps: tuple[StepProblem, ...]
    failed_checks: tuple[CheckProblem, ...]
    passed_checks: tuple[str, ...]

    @property
    def scope(self) -> str:
        """The job and corp, so a success can say which earlier failure it ends."""
        return self.job if self.partition is None else f"{self.job} [{self.partition}]"


@dataclass(frozen=True)
class WatchScope:
    """Which runs are the code location's: its named jobs, or a selection of its assets."""

    jobs: frozenset[str]
    assets: frozenset[dg.AssetKey]

    @classmethod
    def of(cls, repository: dg.RepositoryDefinition) -> WatchScope:
        """The named jobs and asset keys of ``repository`` (implicit asset jobs left out)."""
        return cls(
            jobs=frozenset(name for name in repository.job_names if not name.startswith("__")),
            assets=frozenset(repository.asset_graph.get_all_asset_keys()),
        )

    def watches(self, run: dg.DagsterRun) -> bool:
        """Whether ``run`` belongs to the code location: one of its jobs, or its assets/checks."""
        if run.job_name in self.jobs:
            return True
        selected = set(run.asset_selection or ())
        selected |= {check.asset_key for check in run.asset_check_selection or ()}
        return bool(selected & self.assets)


@dataclass(frozen=True)
class Batch:
    """Outcomes in storage-id order, and how far each stream was read."""

    outcomes: tuple[RunOutcome, ...]
    after_failure: int
    after_success: int


def latest_storage_ids(instance: dg.DagsterInstance) -> tuple[int, int]:
    """Storage ids of the newest run failure and run success (0 when there is none)."""
    return (
        _latest(instance, dg.DagsterEventType.RUN_FAILURE),
        _latest(instance, dg.DagsterEventType.RUN_SUCCESS),
    )


def read_batch(
    instance: dg.DagsterInstance,
    watch: WatchScope,
    after_failure: int,
    after_success: int,
    limit: int = 50,
) -> Batch:
    """Watched runs that ended after the given storage ids, oldest first, at most ``limit`` each.

    When one stream has more than ``limit`` new records, both are read only up to the last one
    read from it, so a failure and the success that follows it are always seen in order.
    """
    failures = _since(instance, dg.DagsterEventType.RUN_FAILURE, after_failure, limit)
    successes = _since(instance, dg.DagsterEventType.RUN_SUCCESS, after_success, limit)
    horizon = min(
        (records[-1].storage_id for records in (failures, successes) if len(records) == limit),
        default=math.inf,
    )
    failures = [r for r in failures if r.storage_id <= horizon]
    successes = [r for r in successes if r.storage_id <= horizon]
    outcomes = []
    for record in sorted([*failures, *successes], key=lambda r: r.storage_id):
        run = instance.get_run_by_id(record.run_id)
        if run is not None and watch.watches(run):
            outcomes.append(_outcome(instance, record, run))
    return Batch(
        outcomes=tuple(outcomes),
        after_failure=failures[-1].storage_id if failures else after_failure,
        after_success=successes[-1].storage_id if successes else after_success,
    )


def _latest(instance: dg.DagsterInstance, event_type: RunEnd) -> int:
    records = instance.fetch_run_status_changes(event_type, limit=1, ascending=False).records
    return records[0].storage_id if records else 0


def _since(
    instance: dg.DagsterInstance, event_type: RunEnd, after: int, limit: int
) -> list[dg.EventLogRecord]:
    records_filter = dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after)
    result = instance.fetch_run_status_changes(records_filter, limit=limit, ascending=True)
    return list(result.records)


def _outcome(
    instance: dg.DagsterInstance, record: dg.EventLogRecord, run: dg.DagsterRun
) -> RunOutcome:
    failed = record.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE
    steps: list[StepProblem] = []
    failed_checks: list[CheckProblem] = []
    passed_checks: list[str] = []
    for entry in instance.all_logs(run.run_id, of_type=_FAILURE_TYPES):
        event = entry.dagster_event
        if event is None:
            continue
        if event.is_step_failure:
            steps.append(_step_problem(event))
            continue
        evaluation = event.event_specific_data
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue
        problem = _check_problem(evaluation)
        if evaluation.passed:
            passed_checks.append(problem.key)
        elif evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed_checks.append(problem)
    if failed and not steps:
        steps.append(StepProblem("run", None, _run_failure_reason(record)))
    job = run.job_name if not run.job_name.startswith("__") else "asset run"
    return RunOutcome(
        storage_id=record.storage_id,
        run_id=run.run_id,
        job=job,
        partition=run.tags.get("dagster/partition"),
        failed=failed,
        ended_at=record.timestamp,
        steps=tuple(steps),
        failed_checks=tuple(failed_checks),
        passed_checks=tuple(passed_checks),
    )


def _step_problem(event: dg.DagsterEvent) -> StepProblem:
    data = event.step_failure_data
    user = data.user_failure_data
    errcode = None
    if user is not None:
        value = user.metadata.get("wecom/errcode")
        if value is not None and isinstance(value.value, int) and value.value:
            errcode = value.value
    reason = user.description if user is not None and user.description else ""
    if not reason and data.error is not None:
        reason = _error_text(data.error.message, data.error.cls_name)
    if errcode is None:
        errcode = _errcode_in(reason)
    return StepProblem(event.step_key or "run", errcode, reason or "failed without a message")


def _check_problem(evaluation: dg.AssetCheckEvaluation) -> CheckProblem:
    metadata = evaluation.metadata
    count = metadata.get("offending_count")
    blocked = metadata.get("blocks_replacement")
    return CheckProblem(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        offending_count=count.value if count is not None and isinstance(count.value, int) else None,
        description=evaluation.description or "",
        blocked_publish=bool(blocked is not None and blocked.value),
    )


def _run_failure_reason(record: dg.EventLogRecord) -> str:
    """Why a run failed that no step reported: a run-worker crash, a bad config, a cancel."""
    event = record.event_log_entry.dagster_event
    error = getattr(event.event_specific_data, "error", None) if event is not None else None
    if error is not None:
        return _error_text(error.message, error.cls_name)
    return record.event_log_entry.message or "the run failed"


def _error_text(message: str, class_name: str | None) -> str:
    """An error's message without the ``package.module.Class: `` Dagster puts before it."""
    text = message.strip()
    head, separator, rest = text.partition(": ")
    if separator and class_name and head.endswith(class_name):
        return rest.strip()
    return text


def _errcode_in(text: str) -> int | None:
    match = _ERRCODE.search(text)
    return int(match.group(1)) if match else None
