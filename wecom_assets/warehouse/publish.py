"""DuckDB side of a sync: bulk loads and atomic table replacement, with no Dagster import.

A snapshot is loaded into a temporary table, checked, guarded against suspicious shrinkage and
only then swapped in for the live table, all inside one transaction. DuckDB's transactional DDL
means that any failure before ``COMMIT`` (an error, a failed rule, a killed process) leaves the
previous table exactly as it was.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from wecom_assets.warehouse.quality import CheckOutcome, Rule
from wecom_assets.warehouse.tables import MEMBERSHIP, TableSpec, table_exists

DEFAULT_MAX_SHRINK_FRACTION = 0.5

# One row per (user, listed department) of the loaded users; the parallel API arrays are zipped by
# DuckDB's multi-unnest, and a department listed twice for one user is kept once. WeCom omits
# main_department only when it lies outside the visible range, so then no listed department is
# the main one: is_main is false, not NULL.
MEMBERSHIP_SQL = """
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
    FROM wecom_users
)
WHERE department_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY userid, department_id ORDER BY sort_order) = 1
ORDER BY userid, department_id
"""


class WarehouseError(Exception):
    """A snapshot could not be written; the live table is unchanged."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file lock for longer than the configured wait."""


class SnapshotRejectedError(WarehouseError):
    """A blocking data-quality rule failed, so the snapshot was not made visible."""

    def __init__(self, table: str, outcomes: Sequence[CheckOutcome]) -> None:
        self.table = table
        self.outcomes = tuple(outcomes)
        failed = [o for o in self.outcomes if o.blocking and not o.passed]
        reasons = "; ".join(
            f"{o.name}: {o.description} Ids: {', '.join(o.offending_ids[:10])}" for o in failed
        )
        super().__init__(f"Snapshot of {table} rejected, previous table kept. {reasons}")


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


_LOCK_HINT = re.compile(r"lock", re.IGNORECASE)


def connect(
    path: str | Path,
    *,
    lock_timeout: float,
    read_only: bool = False,
    config: dict[str, str | bool | int | float | list[str]] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to ``lock_timeout`` seconds for another process's lock.

    DuckDB allows one writing process per file, and an analyst's open session holds a lock too.
    Waiting briefly rides out short overlaps; past the wait the error says which process holds the
    lock (DuckDB names its program and PID) so the operator knows whom to ask.

    Raises:
        WarehouseLockedError: the lock was still held after ``lock_timeout`` seconds.
    """
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if not _LOCK_HINT.search(str(error)):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseLockedError(
                    f"DuckDB file {path} is locked by another process and stayed locked for "
                    f"{lock_timeout:.0f}s. Close that session (an open DuckDB CLI, notebook or BI "
                    f"tool) or raise lock_timeout_seconds. DuckDB says: {error}"
                ) from None
            # The last sleep is cut to the deadline, so the final try comes at the full wait.
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


def row_count(conn: duckdb.DuckDBPyConnection, table: str) -> int | None:
    """Rows in ``table``, or None when it does not exist yet."""
    if not table_exists(conn, table):
        return None
    row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    return int(row[0]) if row else 0


def department_ids(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Ids of the loaded departments, so the users fetch needs no second ``department/list``."""
    if not table_exists(conn, "wecom_departments"):
        raise WarehouseError(
            "Table wecom_departments does not exist yet; materialize wecom_departments first."
        )
    return [
        int(r[0]) for r in conn.execute("SELECT id FROM wecom_departments ORDER BY id").fetchall()
    ]


def replace_table(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    source: pa.Table | str,
    *,
    rules: Iterable[Rule] = (),
    max_shrink_fraction: float | None = DEFAULT_MAX_SHRINK_FRACTION,
) -> ReplaceResult:
    """Replace ``spec.name`` with ``source`` atomically, after checking it.

    Args:
        conn: An open read-write connection.
        spec: The table's schema.
        source: The snapshot, as an Arrow table in ``spec``'s column order or as a SQL query.
        rules: Data-quality rules; a failing blocking rule rejects the snapshot.
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
        outcomes = tuple(rule(conn, f'"{incoming}"') for rule in rules)
        if any(o.blocking and not o.passed for o in outcomes):
            raise SnapshotRejectedError(spec.name, outcomes)
        new_count = _count(conn, f'"{incoming}"')
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
        _rollback(conn)
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


def replace_membership(
    conn: duckdb.DuckDBPyConnection, *, rules: Iterable[Rule] = ()
) -> ReplaceResult:
    """Rebuild ``dept_membership`` from the loaded ``wecom_users`` table."""
    if not table_exists(conn, "wecom_users"):
        raise WarehouseError("Table wecom_users does not exist yet; materialize wecom_users first.")
    return replace_table(conn, MEMBERSHIP, MEMBERSHIP_SQL, rules=rules, max_shrink_fraction=None)


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back, tolerating a connection the failure already closed (its work is discarded)."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _count(conn: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()
    return int(row[0]) if row else 0


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
