"""Org history in DuckDB: type-2 history tables, change events and department paths.

Each sync replaces the current tables; :func:`apply_snapshot` then folds that snapshot into
history tables that keep every version of every row with the interval it was current:

- a row whose business columns are unchanged (same ``row_hash``) is left untouched;
- a row that changed or disappeared gets ``valid_to`` = the snapshot time;
- a new or changed row is inserted with ``valid_from`` = the snapshot time, ``valid_to`` NULL.

So "the org as of X" is ``WHERE valid_from <= X AND (valid_to IS NULL OR valid_to > X)``.
Everything happens set-based inside one transaction, checked before ``COMMIT``: a failure leaves
the history exactly as it was, and applying the same snapshot again changes nothing.
No Dagster import: the asset in ``history_assets`` is thin wiring around this module.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from wecom_assets.warehouse.quality import MAX_REPORTED_IDS, CheckOutcome
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS, Column, TableSpec

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_BIGINT = pa.int64()
_TEXT = pa.string()

VALID_FROM = Column(
    "valid_from",
    "TIMESTAMPTZ",
    _TIMESTAMP,
    "Snapshot time from which this version holds (`snapshot_at` of the sync that first saw it).",
)
VALID_TO = Column(
    "valid_to",
    "TIMESTAMPTZ",
    _TIMESTAMP,
    "Snapshot time of the first sync that saw the row changed or gone; NULL while current.",
)
ROW_HASH = Column(
    "row_hash",
    "VARCHAR",
    _TEXT,
    "md5 of the business columns as JSON; a new version starts exactly when it changes.",
)

DEPARTMENT_PATHS = TableSpec(
    name="wecom_department_paths",
    description=(
        "One row per department of `wecom_departments` with its place in the tree. Roots are "
        "departments whose parent is not visible: the top department (parent 0) for a whole-org "
        "range, the visible sub-tree roots for a partial range."
    ),
    primary_key=("id",),
    columns=(
        Column("id", "BIGINT", _BIGINT, "Department id."),
        Column("name", "VARCHAR", _TEXT, "Department name."),
        Column("parent_id", "BIGINT", _BIGINT, "Parent id as WeCom gives it (0 for the top)."),
        Column("depth", "INTEGER", pa.int32(), "Levels from the visible root, which has depth 1."),
        Column("id_path", "BIGINT[]", pa.list_(_BIGINT), "Ids from the visible root to this one."),
        Column(
            "path_names",
            "VARCHAR[]",
            pa.list_(_TEXT),
            "Names parallel to `id_path`; use it when a name itself contains '/'.",
        ),
        Column(
            "name_path",
            "VARCHAR",
            _TEXT,
            "Names from the visible root joined with '/', e.g. 示例集团/研发中心/后端部.",
        ),
    ),
)


def _history_of(source: TableSpec, name: str, one_row: str) -> TableSpec:
    business = tuple(column for column in source.columns if column.name != "synced_at")
    return TableSpec(
        name=name,
        description=(
            f"{one_row} Current versions have `valid_to` NULL; the org as of X is "
            "`WHERE valid_from <= X AND (valid_to IS NULL OR valid_to > X)`."
        ),
        primary_key=(*source.primary_key, "valid_from"),
        columns=(*business, VALID_FROM, VALID_TO, ROW_HASH),
    )


DEPARTMENTS_HISTORY = _history_of(
    DEPARTMENTS,
    "wecom_departments_history",
    "One row per version of a department: its `wecom_departments` columns while they held.",
)
USERS_HISTORY = _history_of(
    USERS,
    "wecom_users_history",
    "One row per version of a member: their `wecom_users` columns while they held.",
)
MEMBERSHIP_HISTORY = _history_of(
    MEMBERSHIP,
    "dept_membership_history",
    "One row per version of a (member, department) pair of `dept_membership`.",
)
DEPARTMENT_PATHS_HISTORY = _history_of(
    DEPARTMENT_PATHS,
    "wecom_department_paths_history",
    "One row per version of a department's path; a rename or move of an ancestor starts a new "
    "version for every department below it.",
)

RUNS = TableSpec(
    name="wecom_history_runs",
    description=(
        "One row per snapshot folded into the history, also when nothing changed: the times at "
        "which the org was observed. Applying the same snapshot twice adds no row."
    ),
    primary_key=("snapshot_at",),
    columns=(
        Column(
            "snapshot_at",
            "TIMESTAMPTZ",
            _TIMESTAMP,
            "The snapshot's time: the latest `synced_at` of wecom_departments and wecom_users.",
        ),
        Column("applied_at", "TIMESTAMPTZ", _TIMESTAMP, "When the history was updated."),
        Column("run_id", "VARCHAR", _TEXT, "Dagster run that applied it; NULL outside Dagster."),
        Column("departments", "BIGINT", _BIGINT, "Rows of wecom_departments in the snapshot."),
        Column("users", "BIGINT", _BIGINT, "Rows of wecom_users in the snapshot."),
        Column("memberships", "BIGINT", _BIGINT, "Rows of dept_membership in the snapshot."),
        Column("versions_opened", "BIGINT", _BIGINT, "New versions over all history tables."),
        Column("versions_closed", "BIGINT", _BIGINT, "Versions closed over all history tables."),
        Column(
            "changes",
            "JSON",
            _TEXT,
            'Per history table: {"table": {"opened": n, "closed": m}}.',
        ),
    ),
)

ORG_CHANGES = TableSpec(
    name="wecom_org_changes",
    description=(
        "One row per change event seen between two consecutive syncs, derived from the history "
        "tables. Users: joined, left, status_changed, moved, renamed, leader_changed. "
        "Departments: added, removed, moved, renamed, leader_changed. Rows present in the first "
        "snapshot of the history produce no joined/added event."
    ),
    primary_key=("changed_at", "entity", "entity_id", "event"),
    columns=(
        Column(
            "changed_at",
            "TIMESTAMPTZ",
            _TIMESTAMP,
            "Snapshot time of the first sync that saw the change (`valid_from` of the new version, "
            "`valid_to` of the last one for left/removed).",
        ),
        Column("entity", "VARCHAR", _TEXT, "'user' or 'department'."),
        Column(
            "event",
            "VARCHAR",
            _TEXT,
            "joined/added: appeared (again) in the app's view; left/removed: no longer in it; "
            "status_changed: `status` differs; moved: user's main department or set of "
            "departments differs, department's parent differs; renamed: `name` differs; "
            "leader_changed: departments a user leads, or a department's leaders, differ.",
        ),
        Column("entity_id", "VARCHAR", _TEXT, "Userid, or the department id as text."),
        Column("name", "VARCHAR", _TEXT, "Name after the change (the last name for left/removed)."),
        Column(
            "old_value",
            "VARCHAR",
            _TEXT,
            "Value before: status, name, sorted department ids, led department ids, sorted "
            "leaders, or parent id; NULL for joined/added/left/removed.",
        ),
        Column("new_value", "VARCHAR", _TEXT, "Value after, in the same form as `old_value`."),
        Column(
            "old_department_id",
            "BIGINT",
            _BIGINT,
            "Users: main department before the change; departments: parent before.",
        ),
        Column(
            "new_department_id",
            "BIGINT",
            _BIGINT,
            "Users: main department after the change; departments: parent after.",
        ),
        Column(
            "old_department_path",
            "VARCHAR",
            _TEXT,
            "`name_path` of `old_department_id` as it was just before the change.",
        ),
        Column(
            "new_department_path",
            "VARCHAR",
            _TEXT,
            "`name_path` of `new_department_id` as it was at the change.",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A current relation and the history table that keeps its versions."""

    source: TableSpec
    history: TableSpec

    @property
    def key(self) -> tuple[str, ...]:
        """Columns identifying one row of the source."""
        return self.source.primary_key

    @property
    def business_columns(self) -> tuple[str, ...]:
        """Columns whose values make up a version (all but the history's own columns)."""
        return tuple(c.name for c in self.history.columns[:-3])


