"""What the sync steps yield and share: asset specs, run config, materializations, check results.

The org step (:mod:`wecom_assets.defs.assets`) and the tag step
(:mod:`wecom_assets.defs.tag_assets`) describe their tables and report their publishes the same
way; this module is that one way.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from wecom_assets.defs.checks import check_results
from wecom_assets.defs.layout import Layout
from wecom_assets.defs.metadata import table_metadata
from wecom_assets.defs.settings import FRESHNESS_POLICY, OWNERS, TAGS
from wecom_assets.warehouse import publish, sync
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import (
    DEPARTMENTS,
    HISTORY_TABLES,
    ORG_CHANGES,
    TAG_HISTORY_TABLES,
    TAG_TABLES,
    USERS,
    VIEWS,
)

AssetEvents = Iterator[dg.AssetCheckResult | dg.MaterializeResult]
R = TypeVar("R")


class SyncConfig(dg.Config):
    """Per-run settings of a sync."""

    max_shrink_fraction: float = Field(
        default=publish.DEFAULT_MAX_SHRINK_FRACTION,
        ge=0.0,
        le=1.0,
        description=(
            "Refuse to publish when a table's new snapshot has this fraction fewer rows than the "
            "current one (0.5 = half), which usually means the app's visible range was cut. "
            "Set 1.0 for one run to accept an intended drop."
        ),
    )


def kinds(spec: TableSpec, warehouse_kind: str = "duckdb") -> set[str]:
    """The catalog's kind badges: where the rows come from, the warehouse, what the relation is."""
    if spec in (DEPARTMENTS, USERS, *TAG_TABLES):
        return {"wecom", warehouse_kind}
    if spec in (*HISTORY_TABLES, *VIEWS, *TAG_HISTORY_TABLES):
        return {warehouse_kind, "view" if spec.view else "table"}
    return {warehouse_kind}


def asset_spec(
    spec: TableSpec,
    partitions: dg.PartitionsDefinition | None,
    layout: Layout,
    lineage: dg.TableColumnLineage | None = None,
    warehouse_kind: str = "duckdb",
) -> dg.AssetSpec:
    """The catalog entry of one table of a sync step, from its registry declaration."""
    metadata = table_metadata(spec)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return dg.AssetSpec(
        key=layout.key(spec.name),
        deps=[layout.key(upstream) for upstream in spec.upstream],
        description=spec.description,
        group_name=layout.group_name,
        kinds=kinds(spec, warehouse_kind),
        owners=OWNERS,
        tags=TAGS,
        freshness_policy=FRESHNESS_POLICY,
        metadata=metadata,
        partitions_def=partitions,
    )


def resource(context: dg.AssetExecutionContext, key: str, kind: type[R]) -> R:
    """The resource under ``key``; its keys follow the layout, so it is looked up by name."""
    resource = getattr(context.resources, key)
    if not isinstance(resource, kind):
        raise TypeError(f"resource {key!r} is a {type(resource).__name__}, not a {kind.__name__}")
    return resource


def checks(
    context: dg.AssetExecutionContext, key: dg.AssetKey, outcomes: Sequence[CheckOutcome]
) -> list[dg.AssetCheckResult]:
    """Check results of the outcomes whose checks are selected in this run."""
    keys = context.selected_asset_check_keys
    return check_results(key, [o for o in outcomes if dg.AssetCheckKey(key, o.name) in keys])


def table_materialization(
    context: dg.AssetExecutionContext,
    spec: TableSpec,
    key: dg.AssetKey,
    result: publish.ReplaceResult,
    extra: Mapping[str, Any],
    schema: str,
) -> dg.MaterializeResult:
    """A published table's materialization: rows, schema, load time and its checks' results."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.row_count,
        **table_metadata(spec, schema),
        "duckdb/load_seconds": round(result.seconds, 3),
        **extra,
    }
    # The first load has no previous table: no entry rather than a "null" in the UI and its plots.
    if result.previous_row_count is not None:
        metadata["previous_row_count"] = result.previous_row_count
    return dg.MaterializeResult(
        asset_key=key,
        metadata=metadata,
        check_results=checks(context, key, result.outcomes),
    )


def history_materialization(
    spec: TableSpec,
    key: dg.AssetKey,
    report: sync.HistoryReport,
    common: Mapping[str, Any],
    schema: str,
) -> dg.MaterializeResult:
    """A history table's or view's materialization: rows and the versions this sync changed."""
    result = report.result
    metadata: dict[str, Any] = {
        "dagster/row_count": report.row_counts[spec.name],
        **table_metadata(spec, schema),
        "history/snapshot_at": result.snapshot_at.isoformat(),
        "history/applied": result.applied,
        **common,
    }
    changes = {t.table: t for t in result.tables}
    if spec.name in changes:
        metadata["history/versions_opened"] = changes[spec.name].opened
        metadata["history/versions_closed"] = changes[spec.name].closed
        metadata["history/current_rows"] = changes[spec.name].current_rows
    if spec is ORG_CHANGES:
        metadata["history/events_in_this_snapshot"] = dg.MetadataValue.json(report.events)
    return dg.MaterializeResult(asset_key=key, metadata=metadata)
