"""Type-2 history: versions, as-of reconstruction, change events, idempotence and atomicity.

Each test loads snapshots of an evolving generated org straight into the current tables (as a
sync would write them) at fixed times and folds them into the history with ``apply_snapshot``.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import psycopg
import pytest
from dagster_support import (
    DEPARTMENT_COLUMNS,
    USER_COLUMNS,
    expected_departments,
    expected_membership,
    expected_users,
)
from history_support import load_snapshot, plain_users

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.warehouse.tables import HISTORY_TABLES as HISTORY_SPECS
from wecom_assets.warehouse.tables import TRACKED, USERS, history_table

T1 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)
T3 = T2 + timedelta(days=1)
HISTORY_TABLES = [spec.name for spec in HISTORY_SPECS]
EVENT_SQL = (
    "SELECT changed_at, entity, event, entity_id, old_value, new_value FROM wecom_org_changes"
)


@pytest.fixture(scope="module")
def base_org() -> dict[str, Any]:
    return generate_org(users=120, departments=15, seed=21)


def _sync(conn: WarehouseConnection, org: OrgEditor, at: datetime) -> history.HistoryResult:
    load_snapshot(conn, org.snapshot(), at)
    return history.apply_snapshot(conn, org.data["corp_id"])


def _rows(
    conn: WarehouseConnection, sql: str, params: dict[str, Any] | None = None
) -> set[tuple[Any, ...]]:
    return {_hashable(row) for row in conn.execute(sql, params or {}).fetchall()}


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value


def _dump(conn: WarehouseConnection) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every history table, for before/after comparisons."""
    return {name: _rows(conn, f"SELECT * FROM {name}") for name in HISTORY_TABLES}


def _as_of(table: str, at: datetime) -> str:
    stamp = at.isoformat()
    return (
        f"FROM {table} WHERE valid_from <= TIMESTAMPTZ '{stamp}' "
        f"AND (valid_to IS NULL OR valid_to > TIMESTAMPTZ '{stamp}')"
    )


