"""The alert sensor against a real instance and the sandbox's group robot, tick by tick.

Each test runs the code location's own jobs in process (a wrong secret makes a sync fail, a
never-synced warehouse makes the freshness checks fail) and evaluates the sensor as the daemon
would, with a clock and sleeps it controls; the sandbox receives what a WeCom group would show.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_support import resources

from wecom_assets.definitions import defs
from wecom_assets.defs import settings
from wecom_assets.defs.alerts import INTERVAL_SECONDS, WeComRobotResource, evaluate
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer

KEY = "5c7d2e90-robot-key-41aa"
WRONG_SECRET = "wrong-secret-7f3e9b2c41d5a6e8"
UI = "http://dagster.example.com:3000"


class ManualClock:
    """The sandbox's clock: the robot's minute passes when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """Records the sensor's backoff instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@dataclass
class Location:
    """The code location's jobs and sensor wired to a sandbox, and the instance they share."""

    instance: dg.DagsterInstance
    good: dg.Definitions
    wrong_secret: dg.Definitions
    sandbox: SandboxServer
    clock: ManualClock
    sleeps: Sleeps
    cursor: str | None = None

    def run(self, job: str, defs: dg.Definitions | None = None) -> dg.ExecuteInProcessResult:
        definitions = defs or self.good
        return definitions.resolve_job_def(job).execute_in_process(
            instance=self.instance, raise_on_error=False
        )

    def tick(self, robot: WeComRobotResource | None = None) -> dg.SensorResult:
        """One evaluation, as the daemon runs it; the cursor is kept as the daemon keeps it."""
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.good
        )
        result = evaluate(context, robot or robot_resource(self.sandbox.url), self.sleeps)
        if result.cursor is not None:
            self.cursor = result.cursor
        return result

    def messages(self) -> list[str]:
        return [message["content"] for message in self.sandbox.webhook_messages()]


def robot_resource(url: str, key: str = KEY) -> WeComRobotResource:
    return WeComRobotResource(webhook_key=key, base_url=url, ui_base_url=UI)


def location_defs(org: dict[str, Any], url: str, tmp_path: Path, **wecom: Any) -> dg.Definitions:
    """The code location's own assets, checks, jobs and sensor, with resources on the sandbox."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        sensors=defs.sensors,
        resources={**resources(org, url, tmp_path, **wecom), "wecom_robot": robot_resource(url)},
        executor=dg.in_process_executor,
    )


@pytest.fixture
def location(sandbox_org: dict[str, Any], tmp_path: Path) -> Iterator[Location]:
    clock = ManualClock()
    config = SandboxConfig(webhook_keys=[KEY])
    with (
        SandboxServer(sandbox_org, config, clock=clock) as sandbox,
        dg.instance_for_test() as instance,
    ):
        yield Location(
            instance=instance,
            good=location_defs(sandbox_org, sandbox.url, tmp_path),
            wrong_secret=location_defs(
                sandbox_org, sandbox.url, tmp_path, corp_secret=WRONG_SECRET
            ),
            sandbox=sandbox,
            clock=clock,
            sleeps=Sleeps(),
        )


@pytest.fixture
def watching(location: Location) -> Location:
    """The location after the sensor's first tick, which starts watching from then on."""
    location.tick()
    return location


def skip_reason(result: dg.SensorResult) -> str:
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def test_the_sensor_ticks_often_enough_to_post_within_a_minute() -> None:
    assert INTERVAL_SECONDS <= 30


def test_without_a_key_the_sensor_is_stopped_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.ALERT_WEBHOOK_KEY_ENV, raising=False)
    assert settings.alerts_default_status() == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv(settings.ALERT_WEBHOOK_KEY_ENV, KEY)
    assert settings.alerts_default_status() == dg.DefaultSensorStatus.RUNNING


def test_started_without_a_key_the_sensor_skips_naming_the_variable(
    location: Location,
) -> None:
    result = location.tick(WeComRobotResource())
    assert skip_reason(result) == "Alerts are off: WECOM_ALERT_WEBHOOK_KEY is not set."
    assert location.cursor is None


def test_the_first_tick_starts_watching_and_posts_nothing_from_before(
    location: Location,
) -> None:
    location.run("wecom_sync", location.wrong_secret)
    first = location.tick()
    second = location.tick()
    assert skip_reason(first) == "Watching runs that end from now on."
    assert skip_reason(second) == "Nothing to report in 0 run(s) that ended."
    assert location.messages() == []


def test_a_failed_sync_is_posted_with_the_errcode_hint_time_and_a_link_to_the_run(
    watching: Location,
) -> None:
    run = watching.run("wecom_sync", watching.wrong_secret)
    result = watching.tick()
    (message,) = watching.messages()
    assert not run.success
    assert skip_reason(result) == "Posted one message: 1 problem(s)."
    assert "**wecom_sync** failed at " in message
    assert "errcode 40001 · " in message
    assert "Check WECOM_CORP_SECRET" in message
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(Asia/Shanghai\)", message)
    assert f"({UI}/runs/{run.run_id})" in message


def test_the_sensor_definition_posts_through_its_robot_resource(
    watching: Location,
) -> None:
    watching.run("wecom_sync", watching.wrong_secret)
    sensor = watching.good.resolve_sensor_def("wecom_alerts")
    context = dg.build_sensor_context(
        instance=watching.instance,
        cursor=watching.cursor,
        definitions=watching.good,
        resources={"wecom_robot": robot_resource(watching.sandbox.url)},
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert len(watching.messages()) == 1


def test_a_blocking_check_that_stopped_the_publish_is_posted_with_its_offending_count(
    sandbox_org: dict[str, Any], watching: Location, tmp_path: Path
) -> None:
    orphaned = copy.deepcopy(sandbox_org)
    orphaned["departments"][-1]["parentid"] = 999_999
    watching.sandbox.replace_org(orphaned)
    watching.run("wecom_sync")
    watching.tick()
    (message,) = watching.messages()
    assert (
        "check `department_tree_is_sound` on `wecom_departments`: 1 offending, "
        "blocked the publish (the last good tables stay)" in message
    )


def test_a_failing_freshness_check_is_posted_once_while_it_keeps_failing(
    watching: Location,
) -> None:
    first = watching.run("wecom_freshness")
    watching.tick()
    watching.run("wecom_freshness")
    again = watching.tick()
    (message,) = watching.messages()
    assert first.success
    assert "**wecom_freshness** ran with failing checks" in message
    for table in ("wecom_departments", "wecom_users", "dept_membership"):
        assert f"check `fresh_within_window` on `{table}`" in message
    assert "has never been materialized" in message
    assert skip_reason(again) == "Nothing to report in 1 run(s) that ended."


def test_a_success_after_a_failure_is_posted_once_as_recovered(watching: Location) -> None:
    watching.run("wecom_sync", watching.wrong_secret)
    watching.tick()
    assert watching.run("wecom_sync").success
    watching.tick()
    assert watching.run("wecom_sync").success
    watching.tick()
    _, recovered = watching.messages()
    assert "WeCom sync recovered" in recovered
    assert '**wecom_sync** <font color="info">recovered</font>: succeeded at ' in recovered


def test_many_failures_at_once_become_one_message(watching: Location) -> None:
    runs = [watching.run("wecom_sync", watching.wrong_secret) for _ in range(3)]
    watching.tick()
    (message,) = watching.messages()
    assert "3 failed run(s)" in message
    assert all(f"/runs/{run.run_id})" in message for run in runs)
    assert watching.sandbox.stats()["calls"]["webhook/send"] == 1


def test_over_the_robots_limit_the_post_is_retried_a_little_then_next_tick(
    watching: Location,
) -> None:
    watching.sandbox.update_config(webhook_limit_per_minute=1)
    robot_resource(watching.sandbox.url).robot().send_markdown("someone else's message")
    run = watching.run("wecom_sync", watching.wrong_secret)
    stuck_at = watching.cursor
    refused = watching.tick()
    assert skip_reason(refused).startswith("Posting failed, tried again next tick: ")
    assert "errcode 45009" in skip_reason(refused)
    assert watching.cursor == stuck_at
    assert watching.sleeps == [1.0, 2.0]
    watching.clock.now += 60
    watching.tick()
    assert f"/runs/{run.run_id})" in watching.messages()[-1]


def test_a_key_wecom_does_not_know_is_logged_and_never_fails_the_sensor(
    watching: Location, caplog: pytest.LogCaptureFixture
) -> None:
    watching.run("wecom_sync", watching.wrong_secret)
    stuck_at = watching.cursor
    result = watching.tick(robot_resource(watching.sandbox.url, key="removed-robot"))
    assert "errcode 93000" in skip_reason(result)
    assert "WECOM_ALERT_WEBHOOK_KEY" in skip_reason(result)
    assert "removed-robot" not in skip_reason(result) + caplog.text
    assert watching.cursor == stuck_at
    assert watching.sleeps == []


def test_no_secret_token_or_key_reaches_a_message(
    watching: Location, sandbox_org: dict[str, Any], tmp_path: Path
) -> None:
    # An outage after the token was fetched: the step fails on a URL that carried the token.
    watching.sandbox.update_config(fail_after=1)
    outage = location_defs(sandbox_org, watching.sandbox.url, tmp_path, max_retries=0)
    watching.run("wecom_sync", outage)
    watching.sandbox.update_config(fail_after=None)
    watching.run("wecom_sync", watching.wrong_secret)
    watching.tick()
    tokens = watching.sandbox.stats()["issued_tokens"]
    secrets = {
        "corp secret": sandbox_org["corp_secret"],
        "wrong secret": WRONG_SECRET,
        "robot key": KEY,
        **{f"token {n}": token for n, token in enumerate(tokens)},
    }
    (message,) = watching.sandbox.webhook_messages()
    assert tokens
    assert "2 failed run(s)" in message["content"]
    assert [label for label, value in secrets.items() if value in message["body"]] == []