TRACKED: tuple[Tracked, ...] = (
    Tracked(DEPARTMENTS, DEPARTMENTS_HISTORY),
    Tracked(USERS, USERS_HISTORY),
    Tracked(MEMBERSHIP, MEMBERSHIP_HISTORY),
    Tracked(DEPARTMENT_PATHS, DEPARTMENT_PATHS_HISTORY),
)
HISTORY_TABLES: tuple[TableSpec, ...] = (*(t.history for t in TRACKED), RUNS)
VIEWS: tuple[TableSpec, ...] = (DEPARTMENT_PATHS, ORG_CHANGES)
HISTORY_CHECK = "history_is_consistent"

DEPARTMENT_PATHS_SQL = """
CREATE OR REPLACE VIEW wecom_department_paths AS
WITH RECURSIVE tree(id, name, parent_id, depth, id_path, path_names, name_path) AS (
    SELECT d.id, d.name, d.parent_id, 1, [d.id], [d.name], coalesce(d.name, '')
    FROM wecom_departments AS d
    WHERE NOT EXISTS (SELECT 1 FROM wecom_departments AS p WHERE p.id = d.parent_id)
    UNION ALL
    SELECT
        c.id,
        c.name,
        c.parent_id,
        t.depth + 1,
        list_append(t.id_path, c.id),
        list_append(t.path_names, c.name),
        t.name_path || '/' || coalesce(c.name, '')
    FROM tree AS t
    JOIN wecom_departments AS c ON c.parent_id = t.id
)
SELECT id, name, parent_id, depth::INTEGER AS depth, id_path, path_names, name_path FROM tree
"""

