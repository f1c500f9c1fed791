"""Org history in DuckDB: type-2 history tables, change events and department paths.

Each sync replaces the current tables; :func:`apply_snapshot` then folds that snapshot into
history tables that keep every version of every row with the interval it was current:

- a row whose business columns are unchanged (same ``row_hash``) is left untouched;
- a row that changed or disappeared gets ``valid_to`` = the snapshot time;
- a new or changed row is inserted with ``valid_from`` = the snapshot time, ``valid_to`` NULL.

So "the org as of X" is ``WHERE valid_from <= X AND (valid_to IS NULL OR valid_to > X)``.
Everything happens set-based inside one transaction, checked before ``COMMIT``: a failure leaves
the history exactly as it was, and applying the same snapshot again changes nothing.
No Dagster import: :mod:`wecom_assets.warehouse.sync` runs it inside each sync's private copy.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from wecom_assets.warehouse.connection import (
    WarehouseConnection,
    column_names,
    count,
    existing_tables,
    is_postgres,
    quote,
    rollback,
    scalar,
    table_exists,
)
from wecom_assets.warehouse.history.consistency import check_tracked, key_match, row_hash_sql
from wecom_assets.warehouse.history.views import DEPARTMENT_PATHS_SQL, ORG_CHANGES_SQL
from wecom_assets.warehouse.publish import conform_table
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import TableSpec, Tracked
from wecom_assets.warehouse.tables import (
    DEPARTMENT_PATHS,
    DEPARTMENTS,
    HISTORY_TABLES,
    ORG_CHANGES,
    ORG_TABLES,
    RUNS,
    TAG_HISTORY_TABLES,
    TAG_RUNS,
    TAG_TABLES,
    TAG_TRACKED,
    TAGS,
    TRACKED,
    USERS,
    VIEWS,
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Current tables folded into the history together, with the log of their snapshots.

    The org tables and the tag tables are synced by separate steps, so each has its own
    snapshots: its own snapshot time, runs log and versions.

    Attributes:
        what: The tables in words, for messages.
        current: The current tables, which must exist.
        tracked: Their history tables.
        runs: The log of applied snapshots.
        timed: Tables whose latest ``synced_at`` is the snapshot time.
        counted: Tables whose row counts the log records, in the log's column order.
    """

    what: str
    current: tuple[TableSpec, ...]
    tracked: tuple[Tracked, ...]
    runs: TableSpec
    timed: tuple[TableSpec, ...]
    counted: tuple[TableSpec, ...]


ORG = Scope("the three WeCom tables", ORG_TABLES, TRACKED, RUNS, (DEPARTMENTS, USERS), ORG_TABLES)
TAG = Scope("the three tag tables", TAG_TABLES, TAG_TRACKED, TAG_RUNS, (TAGS,), TAG_TABLES)


class HistoryError(Exception):
    """The snapshot could not be folded into the history; the history is unchanged."""


class HistoryRejectedError(HistoryError):
    """The updated history failed its consistency checks, so it was not committed."""

    def __init__(self, outcomes: tuple[CheckOutcome, ...]) -> None:
        self.outcomes = outcomes
        failed = "; ".join(
            f"{o.details.get('table', '?')}: {o.description} Keys: {', '.join(o.offending_ids[:10])}"
            for o in outcomes
            if not o.passed
        )
        super().__init__(f"History not updated, it would be inconsistent. {failed}")


@dataclass(frozen=True, slots=True)
class TableChanges:
    """What one snapshot did to one history table."""

    table: str
    opened: int
    closed: int
    current_rows: int
    total_rows: int


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """Outcome of :func:`apply_snapshot`."""

    snapshot_at: datetime
    applied: bool
    tables: tuple[TableChanges, ...]
    outcomes: tuple[CheckOutcome, ...]
    seconds: float

    @property
    def opened(self) -> int:
        """New versions over all history tables."""
        return sum(t.opened for t in self.tables)

    @property
    def closed(self) -> int:
        """Closed versions over all history tables."""
        return sum(t.closed for t in self.tables)


_CORP_CURRENT = "WHERE valid_to IS NULL AND corp_id = $corp_id"


