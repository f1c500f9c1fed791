"""The code location: assets, checks, jobs, schedules, sensors and resources, wired together."""

import dagster as dg

from wecom_assets.defs.alerts import WeComRobotResource, alert_sensor
from wecom_assets.defs.assets import wecom_org
from wecom_assets.defs.checks import wecom_freshness_checks
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.schedules import (
    wecom_freshness,
    wecom_freshness_hourly,
    wecom_nightly,
    wecom_sync,
)
from wecom_assets.defs.settings import (
    ALERT_WEBHOOK_KEY_ENV,
    PII_SALT_ENV,
    alerts_default_status,
    optional_secret,
)

# A sync is one step (one multi-asset), so a step process of its own would only add start-up
# time: about 1 s with a forkserver, more than the whole fetch of a small org. Runs still take
# their own process when the daemon launches them, and share tokens through the file cache.
executor = dg.in_process_executor

defs = dg.Definitions(
    assets=[wecom_org],
    asset_checks=[wecom_freshness_checks],
    jobs=[wecom_sync, wecom_freshness],
    schedules=[wecom_nightly, wecom_freshness_hourly],
    sensors=[alert_sensor(alerts_default_status())],
    resources={
        "wecom": WeComResource(
            corp_id=dg.EnvVar("WECOM_CORP_ID"),
            corp_secret=dg.EnvVar("WECOM_CORP_SECRET"),
        ),
        "duckdb": WarehouseResource(pii_salt=optional_secret(PII_SALT_ENV)),
        "wecom_robot": WeComRobotResource(webhook_key=optional_secret(ALERT_WEBHOOK_KEY_ENV)),
    },
    executor=executor,
)
