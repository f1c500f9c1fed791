"""Jobs and schedules: the nightly sync and the freshness check that can raise an alert.

Both schedules start stopped, as Dagster schedules do by default: turn them on in the UI
(Automation) or with ``dagster schedule start`` once the code location points at a real corp.
"""

from collections.abc import Sequence

import dagster as dg

from wecom_assets.defs.checks import FRESHNESS_CHECK_KEYS, FreshnessConfig
from wecom_assets.defs.settings import GROUP

TIMEZONE = "Asia/Shanghai"
NIGHTLY_CRON = "0 2 * * *"
FRESHNESS_CRON = "15 * * * *"

wecom_sync = dg.define_asset_job(
    name="wecom_sync",
    selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.checks(*FRESHNESS_CHECK_KEYS),
    description="Fetch the org from WeCom and replace the three tables, with their checks.",
)

wecom_freshness = dg.define_asset_job(
    name="wecom_freshness",
    selection=dg.AssetSelection.checks(*FRESHNESS_CHECK_KEYS),
    description="Check that every WeCom table was synced within the freshness window.",
)


def nightly_schedule(corp_ids: Sequence[str] = ()) -> dg.ScheduleDefinition:
    """The nightly sync: one run, or one run per corp when the assets are partitioned by corp.

    A corp's run fails alone (a wrong secret, an outage); the others publish as usual. How many
    corps sync at once is the limit of the `wecom_duckdb` pool; their publishes take turns.
    """
    if not corp_ids:
        return dg.ScheduleDefinition(
            name="wecom_nightly",
            job=wecom_sync,
            cron_schedule=NIGHTLY_CRON,
            execution_timezone=TIMEZONE,
            description="Sync the org every night at 02:00 China time.",
        )

    @dg.schedule(
        name="wecom_nightly",
        job=wecom_sync,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=TIMEZONE,
        description="Sync every corp every night at 02:00 China time, one run per corp.",
    )
    def wecom_nightly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = (
            context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
        )
        return [
            dg.RunRequest(run_key=f"{corp_id}@{tick}", partition_key=corp_id)
            for corp_id in corp_ids
        ]

    return wecom_nightly


wecom_freshness_hourly = dg.ScheduleDefinition(
    name="wecom_freshness_hourly",
    job=wecom_freshness,
    cron_schedule=FRESHNESS_CRON,
    execution_timezone=TIMEZONE,
    run_config=dg.RunConfig(ops={"wecom_freshness_checks": FreshnessConfig()}),
    description="Every hour, fail the freshness checks of tables older than the window (26 h).",
)