def _require_current_tables(conn: WarehouseConnection, scope: Scope) -> None:
    existing = existing_tables(conn)
    missing = [spec.name for spec in scope.current if spec.name not in existing]
    if missing:
        raise HistoryError(
            f"Cannot update the history: {', '.join(missing)} not loaded yet; materialize "
            f"{scope.what} first."
        )


def _ensure_table(conn: WarehouseConnection, tracked: Tracked, corp_id: str) -> None:
    """Create the history table, or bring one written by an older release to the declared schema.

    The stored ``row_hash`` of current versions is then brought in line with the column list
    and DuckDB's JSON rendering; normally this touches no row. Without it a new column (NULL in
    old versions) or a changed rendering after an upgrade would turn every row into a version.
    """
    spec = tracked.history
    if not column_names(conn, spec.name):
        conn.execute(spec.create_sql())
        return
    conform_table(conn, spec, corp_id)
    fresh = row_hash_sql(tracked.business_columns, "h")
    # Only the corp's own versions: another corp's sync may be writing its rows concurrently.
    conn.execute(
        f"UPDATE {quote(spec.name)} AS h SET row_hash = {fresh} "
        f"WHERE h.corp_id = $corp_id AND h.valid_to IS NULL AND h.row_hash IS DISTINCT FROM {fresh}",
        {"corp_id": corp_id},
    )


def _create_view(conn: WarehouseConnection, name: str, sql: str) -> None:
    """(Re)create a view; in PostgreSQL only when its SQL changed since it was created.

    ``CREATE OR REPLACE VIEW`` takes an exclusive lock held until the transaction ends, so in
    PostgreSQL, where a corp's sync is one long transaction beside analysts' queries, a view is
    replaced only when the SQL this version writes differs from the one it was made from (kept
    as the view's comment), in the short transaction of
    :func:`wecom_assets.warehouse.pg_sync.prepare`: once per upgrade, not once per sync.
    """
    if not is_postgres(conn):
        conn.execute(sql)
        return
    mark = f"wecom_assets {hashlib.sha256(sql.encode()).hexdigest()[:16]}"
    made_from = scalar(
        conn, "SELECT obj_description(to_regclass($name), 'pg_class')", {"name": name}
    )
    if made_from == mark:
        return
    # A changed view may have other columns, which CREATE OR REPLACE refuses in PostgreSQL.
    conn.execute(f"DROP VIEW IF EXISTS {quote(name)}")
    conn.execute(sql)
    conn.execute(f"COMMENT ON VIEW {quote(name)} IS {_literal(mark)}")


def ensure_schema(
    conn: WarehouseConnection, corp_id: str, scope: Scope = ORG, *, refresh_hashes: bool = True
) -> None:
    """Create every history table and (re)create the views; safe to run again.

    The change events read the org's and the tags' history alike, so both sets of history
    tables are created whichever scope is synced. Tables written before the warehouse held
    several corps are given ``corp_id``: their rows belong to ``corp_id``, the corp being synced.

    ``refresh_hashes=False`` leaves the stored ``row_hash`` of current versions as it is: the
    PostgreSQL sync creates the tables in a short transaction of its own beforehand, and
    :func:`apply_snapshot` then refreshes the hashes in the corp's transaction. Computing them
    twice cost every sync of 20,000 users half a second.
    """
    for spec in scope.current:
        conform_table(conn, spec, corp_id)
    for tracked in (*TRACKED, *TAG_TRACKED):
        if tracked in scope.tracked and refresh_hashes:
            _ensure_table(conn, tracked, corp_id)
        else:
            # Only created or brought to the declared columns: re-hashing another scope's
            # current versions (every member, for the org) is that scope's sync's work, and
            # without refresh_hashes this scope's is the work of the caller's next call.
            conform_table(conn, tracked.history, corp_id)
    conform_table(conn, RUNS, corp_id)
    conform_table(conn, TAG_RUNS, corp_id)
    # The views come last: rebuilding an older release's table above drops the views over it.
    # The department paths read wecom_departments, which a tag sync before any org sync lacks.
    if table_exists(conn, DEPARTMENTS.name):
        _create_view(conn, DEPARTMENT_PATHS.name, DEPARTMENT_PATHS_SQL)
    _create_view(conn, ORG_CHANGES.name, ORG_CHANGES_SQL)


