"""Opening the DuckDB file and the few catalog look-ups every warehouse module needs.

DuckDB allows one writing process per file and an analyst's open session holds a lock too, so
opening waits a bounded time for other processes; the look-ups here are shared by the publish
step, the quality rules and the history engine, which must agree on what "exists" means.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb

ConnectionConfig = dict[str, str | bool | int | float | list[str]]

_LOCK_HINT = re.compile(r"lock", re.IGNORECASE)
# A DuckDB file starts with a checksum (8 bytes) and the magic "DUCK"; its blocks follow a main
# header and two database headers of 4 KiB each.
_MAGIC = b"DUCK"
_MAGIC_OFFSET = 8
_HEADERS_BYTES = 3 * 4096
_SQLITE_MAGIC = b"SQLite format 3\x00"
# The warehouse needs no extension beyond those built in. With auto-loading on, opening a file of
# another kind (a SQLite file at WECOM_DUCKDB_PATH) makes DuckDB download one over the network.
_NO_EXTENSION_DOWNLOADS: ConnectionConfig = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_DAMAGED_ADVICE = (
    "Nothing was written. Restore the file from a backup, or move it aside to start a new "
    "warehouse: the next sync rebuilds the current tables, and the history starts anew."
)


class Rows(Protocol):
    """The result of one statement."""

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row, or None without rows."""
        ...

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row."""
        ...


class WarehouseConnection(Protocol):
    """What the warehouse code uses of a connection: a DuckDB one, or PostgreSQL's adapter.

    The SQL is DuckDB's; :class:`wecom_assets.warehouse.postgres.PostgresConnection` translates it.
    """

    def execute(self, query: str, parameters: Any = None, /) -> Rows:
        """Run one statement with ``$name`` or ``?`` parameters."""
        ...

    def register(self, view_name: str, python_object: Any, /) -> Any:
        """Make an Arrow table readable as ``view_name``."""
        ...

    def unregister(self, view_name: str, /) -> Any:
        """Forget what :meth:`register` made."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


def is_postgres(conn: WarehouseConnection) -> bool:
    """Whether ``conn`` is the PostgreSQL warehouse (where shared tables are never rebuilt)."""
    return getattr(conn, "dialect", "duckdb") == "postgres"


class WarehouseError(Exception):
    """A snapshot could not be written; the live tables are unchanged."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file lock for longer than the configured wait."""


class WarehouseDamagedError(WarehouseError):
    """The file is not a DuckDB database, or is truncated or corrupt; nothing was written."""


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
    lock (DuckDB names its program and PID) so the operator knows whom to ask. A file that is not a
    DuckDB database, or that is shorter than its own header says, is refused before anything is
    written: DuckDB would otherwise let the steps that do not read the missing blocks succeed.

    Args:
        path: The DuckDB file (its parent directory is created) or ``:memory:``.
        lock_timeout: Longest wait, in seconds, for another process's lock.
        read_only: Open without write access.
        config: DuckDB settings of the connection.
        clock: Monotonic clock of the wait (injectable for tests).
        sleep: Sleep between tries (injectable for tests).

    Raises:
        WarehouseLockedError: the lock was still held after ``lock_timeout`` seconds.
        WarehouseDamagedError: the file is not a DuckDB database, or is truncated or corrupt.
    """
    path = Path(path)
    in_memory = str(path) == ":memory:"
    if not in_memory:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_kind(path)
    settings = {**_NO_EXTENSION_DOWNLOADS, **(config or {})}
    deadline = clock() + lock_timeout
    delay = 0.1
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only, config=settings)
        except duckdb.IOException as error:
            if not _LOCK_HINT.search(str(error)):
                raise WarehouseDamagedError(
                    f"DuckDB cannot read {path}: {error}. {_DAMAGED_ADVICE}"
                ) from None
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
            continue
        if not in_memory:
            _check_complete(conn, path)
        return conn


def _check_kind(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    if head and head[_MAGIC_OFFSET : _MAGIC_OFFSET + len(_MAGIC)] != _MAGIC:
        kind = " (it is a SQLite database)" if head == _SQLITE_MAGIC else ""
        raise WarehouseDamagedError(
            f"{path} is not a DuckDB database file{kind}. Point WECOM_DUCKDB_PATH (or the "
            "duckdb resource's database) at a DuckDB file or a path that does not exist yet. "
            "Nothing was written."
        )


def _check_complete(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a file too short to hold the blocks in use (truncated by a copy or a disk).

    The bound is the blocks in use, not all blocks: a checkpoint cuts free blocks off the end
    of the file while the header still counts them, so a healthy file can be shorter than
    ``total_blocks`` blocks, never shorter than its ``used_blocks``.
    """
    row = conn.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    needed = _HEADERS_BYTES + int(row[0]) * int(row[1]) if row else 0
    actual = path.stat().st_size
    if actual < needed:
        conn.close()
        raise WarehouseDamagedError(
            f"DuckDB file {path} is truncated: it has {actual} bytes, its blocks in use need "
            f"{needed}. {_DAMAGED_ADVICE}"
        )


