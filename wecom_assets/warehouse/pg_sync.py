"""One corp's sync written into the PostgreSQL warehouse as one transaction.

DuckDB publishes a sync by replacing its file; PostgreSQL needs no copy: the corp's tables, their
checks, the shrink guard and the history are written in one transaction, so a failure anywhere
rolls all of it back and readers see the last committed sync until ``COMMIT`` (MVCC; nothing here
takes a lock that blocks them). Syncs of one corp take turns through a transaction-level
advisory lock; different corps write at the same time, each touching only its own rows.

The schema, tables and views are created beforehand in a short transaction of their own, under
an advisory lock, so that two corps' first syncs do not both try to create them.
"""

from __future__ import annotations

from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import quote
from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA, PostgresConnection, connect_postgres
from wecom_assets.warehouse.publish import department_ids
from wecom_assets.warehouse.sync import Snapshot, SyncReport, write
from wecom_assets.warehouse.tables import HISTORY_TABLES, ORG_TABLES

_SCHEMA_LOCK = "wecom_assets.schema"


def prepare(conn: PostgresConnection, corp_id: str) -> None:
    """Create the schema, tables and views where missing, and refresh the tables' statistics.

    Autovacuum analyzes a table some time after a large write; a sync that follows sooner would
    be planned for the row counts before it (an empty history, say) and join 20,000 rows by
    nested loops: 150 s instead of 0.2 s. ``ANALYZE`` here, in this short transaction, never
    blocks readers or writers, and holds its lock only until this transaction commits.
    """
    conn.raw.execute("BEGIN")
    try:
        conn.raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_SCHEMA_LOCK])
        conn.raw.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(conn.schema)}")
        history.ensure_schema(conn, corp_id)
        for spec in (*ORG_TABLES, *HISTORY_TABLES):
            conn.raw.execute(f"ANALYZE {quote(spec.name)}")
        conn.raw.execute("COMMIT")
    except BaseException:
        conn.raw.execute("ROLLBACK")
        raise


def write_and_commit(url: str, snapshot: Snapshot, *, schema: str = DEFAULT_SCHEMA) -> SyncReport:
    """Write ``snapshot`` as one transaction, committed only if every check passed.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history refused the sync.
        WarehouseError: the server cannot be reached (the message holds no password), or a
            table the sync derives from is missing.
    """
    conn = connect_postgres(url, schema=schema)
    try:
        prepare(conn, snapshot.corp_id)
        with conn.corp_transaction(snapshot.corp_id):
            tables, history_report = write(conn, snapshot)
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
