"""Where one set of WeCom definitions sits in a Dagster project: keys, names, group and schedule.

This repository's code location uses the defaults: no key prefix, so the asset keys are the
table names (``wecom_users``) and the job, schedule, sensor, op and resource names are the ones
the README and the UI show (``wecom_sync``, ``wecom_nightly``, ``duckdb``). The component
(:mod:`wecom_assets.defs.component`) may set a prefix: the asset keys then become
``["acme", "wecom_users"]`` while the DuckDB tables keep their registry names, and every
definition name and resource key is prefixed the same way (``acme_wecom_sync``, ``acme_duckdb``),
so two syncs, or a project's own ``duckdb`` resource, never collide in one code location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

from wecom_assets.defs.settings import GROUP

TIMEZONE = "Asia/Shanghai"
NIGHTLY_CRON = "0 2 * * *"
# Each prefix part also starts the names of jobs, ops and resources, which allow only these.
PREFIX_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The resource keys of the unprefixed layout; tests and run config (`resources: duckdb: ...`)
# name them.
WECOM_RESOURCE = "wecom"
WAREHOUSE_RESOURCE = "duckdb"
ROBOT_RESOURCE = "wecom_robot"


@dataclass(frozen=True)
class Layout:
    """Key prefix, group, and the nightly schedule's cron and timezone of one WeCom sync.

    Attributes:
        key_prefix: Parts put before every asset key; also joined with ``_`` before every
            definition name and resource key.
        group_name: The asset group shown in the UI.
        cron: When the nightly sync starts.
        timezone: The timezone ``cron`` is read in, and alert messages show times in.
    """

    key_prefix: tuple[str, ...] = ()
    group_name: str = GROUP
    cron: str = NIGHTLY_CRON
    timezone: str = TIMEZONE

    def key(self, table: str) -> dg.AssetKey:
        """The asset key of a registry table."""
        return dg.AssetKey([*self.key_prefix, table])

    @staticmethod
    def table(key: dg.AssetKey) -> str:
        """The registry table of an asset key: its last part, whatever the prefix."""
        return key.path[-1]

    def name(self, base: str) -> str:
        """A job, schedule, sensor, op or resource name, prefixed like the asset keys."""
        return "_".join((*self.key_prefix, base))

    @property
    def wecom_resource(self) -> str:
        """Resource key of the WeCom API resource."""
        return self.name(WECOM_RESOURCE)

    @property
    def warehouse_resource(self) -> str:
        """Resource key of the DuckDB warehouse resource."""
        return self.name(WAREHOUSE_RESOURCE)

    @property
    def robot_resource(self) -> str:
        """Resource key of the group robot that receives alerts."""
        return self.name(ROBOT_RESOURCE)
