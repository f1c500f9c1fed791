"""DuckDB side of a sync: one corp's rows of a table replaced after their checks, no Dagster import.

A corp's snapshot is loaded as a temporary relation, checked, guarded against suspicious shrinkage
and only then put in place of that corp's rows (``DELETE`` + ``INSERT``), all inside one
transaction; other corps' rows are never touched. DuckDB's transactional DDL means that any
failure before ``COMMIT`` leaves the table exactly as it was, and the sync publishes the file only
after every table passed (:mod:`wecom_assets.warehouse.sync`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from wecom_assets.warehouse.connection import (
    WarehouseConnection,
    WarehouseError,
    column_names,
    count,
    is_postgres,
    quote,
    rollback,
    table_exists,
)
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import CORP_ID, TableSpec
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS, VIEWS

DEFAULT_MAX_SHRINK_FRACTION = 0.5

# One row per (user, listed department) of one corp's loaded users; the parallel API arrays are
# zipped by DuckDB's multi-unnest, and a department listed twice for one user is kept once. WeCom
# omits main_department only when it lies outside the visible range, so then no listed department
# is the main one: is_main is false, not NULL.
MEMBERSHIP_SQL = f"""
SELECT
    corp_id,
    userid,
    department_id,
    sort_order,
    is_leader,
    coalesce(department_id = main_department, false) AS is_main
FROM (
    SELECT
        corp_id,
        userid,
        main_department,
        unnest(departments) AS department_id,
        unnest(department_orders) AS sort_order,
        unnest(is_leader_in_dept) AS is_leader
    FROM {quote(USERS.name)}
    WHERE corp_id = $corp_id
) AS listed
WHERE department_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY userid, department_id ORDER BY sort_order) = 1
ORDER BY userid, department_id
"""


class SnapshotRejectedError(WarehouseError):
    """A blocking data-quality rule failed, so the snapshot was not made visible."""

    def __init__(self, table: str, outcomes: Sequence[CheckOutcome]) -> None:
        self.table = table
        self.outcomes = tuple(outcomes)
        failed = [o for o in self.outcomes if o.blocking and not o.passed]
        reasons = "; ".join(
            f"{o.name}: {o.description} Ids: {', '.join(o.offending_ids[:10])}" for o in failed
        )
        super().__init__(f"Snapshot of {table} rejected. {reasons}")


class ShrinkGuardError(WarehouseError):
    """The new snapshot is much smaller than the live table, which usually means lost visibility."""


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    """What a successful replacement of one corp's rows did."""

    table: str
    row_count: int
    previous_row_count: int | None
    outcomes: tuple[CheckOutcome, ...]
    seconds: float


def conform_table(conn: WarehouseConnection, spec: TableSpec, corp_id: str) -> None:
    """Create ``spec``'s table, or rebuild one written by an older release to the declared schema.

    Columns the old table lacks become NULL, except ``corp_id``: rows written before tables held
    several corps belong to the corp being synced. Columns no longer declared are dropped. A table
    that already has the declared columns is left alone.
    """
    existing = column_names(conn, spec.name)
    if not existing:
        conn.execute(spec.create_sql())
        return
    if existing == list(spec.column_names):
        return
    rebuilt = f"{spec.name}__conformed"
    values = [
        quote(column.name)
        if column.name in existing
        else ("$corp_id" if column.name == CORP_ID else "NULL")
        for column in spec.columns
    ]
    conn.execute(f"DROP TABLE IF EXISTS {quote(rebuilt)}")
    conn.execute(spec.create_sql(rebuilt))
    conn.execute(
        f"INSERT INTO {quote(rebuilt)} SELECT {', '.join(values)} FROM {quote(spec.name)}",
        {"corp_id": corp_id} if "$corp_id" in values else {},
    )
    # PostgreSQL refuses to drop a table a view reads. Ours are dropped here and recreated by the
    # history engine; a view of an analyst's own is not dropped behind their back: PostgreSQL's
    # "other objects depend on it" stops the sync instead, and nothing is lost.
    for view in VIEWS:
        conn.execute(f"DROP VIEW IF EXISTS {quote(view.name)}")
    conn.execute(f"DROP TABLE {quote(spec.name)}")
    conn.execute(f"ALTER TABLE {quote(rebuilt)} RENAME TO {quote(spec.name)}")


def department_ids(conn: WarehouseConnection, corp_id: str) -> list[int]:
    """Ids of a corp's loaded departments, so a users-only sync needs no ``department/list``."""
    if not table_exists(conn, DEPARTMENTS.name):
        raise WarehouseError(
            f"Table {DEPARTMENTS.name} does not exist yet; materialize {DEPARTMENTS.name} first."
        )
    conform_table(conn, DEPARTMENTS, corp_id)
    rows = conn.execute(
        f"SELECT id FROM {quote(DEPARTMENTS.name)} WHERE corp_id = $corp_id ORDER BY id",
        {"corp_id": corp_id},
    ).fetchall()
    return [int(row[0]) for row in rows]


