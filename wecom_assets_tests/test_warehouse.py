"""Atomic replacement of a corp's rows, in DuckDB and PostgreSQL: a failed write never touches them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wecom_assets.warehouse import publish, snapshots
from wecom_assets.warehouse.connection import (
    WarehouseConnection,
    WarehouseDamagedError,
    WarehouseError,
    WarehouseLockedError,
    column_names,
    connect,
    count,
    table_exists,
)
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.tables import DEPARTMENTS, USERS
from wecom_assets.wecom.models import Department, User

SYNCED_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CORP = "ww_test"


def _departments(*ids: int) -> list[Department]:
    return [
        Department.from_api(
            {"id": i, "name": f"部门{i}", "parentid": 0 if i == 1 else 1, "order": i}
        )
        for i in ids
    ]


def _user(userid: str, departments: list[int], main: int | None = None) -> User:
    return User.from_api(
        {
            "userid": userid,
            "name": f'王"{userid}"😀',
            "department": departments,
            "order": [10 * d for d in departments],
            "is_leader_in_dept": [1 if d == departments[0] else 0 for d in departments],
            "main_department": main if main is not None else departments[0],
            "status": 1,
        }
    )


def _load_departments(conn: WarehouseConnection, *ids: int) -> publish.ReplaceResult:
    table = snapshots.departments_table(_departments(*ids), CORP, SYNCED_AT)
    return publish.replace_table(conn, DEPARTMENTS, table, corp_id=CORP)


@pytest.fixture(params=["duckdb", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseConnection]:
    """A DuckDB file, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_conn")
        return
    connection = connect(tmp_path / "wecom.duckdb", lock_timeout=0)
    yield connection
    connection.close()


def _primary_key(conn: WarehouseConnection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT k.column_name FROM information_schema.table_constraints AS c "
        "JOIN information_schema.key_column_usage AS k "
        "ON k.constraint_name = c.constraint_name AND k.table_name = c.table_name "
        "AND k.table_schema = c.table_schema "
        "WHERE c.table_name = ? AND c.table_schema = current_schema() "
        "AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position",
        [table],
    ).fetchall()
    return [str(row[0]) for row in rows]


def test_replace_creates_the_table_with_the_declared_schema(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, 1, 2, 3)
    assert column_names(conn, "wecom_departments") == list(DEPARTMENTS.column_names)
    assert _primary_key(conn, "wecom_departments") == ["corp_id", "id"]


def test_column_names_lists_a_tables_or_views_columns_in_order_without_dropped_ones(
    conn: WarehouseConnection,
) -> None:
    conn.execute("CREATE TABLE listed (a INTEGER, b VARCHAR, c BIGINT[], d JSON)")
    conn.execute("ALTER TABLE listed DROP COLUMN b")
    conn.execute("CREATE VIEW listed_view AS SELECT d, a FROM listed")
    conn.execute("CREATE TEMP TABLE only_temp (x INTEGER)")
    assert column_names(conn, "listed") == ["a", "c", "d"]
    assert column_names(conn, "listed_view") == ["d", "a"]
    assert column_names(conn, "only_temp") == []
    assert column_names(conn, "missing") == []


def test_a_corps_replacement_leaves_other_corps_rows_alone(
    conn: WarehouseConnection,
) -> None:
    other = snapshots.departments_table(_departments(1, 2, 3, 4), "ww_other", SYNCED_AT)
    publish.replace_table(conn, DEPARTMENTS, other, corp_id="ww_other")
    _load_departments(conn, 1, 2)
    result = _load_departments(conn, 1, 5)
    assert (result.row_count, result.previous_row_count) == (2, 2)
    rows = conn.execute("SELECT corp_id, id FROM wecom_departments ORDER BY corp_id, id").fetchall()
    assert rows == [*(("ww_other", i) for i in (1, 2, 3, 4)), (CORP, 1), (CORP, 5)]


def test_the_shrink_guard_counts_only_the_corps_own_rows(
    conn: WarehouseConnection,
) -> None:
    other = snapshots.departments_table(_departments(*range(1, 21)), "ww_other", SYNCED_AT)
    publish.replace_table(conn, DEPARTMENTS, other, corp_id="ww_other")
    _load_departments(conn, 1, 2, 3, 4)
    with pytest.raises(publish.ShrinkGuardError, match=r"from 4 to 1 rows"):
        _load_departments(conn, 1)


