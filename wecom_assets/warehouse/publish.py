"""DuckDB side of a sync: bulk loads and atomic table replacement, with no Dagster import.

A snapshot is loaded into a temporary table, checked, guarded against suspicious shrinkage and
only then swapped in for the live table, all inside one transaction. DuckDB's transactional DDL
means that any failure before ``COMMIT`` (an error, a failed rule, a killed process) leaves the
previous table exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from wecom_assets.warehouse.connection import (
    WarehouseError,
    count,
    quote,
    rollback,
    row_count,
    table_exists,
)
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS

DEFAULT_MAX_SHRINK_FRACTION = 0.5

# One row per (user, listed department) of the loaded users; the parallel API arrays are zipped by
# DuckDB's multi-unnest, and a department listed twice for one user is kept once. WeCom omits
# main_department only when it lies outside the visible range, so then no listed department is
# the main one: is_main is false, not NULL.
MEMBERSHIP_SQL = f"""
SELECT
    userid,
    department_id,
    sort_order,
    is_leader,
    coalesce(department_id = main_department, false) AS is_main
FROM (
    SELECT
        userid,
        main_department,
        unnest(departments) AS department_id,
        unnest(department_orders) AS sort_order,
        unnest(is_leader_in_dept) AS is_leader
    FROM {quote(USERS.name)}
)
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
    """What a successful replacement did."""

    table: str
    row_count: int
    previous_row_count: int | None
    outcomes: tuple[CheckOutcome, ...]
    seconds: float


def department_ids(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Ids of the loaded departments, so the users fetch needs no second ``department/list``."""
    if not table_exists(conn, DEPARTMENTS.name):
        raise WarehouseError(
            f"Table {DEPARTMENTS.name} does not exist yet; materialize {DEPARTMENTS.name} first."
        )
    rows = conn.execute(f"SELECT id FROM {quote(DEPARTMENTS.name)} ORDER BY id").fetchall()
    return [int(row[0]) for row in rows]


def replace_table(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    source: pa.Table | str,
    *,
    max_shrink_fraction: float | None = DEFAULT_MAX_SHRINK_FRACTION,
) -> ReplaceResult:
    """Replace ``spec.name`` with ``source`` atomically, after checking it.

    Args:
        conn: An open read-write connection.
        spec: The table's declaration: its schema and the data-quality rules it must pass.
        source: The snapshot, as an Arrow table in ``spec``'s column order or as a SQL query.
        max_shrink_fraction: Reject a snapshot that has this fraction fewer rows than the live
            table (0.5 = half). None disables the guard.

    Returns:
        Row counts, rule outcomes and the time the write took.

    Raises:
        SnapshotRejectedError: a blocking rule failed.
        ShrinkGuardError: the snapshot shrank more than ``max_shrink_fraction`` allows.
    """
    started = time.monotonic()
    staging = f"{spec.name}__staging"
    incoming = f"{spec.name}__incoming"
    columns = ", ".join(f'"{c.name}"::{c.sql_type} AS "{c.name}"' for c in spec.columns)
    conn.execute("BEGIN TRANSACTION")
    try:
        if isinstance(source, pa.Table):
            # A view: the rules and the insert read the Arrow data in place, so DuckDB builds
            # one copy of the snapshot (the new table) instead of two.
            conn.register("__snapshot_arrow", source.select(list(spec.column_names)))
            incoming_kind = "VIEW"
            conn.execute(f'CREATE TEMP VIEW "{incoming}" AS SELECT {columns} FROM __snapshot_arrow')
        else:
            # A query is computed once, not once per rule.
            incoming_kind = "TABLE"
            conn.execute(f'CREATE TEMP TABLE "{incoming}" AS SELECT {columns} FROM ({source})')
        outcomes = tuple(rule(conn, quote(incoming)) for rule in spec.rules)
        if any(o.blocking and not o.passed for o in outcomes):
            raise SnapshotRejectedError(spec.name, outcomes)
        new_count = count(conn, quote(incoming))
        previous = row_count(conn, spec.name)
        _guard_shrink(spec.name, previous, new_count, max_shrink_fraction)
        conn.execute(f'DROP TABLE IF EXISTS "{staging}"')
        conn.execute(spec.create_sql(staging))
        conn.execute(f'INSERT INTO "{staging}" SELECT * FROM "{incoming}"')
        conn.execute(f'DROP TABLE IF EXISTS "{spec.name}"')
        conn.execute(f'ALTER TABLE "{staging}" RENAME TO "{spec.name}"')
        conn.execute(f'DROP {incoming_kind} "{incoming}"')
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
        previous_row_count=previous,
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def replace_membership(conn: duckdb.DuckDBPyConnection) -> ReplaceResult:
    """Rebuild ``dept_membership`` from the loaded ``wecom_users`` table."""
    if not table_exists(conn, USERS.name):
        raise WarehouseError(
            f"Table {USERS.name} does not exist yet; materialize {USERS.name} first."
        )
    return replace_table(conn, MEMBERSHIP, MEMBERSHIP_SQL, max_shrink_fraction=None)


def _guard_shrink(
    table: str, previous: int | None, new: int, max_shrink_fraction: float | None
) -> None:
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