def replace_table(
    conn: WarehouseConnection,
    spec: TableSpec,
    source: pa.Table | str,
    *,
    corp_id: str,
    max_shrink_fraction: float | None = DEFAULT_MAX_SHRINK_FRACTION,
) -> ReplaceResult:
    """Replace ``corp_id``'s rows of ``spec.name`` with ``source`` atomically, after checking them.

    Args:
        conn: An open read-write connection.
        spec: The table's declaration: its schema and the data-quality rules it must pass.
        source: The corp's snapshot, as an Arrow table in ``spec``'s column order or as a SQL
            query that may use the parameter ``$corp_id``.
        corp_id: The corp whose rows are replaced; other corps' rows are left alone.
        max_shrink_fraction: Reject a snapshot that has this fraction fewer rows than the corp's
            current rows (0.5 = half). None disables the guard.

    Returns:
        Row counts, rule outcomes and the time the write took.

    Raises:
        SnapshotRejectedError: a blocking rule failed.
        ShrinkGuardError: the snapshot shrank more than ``max_shrink_fraction`` allows.
    """
    started = time.monotonic()
    table = quote(spec.name)
    incoming = quote(f"{spec.name}__incoming")
    columns = ", ".join(f"{quote(c.name)}::{c.sql_type} AS {quote(c.name)}" for c in spec.columns)
    corp = {"corp_id": corp_id}
    conn.execute("BEGIN TRANSACTION")
    try:
        conform_table(conn, spec, corp_id)
        if isinstance(source, pa.Table):
            # A view: the rules and the insert read the Arrow data in place, so DuckDB builds
            # one copy of the snapshot (the new rows) instead of two.
            conn.register("__snapshot_arrow", source.select(list(spec.column_names)))
            conn.execute(f"CREATE TEMP VIEW {incoming} AS SELECT {columns} FROM __snapshot_arrow")
        else:
            # A query is computed once, not once per rule.
            conn.execute(
                f"CREATE TEMP TABLE {incoming} AS SELECT {columns} FROM ({source}) AS source", corp
            )
        outcomes = tuple(rule(conn, incoming) for rule in spec.rules)
        if any(o.blocking and not o.passed for o in outcomes):
            raise SnapshotRejectedError(spec.name, outcomes)
        new_count = count(conn, incoming)
        previous = count(conn, table, "WHERE corp_id = $corp_id", corp)
        _guard_shrink(spec.name, previous, new_count, max_shrink_fraction)
        _swap_rows(conn, spec, incoming, corp)
        conn.execute(f"DROP {'VIEW' if isinstance(source, pa.Table) else 'TABLE'} {incoming}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    finally:
        if isinstance(source, pa.Table):
            conn.unregister("__snapshot_arrow")
    return ReplaceResult(
        table=spec.name,
        row_count=new_count,
        # A corp's first load has no previous rows: None, not 0, as a brand-new table had.
        previous_row_count=previous or None,
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def _swap_rows(
    conn: WarehouseConnection, spec: TableSpec, incoming: str, corp: dict[str, str]
) -> None:
    """Put ``incoming`` in place of the corp's rows: rebuilt and renamed in DuckDB, not in PostgreSQL.

    PostgreSQL deletes the corp's rows and inserts the new ones. Rebuilding a shared table there
    would take an ACCESS EXCLUSIVE lock that blocks every reader and every other corp's sync
    until this corp's transaction commits; row changes block neither (MVCC).

    Deleting a corp's rows and inserting their replacements in one transaction makes DuckDB
    2.0's commit rework the primary-key index row by row: 1 s for 20,000 users and 14 s for
    100,000, every night, since a sync replaces every row. Writing the other corps' rows and the
    new ones into a fresh table and renaming it over the old one costs 0.3 s at 100,000 and is
    just as atomic.
    """
    table = quote(spec.name)
    if is_postgres(conn):
        conn.execute(f"DELETE FROM {table} WHERE corp_id = $corp_id", corp)
        conn.execute(f"INSERT INTO {table} SELECT * FROM {incoming}")
        return
    rebuilt = f"{spec.name}__rebuilt"
    conn.execute(f"DROP TABLE IF EXISTS {quote(rebuilt)}")
    conn.execute(spec.create_sql(rebuilt))
    conn.execute(
        f"INSERT INTO {quote(rebuilt)} SELECT * FROM {table} WHERE corp_id <> $corp_id "
        f"UNION ALL SELECT * FROM {incoming}",
        corp,
    )
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {quote(rebuilt)} RENAME TO {table}")


def replace_membership(conn: WarehouseConnection, corp_id: str) -> ReplaceResult:
    """Rebuild a corp's ``dept_membership`` rows from its loaded ``wecom_users`` rows."""
    if not table_exists(conn, USERS.name):
        raise WarehouseError(
            f"Table {USERS.name} does not exist yet; materialize {USERS.name} first."
        )
    conform_table(conn, USERS, corp_id)
    return replace_table(
        conn, MEMBERSHIP, MEMBERSHIP_SQL, corp_id=corp_id, max_shrink_fraction=None
    )


def _guard_shrink(table: str, previous: int, new: int, max_shrink_fraction: float | None) -> None:
    if max_shrink_fraction is None or not previous:
        return
    shrink = (previous - new) / previous
    if shrink > max_shrink_fraction:
        raise ShrinkGuardError(
            f"{table} would shrink from {previous} to {new} rows ({shrink:.0%}), more than the "
            f"allowed {max_shrink_fraction:.0%}; the previous table is kept. This usually means the "
            "app's visible range (可见范围) was narrowed. If the drop is intended, rerun with the "
            "run config `max_shrink_fraction: 1.0` for this asset."
        )
