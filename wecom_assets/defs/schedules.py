"""Jobs and schedules: the nightly sync and the freshness check that can raise an alert.

Both schedules start stopped, as Dagster schedules do by default: turn them on in the UI
(Automation) or with ``dagster schedule start`` once the code location points at a real corp.
Their names, the jobs' selections and the nightly cron and timezone follow the
:class:`~wecom_assets.defs.layout.Layout`; the defaults are ``wecom_sync``, ``wecom_freshness``,
``wecom_nightly`` at 02:00 Asia/Shanghai and ``wecom_freshness_hourly``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from wecom_assets.defs.assets import OUTPUTS
from wecom_assets.defs.checks import FreshnessConfig, freshness_check_keys
from wecom_assets.defs.layout import Layout
from wecom_assets.defs.tag_assets import TAG_OUTPUTS

if TYPE_CHECKING:
    # What `dg.define_asset_job` returns; Dagster does not export its name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

FRESHNESS_CRON = "15 * * * *"
# A sync is one step (one multi-asset), so a step process of its own would only add start-up
# time: about 1 s with a forkserver, more than the whole fetch of a small org. The jobs carry it
# themselves, so a project's other jobs keep the project's executor.
EXECUTOR = dg.in_process_executor


def sync_job(layout: Layout) -> UnresolvedAssetJobDefinition:
    """The sync: every WeCom asset and its data-quality checks, not the freshness checks.

    The org and the tags are two steps with no dependency between them: the in-process
    executor runs both, and a failed tag step leaves the org's published tables as they are.
    Selected by key rather than by group, so a project that puts other assets in the same group
    does not sync them with WeCom's.
    """
    assets = dg.AssetSelection.assets(*(layout.key(spec.name) for spec in (*OUTPUTS, *TAG_OUTPUTS)))
    return dg.define_asset_job(
        name=layout.name("wecom_sync"),
        selection=assets - dg.AssetSelection.checks(*freshness_check_keys(layout)),
        description=(
            "Fetch the org and the tags from WeCom and replace their tables, with their checks."
        ),
        executor_def=EXECUTOR,
    )


def freshness_job(layout: Layout) -> UnresolvedAssetJobDefinition:
    """The freshness checks of the WeCom tables, alone."""
    return dg.define_asset_job(
        name=layout.name("wecom_freshness"),
        selection=dg.AssetSelection.checks(*freshness_check_keys(layout)),
        description="Check that every WeCom table was synced within the freshness window.",
        executor_def=EXECUTOR,
    )


def nightly_schedule(
    corp_ids: Sequence[str] = (),
    layout: Layout = Layout(),
    job: UnresolvedAssetJobDefinition | None = None,
) -> dg.ScheduleDefinition:
    """The nightly sync: one run, or one run per corp when the assets are partitioned by corp.

    A corp's run fails alone (a wrong secret, an outage); the others publish as usual. How many
    corps sync at once is the limit of the `wecom_duckdb` pool; their publishes take turns.
    ``job`` is the layout's :func:`sync_job`, given when the code location lists it too.
    """
    name = layout.name("wecom_nightly")
    job = job or sync_job(layout)
    when = f"`{layout.cron}` ({layout.timezone})"
    if not corp_ids:
        return dg.ScheduleDefinition(
            name=name,
            job=job,
            cron_schedule=layout.cron,
            execution_timezone=layout.timezone,
            description=f"Sync the org at {when}.",
        )

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=layout.cron,
        execution_timezone=layout.timezone,
        description=f"Sync every corp at {when}, one run per corp.",
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


def freshness_schedule(
    layout: Layout = Layout(), job: UnresolvedAssetJobDefinition | None = None
) -> dg.ScheduleDefinition:
    """Every hour, in the layout's timezone, the freshness checks with their default window.

    ``job`` is the layout's :func:`freshness_job`, given when the code location lists it too.
    """
    return dg.ScheduleDefinition(
        name=layout.name("wecom_freshness_hourly"),
        job=job or freshness_job(layout),
        cron_schedule=FRESHNESS_CRON,
        execution_timezone=layout.timezone,
        run_config=dg.RunConfig(ops={layout.name("wecom_freshness_checks"): FreshnessConfig()}),
        description="Every hour, fail the freshness checks of tables older than the window (26 h).",
    )
