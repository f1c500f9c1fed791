"""Dagster metadata derived from the table registry and the client's counters.

Every asset shows the same keys for the same facts (``dagster/column_schema``,
``dagster/table_name``, API counters, effective settings), built here from one declaration per
table, so the catalog cannot show a column the table does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import dagster as dg

from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.wecom import ClientStats, WeComError

K = TypeVar("K")


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """The Dagster column schema of a table, with the column descriptions analysts read."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=column.sql_type,
                description=column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=(
                        column.name not in spec.primary_key or column.name in spec.nullable_key
                    ),
                    unique=spec.primary_key == (column.name,),
                ),
            )
            for column in spec.columns
        ]
    )


def table_metadata(spec: TableSpec, schema: str = "main") -> dict[str, Any]:
    """Where the table lives and what its columns are: on the definition and every materialization.

    ``schema`` is DuckDB's ``main`` or the PostgreSQL schema the materialization wrote.
    """
    return {
        "dagster/column_schema": table_schema(spec),
        "dagster/table_name": f"{schema}.{spec.name}",
    }


def api_metadata(stats: ClientStats, since: ClientStats | None = None) -> dict[str, Any]:
    """What the WeCom client did: calls per endpoint, token fetches, retries, errcodes.

    With ``since``, only what it did after that earlier snapshot of its counters, so each table
    of a sync shows the calls made for it.
    """
    if since is not None:
        stats = _difference(stats, since)
    return {
        "wecom/api_calls": sum(count for path, count in stats.calls.items() if path != "gettoken"),
        "wecom/api_calls_by_endpoint": dg.MetadataValue.json(dict(sorted(stats.calls.items()))),
        "wecom/token_fetches": stats.token_fetches,
        "wecom/retries": stats.retries,
        "wecom/errcodes": dg.MetadataValue.json({str(k): v for k, v in stats.errcodes.items()}),
        "wecom/api_seconds": round(stats.api_seconds, 3),
    }


def failure(error: Exception, what: str) -> dg.Failure:
    """A step failure whose message is the error's own (already free of secrets), no traceback."""
    metadata: dict[str, Any] = {"error_type": type(error).__name__}
    if isinstance(error, WeComError):
        metadata.update({"wecom/path": error.path or "", "wecom/errcode": error.errcode or 0})
    return dg.Failure(description=f"{what}: {error}", metadata=metadata, allow_retries=False)


def _difference(after: ClientStats, before: ClientStats) -> ClientStats:
    def minus(new: Mapping[K, int], old: Mapping[K, int]) -> dict[K, int]:
        return {
            key: count - old.get(key, 0) for key, count in new.items() if count > old.get(key, 0)
        }

    return ClientStats(
        calls=minus(after.calls, before.calls),
        retries=after.retries - before.retries,
        errcodes=minus(after.errcodes, before.errcodes),
        token_fetches=after.token_fetches - before.token_fetches,
        api_seconds=after.api_seconds - before.api_seconds,
    )
