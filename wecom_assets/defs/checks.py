"""Asset checks: data-quality rules attached to the assets, and the freshness check.

The data-quality rules (``wecom_assets.quality``) run inside each asset's own step against the new
snapshot before it replaces the live table, so a failing blocking rule keeps yesterday's data and
costs no extra step process. The freshness check runs on its own schedule so that an alert can
fire even when the nightly run never started.
"""

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from wecom_assets.warehouse.history import HISTORY_CHECK
from wecom_assets.warehouse.quality import CheckOutcome, rule_description, rule_name
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import ORG_TABLES, TRACKED

DEFAULT_FRESHNESS_HOURS = 26.0
FRESHNESS_CHECK_NAME = "fresh_within_window"
WECOM_ASSET_KEYS = tuple(dg.AssetKey(spec.name) for spec in ORG_TABLES)


def history_check_specs() -> list[dg.AssetCheckSpec]:
    """The consistency check of every history table, run before the history is published."""
    return [
        dg.AssetCheckSpec(
            HISTORY_CHECK,
            asset=tracked.history.name,
            description=(
                "Versions never overlap, each key has at most one current version, and the "
                f"current versions equal {tracked.source.name} row for row."
            ),
        )
        for tracked in TRACKED
    ]


def check_specs(spec: TableSpec) -> list[dg.AssetCheckSpec]:
    """One check spec per rule of the table, named for the rule, described by its docstring."""
    return [
        dg.AssetCheckSpec(rule_name(rule), asset=spec.name, description=rule_description(rule))
        for rule in spec.rules
    ]


def check_results(asset: str, outcomes: Sequence[CheckOutcome]) -> list[dg.AssetCheckResult]:
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


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            FRESHNESS_CHECK_NAME,
            asset=key,
            description="The last successful sync is younger than the freshness window (26 h).",
        )
        for key in WECOM_ASSET_KEYS
    ],
    name="wecom_freshness_checks",
)
def wecom_freshness_checks(
    context: dg.AssetCheckExecutionContext, config: FreshnessConfig
) -> Iterator[dg.AssetCheckResult]:
    """Fail each table whose last materialization is older than the window, or missing."""
    now = time.time()
    window_seconds = config.max_age_hours * 3600
    for key in WECOM_ASSET_KEYS:
        event = context.instance.get_latest_materialization_event(key)
        if event is None:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=FRESHNESS_CHECK_NAME,
                passed=False,
                description=f"{key.to_user_string()} has never been materialized.",
                metadata={"max_age_hours": config.max_age_hours},
            )
            continue
        age_hours = (now - event.timestamp) / 3600
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=FRESHNESS_CHECK_NAME,
            passed=age_hours * 3600 <= window_seconds,
            description=(
                f"Last materialized {age_hours:.1f} h ago; the window is "
                f"{config.max_age_hours:g} h."
            ),
            metadata={
                "last_materialized_at": datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
                "age_hours": round(age_hours, 3),
                "max_age_hours": config.max_age_hours,
            },
        )
