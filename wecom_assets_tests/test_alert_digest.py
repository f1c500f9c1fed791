"""What the alert sensor posts each tick, and what it remembers in its cursor."""

from __future__ import annotations

import dagster as dg

from wecom_assets.defs.alert_digest import AlertState, digest
from wecom_assets.defs.alert_events import CheckProblem, RunOutcome, WatchScope

STALE = CheckProblem("wecom_users", "fresh_within_window", None, "30 h old", False)


def outcome(
    n: int,
    *,
    job: str = "wecom_sync",
    failed: bool = False,
    checks: tuple[CheckProblem, ...] = (),
    passed: tuple[str, ...] = (),
) -> RunOutcome:
    return RunOutcome(n, f"run-{n}", job, None, failed, 0.0, (), checks, passed)


def test_the_cursor_round_trips_as_json() -> None:
    state = AlertState(12, 15, {"wecom_sync": "run-3"}, frozenset({"wecom_users/unique_userids"}))
    assert AlertState.from_cursor(state.to_cursor()) == state
    assert state.to_cursor().startswith('{"after_failure":12,"after_success":15,')


def test_a_missing_or_foreign_cursor_means_a_first_tick() -> None:
    assert AlertState.from_cursor(None) is None
    assert AlertState.from_cursor("42") is None
    assert AlertState.from_cursor('{"after_failure": "x"}') is None


def test_every_failed_run_is_a_problem() -> None:
    found, state = digest([outcome(1, failed=True), outcome(2, failed=True)], AlertState(0, 0))
    assert [o.run_id for o in found.problems] == ["run-1", "run-2"]
    assert state.failing_jobs == {"wecom_sync": "run-2"}


def test_a_check_that_keeps_failing_is_posted_when_it_starts_only() -> None:
    first, state = digest([outcome(1, job="wecom_freshness", checks=(STALE,))], AlertState(0, 0))
    again, state = digest([outcome(2, job="wecom_freshness", checks=(STALE,))], state)
    assert [o.run_id for o in first.problems] == ["run-1"]
    assert not again
    assert state.failing_checks == {"wecom_users/fresh_within_window"}


def test_a_check_that_passed_in_between_is_posted_again_when_it_fails_again() -> None:
    runs = [
        outcome(1, job="wecom_freshness", checks=(STALE,)),
        outcome(2, job="wecom_freshness", passed=(STALE.key,)),
        outcome(3, job="wecom_freshness", checks=(STALE,)),
    ]
    found, _ = digest(runs, AlertState(0, 0))
    assert [o.run_id for o in found.problems] == ["run-1", "run-3"]


def test_the_next_success_of_a_failing_job_is_one_recovery() -> None:
    runs = [outcome(1, failed=True), outcome(2), outcome(3)]
    found, state = digest(runs, AlertState(0, 0))
    assert [o.run_id for o in found.recoveries] == ["run-2"]
    assert state.failing_jobs == {}


def test_a_success_of_another_job_recovers_nothing() -> None:
    found, _ = digest(
        [outcome(1, failed=True), outcome(2, job="wecom_freshness")], AlertState(0, 0)
    )
    assert found.recoveries == ()


def test_the_code_location_s_jobs_and_asset_runs_are_watched_and_others_not() -> None:
    watch = WatchScope(frozenset({"wecom_sync"}), frozenset({dg.AssetKey("wecom_users")}))
    users_check = dg.AssetCheckKey(dg.AssetKey("wecom_users"), "unique_userids")
    assert watch.watches(dg.DagsterRun(job_name="wecom_sync"))
    assert watch.watches(
        dg.DagsterRun(
            job_name="__ASSET_JOB", asset_selection=frozenset({dg.AssetKey("wecom_users")})
        )
    )
    assert watch.watches(
        dg.DagsterRun(job_name="__ASSET_JOB", asset_check_selection=frozenset({users_check}))
    )
    assert not watch.watches(
        dg.DagsterRun(job_name="__ASSET_JOB", asset_selection=frozenset({dg.AssetKey("orders")}))
    )
    assert not watch.watches(dg.DagsterRun(job_name="billing_sync"))
