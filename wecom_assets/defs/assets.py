"""The three WeCom assets: thin wiring from the WeCom client to atomic DuckDB replacements.

A run makes exactly one ``department/list`` call (in ``wecom_departments``) and one ``user/list``
per loaded department (in ``wecom_users``); ``dept_membership`` is derived in SQL from what
``wecom_users`` loaded. The DuckDB file is opened only to write, never while waiting on the API,
so an analyst's session is blocked for as short a time as possible.
"""

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from duckdb import DuckDBPyConnection
from pydantic import Field

from wecom_assets.defs.checks import (
    DEPARTMENT_CHECKS,
    MEMBERSHIP_CHECKS,
    USER_CHECKS,
    check_results,
)
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.warehouse import publish, snapshots
from wecom_assets.warehouse.pii import PiiPolicyError
from wecom_assets.warehouse.quality import DEPARTMENT_RULES, MEMBERSHIP_RULES, USER_RULES
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS, TableSpec
from wecom_assets.wecom import ClientStats, WeComError

GROUP = "wecom"
POOL = "wecom_duckdb"
FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)
)
TAGS = {"domain": "org_chart", "source": "wecom"}
# Who answers for these tables: the catalog shows owners on every asset and filters by them.
# Replace with your team (`team:<name>`) or a person's email.
OWNERS = ["team:data-platform"]


class SyncConfig(dg.Config):
    """Per-run settings of a table replacement."""

    max_shrink_fraction: float = Field(
        default=publish.DEFAULT_MAX_SHRINK_FRACTION,
        ge=0.0,
        le=1.0,
        description=(
            "Refuse to replace the table when the new snapshot has this fraction fewer rows than "
            "the current one (0.5 = half), which usually means the app's visible range was cut. "
            "Set 1.0 for one run to accept an intended drop."
        ),
    )


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """The Dagster column schema of a table, with the column descriptions analysts read."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=column.sql_type,
                description=column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=column.name not in spec.primary_key,
                    unique=spec.primary_key == (column.name,),
                ),
            )
            for column in spec.columns
        ]
    )


def _definition_metadata(spec: TableSpec) -> dict[str, Any]:
    return {
        "dagster/column_schema": table_schema(spec),
        "dagster/table_name": f"main.{spec.name}",
    }


def _api_metadata(stats: ClientStats) -> dict[str, Any]:
    return {
        "wecom/api_calls": sum(count for path, count in stats.calls.items() if path != "gettoken"),
        "wecom/api_calls_by_endpoint": dg.MetadataValue.json(dict(sorted(stats.calls.items()))),
        "wecom/token_fetches": stats.token_fetches,
        "wecom/retries": stats.retries,
        "wecom/errcodes": dg.MetadataValue.json({str(k): v for k, v in stats.errcodes.items()}),
        "wecom/api_seconds": round(stats.api_seconds, 3),
    }


def _failure(error: Exception, what: str) -> dg.Failure:
    """A step failure whose message is the error's own (already free of secrets), no traceback."""
    metadata: dict[str, Any] = {"error_type": type(error).__name__}
    if isinstance(error, WeComError):
        metadata.update({"wecom/path": error.path or "", "wecom/errcode": error.errcode or 0})
    return dg.Failure(description=f"{what}: {error}", metadata=metadata, allow_retries=False)


def _materialization(
    spec: TableSpec,
    result: publish.ReplaceResult,
    started: float,
    extra: Mapping[str, Any],
) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {
        "dagster/row_count": result.row_count,
        "dagster/column_schema": table_schema(spec),
        "dagster/table_name": f"main.{spec.name}",
        "duckdb/load_seconds": round(result.seconds, 3),
        "duration_seconds": round(time.monotonic() - started, 3),
        **extra,
    }
    # The first load has no previous table: no entry rather than a "null" in the UI and its plots.
    if result.previous_row_count is not None:
        metadata["previous_row_count"] = result.previous_row_count
    return dg.MaterializeResult(
        metadata=metadata, check_results=check_results(spec.name, result.outcomes)
    )


