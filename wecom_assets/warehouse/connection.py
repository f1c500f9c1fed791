"""Opening the DuckDB file and the few catalog look-ups every warehouse module needs.

DuckDB allows one writing process per file and an analyst's open session holds a lock too, so
opening waits a bounded time for other processes; the look-ups here are shared by the publish
step, the quality rules and the history engine, which must agree on what "exists" means.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

ConnectionConfig = dict[str, str | bool | int | float | list[str]]

_LOCK_HINT = re.compile(r"lock", re.IGNORECASE)


class WarehouseError(Exception):
    """A snapshot could not be written; the live tables are unchanged."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file lock for longer than the configured wait."""


def connect(
    path: str | Path,
    *,
    lock_timeout: float,
    read_only: bool = False,
    config: ConnectionConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to ``lock_timeout`` seconds for another process's lock.

    Waiting briefly rides out short overlaps; past the wait the error says which process holds the
    lock (DuckDB names its program and PID) so the operator knows whom to ask.

    Args:
        path: The DuckDB file (its parent directory is created) or ``:memory:``.
        lock_timeout: Longest wait, in seconds, for another process's lock.
        read_only: Open without write access.
        config: DuckDB settings of the connection.
        clock: Monotonic clock of the wait (injectable for tests).
        sleep: Sleep between tries (injectable for tests).

    Raises:
        WarehouseLockedError: the lock was still held after ``lock_timeout`` seconds.
    """
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = clock() + lock_timeout
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if not _LOCK_HINT.search(str(error)):
                raise
            remaining = deadline - clock()
            if remaining <= 0:
                raise WarehouseLockedError(
                    f"DuckDB file {path} is locked by another process and stayed locked for "
                    f"{lock_timeout:.0f}s. Close that session (an open DuckDB CLI, notebook or BI "
                    f"tool) or raise lock_timeout_seconds. DuckDB says: {error}"
                ) from None
            # The last sleep is cut to the deadline, so the final try comes at the full wait.
            sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` exists as a permanent table in the main schema."""
    return bool(
        scalar(
            conn,
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE schema_name = 'main' AND table_name = ? AND NOT temporary",
            [table],
        )
    )


def existing_tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the permanent tables in the main schema."""
    rows = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary"
    ).fetchall()
    return {str(row[0]) for row in rows}


def column_names(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Columns of ``table`` in the main schema, in order; empty when it does not exist."""
    rows = conn.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return [str(row[0]) for row in rows]


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> object:
    """The first column of the first row of ``sql``, or None without rows."""
    row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def count(conn: duckdb.DuckDBPyConnection, relation: str, where: str = "") -> int:
    """Rows of ``relation`` (a quoted name or a subquery), optionally filtered by ``where``."""
    value = scalar(conn, f"SELECT count(*) FROM {relation} {where}")
    return int(value) if isinstance(value, int) else 0


def row_count(conn: duckdb.DuckDBPyConnection, table: str) -> int | None:
    """Rows in ``table``, or None when it does not exist yet."""
    if not table_exists(conn, table):
        return None
    return count(conn, quote(table))


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back, tolerating a connection the failure already closed (its work is discarded)."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error:
        pass
