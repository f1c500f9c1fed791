"""The WeCom org as Dagster assets: one step that fetches the org and publishes it whole.

The three tables and the history stay separate assets in the catalog, each with its own
materialization, column schema, checks, freshness policy and lineage, but they are computed by
one multi-asset: one step process instead of four, and one publish, so a failure anywhere leaves
every table and the history as the last successful sync left them. The multi-asset can be
subset: ``dept_membership`` alone is re-derived from the current ``wecom_users`` without an API
call, ``wecom_users`` alone lists the members of the departments in the current
``wecom_departments``. Names, columns, rules and lineage come from the table registry
(:mod:`wecom_assets.warehouse.tables`); the work is done by :mod:`wecom_assets.warehouse.sync`.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from wecom_assets.defs.checks import check_specs, history_check_specs
from wecom_assets.defs.layout import Layout
from wecom_assets.defs.metadata import api_metadata, failure
from wecom_assets.defs.outputs import (
    AssetEvents,
    SyncConfig,
    asset_spec,
    checks,
    history_materialization,
    resource,
    table_materialization,
)
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.settings import POOL
from wecom_assets.warehouse import snapshots, sync
from wecom_assets.warehouse.connection import WarehouseError
from wecom_assets.warehouse.pii import PiiPolicy, PiiPolicyError
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import (
    DEPARTMENT_PATHS,
    DEPARTMENTS,
    MEMBERSHIP,
    ORG_CHANGES,
    RUNS,
    TRACKED,
    USERS,
)
from wecom_assets.wecom import ClientStats, WeComClient, WeComError
from wecom_assets.wecom.corps import Corp

_HISTORY_OUTPUTS: tuple[TableSpec, ...] = (
    *(t.history for t in TRACKED if t.source is not DEPARTMENT_PATHS),
    DEPARTMENT_PATHS,
    *(t.history for t in TRACKED if t.source is DEPARTMENT_PATHS),
    RUNS,
    ORG_CHANGES,
)
# Every output in lineage order: Dagster wants a multi-asset's outputs yielded topologically.
OUTPUTS: tuple[TableSpec, ...] = (DEPARTMENTS, USERS, MEMBERSHIP, *_HISTORY_OUTPUTS)
_HISTORY_NAMES = frozenset(spec.name for spec in _HISTORY_OUTPUTS)


def _membership_lineage(layout: Layout) -> dg.TableColumnLineage:
    users = layout.key(USERS.name)
    return dg.TableColumnLineage(
        deps_by_column={
            "corp_id": [dg.TableColumnDep(users, "corp_id")],
            "userid": [dg.TableColumnDep(users, "userid")],
            "department_id": [dg.TableColumnDep(users, "departments")],
            "sort_order": [dg.TableColumnDep(users, "department_orders")],
            "is_leader": [dg.TableColumnDep(users, "is_leader_in_dept")],
            "is_main": [
                dg.TableColumnDep(users, "departments"),
                dg.TableColumnDep(users, "main_department"),
            ],
        }
    )


def build_org_assets(
    corps: Sequence[Corp] = (),
    layout: Layout = Layout(),
    *,
    pool: str | None = POOL,
    warehouse_kind: str = "duckdb",
) -> dg.AssetsDefinition:
    """The sync multi-asset: one corp from the resource, or one partition per corp of ``corps``.

    ``pool`` is DuckDB's one-writer pool; None for PostgreSQL, where corps write concurrently.
    ``warehouse_kind`` (``duckdb`` or ``postgres``) is the kind badge the catalog shows.

    Partitions are keyed by corp id; without corps there is no partition to pick and the corp is
    the resource's ``corp_id``. The layout decides the asset keys, the group, the op name
    (``wecom_org`` with its prefix) and the keys of the two resources the step uses.
    """
    by_id = {corp.corp_id: corp for corp in corps}
    partitions = dg.StaticPartitionsDefinition(list(by_id)) if by_id else None

    @dg.multi_asset(
        name=layout.name("wecom_org"),
        specs=[
            asset_spec(
                spec,
                partitions,
                layout,
                _membership_lineage(layout) if spec is MEMBERSHIP else None,
                warehouse_kind,
            )
            for spec in OUTPUTS
        ],
        check_specs=[
            *(
                check
                for spec in (DEPARTMENTS, USERS, MEMBERSHIP)
                for check in check_specs(spec, layout)
            ),
            *history_check_specs(layout),
        ],
        can_subset=True,
        pool=pool,
        required_resource_keys={layout.wecom_resource, layout.warehouse_resource},
    )
    def wecom_org(context: dg.AssetExecutionContext, config: SyncConfig) -> AssetEvents:
        """Fetch one corp's selected tables, check them, add them to the history, publish.

        `user/list` is called for every department (it returns direct members only), so people in
        sub-departments are not missed; the DuckDB file is replaced only when every check passed,
        and only this corp's rows change.
        """
        corp = by_id[context.partition_key] if partitions is not None else None
        wecom = resource(context, layout.wecom_resource, WeComResource)
        duckdb = resource(context, layout.warehouse_resource, WarehouseResource)
        yield from _sync(context, config, wecom, duckdb, corp, layout)

    return wecom_org


def _sync(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
    corp: Corp | None,
    layout: Layout,
) -> AssetEvents:
    started = time.monotonic()
    corp_id = corp.corp_id if corp is not None else wecom.corp_id.strip()
    selected = {layout.table(key) for key in context.selected_asset_keys}
    fetched = _fetch(context, wecom, duckdb, selected, corp, corp_id)
    snapshot = sync.Snapshot(
        corp_id=corp_id,
        departments=fetched.departments,
        users=fetched.users,
        membership=MEMBERSHIP.name in selected,
        history=bool(selected & _HISTORY_NAMES),
        max_shrink_fraction=config.max_shrink_fraction,
        run_id=context.run.run_id,
        userids_case_sensitive=corp is not None and corp.userids_case_sensitive,
    )
    # The write frees the tables once they are loaded; no reference may outlive it here.
    fetched.departments = fetched.users = None
    try:
        report = duckdb.write_sync(snapshot)
    except sync.SyncRejectedError as rejected:
        for table, outcomes in rejected.outcomes.items():
            yield from checks(context, layout.key(table), outcomes)
        raise failure(rejected, "Sync not published") from None
    except WarehouseError as error:
        raise failure(error, "Sync not published") from None
    where = duckdb.effective_settings()["dagster/uri"]
    context.log.info(
        f"Published {', '.join(report.tables) or 'the history'} of corp {corp_id} to "
        f"{where} in {time.monotonic() - started:.2f}s"
    )
    common: dict[str, Any] = {"wecom/corp_id": corp_id, **duckdb.effective_settings()}
    schema = duckdb.schema_name if duckdb.backend == "postgres" else "main"
    if report.published is not None:
        common["duckdb/copy_seconds"] = round(report.published.copy_seconds, 3)
        common["duckdb/publish_seconds"] = round(report.published.publish_seconds, 3)
    common["duration_seconds"] = round(time.monotonic() - started, 3)
    for spec in OUTPUTS:
        if spec.name not in selected:
            continue
        if spec.name in report.tables:
            extra = {**common, **fetched.metadata.get(spec.name, {})}
            yield table_materialization(
                context, spec, layout.key(spec.name), report.tables[spec.name], extra, schema
            )
        elif report.history is not None:
            yield history_materialization(
                spec, layout.key(spec.name), report.history, common, schema
            )
    if report.history is not None:
        for outcome in report.history.result.outcomes:
            yield from checks(context, layout.key(str(outcome.details["table"])), [outcome])


@dataclass
class _Fetched:
    """The snapshots a run fetched, with the API metadata of each."""

    departments: pa.Table | None = None
    users: pa.Table | None = None
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def _fetch(
    context: dg.AssetExecutionContext,
    wecom: WeComResource,
    duckdb: WarehouseResource,
    selected: set[str],
    corp: Corp | None,
    corp_id: str,
) -> _Fetched:
    """Call the API for the selected tables only; nothing is written yet."""
    fetched = _Fetched()
    if not selected & {DEPARTMENTS.name, USERS.name}:
        return fetched
    synced_at = datetime.now(UTC)
    try:
        pii_policy = duckdb.pii() if USERS.name in selected else PiiPolicy()
    except PiiPolicyError as error:
        raise failure(error, "PII policy is invalid") from None
    try:
        with wecom.get_client(corp) as client:
            department_ids = None
            if DEPARTMENTS.name in selected:
                departments = client.list_departments()
                fetched.departments = snapshots.departments_table(departments, corp_id, synced_at)
                department_ids = [department.id for department in departments]
                fetched.metadata[DEPARTMENTS.name] = _api_part(client, None, wecom, corp)
            if USERS.name in selected:
                before = client.stats
                ids = (
                    department_ids if department_ids is not None else _current_ids(duckdb, corp_id)
                )
                # Users go into Arrow batches as their departments arrive: as Python objects a
                # 100k-user org would hold ~180 MB through the DuckDB load, as Arrow ~55 MB.
                fetched.users = snapshots.users_table(
                    client.iter_users(ids), corp_id, synced_at, pii=pii_policy
                )
                fetched.metadata[USERS.name] = {
                    **_api_part(client, before, wecom, corp),
                    "departments_fetched": len(ids),
                    "wecom/pii_policy": dg.MetadataValue.json(pii_policy.describe()),
                }
    except WeComError as error:
        raise failure(error, "Fetching from WeCom failed") from None
    context.log.info(f"Fetched {', '.join(sorted(fetched.metadata))} from WeCom")
    return fetched


def _current_ids(duckdb: WarehouseResource, corp_id: str) -> list[int]:
    try:
        return duckdb.department_ids(corp_id)
    except WarehouseError as error:
        raise failure(error, f"Reading {DEPARTMENTS.name} failed") from None


def _api_part(
    client: WeComClient, before: ClientStats | None, wecom: WeComResource, corp: Corp | None
) -> dict[str, Any]:
    return {**api_metadata(client.stats, since=before), **wecom.effective_settings(corp)}