def _write_and_report(
    context: dg.AssetExecutionContext,
    duckdb: WarehouseResource,
    spec: TableSpec,
    write: Callable[[DuckDBPyConnection], publish.ReplaceResult],
    started: float,
    extra: Mapping[str, Any],
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Write a snapshot and report it; a rejected snapshot reports its failing checks, then fails."""
    try:
        with duckdb.get_connection() as conn:
            result = write(conn)
    except publish.SnapshotRejectedError as rejected:
        yield from check_results(spec.name, rejected.outcomes)
        raise _failure(rejected, f"{spec.name} not replaced") from None
    except publish.WarehouseError as error:
        raise _failure(error, f"{spec.name} not replaced") from None
    before = (
        "new table" if result.previous_row_count is None else f"was {result.previous_row_count}"
    )
    context.log.info(
        f"Replaced {spec.name}: {result.row_count} rows ({before}) in {result.seconds:.2f}s"
    )
    yield _materialization(spec, result, started, extra)


@dg.asset(
    group_name=GROUP,
    kinds={"wecom", "duckdb"},
    pool=POOL,
    tags=TAGS,
    owners=OWNERS,
    freshness_policy=FRESHNESS_POLICY,
    check_specs=DEPARTMENT_CHECKS,
    metadata=_definition_metadata(DEPARTMENTS),
)
def wecom_departments(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Departments in the app's visible range: one row per department (`department/list`)."""
    started = time.monotonic()
    synced_at = datetime.now(UTC)
    try:
        with wecom.get_client() as client:
            departments = client.list_departments()
            stats = client.stats
    except WeComError as error:
        raise _failure(error, "Fetching departments failed") from None
    snapshot = snapshots.departments_table(departments, synced_at)
    yield from _write_and_report(
        context,
        duckdb,
        DEPARTMENTS,
        lambda conn: publish.replace_table(
            conn,
            DEPARTMENTS,
            snapshot,
            rules=DEPARTMENT_RULES,
            max_shrink_fraction=config.max_shrink_fraction,
        ),
        started,
        _api_metadata(stats),
    )


@dg.asset(
    group_name=GROUP,
    kinds={"wecom", "duckdb"},
    pool=POOL,
    tags=TAGS,
    owners=OWNERS,
    deps=[wecom_departments],
    freshness_policy=FRESHNESS_POLICY,
    check_specs=USER_CHECKS,
    metadata=_definition_metadata(USERS),
)
def wecom_users(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Members visible to the app: one row per user, merged across all their departments.

    Calls `user/list` for every department in `wecom_departments` (it returns direct members
    only), so people in sub-departments are not missed.
    """
    started = time.monotonic()
    synced_at = datetime.now(UTC)
    try:
        pii_policy = wecom.pii()
    except PiiPolicyError as error:
        raise _failure(error, "PII policy is invalid") from None
    try:
        with duckdb.get_connection() as conn:
            department_ids = publish.department_ids(conn)
    except publish.WarehouseError as error:
        raise _failure(error, "Reading wecom_departments failed") from None
    try:
        with wecom.get_client() as client:
            # Users go into Arrow batches as their departments arrive: as Python objects a
            # 100k-user org would hold ~180 MB through the DuckDB load, as Arrow ~55 MB.
            users = pii_policy.apply_each(client.iter_users(department_ids))
            snapshot = snapshots.users_table(users, synced_at)
            stats = client.stats
    except WeComError as error:
        raise _failure(error, "Fetching users failed") from None
    yield from _write_and_report(
        context,
        duckdb,
        USERS,
        lambda conn: publish.replace_table(
            conn,
            USERS,
            snapshot,
            rules=USER_RULES,
            max_shrink_fraction=config.max_shrink_fraction,
        ),
        started,
        {
            **_api_metadata(stats),
            "departments_fetched": len(department_ids),
            "wecom/pii_policy": dg.MetadataValue.json(pii_policy.describe()),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    pool=POOL,
    tags=TAGS,
    owners=OWNERS,
    deps=[wecom_users],
    freshness_policy=FRESHNESS_POLICY,
    check_specs=MEMBERSHIP_CHECKS,
    metadata={
        **_definition_metadata(MEMBERSHIP),
        "dagster/column_lineage": dg.TableColumnLineage(
            deps_by_column={
                "userid": [dg.TableColumnDep(dg.AssetKey("wecom_users"), "userid")],
                "department_id": [dg.TableColumnDep(dg.AssetKey("wecom_users"), "departments")],
                "sort_order": [dg.TableColumnDep(dg.AssetKey("wecom_users"), "department_orders")],
                "is_leader": [dg.TableColumnDep(dg.AssetKey("wecom_users"), "is_leader_in_dept")],
                "is_main": [
                    dg.TableColumnDep(dg.AssetKey("wecom_users"), "departments"),
                    dg.TableColumnDep(dg.AssetKey("wecom_users"), "main_department"),
                ],
            }
        ),
    },
)
def dept_membership(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Who belongs where: one row per (user, visible department), derived from `wecom_users`.

    No API calls: the rows come from the departments, orders and leader flags `wecom_users`
    loaded, so membership always matches the users table.
    """
    yield from _write_and_report(
        context,
        duckdb,
        MEMBERSHIP,
        lambda conn: publish.replace_membership(conn, rules=MEMBERSHIP_RULES),
        time.monotonic(),
        {},
    )
