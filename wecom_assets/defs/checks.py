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

from wecom_assets.warehouse.quality import (
    DEPARTMENT_RULES,
    MEMBERSHIP_RULES,
    USER_RULES,
    CheckOutcome,
    Rule,
)

DEFAULT_FRESHNESS_HOURS = 26.0
FRESHNESS_CHECK_NAME = "fresh_within_window"
WECOM_ASSET_KEYS = (
    dg.AssetKey("wecom_departments"),
    dg.AssetKey("wecom_users"),
    dg.AssetKey("dept_membership"),
)


def _first_line(rule: Rule) -> str:
    return (rule.__doc__ or rule.__name__).strip().splitlines()[0]


def check_specs(asset: str, rules: Sequence[Rule]) -> list[dg.AssetCheckSpec]:
    """One check spec per rule, named for the rule, described by its docstring."""
    return [
        dg.AssetCheckSpec(rule.__name__, asset=asset, description=_first_line(rule))
        for rule in rules
    ]


DEPARTMENT_CHECKS = check_specs("wecom_departments", DEPARTMENT_RULES)
USER_CHECKS = check_specs("wecom_users", USER_RULES)
MEMBERSHIP_CHECKS = check_specs("dept_membership", MEMBERSHIP_RULES)


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
