"""The WeCom definitions: assets, checks, jobs, schedules, sensor and resources, wired together.

:func:`build_defs` is the one factory: the component (:mod:`wecom_assets.defs.component`) calls
it with what a ``defs.yaml`` says, and this repository's code location is that component with its
defaults (:mod:`wecom_assets.definitions`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from wecom_assets.defs.alerts import WeComRobotResource, alert_sensor
from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.checks import build_freshness_checks
from wecom_assets.defs.layout import Layout
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.schedules import (
    freshness_job,
    freshness_schedule,
    nightly_schedule,
    sync_job,
)
from wecom_assets.defs.settings import (
    ALERT_WEBHOOK_KEY_ENV,
    PII_SALT_ENV,
    POOL,
    WAREHOUSE_URL_ENV,
    alerts_default_status,
    optional_secret,
    warehouse_url,
)
from wecom_assets.defs.tag_assets import build_tag_assets
from wecom_assets.warehouse.postgres import is_postgres_url
from wecom_assets.wecom.corps import Corp

CORP_ID_ENV = "WECOM_CORP_ID"
CORP_SECRET_ENV = "WECOM_CORP_SECRET"


@dataclass(frozen=True)
class SecretEnv:
    """Names of the environment variables holding the corp and the secrets; never the values.

    Attributes:
        corp_id: Holds the corp id when no corps are listed.
        corp_secret: Holds that corp's app secret.
        pii_salt: Holds the salt of hashed contact fields (optional).
        alert_webhook_key: Holds the group robot's key (optional; alerts are off without it).
    """

    corp_id: str = CORP_ID_ENV
    corp_secret: str = CORP_SECRET_ENV
    pii_salt: str = PII_SALT_ENV
    alert_webhook_key: str = ALERT_WEBHOOK_KEY_ENV


@dataclass(frozen=True)
class ResourceSettings:
    """Fields of the three resources other than secrets; empty means each field's default.

    Attributes:
        wecom: Fields of :class:`WeComResource` (base URL, token cache, tuning).
        warehouse: Fields of :class:`WarehouseResource` (DuckDB file or PostgreSQL URL and
            schema, lock timeout, PII policy).
        robot: Fields of :class:`WeComRobotResource` (UI link root, tries, timeout).
    """

    wecom: Mapping[str, Any] = field(default_factory=dict)
    warehouse: Mapping[str, Any] = field(default_factory=dict)
    robot: Mapping[str, Any] = field(default_factory=dict)


def _backend(warehouse: Mapping[str, Any]) -> str:
    """``postgres`` or ``duckdb``: what the definitions write, for the pool and the kind badges.

    Both belong to the asset's definition, so they follow the URL known when the definitions
    load (the settings, else ``$WECOM_WAREHOUSE_URL``); a URL given only in a run's config does
    not change them: DuckDB's one-writer pool then stays on, which is merely slower.
    """
    url = warehouse_url(str(warehouse.get("url") or ""))
    return "postgres" if is_postgres_url(url) else "duckdb"


def build_defs(
    corps: Sequence[Corp] = (),
    layout: Layout = Layout(),
    env: SecretEnv = SecretEnv(),
    settings: ResourceSettings = ResourceSettings(),
) -> dg.Definitions:
    """The WeCom definitions for one corp (from ``env``'s two variables) or many.

    With ``corps`` the WeCom assets are partitioned by corp id and each corp's secret is read from
    the variable its entry names; without, there is no partition and the credentials enter as
    ``dg.EnvVar``, so the UI shows the variables' names and never their values. The layout names
    every definition and resource key.
    """
    corp_ids = [corp.corp_id for corp in corps]
    sync, freshness = sync_job(layout), freshness_job(layout)
    credentials: dict[str, Any] = (
        {}
        if corps
        else {"corp_id": dg.EnvVar(env.corp_id), "corp_secret": dg.EnvVar(env.corp_secret)}
    )
    backend = _backend(settings.warehouse)
    pool = POOL if backend == "duckdb" else None
    return dg.Definitions(
        assets=[
            build_org_assets(corps, layout, pool=pool, warehouse_kind=backend),
            build_tag_assets(corps, layout, pool=pool, warehouse_kind=backend),
        ],
        asset_checks=[build_freshness_checks(corp_ids, layout)],
        jobs=[sync, freshness],
        schedules=[nightly_schedule(corp_ids, layout, sync), freshness_schedule(layout, freshness)],
        sensors=[alert_sensor(alerts_default_status(env.alert_webhook_key), layout)],
        resources={
            layout.wecom_resource: WeComResource(**settings.wecom, **credentials),
            layout.warehouse_resource: WarehouseResource(
                **{"url": optional_secret(WAREHOUSE_URL_ENV), **settings.warehouse},
                pii_salt=optional_secret(env.pii_salt),
            ),
            layout.robot_resource: WeComRobotResource(
                **settings.robot, webhook_key=optional_secret(env.alert_webhook_key)
            ),
        },
    )