# information_schema exists in both warehouses; the current schema is DuckDB's ``main`` or the
# PostgreSQL schema on the search path, and the catalog test keeps DuckDB's temporary tables out.
_OWN_SCHEMA = "table_schema = current_schema() AND table_catalog = current_database()"


def table_exists(conn: WarehouseConnection, table: str) -> bool:
    """Whether ``table`` exists as a permanent table in the warehouse schema."""
    return table in existing_tables(conn)


def existing_tables(conn: WarehouseConnection) -> set[str]:
    """Names of the permanent tables in the warehouse schema."""
    rows = conn.execute(
        f"SELECT table_name FROM information_schema.tables "
        f"WHERE {_OWN_SCHEMA} AND table_type = 'BASE TABLE'"
    ).fetchall()
    return {str(row[0]) for row in rows}


def existing_views(conn: WarehouseConnection) -> set[str]:
    """Names of the views in the warehouse schema."""
    rows = conn.execute(
        f"SELECT table_name FROM information_schema.tables WHERE {_OWN_SCHEMA} "
        "AND table_type = 'VIEW'"
    ).fetchall()
    return {str(row[0]) for row in rows}


# PostgreSQL's information_schema.columns joins a dozen catalogs and checks privileges column by
# column: 6 ms a look-up, and a sync makes 40. Its own catalog answers in 0.3 ms; the relation
# kinds are those information_schema.columns shows (tables, views, foreign and partitioned
# tables), and dropped columns are left out as there.
_POSTGRES_COLUMNS = (
    "SELECT a.attname FROM pg_catalog.pg_attribute AS a "
    "JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = ? "
    "AND c.relkind IN ('r', 'v', 'f', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


def column_names(conn: WarehouseConnection, table: str) -> list[str]:
    """Columns of ``table`` in the warehouse schema, in order; empty when it does not exist."""
    query = (
        _POSTGRES_COLUMNS
        if is_postgres(conn)
        else f"SELECT column_name FROM information_schema.columns "
        f"WHERE {_OWN_SCHEMA} AND table_name = ? ORDER BY ordinal_position"
    )
    rows = conn.execute(query, [table]).fetchall()
    return [str(row[0]) for row in rows]


Params = Sequence[object] | Mapping[str, object]


def scalar(conn: WarehouseConnection, sql: str, params: Params | None = None) -> object:
    """The first column of the first row of ``sql``, or None without rows."""
    row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def count(
    conn: WarehouseConnection, relation: str, where: str = "", params: Params | None = None
) -> int:
    """Rows of ``relation`` (a quoted name or a subquery), optionally filtered by ``where``."""
    value = scalar(conn, f"SELECT count(*) FROM {relation} {where}", params)
    return int(value) if isinstance(value, int) else 0


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def rollback(conn: WarehouseConnection) -> None:
    """Roll back, tolerating a connection the failure already closed (its work is discarded)."""
    try:
        conn.execute("ROLLBACK")
    except Exception:  # any driver's error: the work is discarded either way
        pass
