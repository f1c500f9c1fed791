"""Jobs and schedules: the nightly sync and the freshness check that can raise an alert.

Both schedules start stopped, as Dagster schedules do by default: turn them on in the UI
(Automation) or with ``dagster schedule start`` once the code location points at a real corp.
"""

import dagster as dg

from wecom_assets.defs.checks import FreshnessConfig, wecom_freshness_checks
from wecom_assets.defs.settings import GROUP

TIMEZONE = "Asia/Shanghai"
NIGHTLY_CRON = "0 2 * * *"
FRESHNESS_CRON = "15 * * * *"

wecom_sync = dg.define_asset_job(
    name="wecom_sync",
    selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.checks(wecom_freshness_checks),
    description="Fetch the org from WeCom and replace the three tables, with their checks.",
)

wecom_freshness = dg.define_asset_job(
    name="wecom_freshness",
    selection=dg.AssetSelection.checks(wecom_freshness_checks),
    description="Check that every WeCom table was synced within the freshness window.",
)

wecom_nightly = dg.ScheduleDefinition(
    name="wecom_nightly",
    job=wecom_sync,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone=TIMEZONE,
    description="Sync the org every night at 02:00 China time.",
)

wecom_freshness_hourly = dg.ScheduleDefinition(
    name="wecom_freshness_hourly",
    job=wecom_freshness,
    cron_schedule=FRESHNESS_CRON,
    execution_timezone=TIMEZONE,
    run_config=dg.RunConfig(ops={"wecom_freshness_checks": FreshnessConfig()}),
    description="Every hour, fail the freshness checks of tables older than the window (26 h).",
)
