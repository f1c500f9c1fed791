"""WeCom tags (标签) as Dagster assets: one step of their own that fetches the tags and publishes them.

The three tag tables and their history are computed by one multi-asset, beside the org's and
not downstream of it: an app without tag access, or any failure here, fails this step alone
while the org tables publish as usual. Same partitions (one per corp), pool, freshness policy,
owners and check wiring as the org assets; the work is done by
:mod:`wecom_assets.warehouse.tag_sync`.
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

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
from wecom_assets.warehouse import tag_sync
from wecom_assets.warehouse.connection import WarehouseError
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.sync import SyncRejectedError
from wecom_assets.warehouse.tables import TAG_RUNS, TAG_TABLES, TAG_TRACKED
from wecom_assets.wecom import WeComError
from wecom_assets.wecom.corps import Corp
from wecom_assets.wecom.tags import fetch_tags

# Every output in lineage order: Dagster wants a multi-asset's outputs yielded topologically.
TAG_OUTPUTS: tuple[TableSpec, ...] = (*TAG_TABLES, *(t.history for t in TAG_TRACKED), TAG_RUNS)


def build_tag_assets(
    corps: Sequence[Corp] = (),
    layout: Layout = Layout(),
    *,
    pool: str | None = POOL,
    warehouse_kind: str = "duckdb",
) -> dg.AssetsDefinition:
    """The tag multi-asset: one corp from the resource, or one partition per corp of ``corps``.

    ``pool`` is DuckDB's one-writer pool; None for PostgreSQL, where corps write concurrently.
    ``warehouse_kind`` (``duckdb`` or ``postgres``) is the kind badge the catalog shows.

    Its op is ``wecom_tag_sync`` with the layout's prefix; it uses the same two resources as
    the org sync.
    """
    by_id = {corp.corp_id: corp for corp in corps}
    partitions = dg.StaticPartitionsDefinition(list(by_id)) if by_id else None

    @dg.multi_asset(
        name=layout.name("wecom_tag_sync"),
        specs=[
            asset_spec(spec, partitions, layout, warehouse_kind=warehouse_kind)
            for spec in TAG_OUTPUTS
        ],
        check_specs=[
            *(check for spec in TAG_TABLES for check in check_specs(spec, layout)),
            *history_check_specs(layout, TAG_TRACKED),
        ],
        pool=pool,
        required_resource_keys={layout.wecom_resource, layout.warehouse_resource},
    )
    def wecom_tag_sync(context: dg.AssetExecutionContext, config: SyncConfig) -> AssetEvents:
        """Fetch one corp's tags (`tag/list`, then `tag/get` per tag), check them, publish.

        The DuckDB file is replaced only when every blocking check passed, and only this corp's
        tag rows change; the org tables are never touched.
        """
        corp = by_id[context.partition_key] if partitions is not None else None
        wecom = resource(context, layout.wecom_resource, WeComResource)
        duckdb = resource(context, layout.warehouse_resource, WarehouseResource)
        yield from _sync_tags(context, config, wecom, duckdb, corp, layout)

    return wecom_tag_sync


def _sync_tags(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    wecom: WeComResource,
    duckdb: WarehouseResource,
    corp: Corp | None,
    layout: Layout,
) -> AssetEvents:
    started = time.monotonic()
    corp_id = corp.corp_id if corp is not None else wecom.corp_id.strip()
    synced_at = datetime.now(UTC)
    try:
        with wecom.get_client(corp) as client:
            details = fetch_tags(client, client.config.max_concurrency)
            api: dict[str, Any] = {**api_metadata(client.stats), **wecom.effective_settings(corp)}
    except WeComError as error:
        raise failure(error, "Fetching tags from WeCom failed") from None
    snapshot = tag_sync.tag_snapshot(
        details,
        corp_id,
        synced_at,
        max_shrink_fraction=config.max_shrink_fraction,
        run_id=context.run.run_id,
    )
    try:
        report = duckdb.write_tag_sync(snapshot)
    except SyncRejectedError as rejected:
        for table, outcomes in rejected.outcomes.items():
            yield from checks(context, layout.key(table), outcomes)
        raise failure(rejected, "Tags not published") from None
    except WarehouseError as error:
        raise failure(error, "Tags not published") from None
    context.log.info(
        f"Published {len(details)} tags of corp {corp_id} to "
        f"{duckdb.effective_settings()['dagster/uri']} "
        f"in {time.monotonic() - started:.2f}s"
    )
    common: dict[str, Any] = {"wecom/corp_id": corp_id, **duckdb.effective_settings()}
    schema = duckdb.schema_name if duckdb.backend == "postgres" else "main"
    if report.published is not None:
        common["duckdb/copy_seconds"] = round(report.published.copy_seconds, 3)
        common["duckdb/publish_seconds"] = round(report.published.publish_seconds, 3)
    common["duration_seconds"] = round(time.monotonic() - started, 3)
    assert report.history is not None
    for spec in TAG_OUTPUTS:
        key = layout.key(spec.name)
        if spec.name in report.tables:
            extra = {**common, **(api if spec is TAG_TABLES[0] else {})}
            yield table_materialization(context, spec, key, report.tables[spec.name], extra, schema)
            continue
        if spec is TAG_RUNS:
            # The tag events of this snapshot, as the org step shows its own on wecom_org_changes.
            events = {
                "history/tag_events_in_this_snapshot": dg.MetadataValue.json(report.history.events)
            }
            yield history_materialization(spec, key, report.history, {**common, **events}, schema)
        else:
            yield history_materialization(spec, key, report.history, common, schema)
    for outcome in report.history.result.outcomes:
        yield from checks(context, layout.key(str(outcome.details["table"])), [outcome])
