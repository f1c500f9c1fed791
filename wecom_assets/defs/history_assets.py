"""The org history: one step after the three tables that folds each sync into history tables.

A single multi-asset keeps the run at one extra step process. It owns the four type-2 history
tables, the log of applied snapshots and two views (change events, department paths); all are
written in one DuckDB transaction by :func:`wecom_assets.warehouse.history.apply_snapshot`, so a failure
leaves yesterday's history, and a retry of the same snapshot changes nothing.
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import duckdb as duckdb_lib

from wecom_assets.defs.checks import check_results
from wecom_assets.defs.metadata import table_metadata
from wecom_assets.defs.resources import WarehouseResource
from wecom_assets.defs.settings import FRESHNESS_POLICY, GROUP, OWNERS, POOL, TAGS
from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import WarehouseError, quote
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import (
    DEPARTMENT_PATHS,
    ORG_CHANGES,
    RUNS,
    TRACKED,
)


def _spec(table: TableSpec) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=table.name,
        deps=list(table.upstream),
        description=table.description,
        group_name=GROUP,
        kinds={"duckdb", "view" if table.view else "table"},
        owners=OWNERS,
        tags=TAGS,
        freshness_policy=FRESHNESS_POLICY,
        metadata=table_metadata(table),
    )


# In dependency order: Dagster wants a multi-asset's outputs yielded topologically.
_TABLES: tuple[TableSpec, ...] = (
    *(t.history for t in TRACKED if t.source is not DEPARTMENT_PATHS),
    DEPARTMENT_PATHS,
    *(t.history for t in TRACKED if t.source is DEPARTMENT_PATHS),
    RUNS,
    ORG_CHANGES,
)


@dg.multi_asset(
    name="wecom_history",
    specs=[_spec(table) for table in _TABLES],
    check_specs=[
        dg.AssetCheckSpec(
            history.HISTORY_CHECK,
            asset=tracked.history.name,
            description=(
                "Versions never overlap, each key has at most one current version, and the "
                f"current versions equal {tracked.source.name} row for row."
            ),
        )
        for tracked in TRACKED
    ],
    pool=POOL,
)
def wecom_history(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Fold the synced tables into the history tables and refresh the history views.

    Unchanged rows are not rewritten; changed or vanished rows get `valid_to` and new versions
    start at the snapshot's time. The history only moves forward and a failed run changes
    nothing.
    """
    started = time.monotonic()
    try:
        with duckdb.get_connection() as conn:
            result = history.apply_snapshot(conn, run_id=context.run.run_id)
            counts = history.row_counts(conn)
            events = _events_at(conn, result)
    except history.HistoryRejectedError as rejected:
        yield from _check_results(rejected.outcomes)
        raise dg.Failure(description=str(rejected), allow_retries=False) from None
    except (history.HistoryError, WarehouseError, duckdb_lib.Error) as error:
        raise dg.Failure(
            description=f"History not updated: {error}",
            metadata={"error_type": type(error).__name__},
            allow_retries=False,
        ) from None
    verb = "Applied" if result.applied else "Already applied"
    context.log.info(
        f"{verb} snapshot {result.snapshot_at.isoformat()}: {result.opened} versions opened, "
        f"{result.closed} closed in {result.seconds:.2f}s"
    )
    common: dict[str, Any] = {
        "history/snapshot_at": result.snapshot_at.isoformat(),
        "history/applied": result.applied,
        "duration_seconds": round(time.monotonic() - started, 3),
    }
    changes = {t.table: t for t in result.tables}
    for table in _TABLES:
        metadata: dict[str, Any] = {
            "dagster/row_count": counts[table.name],
            **table_metadata(table),
            **common,
        }
        if table.name in changes:
            metadata["history/versions_opened"] = changes[table.name].opened
            metadata["history/versions_closed"] = changes[table.name].closed
            metadata["history/current_rows"] = changes[table.name].current_rows
        if table is ORG_CHANGES:
            metadata["history/events_in_this_snapshot"] = dg.MetadataValue.json(events)
        yield dg.MaterializeResult(asset_key=table.name, metadata=metadata)
    yield from _check_results(result.outcomes)


def _check_results(outcomes: tuple[CheckOutcome, ...]) -> Iterator[dg.AssetCheckResult]:
    for outcome in outcomes:
        yield from check_results(str(outcome.details["table"]), [outcome])


def _events_at(
    conn: duckdb_lib.DuckDBPyConnection, result: history.HistoryResult
) -> dict[str, int]:
    """Change events seen at this snapshot, as ``entity/event -> count``."""
    rows = conn.execute(
        f"SELECT entity || '/' || event, count(*) FROM {quote(ORG_CHANGES.name)} "
        "WHERE changed_at = $at GROUP BY ALL ORDER BY ALL",
        {"at": result.snapshot_at},
    ).fetchall()
    return {str(name): int(count) for name, count in rows}