# Consecutive versions of one key are contiguous (previous valid_to = this valid_from); a gap
# means the row was gone for a while. Events compare each version with the one just before it.
ORG_CHANGES_SQL = """
CREATE OR REPLACE VIEW wecom_org_changes AS
WITH
history_start AS (SELECT min(snapshot_at) AS first_snapshot FROM wecom_history_runs),
user_versions AS (
    SELECT
        *,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from,
        lag(name) OVER w AS prev_name,
        lag(status) OVER w AS prev_status,
        lag(main_department) OVER w AS prev_main,
        lag(dept_ids) OVER w AS prev_dept_ids,
        lag(led_ids) OVER w AS prev_led_ids
    FROM (
        SELECT
            userid, name, status, main_department, valid_from, valid_to,
            list_sort(coalesce(departments, [])) AS dept_ids,
            list_sort(list_filter(
                coalesce(departments, []),
                lambda d, i: coalesce(is_leader_in_dept[i], false)
            )) AS led_ids
        FROM wecom_users_history
    )
    WINDOW w AS (PARTITION BY userid ORDER BY valid_from)
),
user_events AS (
    SELECT valid_from AS changed_at, 'joined' AS event, userid, name,
           NULL::VARCHAR AS old_value, NULL::VARCHAR AS new_value,
           NULL::BIGINT AS old_department_id, main_department AS new_department_id
    FROM user_versions, history_start
    WHERE (prev_valid_to IS NULL OR prev_valid_to < valid_from) AND valid_from > first_snapshot
    UNION ALL
    SELECT valid_to, 'left', userid, name, NULL, NULL, main_department, NULL
    FROM user_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
    UNION ALL
    SELECT valid_from, 'status_changed', userid, name, prev_status::VARCHAR, status::VARCHAR,
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND status IS DISTINCT FROM prev_status
    UNION ALL
    SELECT valid_from, 'moved', userid, name, prev_dept_ids::VARCHAR, dept_ids::VARCHAR,
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from
      AND (main_department IS DISTINCT FROM prev_main OR dept_ids IS DISTINCT FROM prev_dept_ids)
    UNION ALL
    SELECT valid_from, 'renamed', userid, name, prev_name, name, prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND name IS DISTINCT FROM prev_name
    UNION ALL
    SELECT valid_from, 'leader_changed', userid, name, prev_led_ids::VARCHAR, led_ids::VARCHAR,
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND led_ids IS DISTINCT FROM prev_led_ids
),
department_versions AS (
    SELECT
        *,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from,
        lag(name) OVER w AS prev_name,
        lag(parent_id) OVER w AS prev_parent,
        lag(leader_ids) OVER w AS prev_leader_ids
    FROM (
        SELECT id, name, parent_id, valid_from, valid_to,
               list_sort(coalesce(leaders, [])) AS leader_ids
        FROM wecom_departments_history
    )
    WINDOW w AS (PARTITION BY id ORDER BY valid_from)
),
department_events AS (
    SELECT valid_from AS changed_at, 'added' AS event, id, name,
           NULL::VARCHAR AS old_value, NULL::VARCHAR AS new_value,
           NULL::BIGINT AS old_department_id, parent_id AS new_department_id
    FROM department_versions, history_start
    WHERE (prev_valid_to IS NULL OR prev_valid_to < valid_from) AND valid_from > first_snapshot
    UNION ALL
    SELECT valid_to, 'removed', id, name, NULL, NULL, parent_id, NULL
    FROM department_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
    UNION ALL
    SELECT valid_from, 'moved', id, name, prev_parent::VARCHAR, parent_id::VARCHAR,
           prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND parent_id IS DISTINCT FROM prev_parent
    UNION ALL
    SELECT valid_from, 'renamed', id, name, prev_name, name, prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND name IS DISTINCT FROM prev_name
    UNION ALL
    SELECT valid_from, 'leader_changed', id, name, prev_leader_ids::VARCHAR,
           leader_ids::VARCHAR, prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND leader_ids IS DISTINCT FROM prev_leader_ids
),
events AS (
    SELECT changed_at, 'user' AS entity, event, userid AS entity_id, name, old_value,
           new_value, old_department_id, new_department_id
    FROM user_events
    UNION ALL
    SELECT changed_at, 'department', event, id::VARCHAR, name, old_value, new_value,
           old_department_id, new_department_id
    FROM department_events
)
SELECT
    e.changed_at::TIMESTAMPTZ AS changed_at,
    e.entity,
    e.event,
    e.entity_id,
    e.name,
    e.old_value,
    e.new_value,
    e.old_department_id,
    e.new_department_id,
    CASE WHEN old_path.valid_to IS NULL OR old_path.valid_to >= e.changed_at
         THEN old_path.name_path END AS old_department_path,
    CASE WHEN new_path.valid_to IS NULL OR new_path.valid_to > e.changed_at
         THEN new_path.name_path END AS new_department_path
FROM events AS e
ASOF LEFT JOIN wecom_department_paths_history AS old_path
    ON old_path.id = e.old_department_id AND e.changed_at > old_path.valid_from
ASOF LEFT JOIN wecom_department_paths_history AS new_path
    ON new_path.id = e.new_department_id AND e.changed_at >= new_path.valid_from
"""


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