def test_a_table_from_before_corp_ids_is_rebuilt_with_its_rows_given_to_the_corp(
    conn: WarehouseConnection,
) -> None:
    old_columns = [c for c in DEPARTMENTS.columns if c.name != "corp_id"]
    conn.execute(
        "CREATE TABLE wecom_departments ("
        + ", ".join(f"{c.name} {c.sql_type}" for c in old_columns)
        + ", PRIMARY KEY (id))"
    )
    conn.execute("INSERT INTO wecom_departments (id, name, parent_id) VALUES (1, '总部', 0)")
    publish.conform_table(conn, DEPARTMENTS, CORP)
    assert conn.execute("SELECT corp_id, id, name FROM wecom_departments").fetchall() == [
        (CORP, 1, "总部")
    ]
    assert _primary_key(conn, "wecom_departments") == ["corp_id", "id"]


def test_replace_swaps_in_the_new_snapshot_and_reports_counts(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, 1, 2, 3)
    result = _load_departments(conn, 1, 2, 4)
    assert (result.row_count, result.previous_row_count) == (3, 3)
    assert conn.execute("SELECT id FROM wecom_departments ORDER BY id").fetchall() == [
        (1,),
        (2,),
        (4,),
    ]


def test_text_is_stored_exactly_as_received(conn: WarehouseConnection) -> None:
    users = [_user("ZhangSan", [1]), _user("a" * 64, [1])]
    publish.replace_table(conn, USERS, snapshots.users_table(users, CORP, SYNCED_AT), corp_id=CORP)
    names = conn.execute("SELECT userid, name FROM wecom_users ORDER BY userid").fetchall()
    assert names == [("ZhangSan", '王"ZhangSan"😀'), ("a" * 64, f'王"{"a" * 64}"😀')]


def test_an_error_during_the_write_keeps_the_previous_table(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, 1, 2, 3)

    def exploding_rule(connection: WarehouseConnection, relation: str) -> CheckOutcome:
        raise RuntimeError("disk full")

    table = snapshots.departments_table(_departments(1, 9), CORP, SYNCED_AT)
    with pytest.raises(RuntimeError, match="disk full"):
        publish.replace_table(
            conn, replace(DEPARTMENTS, rules=(exploding_rule,)), table, corp_id=CORP
        )
    assert conn.execute("SELECT id FROM wecom_departments ORDER BY id").fetchall() == [
        (1,),
        (2,),
        (3,),
    ]
    assert not table_exists(conn, "wecom_departments__staging")


def test_a_failed_blocking_rule_rejects_the_snapshot(conn: WarehouseConnection) -> None:
    _load_departments(conn, 1, 2)
    duplicated = snapshots.departments_table(_departments(1, 2, 2), CORP, SYNCED_AT)
    with pytest.raises(publish.SnapshotRejectedError, match="unique_department_ids") as info:
        publish.replace_table(conn, DEPARTMENTS, duplicated, corp_id=CORP)
    failed = [o for o in info.value.outcomes if not o.passed]
    assert [(o.name, o.offending_ids) for o in failed] == [("unique_department_ids", ("2",))]
    assert count(conn, "wecom_departments") == 2


def test_shrink_guard_keeps_the_table_when_rows_drop_past_the_fraction(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, *range(1, 11))
    table = snapshots.departments_table(_departments(1, 2, 3, 4), CORP, SYNCED_AT)
    with pytest.raises(publish.ShrinkGuardError, match=r"10 to 4 rows \(60%\).*max_shrink"):
        publish.replace_table(conn, DEPARTMENTS, table, corp_id=CORP, max_shrink_fraction=0.5)
    assert count(conn, "wecom_departments") == 10


def test_shrink_guard_allows_an_intended_drop_when_raised_to_one(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, *range(1, 11))
    table = snapshots.departments_table(_departments(1, 2), CORP, SYNCED_AT)
    publish.replace_table(conn, DEPARTMENTS, table, corp_id=CORP, max_shrink_fraction=1.0)
    assert count(conn, "wecom_departments") == 2


def test_membership_has_one_row_per_user_and_listed_department(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, 1, 2, 3)
    users = [_user("ZhangSan", [2, 3], main=3), _user("lisi", [2], main=7)]
    publish.replace_table(conn, USERS, snapshots.users_table(users, CORP, SYNCED_AT), corp_id=CORP)
    publish.replace_membership(conn, CORP)
    rows = conn.execute(
        "SELECT userid, department_id, sort_order, is_leader, is_main FROM dept_membership"
    ).fetchall()
    assert rows == [
        ("ZhangSan", 2, 20, True, False),
        ("ZhangSan", 3, 30, False, True),
        ("lisi", 2, 20, True, False),
    ]


def test_membership_is_not_main_anywhere_when_the_main_department_is_not_visible(
    conn: WarehouseConnection,
) -> None:
    _load_departments(conn, 1, 2, 3)
    outside = User.from_api({"userid": "wangwu", "department": [2, 3], "order": [1, 2]})
    publish.replace_table(
        conn, USERS, snapshots.users_table([outside], CORP, SYNCED_AT), corp_id=CORP
    )
    publish.replace_membership(conn, CORP)
    rows = conn.execute(
        "SELECT department_id, is_main FROM dept_membership ORDER BY department_id"
    ).fetchall()
    assert rows == [(2, False), (3, False)]


