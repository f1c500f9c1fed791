"""Alerts in a WeCom group chat: a sensor that posts failed syncs and failing checks through a robot.

The daemon (``dagster dev``, ``dg dev``, or ``dagster-daemon`` in production) evaluates the sensor
every 30 seconds. Each tick reads the runs of this code location that ended since the last one
(:mod:`~wecom_assets.defs.alert_events`), decides what is new (:mod:`~wecom_assets.defs.alert_digest`)
and posts at most one message (:mod:`~wecom_assets.defs.alert_messages`), so the robot's limit of 20
messages a minute is never approached, however many runs fail at once. A post that fails is
retried a little, logged, and tried again on the next tick; it never fails the sensor. What the
sensor did shows on its page in the UI: the reason of every tick and the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import quote

import dagster as dg
from pydantic import Field

from wecom_assets.defs import settings
from wecom_assets.defs.alert_digest import AlertState, digest
from wecom_assets.defs.alert_events import WatchScope, latest_storage_ids, read_batch
from wecom_assets.defs.alert_messages import render
from wecom_assets.defs.layout import TIMEZONE, Layout
from wecom_assets.wecom.redact import Redactor
from wecom_assets.wecom.robot import GroupRobot, RobotError

INTERVAL_SECONDS = 30


class WeComRobotResource(dg.ConfigurableResource):
    """The WeCom group robot (群机器人) that receives alerts, and where message links point."""

    webhook_key: str = Field(
        default="",
        description=(
            "Key of the group robot, the `key=` of its webhook address; set from the env var "
            "WECOM_ALERT_WEBHOOK_KEY. Empty: alerts are off. Never shown."
        ),
    )
    base_url: str = Field(
        default="",
        description=(
            "API root the robot is reached at. Empty means $WECOM_API_BASE_URL, else "
            "https://qyapi.weixin.qq.com: the same as the contact API's."
        ),
    )
    ui_base_url: str = Field(
        default="",
        description=(
            "Root URL of the Dagster UI that messages link runs to. Empty means "
            "$WECOM_ALERT_UI_BASE_URL, else http://localhost:3000."
        ),
    )
    attempts: int = Field(
        default=3, ge=1, le=5, description="Tries per message before the tick gives up."
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, le=20, description="Connect and read timeout of one post."
    )

    @property
    def enabled(self) -> bool:
        """Whether a robot key is set."""
        return bool(self.webhook_key.strip())

    def robot(self, sleep: Callable[[float], None] = time.sleep) -> GroupRobot:
        """The robot client, its key and base URL resolved; ``sleep`` waits between tries.

        Raises:
            ValueError: No key is set.
        """
        return GroupRobot(
            settings.base_url(self.base_url),
            self.webhook_key,
            timeout=self.timeout_seconds,
            attempts=self.attempts,
            sleep=sleep,
        )

    def runs_url(self) -> str:
        """The UI's list of runs."""
        return f"{settings.alert_ui_base_url(self.ui_base_url)}/runs"

    def run_url(self, run_id: str) -> str:
        """The UI's page of one run."""
        return f"{self.runs_url()}/{quote(run_id, safe='')}"


def alert_sensor(
    default_status: dg.DefaultSensorStatus, layout: Layout = Layout()
) -> dg.SensorDefinition:
    """The sensor, running by default when a robot key is set (see ``definitions.py``).

    It is named ``wecom_alerts`` and uses the robot resource ``wecom_robot``, both with the
    layout's prefix; messages show times in the layout's timezone, the nightly schedule's.
    """

    @dg.sensor(
        name=layout.name("wecom_alerts"),
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description=(
            "Posts failed WeCom syncs, blocking data-quality checks and failing freshness checks "
            "to a WeCom group through its robot (WECOM_ALERT_WEBHOOK_KEY), one message per tick; "
            "a job's next success is posted as recovered. Off when no key is set."
        ),
        required_resource_keys={layout.robot_resource},
    )
    def wecom_alerts(context: dg.SensorEvaluationContext, **_: object) -> dg.SensorResult:
        # The robot's key follows the layout, so it is required by name. Dagster passes such
        # resources as keyword arguments when a sensor is called directly, but not when the
        # daemon evaluates it; both put them on the context.
        robot = getattr(context.resources, layout.robot_resource)
        if not isinstance(robot, WeComRobotResource):
            raise TypeError(f"resource {layout.robot_resource!r} is not a WeComRobotResource")
        return evaluate(context, robot, timezone=layout.timezone)

    return wecom_alerts


def evaluate(
    context: dg.SensorEvaluationContext,
    robot: WeComRobotResource,
    sleep: Callable[[float], None] = time.sleep,
    timezone: str = TIMEZONE,
) -> dg.SensorResult:
    """One tick: read what ended, post one message about it, move the cursor once it is out.

    Args:
        context: The sensor's context: instance, cursor, code location, log.
        robot: The robot resource.
        sleep: Waits between tries of a post (tests pass one that returns at once).
        timezone: The timezone of the times in the message.
    """
    if not robot.enabled:
        return dg.SensorResult(
            skip_reason=f"Alerts are off: {settings.ALERT_WEBHOOK_KEY_ENV} is not set."
        )
    state = AlertState.from_cursor(context.cursor)
    if state is None:
        after_failure, after_success = latest_storage_ids(context.instance)
        state = AlertState(after_failure, after_success)
        return dg.SensorResult(
            skip_reason="Watching runs that end from now on.", cursor=state.to_cursor()
        )
    if context.repository_def is None:
        raise RuntimeError("the alert sensor needs its code location's definitions")
    batch = read_batch(
        context.instance,
        WatchScope.of(context.repository_def),
        state.after_failure,
        state.after_success,
    )
    found, after = digest(batch.outcomes, state)
    after = replace(after, after_failure=batch.after_failure, after_success=batch.after_success)
    if not found:
        return dg.SensorResult(
            skip_reason=f"Nothing to report in {len(batch.outcomes)} run(s) that ended.",
            cursor=after.to_cursor(),
        )
    message = render(
        found,
        run_url=robot.run_url,
        runs_url=robot.runs_url(),
        timezone=timezone,
        redact=Redactor((robot.webhook_key.strip(),)),
    )
    started = time.monotonic()
    try:
        robot.robot(sleep).send_markdown(message)
    except RobotError as error:
        context.log.error(f"Could not post {found.summary()} to the WeCom group: {error}")
        return dg.SensorResult(
            skip_reason=f"Posting failed, tried again next tick: {error}",
            cursor=state.to_cursor(),
        )
    context.log.info(
        f"Posted {found.summary()} to the WeCom group in {time.monotonic() - started:.1f}s"
    )
    return dg.SensorResult(
        skip_reason=f"Posted one message: {found.summary()}.", cursor=after.to_cursor()
    )