def snapshot_time(conn: WarehouseConnection, corp_id: str, scope: Scope = ORG) -> datetime:
    """A corp's loaded snapshot's time: the latest ``synced_at`` of the scope's fetched tables.

    Falls back to now for a corp without rows. Using the fetch time rather than the time the
    history is written keeps ``valid_from`` honest when the history runs late or is retried.
    """
    latest = ", ".join(
        f"(SELECT max(synced_at) FROM {quote(spec.name)} WHERE corp_id = $corp_id)"
        for spec in scope.timed
    )
    value = scalar(
        conn,
        f"SELECT greatest({latest})" if len(scope.timed) > 1 else f"SELECT {latest}",
        {"corp_id": corp_id},
    )
    if value is None:
        return datetime.now(UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _last_snapshot(conn: WarehouseConnection, corp_id: str, scope: Scope) -> datetime | None:
    value = scalar(
        conn,
        f"SELECT max(snapshot_at) FROM {quote(scope.runs.name)} WHERE corp_id = $corp_id",
        {"corp_id": corp_id},
    )
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _temp(tracked: Tracked, what: str) -> str:
    return quote(f"__history_{what}_{tracked.history.name}")


def _diff(conn: WarehouseConnection, tracked: Tracked, corp_id: str) -> tuple[int, int]:
    """Stage one corp's versions to close and to open; returns (opened, closed) counts."""
    columns = ", ".join(quote(c) for c in tracked.business_columns)
    key = ", ".join(f"o.{quote(k)}" for k in tracked.key)
    incoming, opening, closing = (_temp(tracked, w) for w in ("incoming", "opening", "closing"))
    history = quote(tracked.history.name)
    for staged in (incoming, opening, closing):
        conn.execute(f"DROP TABLE IF EXISTS {staged}")
    conn.execute(
        f"CREATE TEMP TABLE {incoming} AS "
        f"SELECT {columns}, {row_hash_sql(tracked.business_columns, 's')} AS row_hash "
        f"FROM {quote(tracked.source.name)} AS s WHERE s.corp_id = $corp_id",
        {"corp_id": corp_id},
    )
    current = f"(SELECT * FROM {history} WHERE valid_to IS NULL AND corp_id = {_literal(corp_id)})"
    match = f"{key_match(tracked.key, 'i', 'o')} AND i.row_hash = o.row_hash"
    conn.execute(
        f"CREATE TEMP TABLE {opening} AS "
        f"SELECT i.* FROM {incoming} AS i ANTI JOIN {current} AS o ON {match}"
    )
    conn.execute(
        f"CREATE TEMP TABLE {closing} AS "
        f"SELECT {key} FROM {current} AS o ANTI JOIN {incoming} AS i ON {match}"
    )
    return count(conn, opening), count(conn, closing)


def _write(conn: WarehouseConnection, tracked: Tracked, at: datetime) -> None:
    history = quote(tracked.history.name)
    columns = ", ".join(quote(c) for c in tracked.business_columns)
    conn.execute(
        f"UPDATE {history} AS h SET valid_to = $at FROM {_temp(tracked, 'closing')} AS o "
        f"WHERE {key_match(tracked.key, 'h', 'o')} AND h.valid_to IS NULL",
        {"at": at},
    )
    conn.execute(
        f"INSERT INTO {history} ({columns}, valid_from, valid_to, row_hash) "
        f"SELECT {columns}, $at, NULL, row_hash FROM {_temp(tracked, 'opening')}",
        {"at": at},
    )


def _drop_temps(conn: WarehouseConnection, scope: Scope) -> None:
    for tracked in scope.tracked:
        for what in ("incoming", "opening", "closing"):
            conn.execute(f"DROP TABLE IF EXISTS {_temp(tracked, what)}")


def _literal(text: str) -> str:
    """``text`` as a SQL string literal, for the few places a parameter cannot go (a subquery)."""
    return "'" + text.replace("'", "''") + "'"


def _log_run(
    conn: WarehouseConnection,
    scope: Scope,
    corp_id: str,
    at: datetime,
    run_id: str | None,
    tables: list[TableChanges],
) -> None:
    changes = {t.table: {"opened": t.opened, "closed": t.closed} for t in tables}
    counts = "".join(
        f"(SELECT count(*) FROM {quote(spec.name)} WHERE corp_id = $corp_id), "
        for spec in scope.counted
    )
    conn.execute(
        f"""
        INSERT INTO {quote(scope.runs.name)}
        SELECT $corp_id, $at, $applied_at, $run_id, {counts}
               $opened, $closed, CAST($changes AS JSON)
        """,
        {
            "corp_id": corp_id,
            "at": at,
            "applied_at": datetime.now(UTC),
            "run_id": run_id,
            "opened": sum(t.opened for t in tables),
            "closed": sum(t.closed for t in tables),
            "changes": json.dumps(changes, sort_keys=True),
        },
    )


def apply_snapshot(
    conn: WarehouseConnection,
    corp_id: str,
    *,
    run_id: str | None = None,
    snapshot_at: datetime | None = None,
    scope: Scope = ORG,
) -> HistoryResult:
    """Fold one corp's loaded current rows into the history, atomically.

    Other corps' versions are never read or written: each corp has its own snapshots.

    Args:
        conn: An open read-write connection to the warehouse holding the three current tables.
        corp_id: The corp whose snapshot is folded in.
        run_id: Recorded in ``wecom_history_runs`` (the Dagster run id).
        snapshot_at: Time of the snapshot; defaults to :func:`snapshot_time`.
        scope: Which tables: the org's (default) or the tags'.

    Returns:
        Versions opened and closed per history table, and the consistency check outcomes.
        ``applied`` is False when this snapshot was already applied (nothing changed then).

    Raises:
        HistoryError: The current tables are missing, or the snapshot is not newer than the last
            one applied yet differs from the history (tables restored from an old backup?).
        HistoryRejectedError: The updated history would fail its consistency checks.
    """
    started = time.monotonic()
    corp = {"corp_id": corp_id}
    _require_current_tables(conn, scope)
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_schema(conn, corp_id, scope)
        at = (snapshot_at or snapshot_time(conn, corp_id, scope)).astimezone(UTC)
        last = _last_snapshot(conn, corp_id, scope)
        diffs = [_diff(conn, tracked, corp_id) for tracked in scope.tracked]
        changed = any(opened or closed for opened, closed in diffs)
        applied = last is None or at > last
        if not applied and changed:
            raise HistoryError(
                f"The loaded snapshot ({at.isoformat()}) is not newer than the last one in the "
                f"history ({last.isoformat() if last else '-'}) but differs from it; the history "
                "only moves forward. Sync the tables again to get a fresh snapshot."
            )
        if applied:
            for tracked in scope.tracked:
                _write(conn, tracked, at)
        tables = [
            TableChanges(
                table=tracked.history.name,
                opened=opened if applied else 0,
                closed=closed if applied else 0,
                current_rows=count(
                    conn, quote(tracked.history.name), _CORP_CURRENT, {"corp_id": corp_id}
                ),
                total_rows=count(
                    conn, quote(tracked.history.name), "WHERE corp_id = $corp_id", corp
                ),
            )
            for tracked, (opened, closed) in zip(scope.tracked, diffs, strict=True)
        ]
        if applied:
            _log_run(conn, scope, corp_id, at, run_id, tables)
        outcomes = tuple(
            check_tracked(conn, tracked, corp_id, _temp(tracked, "incoming"))
            for tracked in scope.tracked
        )
        if not all(o.passed for o in outcomes):
            raise HistoryRejectedError(outcomes)
        _drop_temps(conn, scope)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return HistoryResult(
        snapshot_at=at,
        applied=applied,
        tables=tuple(tables),
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def row_counts(
    conn: WarehouseConnection, corp_id: str, *, counted: Mapping[str, int] | None = None
) -> dict[str, int]:
    """A corp's rows of every history table and view there is, by name.

    The department paths are missing until the org is synced, when the tags were synced first.
    ``counted`` holds counts the caller already read, which are not read again: the change
    events' view derives every event from the history tables each time it is read.
    """
    known = counted or {}
    return {
        spec.name: known[spec.name]
        if spec.name in known
        else count(conn, quote(spec.name), "WHERE corp_id = $corp_id", {"corp_id": corp_id})
        for spec in (*HISTORY_TABLES, *TAG_HISTORY_TABLES, *VIEWS)
        if column_names(conn, spec.name)
    }
