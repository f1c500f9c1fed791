"""Asset checks: data-quality rules attached to the assets, and the freshness check.

The data-quality rules (``wecom_assets.quality``) run inside each asset's own step against the new
snapshot before it replaces the live table, so a failing blocking rule keeps yesterday's data and
costs no extra step process. The freshness check runs on its own schedule so that an alert can
fire even when the nightly run never started.
"""

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from wecom_assets.defs.layout import Layout
from wecom_assets.warehouse.history import HISTORY_CHECK
from wecom_assets.warehouse.quality import CheckOutcome, rule_description, rule_name
from wecom_assets.warehouse.schema import TableSpec, Tracked
from wecom_assets.warehouse.tables import ORG_TABLES, TAG_TABLES, TRACKED

DEFAULT_FRESHNESS_HOURS = 26.0
FRESHNESS_CHECK_NAME = "fresh_within_window"


# The tables whose last sync the freshness check watches: the org's and the tags'.
FRESH_TABLES: tuple[TableSpec, ...] = (*ORG_TABLES, *TAG_TABLES)


def history_check_specs(
    layout: Layout, tracked_tables: Sequence[Tracked] = TRACKED
) -> list[dg.AssetCheckSpec]:
    """The consistency check of each history table, run before the history is published."""
    return [
        dg.AssetCheckSpec(
            HISTORY_CHECK,
            asset=layout.key(tracked.history.name),
            description=(
                "Versions never overlap, each key has at most one current version, and the "
                f"current versions equal {tracked.source.name} row for row."
            ),
        )
        for tracked in tracked_tables
    ]


def check_specs(spec: TableSpec, layout: Layout) -> list[dg.AssetCheckSpec]:
    """One check spec per rule of the table, named for the rule, described by its docstring."""
    return [
        dg.AssetCheckSpec(
            rule_name(rule), asset=layout.key(spec.name), description=rule_description(rule)
        )
        for rule in spec.rules
    ]


def check_results(
    asset: dg.AssetKey, outcomes: Sequence[CheckOutcome]
) -> list[dg.AssetCheckResult]:
    """Dagster check results for rule outcomes; offending rows are listed by id only."""
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome.blocking
            else dg.AssetCheckSeverity.WARN,
            description=outcome.description,
            metadata={
                "offending_count": outcome.offending_count,
                "offending_ids": dg.MetadataValue.json(list(outcome.offending_ids)),
                "blocks_replacement": outcome.blocking,
                **outcome.details,
            },
        )
        for outcome in outcomes
    ]


class FreshnessConfig(dg.Config):
    """How old the last successful sync may be before the freshness check fails."""

    max_age_hours: float = Field(
        default=DEFAULT_FRESHNESS_HOURS,
        gt=0,
        description="Fail when the last materialization is older than this (default 26 h).",
    )


def freshness_check_keys(layout: Layout) -> tuple[dg.AssetCheckKey, ...]:
    """The freshness check of each WeCom table: what the freshness job runs and the sync leaves out."""
    return tuple(
        dg.AssetCheckKey(layout.key(spec.name), FRESHNESS_CHECK_NAME) for spec in FRESH_TABLES
    )


def build_freshness_checks(
    corp_ids: Sequence[str] = (), layout: Layout = Layout()
) -> dg.AssetChecksDefinition:
    """The freshness check of each WeCom table, per corp when the tables are partitioned by corp.

    It runs on its own schedule, so an alert can fire when the nightly run never started; a
    corp whose last sync is too old (or that never synced) fails its table's check, named in
    the description, while the other corps keep the check from hiding which one it was. Its op
    is named ``wecom_freshness_checks`` with the layout's prefix.
    """
    asset_keys = [layout.key(spec.name) for spec in FRESH_TABLES]

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                FRESHNESS_CHECK_NAME,
                asset=key,
                description="The last successful sync is younger than the freshness window (26 h).",
            )
            for key in asset_keys
        ],
        name=layout.name("wecom_freshness_checks"),
        # Selecting the org tables alone (or the tag tables alone) brings their checks only.
        can_subset=True,
    )
    def wecom_freshness_checks(
        context: dg.AssetCheckExecutionContext, config: FreshnessConfig
    ) -> Iterator[dg.AssetCheckResult]:
        """Fail each selected table whose last materialization (per corp) is too old."""
        now = time.time()
        corps: list[str | None] = [*corp_ids] or [None]
        selected = {check.asset_key for check in context.selected_asset_check_keys}
        for key in (key for key in asset_keys if key in selected):
            synced = {corp: _last_sync(context.instance, key, corp) for corp in corps}
            yield _freshness_result(key, synced, config.max_age_hours, now)

    return wecom_freshness_checks


def _last_sync(instance: dg.DagsterInstance, key: dg.AssetKey, corp_id: str | None) -> float | None:
    """When ``key`` (one corp's partition of it) was last materialized, None if never."""
    if corp_id is None:
        event = instance.get_latest_materialization_event(key)
        return None if event is None else event.timestamp
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[corp_id]), limit=1
    ).records
    return records[0].timestamp if records else None


def _freshness_result(
    key: dg.AssetKey, synced: dict[str | None, float | None], max_age_hours: float, now: float
) -> dg.AssetCheckResult:
    ages = {corp: None if at is None else (now - at) / 3600 for corp, at in synced.items()}
    stale = {corp: age for corp, age in ages.items() if age is None or age > max_age_hours}
    known = [at for at in synced.values() if at is not None]
    oldest_at = min(known) if known else None
    oldest = None if oldest_at is None else (now - oldest_at) / 3600
    if not stale:
        assert oldest is not None
        description = f"Last materialized {oldest:.1f} h ago; the window is {max_age_hours:g} h."
    elif list(ages) == [None]:
        description = (
            f"{key.to_user_string()} has never been materialized."
            if oldest is None
            else f"Last materialized {oldest:.1f} h ago; the window is {max_age_hours:g} h."
        )
    else:
        names = ", ".join(
            f"{corp} ({'never' if age is None else f'{age:.1f} h ago'})"
            for corp, age in sorted(stale.items(), key=lambda item: str(item[0]))
        )
        description = f"Stale corps, the window is {max_age_hours:g} h: {names}."
    metadata: dict[str, Any] = {"max_age_hours": max_age_hours}
    if oldest is not None and oldest_at is not None:
        metadata["age_hours"] = round(oldest, 3)
        metadata["last_materialized_at"] = datetime.fromtimestamp(oldest_at, UTC).isoformat()
    if list(ages) != [None]:
        metadata["stale_corps"] = dg.MetadataValue.json(sorted(str(corp) for corp in stale))
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESHNESS_CHECK_NAME,
        passed=not stale,
        description=description,
        metadata=metadata,
    )