def _quote(name: str) -> str:
    return f'"{name}"'


def row_hash_sql(columns: tuple[str, ...], alias: str) -> str:
    """SQL of ``row_hash``: md5 of the named columns of ``alias`` as one JSON object."""
    fields = ", ".join(f"'{name}': {alias}.{_quote(name)}" for name in columns)
    return f"md5(to_json({{{fields}}}))"


def _key_text_sql(key: tuple[str, ...], alias: str) -> str:
    return " || '@' || ".join(f"{alias}.{_quote(name)}::VARCHAR" for name in key)


def _key_match(key: tuple[str, ...], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{_quote(n)} = {right}.{_quote(n)}" for n in key)


def _scalar(
    conn: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> object:
    row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def _count(conn: duckdb.DuckDBPyConnection, relation: str, where: str = "") -> int:
    row = conn.execute(f"SELECT count(*) FROM {relation} {where}").fetchone()
    return int(row[0]) if row else 0


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return [str(row[0]) for row in rows]


def _require_current_tables(conn: duckdb.DuckDBPyConnection) -> None:
    existing = {
        str(row[0])
        for row in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary"
        ).fetchall()
    }
    missing = [s.name for s in (DEPARTMENTS, USERS, MEMBERSHIP) if s.name not in existing]
    if missing:
        raise HistoryError(
            f"Cannot update the history: {', '.join(missing)} not loaded yet; materialize the "
            "three WeCom tables first."
        )


def _ensure_table(conn: duckdb.DuckDBPyConnection, tracked: Tracked) -> None:
    """Create the history table, or add the columns its current table gained since.

    The stored ``row_hash`` of current versions is then brought in line with the column list
    and DuckDB's JSON rendering; normally this touches no row. Without it a new column (NULL in
    old versions) or a changed rendering after an upgrade would turn every row into a version.
    """
    spec = tracked.history
    existing = _columns(conn, spec.name)
    if not existing:
        conn.execute(spec.create_sql(spec.name))
        return
    for column in spec.columns:
        if column.name not in existing:
            conn.execute(
                f"ALTER TABLE {_quote(spec.name)} "
                f"ADD COLUMN {_quote(column.name)} {column.sql_type}"
            )
    fresh = row_hash_sql(tracked.business_columns, "h")
    conn.execute(
        f"UPDATE {_quote(spec.name)} AS h SET row_hash = {fresh} "
        f"WHERE h.valid_to IS NULL AND h.row_hash IS DISTINCT FROM {fresh}"
    )


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables and (re)create the views; safe to run again."""
    conn.execute(DEPARTMENT_PATHS_SQL)
    for tracked in TRACKED:
        _ensure_table(conn, tracked)
    if not _columns(conn, RUNS.name):
        conn.execute(RUNS.create_sql(RUNS.name))
    conn.execute(ORG_CHANGES_SQL)


def snapshot_time(conn: duckdb.DuckDBPyConnection) -> datetime:
    """The loaded snapshot's time: the latest ``synced_at`` of departments and users.

    Falls back to now for empty tables. Using the fetch time rather than the time the history
    is written keeps ``valid_from`` honest when the history step runs late or is retried.
    """
    value = _scalar(
        conn,
        "SELECT greatest((SELECT max(synced_at) FROM wecom_departments), "
        "(SELECT max(synced_at) FROM wecom_users))",
    )
    if value is None:
        return datetime.now(UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _last_snapshot(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    value = _scalar(conn, f"SELECT max(snapshot_at) FROM {RUNS.name}")
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _temp(tracked: Tracked, what: str) -> str:
    return _quote(f"__history_{what}_{tracked.history.name}")


def _diff(conn: duckdb.DuckDBPyConnection, tracked: Tracked) -> tuple[int, int]:
    """Stage the versions to close and to open; returns (opened, closed) counts."""
    columns = ", ".join(_quote(c) for c in tracked.business_columns)
    key = ", ".join(f"o.{_quote(k)}" for k in tracked.key)
    incoming, opening, closing = (_temp(tracked, w) for w in ("incoming", "opening", "closing"))
    history = _quote(tracked.history.name)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {incoming} AS "
        f"SELECT {columns}, {row_hash_sql(tracked.business_columns, 's')} AS row_hash "
        f"FROM {_quote(tracked.source.name)} AS s"
    )
    current = f"(SELECT * FROM {history} WHERE valid_to IS NULL)"
    match = f"{_key_match(tracked.key, 'i', 'o')} AND i.row_hash = o.row_hash"
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {opening} AS "
        f"SELECT i.* FROM {incoming} AS i ANTI JOIN {current} AS o ON {match}"
    )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {closing} AS "
        f"SELECT {key} FROM {current} AS o ANTI JOIN {incoming} AS i ON {match}"
    )
    return _count(conn, opening), _count(conn, closing)


def _write(conn: duckdb.DuckDBPyConnection, tracked: Tracked, at: datetime) -> None:
    history = _quote(tracked.history.name)
    columns = ", ".join(_quote(c) for c in tracked.business_columns)
    conn.execute(
        f"UPDATE {history} AS h SET valid_to = $at FROM {_temp(tracked, 'closing')} AS o "
        f"WHERE {_key_match(tracked.key, 'h', 'o')} AND h.valid_to IS NULL",
        {"at": at},
    )
    conn.execute(
        f"INSERT INTO {history} ({columns}, valid_from, valid_to, row_hash) "
        f"SELECT {columns}, $at, NULL, row_hash FROM {_temp(tracked, 'opening')}",
        {"at": at},
    )


def _drop_temps(conn: duckdb.DuckDBPyConnection) -> None:
    for tracked in TRACKED:
        for what in ("incoming", "opening", "closing"):
            conn.execute(f"DROP TABLE IF EXISTS {_temp(tracked, what)}")


def check_tracked(
    conn: duckdb.DuckDBPyConnection, tracked: Tracked, current: str | None = None
) -> CheckOutcome:
    """Versions of each key never overlap and the current versions equal the current table.

    Offending keys are listed (as ``userid@department`` for the membership): keys with two
    current versions, an empty or overlapping interval, or a current version that differs from
    (or is missing for, or has no row in) the current table.

    Args:
        conn: An open connection.
        tracked: The history table to check.
        current: A relation holding the current rows' keys and ``row_hash``; by default they
            are computed from the current table.
    """
    history = _quote(tracked.history.name)
    key = ", ".join(_quote(k) for k in tracked.key)
    match = _key_match(tracked.key, "c", "h")
    if current is None:
        current = (
            f"(SELECT {key}, {row_hash_sql(tracked.business_columns, 's')} AS row_hash "
            f"FROM {_quote(tracked.source.name)} AS s)"
        )
    offending = [
        row[0]
        for row in conn.execute(
            f"""
            WITH versions AS (
                SELECT {key}, valid_from, valid_to,
                       lead(valid_from) OVER (PARTITION BY {key} ORDER BY valid_from) AS next_from
                FROM {history}
            ),
            current_rows AS (SELECT {key}, row_hash FROM {current}),
            current_versions AS (SELECT {key}, row_hash FROM {history} WHERE valid_to IS NULL)
            SELECT DISTINCT key_text FROM (
                SELECT {_key_text_sql(tracked.key, "v")} AS key_text FROM versions AS v
                WHERE (v.valid_to IS NULL AND v.next_from IS NOT NULL)
                   OR v.valid_to <= v.valid_from
                   OR v.next_from < v.valid_to
                UNION ALL
                SELECT coalesce({_key_text_sql(tracked.key, "c")}, {_key_text_sql(tracked.key, "h")})
                FROM current_rows AS c FULL JOIN current_versions AS h ON {match}
                WHERE c.row_hash IS DISTINCT FROM h.row_hash
            )
            ORDER BY key_text
            """
        ).fetchall()
    ]
    ids = tuple(str(value) for value in offending)
    return CheckOutcome(
        name=HISTORY_CHECK,
        passed=not ids,
        blocking=True,
        description=(
            f"Versions never overlap and the current versions equal {tracked.source.name}."
            if not ids
            else f"{len(ids)} keys have overlapping versions or current versions that differ "
            f"from {tracked.source.name}."
        ),
        offending_ids=ids[:MAX_REPORTED_IDS],
        offending_count=len(ids),
        details={"table": tracked.history.name},
    )


def _log_run(
    conn: duckdb.DuckDBPyConnection,
    at: datetime,
    run_id: str | None,
    tables: list[TableChanges],
) -> None:
    changes = {t.table: {"opened": t.opened, "closed": t.closed} for t in tables}
    conn.execute(
        f"""
        INSERT INTO {RUNS.name}
        SELECT $at, $applied_at, $run_id,
               (SELECT count(*) FROM wecom_departments),
               (SELECT count(*) FROM wecom_users),
               (SELECT count(*) FROM dept_membership),
               $opened, $closed, $changes::JSON
        """,
        {
            "at": at,
            "applied_at": datetime.now(UTC),
            "run_id": run_id,
            "opened": sum(t.opened for t in tables),
            "closed": sum(t.closed for t in tables),
            "changes": json.dumps(changes, sort_keys=True),
        },
    )


def apply_snapshot(
    conn: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None = None,
    snapshot_at: datetime | None = None,
) -> HistoryResult:
    """Fold the loaded current tables into the history, atomically.

    Args:
        conn: An open read-write connection to the warehouse holding the three current tables.
        run_id: Recorded in ``wecom_history_runs`` (the Dagster run id).
        snapshot_at: Time of the snapshot; defaults to :func:`snapshot_time`.

    Returns:
        Versions opened and closed per history table, and the consistency check outcomes.
        ``applied`` is False when this snapshot was already applied (nothing changed then).

    Raises:
        HistoryError: The current tables are missing, or the snapshot is not newer than the last
            one applied yet differs from the history (tables restored from an old backup?).
        HistoryRejectedError: The updated history would fail its consistency checks.
    """
    started = time.monotonic()
    _require_current_tables(conn)
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_schema(conn)
        at = (snapshot_at or snapshot_time(conn)).astimezone(UTC)
        last = _last_snapshot(conn)
        diffs = [_diff(conn, tracked) for tracked in TRACKED]
        changed = any(opened or closed for opened, closed in diffs)
        applied = last is None or at > last
        if not applied and changed:
            raise HistoryError(
                f"The loaded snapshot ({at.isoformat()}) is not newer than the last one in the "
                f"history ({last.isoformat() if last else '-'}) but differs from it; the history "
                "only moves forward. Sync the tables again to get a fresh snapshot."
            )
        if applied:
            for tracked in TRACKED:
                _write(conn, tracked, at)
        tables = [
            TableChanges(
                table=tracked.history.name,
                opened=opened if applied else 0,
                closed=closed if applied else 0,
                current_rows=_count(conn, _quote(tracked.history.name), "WHERE valid_to IS NULL"),
                total_rows=_count(conn, _quote(tracked.history.name)),
            )
            for tracked, (opened, closed) in zip(TRACKED, diffs, strict=True)
        ]
        if applied:
            _log_run(conn, at, run_id, tables)
        outcomes = tuple(
            check_tracked(conn, tracked, _temp(tracked, "incoming")) for tracked in TRACKED
        )
        if not all(o.passed for o in outcomes):
            raise HistoryRejectedError(outcomes)
        _drop_temps(conn)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return HistoryResult(
        snapshot_at=at,
        applied=applied,
        tables=tuple(tables),
        outcomes=outcomes,
        seconds=time.monotonic() - started,
    )


def row_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every history table and view, by name."""
    return {spec.name: _count(conn, _quote(spec.name)) for spec in (*HISTORY_TABLES, *VIEWS)}


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back, tolerating a connection the failure already closed (its work is discarded)."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.Error:
        pass
