"""The code location: assets, checks, jobs, schedules, sensors and resources, wired together."""

from collections.abc import Sequence

import dagster as dg

from wecom_assets.defs.alerts import WeComRobotResource, alert_sensor
from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.checks import build_freshness_checks
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.schedules import (
    nightly_schedule,
    wecom_freshness,
    wecom_freshness_hourly,
    wecom_sync,
)
from wecom_assets.defs.settings import (
    ALERT_WEBHOOK_KEY_ENV,
    PII_SALT_ENV,
    alerts_default_status,
    configured_corps,
    optional_secret,
)
from wecom_assets.wecom.corps import Corp

# A sync is one step (one multi-asset), so a step process of its own would only add start-up
# time: about 1 s with a forkserver, more than the whole fetch of a small org. Runs still take
# their own process when the daemon launches them, and share tokens through the file cache.
executor = dg.in_process_executor


def build_defs(corps: Sequence[Corp] = ()) -> dg.Definitions:
    """The code location for one corp (``WECOM_CORP_ID``/``WECOM_CORP_SECRET``) or many.

    With ``corps`` the WeCom assets are partitioned by corp id and each corp's secret is read from
    the variable its entry names; without, there is no partition and the credentials enter as
    ``dg.EnvVar``.
    """
    corp_ids = [corp.corp_id for corp in corps]
    wecom = (
        WeComResource()
        if corps
        else WeComResource(
            corp_id=dg.EnvVar("WECOM_CORP_ID"), corp_secret=dg.EnvVar("WECOM_CORP_SECRET")
        )
    )
    return dg.Definitions(
        assets=[build_org_assets(corps)],
        asset_checks=[build_freshness_checks(corp_ids)],
        jobs=[wecom_sync, wecom_freshness],
        schedules=[nightly_schedule(corp_ids), wecom_freshness_hourly],
        sensors=[alert_sensor(alerts_default_status())],
        resources={
            "wecom": wecom,
            "duckdb": WarehouseResource(pii_salt=optional_secret(PII_SALT_ENV)),
            "wecom_robot": WeComRobotResource(webhook_key=optional_secret(ALERT_WEBHOOK_KEY_ENV)),
        },
        executor=executor,
    )


defs = build_defs(configured_corps())
