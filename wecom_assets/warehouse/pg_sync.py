"""One corp's sync written into the PostgreSQL warehouse as one transaction.

DuckDB publishes a sync by replacing its file; PostgreSQL needs no copy: the corp's tables, their
checks, the shrink guard and the history are written in one transaction, so a failure anywhere
rolls all of it back and readers see the last committed sync until ``COMMIT`` (MVCC; nothing here
takes a lock that blocks them). Syncs of one corp take turns through a transaction-level
advisory lock; different corps write at the same time, each touching only its own rows.

The schema, tables and views are created beforehand in a short transaction of their own, under
an advisory lock, so that two corps' first syncs do not both try to create them: a table created
inside a corp's transaction would make another corp's first sync wait for that transaction and
then fail on the duplicate name.
"""

from __future__ import annotations

from collections.abc import Callable

from wecom_assets.warehouse import history, tag_sync
from wecom_assets.warehouse.connection import existing_tables, quote
from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA, PostgresConnection, connect_postgres
from wecom_assets.warehouse.publish import ReplaceResult, department_ids
from wecom_assets.warehouse.schema import VERSION_COLUMNS, TableSpec
from wecom_assets.warehouse.sync import HistoryReport, Snapshot, SyncReport, write
from wecom_assets.warehouse.tables import (
    HISTORY_TABLES,
    ORG_TABLES,
    TAG_HISTORY_TABLES,
    TAG_TABLES,
)
from wecom_assets.warehouse.tag_sync import TagSnapshot

_SCHEMA_LOCK = "wecom_assets.schema"


def prepare(conn: PostgresConnection, corp_id: str, scope: history.Scope = history.ORG) -> None:
    """Create the schema, the views and ``scope``'s tables where missing; refresh statistics.

    Only missing ones are created, here rather than in the corp's transaction, where a table
    created would hold other corps' first syncs until it ends.

    Autovacuum analyzes a table some time after a large write; a sync that follows sooner would
    be planned for the row counts before it (an empty history, say) and join 20,000 rows by
    nested loops: 150 s instead of 0.2 s. ``ANALYZE`` here, in this short transaction, never
    blocks readers or writers, and holds its lock only until this transaction commits. It reads
    only the columns the sync's statements filter and join on (:func:`_planned_columns`): the
    row count is refreshed all the same, in a tenth of the time a whole ``wecom_users`` takes
    (its list and JSON columns cost the most). An ``ANALYZE`` of some columns leaves the table's
    count of changes since its last analysis as it was, so autovacuum still analyzes every
    column, for analysts' queries, as it would have without this one.
    """
    conn.raw.execute("BEGIN")
    try:
        conn.raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_SCHEMA_LOCK])
        conn.raw.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(conn.schema)}")
        history.ensure_schema(conn, corp_id, scope, refresh_hashes=False)
        existing = existing_tables(conn)
        for spec in (*ORG_TABLES, *HISTORY_TABLES, *TAG_TABLES, *TAG_HISTORY_TABLES):
            if spec.name in existing:
                columns = ", ".join(quote(name) for name in _planned_columns(spec))
                conn.raw.execute(f"ANALYZE {quote(spec.name)} ({columns})")
        conn.raw.execute("COMMIT")
    except BaseException:
        conn.raw.execute("ROLLBACK")
        raise


def _planned_columns(spec: TableSpec) -> tuple[str, ...]:
    """The columns whose statistics plan a sync: the key, and a history's version columns.

    The corp's rows are selected by ``corp_id`` (the key's first column), rows are matched to
    their versions by the key and ``row_hash``, and current versions are those whose
    ``valid_to`` is NULL.
    """
    names = set(spec.column_names)
    versions = tuple(c.name for c in VERSION_COLUMNS if c.name in names)
    return tuple(dict.fromkeys((*spec.primary_key, *versions)))


def write_and_commit(url: str, snapshot: Snapshot, *, schema: str = DEFAULT_SCHEMA) -> SyncReport:
    """Write the org ``snapshot`` as one transaction, committed only if every check passed.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history refused the sync.
        WarehouseError: the server cannot be reached (the message holds no password), or a
            table the sync derives from is missing.
    """
    return _commit(url, snapshot.corp_id, schema, history.ORG, lambda conn: write(conn, snapshot))


def write_tags_and_commit(
    url: str, snapshot: TagSnapshot, *, schema: str = DEFAULT_SCHEMA
) -> SyncReport:
    """Write the tag ``snapshot`` as one transaction, like :func:`write_and_commit`.

    Tag syncs take the same per-corp turn as org syncs: both fold into the corp's change events.
    """
    return _commit(
        url, snapshot.corp_id, schema, history.TAG, lambda conn: tag_sync.write(conn, snapshot)
    )


def _commit(
    url: str,
    corp_id: str,
    schema: str,
    scope: history.Scope,
    write_corp: Callable[
        [PostgresConnection], tuple[dict[str, ReplaceResult], HistoryReport | None]
    ],
) -> SyncReport:
    conn = connect_postgres(url, schema=schema)
    try:
        prepare(conn, corp_id, scope)
        with conn.corp_transaction(corp_id):
            tables, history_report = write_corp(conn)
        return SyncReport(tables=tables, history=history_report, published=None)
    finally:
        conn.close()


def current_department_ids(url: str, corp_id: str, *, schema: str = DEFAULT_SCHEMA) -> list[int]:
    """Ids of a corp's committed departments, for a users-only sync."""
    conn = connect_postgres(url, schema=schema)
    try:
        return department_ids(conn, corp_id)
    finally:
        conn.close()