def _json_canonical(users: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    """User rows with their two JSON columns as canonical text.

    PostgreSQL's JSONB keeps a JSON value, not its text: keys come back in its own order.
    """
    return {
        (
            *row[:-2],
            *(None if v is None else json.dumps(json.loads(v), sort_keys=True) for v in row[-2:]),
        )
        for row in users
    }


def _users_as_of(at: datetime) -> str:
    columns = USER_COLUMNS.replace(
        "extattr, external_profile", "extattr::VARCHAR, external_profile::VARCHAR"
    )
    return f"SELECT {columns} {_as_of('wecom_users_history', at)}"


def test_first_snapshot_opens_one_version_per_row_and_no_events(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    result = _sync(conn, OrgEditor(base_org), T1)
    assert result.applied
    assert result.snapshot_at == T1
    opened = {t.table: t.opened for t in result.tables}
    assert opened["wecom_users_history"] == len(base_org["users"])
    assert opened["wecom_departments_history"] == len(base_org["departments"])
    assert opened["dept_membership_history"] == len(expected_membership(base_org))
    assert opened["wecom_department_paths_history"] == len(base_org["departments"])
    assert result.closed == 0
    assert _rows(conn, "SELECT DISTINCT valid_from, valid_to FROM wecom_users_history") == {
        (T1, None)
    }
    assert _rows(conn, EVENT_SQL) == set()


def test_applying_the_same_snapshot_again_changes_nothing(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    org.move(plain_users(org, 1)[0], org.data["departments"][3]["id"])
    _sync(conn, org, T2)
    before = _dump(conn)
    again = history.apply_snapshot(conn, base_org["corp_id"])
    assert not again.applied
    assert (again.opened, again.closed) == (0, 0)
    assert _dump(conn) == before


def test_a_new_snapshot_without_changes_adds_no_versions_but_logs_the_sync(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    before = _dump(conn)
    result = _sync(conn, org, T2)
    assert result.applied and (result.opened, result.closed) == (0, 0)
    after = _dump(conn)
    assert {k: v for k, v in after.items() if k != "wecom_history_runs"} == {
        k: v for k, v in before.items() if k != "wecom_history_runs"
    }
    assert _rows(conn, "SELECT snapshot_at, versions_opened FROM wecom_history_runs") == {
        (
            T1,
            len(base_org["users"])
            + 2 * len(base_org["departments"])
            + len(expected_membership(base_org)),
        ),
        (T2, 0),
    }


def test_only_changed_rows_get_new_versions_and_unchanged_rows_keep_their_first(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    mover, renamed = plain_users(org, 2)
    org.move(mover, org.data["departments"][3]["id"])
    org.rename_user(renamed, "新名字")
    result = _sync(conn, org, T2)
    users = {t.table: t for t in result.tables}["wecom_users_history"]
    assert (users.opened, users.closed) == (2, 2)
    assert _rows(
        conn,
        "SELECT userid, valid_from, valid_to FROM wecom_users_history WHERE valid_from = $t",
        {"t": T2},
    ) == {(mover, T2, None), (renamed, T2, None)}
    assert _rows(conn, "SELECT userid FROM wecom_users_history WHERE valid_to IS NOT NULL") == {
        (mover,),
        (renamed,),
    }
    untouched = conn.execute(
        "SELECT count(*) FROM wecom_users_history WHERE valid_from = $t AND valid_to IS NULL",
        {"t": T1},
    ).fetchone()
    assert untouched == (len(base_org["users"]) - 2,)


def test_as_of_each_snapshot_the_history_equals_that_snapshot_exactly(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    snapshots = []
    for at, change in ((T1, None), (T2, "first"), (T3, "second")):
        if change == "first":
            leaver, mover = plain_users(org, 2)
            org.leave(leaver)
            org.move(mover, org.data["departments"][5]["id"])
            org.join("new.hire", "新同事", org.data["departments"][2]["id"])
            org.rename_department(org.data["departments"][4]["id"], "改名后的部门")
        elif change == "second":
            org.set_status("new.hire", 2)
            org.reparent(org.data["departments"][6]["id"], 1)
        snapshots.append((at, org.snapshot()))
        _sync(conn, org, at)
    for at, snapshot in snapshots:
        probe = at + timedelta(hours=12)
        assert _json_canonical(_rows(conn, _users_as_of(probe))) == _json_canonical(
            expected_users(snapshot)
        )
        assert _rows(
            conn, f"SELECT {DEPARTMENT_COLUMNS} {_as_of('wecom_departments_history', probe)}"
        ) == expected_departments(snapshot)
        assert _rows(
            conn,
            "SELECT userid, department_id, sort_order, is_leader, is_main "
            f"{_as_of('dept_membership_history', probe)}",
        ) == expected_membership(snapshot)
    assert _rows(conn, f"SELECT userid {_as_of('wecom_users_history', T1 - timedelta(1))}") == set()


def test_user_events_are_exactly_the_changes_made(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    leaver, mover, renamed, disabled = plain_users(org, 4)
    source = org.user(mover)["main_department"]
    target = next(d["id"] for d in org.data["departments"] if d["id"] != source)
    org.leave(leaver)
    org.move(mover, target)
    old_name = org.user(renamed)["name"]
    org.rename_user(renamed, "改名 😀")
    org.set_status(disabled, 2)
    org.join("New.Hire", "新同事", target)
    _sync(conn, org, T2)
    assert _rows(conn, f"{EVENT_SQL} WHERE entity = 'user'") == {
        (T2, "user", "left", leaver, None, None),
        (T2, "user", "moved", mover, f"[{source}]", f"[{target}]"),
        (T2, "user", "renamed", renamed, old_name, "改名 😀"),
        (T2, "user", "status_changed", disabled, "1", "2"),
        (T2, "user", "joined", "New.Hire", None, None),
    }
    assert _rows(
        conn,
        "SELECT old_department_id, new_department_id FROM wecom_org_changes "
        f"WHERE event = 'moved' AND entity_id = '{mover}'",
    ) == {(source, target)}


def test_a_user_who_leaves_and_returns_has_two_intervals_and_both_events(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    (userid,) = plain_users(org, 1)
    returning = org.user(userid)
    org.leave(userid)
    _sync(conn, org, T2)
    org.data["users"].append(returning)
    _sync(conn, org, T3)
    assert _rows(
        conn, f"SELECT valid_from, valid_to FROM wecom_users_history WHERE userid = '{userid}'"
    ) == {(T1, T2), (T3, None)}
    assert _rows(conn, f"{EVENT_SQL} WHERE entity_id = '{userid}'") == {
        (T2, "user", "left", userid, None, None),
        (T3, "user", "joined", userid, None, None),
    }


def test_leader_changes_are_events_of_the_department_and_of_both_users(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    department = next(
        d
        for d in org.data["departments"]
        if len(d["department_leader"]) == 1 and len(org.members(d["id"])) >= 2
    )
    old_leader = department["department_leader"][0]
    new_leader = next(u for u in org.members(department["id"]) if u != old_leader)
    _sync(conn, org, T1)
    org.make_sole_leader(department["id"], new_leader)
    _sync(conn, org, T2)
    events = _rows(conn, "SELECT entity, event, entity_id FROM wecom_org_changes")
    assert events == {
        ("department", "leader_changed", str(department["id"])),
        ("user", "leader_changed", old_leader),
        ("user", "leader_changed", new_leader),
    }
    assert _rows(
        conn,
        "SELECT old_value, new_value FROM wecom_org_changes WHERE entity = 'department'",
    ) == {(f"[{old_leader}]", f"[{new_leader}]")}


def test_department_events_cover_rename_move_add_and_remove(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    leaf = next(d for d in org.data["departments"][1:] if _removable(org, d["id"]))
    renamed = dict(next(d for d in org.data["departments"][1:] if d["id"] != leaf["id"]))
    _sync(conn, org, T1)
    for userid in org.members(leaf["id"]):
        org.move(userid, 1)
    org.remove_department(leaf["id"])
    org.rename_department(renamed["id"], "新名字中心")
    org.add_department(99_001, "新部门", 1)
    _sync(conn, org, T2)
    org.reparent(99_001, renamed["id"])
    _sync(conn, org, T3)
    assert _rows(conn, f"{EVENT_SQL} WHERE entity = 'department'") == {
        (T2, "department", "removed", str(leaf["id"]), None, None),
        (T2, "department", "renamed", str(renamed["id"]), renamed["name"], "新名字中心"),
        (T2, "department", "added", "99001", None, None),
        (T3, "department", "moved", "99001", "1", str(renamed["id"])),
    }


def test_moves_carry_the_department_paths_as_they_were_at_the_change(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    org.add_department(99_001, "研发中心", 1)
    org.add_department(99_002, "产品中心", 1)
    (userid,) = plain_users(org, 1)
    org.move(userid, 99_001)
    company = org.department(1)["name"]
    _sync(conn, org, T1)
    org.move(userid, 99_002)
    org.rename_department(99_001, "研发与平台中心")
    _sync(conn, org, T2)
    assert _rows(
        conn,
        "SELECT old_department_path, new_department_path FROM wecom_org_changes "
        "WHERE event = 'moved'",
    ) == {(f"{company}/研发中心", f"{company}/产品中心")}


def test_a_snapshot_older_than_the_history_is_refused_and_changes_nothing(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T2)
    before = _dump(conn)
    org.rename_user(plain_users(org, 1)[0], "迟到的快照")
    load_snapshot(conn, org.snapshot(), T1)
    with pytest.raises(history.HistoryError, match="not newer"):
        history.apply_snapshot(conn, base_org["corp_id"])
    assert _dump(conn) == before


def test_a_failure_part_way_through_changes_nothing(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    before = _dump(conn)
    org.rename_department(org.data["departments"][2]["id"], "部门改名")
    org.rename_user(plain_users(org, 1)[0], "用户改名")
    load_snapshot(conn, org.snapshot(), T2)
    # A membership table whose ids no longer fit the history's BIGINT column: departments and
    # users are already written inside the transaction when the membership insert fails.
    conn.execute(
        "CREATE TABLE broken_membership AS SELECT corp_id, userid, "
        "'x' || department_id AS department_id, sort_order, is_leader, is_main "
        "FROM dept_membership"
    )
    conn.execute("DROP TABLE dept_membership")
    conn.execute("ALTER TABLE broken_membership RENAME TO dept_membership")
    with pytest.raises((duckdb.ConversionException, psycopg.errors.UndefinedFunction)):
        history.apply_snapshot(conn, base_org["corp_id"])
    assert _dump(conn) == before


def test_an_inconsistent_history_is_reported_and_not_updated(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    (userid,) = plain_users(org, 1)
    shifted = ", ".join(
        "valid_from + INTERVAL 1 HOUR" if c.name == "valid_from" else c.name
        for c in history_table(USERS).columns
    )
    conn.execute(
        f"INSERT INTO wecom_users_history SELECT {shifted} FROM wecom_users_history "
        "WHERE userid = ?",
        [userid],
    )
    before = _dump(conn)
    org.rename_user(userid, "另一个名字")
    load_snapshot(conn, org.snapshot(), T2)
    with pytest.raises(history.HistoryRejectedError) as rejected:
        history.apply_snapshot(conn, base_org["corp_id"])
    failed = [o for o in rejected.value.outcomes if not o.passed]
    assert [(o.details["table"], o.offending_ids) for o in failed] == [
        ("wecom_users_history", (userid,))
    ]
    assert _dump(conn) == before


def test_a_column_added_to_the_tables_does_not_version_every_row(
    conn: WarehouseConnection, base_org: dict[str, Any]
) -> None:
    org = OrgEditor(base_org)
    _sync(conn, org, T1)
    # A history written before `qr_code` existed: the column is missing, hashes exclude it.
    tracked = next(t for t in TRACKED if t.source is USERS)
    older = tuple(c for c in tracked.business_columns if c != "qr_code")
    spec = dataclasses.replace(
        tracked.history,
        columns=tuple(c for c in tracked.history.columns if c.name != "qr_code"),
    )
    conn.execute(spec.create_sql("older"))
    conn.execute(
        f"INSERT INTO older SELECT {', '.join(older)}, valid_from, valid_to, "
        f"{history.row_hash_sql(older, 'h')} FROM wecom_users_history AS h"
    )
    conn.execute("DROP TABLE wecom_users_history CASCADE")
    conn.execute("ALTER TABLE older RENAME TO wecom_users_history")
    result = _sync(conn, org, T2)
    users = {t.table: t for t in result.tables}["wecom_users_history"]
    with_qr_code = sum(1 for u in base_org["users"] if u.get("qr_code") is not None)
    assert 0 < with_qr_code < len(base_org["users"])
    assert (users.opened, users.closed) == (with_qr_code, with_qr_code)


def _removable(org: OrgEditor, department_id: int) -> bool:
    """A leaf whose members lead nothing elsewhere, so moving them out changes no leader list."""
    if [d for d in org.data["departments"] if d.get("parentid") == department_id]:
        return False
    members = set(org.members(department_id))
    return not any(
        members & set(d.get("department_leader") or [])
        for d in org.data["departments"]
        if d["id"] != department_id
    )
