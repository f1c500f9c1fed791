"""The three WeCom assets: thin wiring from the WeCom client to atomic DuckDB replacements.

A run makes exactly one ``department/list`` call (in ``wecom_departments``) and one ``user/list``
per loaded department (in ``wecom_users``); ``dept_membership`` is derived in SQL from what
``wecom_users`` loaded. The DuckDB file is opened only to write, never while waiting on the API,
so an analyst's session is blocked for as short a time as possible. Names, columns, rules and
lineage come from the table registry (:mod:`wecom_assets.warehouse.tables`).
"""

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from duckdb import DuckDBPyConnection
from pydantic import Field

from wecom_assets.defs.checks import check_results, check_specs
from wecom_assets.defs.metadata import api_metadata, failure, table_metadata
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.settings import FRESHNESS_POLICY, GROUP, OWNERS, POOL, TAGS
from wecom_assets.warehouse import publish, snapshots
from wecom_assets.warehouse.connection import WarehouseError
from wecom_assets.warehouse.pii import PiiPolicyError
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS
from wecom_assets.wecom import WeComError

AssetEvents = Iterator[dg.AssetCheckResult | dg.MaterializeResult]
_USERS_KEY = dg.AssetKey(USERS.name)


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


def _table_asset(spec: TableSpec, kinds: set[str], **extra: Any) -> dict[str, Any]:
    """The ``@dg.asset`` arguments every WeCom table shares, derived from its declaration."""
    return {
        "name": spec.name,
        "group_name": GROUP,
        "kinds": kinds,
        "pool": POOL,
        "tags": TAGS,
        "owners": OWNERS,
        "deps": list(spec.upstream),
        "freshness_policy": FRESHNESS_POLICY,
        "check_specs": check_specs(spec),
        "metadata": {**table_metadata(spec), **extra},
    }


def _materialization(
    spec: TableSpec,
    result: publish.ReplaceResult,
    started: float,
    extra: Mapping[str, Any],
) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {
        "dagster/row_count": result.row_count,
        **table_metadata(spec),
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
) -> AssetEvents:
    """Write a snapshot and report it; a rejected snapshot reports its failing checks, then fails."""
    try:
        with duckdb.get_connection() as conn:
            result = write(conn)
    except publish.SnapshotRejectedError as rejected:
        yield from check_results(spec.name, rejected.outcomes)
        raise failure(rejected, f"{spec.name} not replaced") from None
    except WarehouseError as error:
        raise failure(error, f"{spec.name} not replaced") from None
    before = (
        "new table" if result.previous_row_count is None else f"was {result.previous_row_count}"
    )
    context.log.info(
        f"Replaced {spec.name}: {result.row_count} rows ({before}) in {result.seconds:.2f}s"
    )
    yield _materialization(spec, result, started, {**extra, **duckdb.effective_settings()})


@dg.asset(**_table_asset(DEPARTMENTS, {"wecom", "duckdb"}))
def wecom_departments(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
) -> AssetEvents:
    """Departments in the app's visible range: one row per department (`department/list`)."""
    started = time.monotonic()
    synced_at = datetime.now(UTC)
    try:
        with wecom.get_client() as client:
            departments = client.list_departments()
            stats = client.stats
    except WeComError as error:
        raise failure(error, "Fetching departments failed") from None
    snapshot = snapshots.departments_table(departments, synced_at)
    yield from _write_and_report(
        context,
        duckdb,
        DEPARTMENTS,
        lambda conn: publish.replace_table(
            conn, DEPARTMENTS, snapshot, max_shrink_fraction=config.max_shrink_fraction
        ),
        started,
        {**api_metadata(stats), **wecom.effective_settings()},
    )


@dg.asset(**_table_asset(USERS, {"wecom", "duckdb"}))
def wecom_users(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
) -> AssetEvents:
    """Members visible to the app: one row per user, merged across all their departments.

    Calls `user/list` for every department in `wecom_departments` (it returns direct members
    only), so people in sub-departments are not missed.
    """
    started = time.monotonic()
    synced_at = datetime.now(UTC)
    try:
        pii_policy = duckdb.pii()
    except PiiPolicyError as error:
        raise failure(error, "PII policy is invalid") from None
    try:
        with duckdb.get_connection() as conn:
            department_ids = publish.department_ids(conn)
    except WarehouseError as error:
        raise failure(error, f"Reading {DEPARTMENTS.name} failed") from None
    try:
        with wecom.get_client() as client:
            # Users go into Arrow batches as their departments arrive: as Python objects a
            # 100k-user org would hold ~180 MB through the DuckDB load, as Arrow ~55 MB.
            snapshot = snapshots.users_table(
                client.iter_users(department_ids), synced_at, pii=pii_policy
            )
            stats = client.stats
    except WeComError as error:
        raise failure(error, "Fetching users failed") from None
    yield from _write_and_report(
        context,
        duckdb,
        USERS,
        lambda conn: publish.replace_table(
            conn, USERS, snapshot, max_shrink_fraction=config.max_shrink_fraction
        ),
        started,
        {
            **api_metadata(stats),
            **wecom.effective_settings(),
            "departments_fetched": len(department_ids),
            "wecom/pii_policy": dg.MetadataValue.json(pii_policy.describe()),
        },
    )


@dg.asset(
    **_table_asset(
        MEMBERSHIP,
        {"duckdb"},
        **{
            "dagster/column_lineage": dg.TableColumnLineage(
                deps_by_column={
                    "userid": [dg.TableColumnDep(_USERS_KEY, "userid")],
                    "department_id": [dg.TableColumnDep(_USERS_KEY, "departments")],
                    "sort_order": [dg.TableColumnDep(_USERS_KEY, "department_orders")],
                    "is_leader": [dg.TableColumnDep(_USERS_KEY, "is_leader_in_dept")],
                    "is_main": [
                        dg.TableColumnDep(_USERS_KEY, "departments"),
                        dg.TableColumnDep(_USERS_KEY, "main_department"),
                    ],
                }
            )
        },
    )
)
def dept_membership(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> AssetEvents:
    """Who belongs where: one row per (user, visible department), derived from `wecom_users`.

    No API calls: the rows come from the departments, orders and leader flags `wecom_users`
    loaded, so membership always matches the users table.
    """
    yield from _write_and_report(
        context, duckdb, MEMBERSHIP, publish.replace_membership, time.monotonic(), {}
    )