def test_membership_without_users_table_says_what_to_materialize(
    conn: WarehouseConnection,
) -> None:
    with pytest.raises(WarehouseError, match="materialize wecom_users first"):
        publish.replace_membership(conn, CORP)


def _hold_lock(path: Path, *, read_only: bool, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import duckdb, sys, time
        conn = duckdb.connect({str(path)!r}, read_only={read_only})
        print("locked", flush=True)
        time.sleep({seconds})
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_reader_holding_the_file_makes_the_writer_fail_naming_the_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wecom.duckdb"
    connect(path, lock_timeout=0).close()
    holder = _hold_lock(path, read_only=True, seconds=30)
    try:
        with pytest.raises(WarehouseLockedError, match=rf"PID {holder.pid}"):
            connect(path, lock_timeout=0)
    finally:
        holder.kill()
        holder.wait()


def test_the_writer_waits_the_whole_lock_timeout_before_giving_up(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    connect(path, lock_timeout=0).close()
    holder = _hold_lock(path, read_only=True, seconds=30)
    clock = FakeClock()
    try:
        with pytest.raises(WarehouseLockedError, match="stayed locked for 2s"):
            connect(path, lock_timeout=2.0, clock=clock, sleep=clock.sleep)
    finally:
        holder.kill()
        holder.wait()
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert len(clock.sleeps) > 1, "it tried again in between, not once at the end"


def test_the_writer_gets_the_file_once_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    connect(path, lock_timeout=0).close()
    holder = _hold_lock(path, read_only=True, seconds=30)
    clock = FakeClock()

    def release_while_waiting(seconds: float) -> None:
        clock.sleep(seconds)
        holder.kill()
        holder.wait()

    try:
        connect(path, lock_timeout=20, clock=clock, sleep=release_while_waiting).close()
    finally:
        holder.kill()
        holder.wait()
    assert clock.sleeps, "the file was locked when the writer first tried"
    assert sum(clock.sleeps) < 20


def test_a_process_killed_mid_write_leaves_the_previous_table(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with connect(path, lock_timeout=0) as conn:
        _load_departments(conn, 1, 2, 3)
    code = textwrap.dedent(
        f"""
        import time
        from datetime import UTC, datetime
        from dataclasses import replace
        from wecom_assets.warehouse import connection, publish, snapshots
        from wecom_assets.warehouse.tables import DEPARTMENTS
        from wecom_assets.wecom.models import Department

        def stall(conn, relation):
            print("writing", flush=True)
            time.sleep(60)

        conn = connection.connect({str(path)!r}, lock_timeout=0)
        table = snapshots.departments_table(
            [Department.from_api({{"id": 99, "parentid": 0}})], "ww_test", datetime.now(UTC)
        )
        publish.replace_table(conn, replace(DEPARTMENTS, rules=(stall,)), table, corp_id="ww_test")
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    with connect(path, lock_timeout=10) as conn:
        ids = conn.execute("SELECT id FROM wecom_departments ORDER BY id").fetchall()
    assert ids == [(1,), (2,), (3,)]


def test_a_truncated_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with connect(path, lock_timeout=0) as conn:
        _load_departments(conn, *range(1, 2000))
        conn.execute(
            "CREATE TABLE filler AS SELECT range AS i, 'x' || range AS s FROM range(300000)"
        )
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size - 4096)
    with pytest.raises(WarehouseDamagedError, match=r"truncated.*move it aside"):
        connect(path, lock_timeout=0)
    assert path.stat().st_size == size - 4096


def test_a_file_duckdb_cannot_read_is_reported_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with connect(path, lock_timeout=0) as conn:
        conn.execute(
            "CREATE TABLE filler AS SELECT range AS i, 'x' || range AS s FROM range(300000)"
        )
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(
        WarehouseDamagedError, match=r"cannot read .*Restore the file from a backup"
    ):
        connect(path, lock_timeout=0)


def test_a_sqlite_file_is_refused_without_loading_any_extension(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with sqlite3.connect(path) as sqlite:
        sqlite.execute("CREATE TABLE t (x)")
    with pytest.raises(WarehouseDamagedError, match=r"not a DuckDB database file.*SQLite"):
        connect(path, lock_timeout=0)


def test_warehouse_connections_never_download_or_load_extensions(tmp_path: Path) -> None:
    conn = connect(tmp_path / "wecom.duckdb", lock_timeout=0)
    settings = dict(
        conn.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
    )
    conn.close()
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }
