"""Data-quality rules on crafted snapshots: each passes on good data and names bad rows by id."""

from __future__ import annotations

from collections.abc import Sequence

from wecom_assets.warehouse import quality
from wecom_assets.warehouse.connection import WarehouseConnection

CORP = "ww_test"


def _insert(conn: WarehouseConnection, table: str, rows: Sequence[tuple[object, ...]]) -> None:
    for row in rows:
        conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in row)})", list(row))


def _recreate(conn: WarehouseConnection, table: str, columns: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({columns})")


def _departments(
    conn: WarehouseConnection, rows: Sequence[tuple[int, int | None]], corp_id: str = CORP
) -> str:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS wecom_departments "
        "(corp_id VARCHAR, id BIGINT, parent_id BIGINT)"
    )
    _insert(conn, "wecom_departments", [(corp_id, *r) for r in rows])
    return "wecom_departments"


def _users(conn: WarehouseConnection, rows: list[tuple[str, list[int], int | None]]) -> str:
    _recreate(
        conn,
        "wecom_users",
        "corp_id VARCHAR, userid VARCHAR, departments BIGINT[], main_department BIGINT",
    )
    _insert(conn, "wecom_users", [(CORP, *r) for r in rows])
    return "wecom_users"


def _membership(conn: WarehouseConnection, rows: list[tuple[str, int, bool]]) -> str:
    _recreate(
        conn, "membership", "corp_id VARCHAR, userid VARCHAR, department_id BIGINT, is_main BOOLEAN"
    )
    _insert(conn, "membership", [(CORP, *r) for r in rows])
    return "membership"


def test_unique_department_ids_names_the_duplicates(conn: WarehouseConnection) -> None:
    relation = _departments(conn, [(1, 0), (2, 1), (2, 1), (3, 1)])
    outcome = quality.unique_department_ids(conn, relation)
    assert (outcome.passed, outcome.blocking, outcome.offending_ids) == (False, True, ("2",))


def test_unique_userids_compares_case_insensitively(conn: WarehouseConnection) -> None:
    relation = _users(conn, [("ZhangSan", [1], 1), ("zhangsan", [1], 1), ("lisi", [1], 1)])
    outcome = quality.unique_userids(conn, relation)
    assert (outcome.passed, outcome.offending_ids) == (False, ("zhangsan",))


def test_a_sound_tree_passes(conn: WarehouseConnection) -> None:
    relation = _departments(conn, [(1, 0), (2, 1), (3, 2), (40, 3)])
    assert quality.department_tree_is_sound(conn, relation).passed


def test_a_parent_cycle_fails_the_tree_check(conn: WarehouseConnection) -> None:
    relation = _departments(conn, [(1, 0), (2, 3), (3, 2), (4, 1)])
    outcome = quality.department_tree_is_sound(conn, relation)
    assert (outcome.passed, outcome.offending_ids) == (False, ("2", "3"))
    assert outcome.details["cycle_members"] == 2


def test_an_orphan_fails_the_tree_check_when_the_whole_org_is_visible(
    conn: WarehouseConnection,
) -> None:
    relation = _departments(conn, [(1, 0), (2, 1), (7, 99)])
    outcome = quality.department_tree_is_sound(conn, relation)
    assert (outcome.passed, outcome.offending_ids) == (False, ("7",))


def test_roots_of_a_partial_visible_range_are_not_orphans(
    conn: WarehouseConnection,
) -> None:
    relation = _departments(conn, [(5, 1), (6, 5), (9, 2), (10, 9)])
    outcome = quality.department_tree_is_sound(conn, relation)
    assert outcome.passed
    assert outcome.details["visible_range_roots"] == 2


def test_user_departments_missing_from_departments_warn(conn: WarehouseConnection) -> None:
    _departments(conn, [(1, 0), (2, 1)])
    relation = _users(conn, [("a", [1, 2], 1), ("b", [2, 8], 2)])
    outcome = quality.user_departments_exist(conn, relation, departments="wecom_departments")
    assert (outcome.passed, outcome.blocking, outcome.offending_ids) == (False, False, ("b",))


def test_membership_pointing_at_missing_rows_fails(conn: WarehouseConnection) -> None:
    _departments(conn, [(1, 0), (2, 1)])
    _users(conn, [("a", [1], 1)])
    relation = _membership(conn, [("a", 1, True), ("a", 5, False), ("ghost", 2, True)])
    outcome = quality.membership_references_exist(
        conn, relation, users="wecom_users", departments="wecom_departments"
    )
    assert (outcome.passed, outcome.offending_ids) == (False, ("a@5", "ghost@2"))


def test_two_main_departments_fail(conn: WarehouseConnection) -> None:
    _departments(conn, [(1, 0), (2, 1)])
    _users(conn, [("a", [1, 2], 1)])
    relation = _membership(conn, [("a", 1, True), ("a", 2, True)])
    outcome = quality.one_main_department_per_user(
        conn, relation, users="wecom_users", departments="wecom_departments"
    )
    assert (outcome.passed, outcome.offending_ids) == (False, ("a",))


def test_a_visible_main_department_without_is_main_fails(conn: WarehouseConnection) -> None:
    _departments(conn, [(1, 0), (2, 1)])
    _users(conn, [("a", [1, 2], 2), ("b", [1], None)])
    relation = _membership(conn, [("a", 1, False), ("a", 2, False), ("b", 1, False)])
    outcome = quality.one_main_department_per_user(
        conn, relation, users="wecom_users", departments="wecom_departments"
    )
    assert (outcome.passed, outcome.offending_ids) == (False, ("a",))


def test_offending_ids_are_capped_but_counted(conn: WarehouseConnection) -> None:
    rows = [(i, 0) for i in range(200)] * 2
    relation = _departments(conn, rows)
    outcome = quality.unique_department_ids(conn, relation)
    assert outcome.offending_count == 200
    assert len(outcome.offending_ids) == quality.MAX_REPORTED_IDS


def test_another_corps_department_does_not_satisfy_a_users_department(
    conn: WarehouseConnection,
) -> None:
    _departments(conn, [(1, 0)])
    _departments(conn, [(1, 0), (2, 1)], corp_id="ww_other")
    relation = _users(conn, [("a", [1, 2], 1)])
    outcome = quality.user_departments_exist(conn, relation, departments="wecom_departments")
    assert (outcome.passed, outcome.offending_ids) == (False, ("a",))


def test_case_sensitive_userids_are_unique_as_they_are(conn: WarehouseConnection) -> None:
    relation = _users(conn, [("Ab", [1], 1), ("ab", [1], 1)])
    folded = quality.unique_userids(conn, relation)
    exact = quality.unique_userids(conn, relation, case_sensitive=True)
    assert (folded.passed, folded.offending_ids) == (False, ("ab",))
    assert exact.passed


def test_userids_that_fold_alike_only_outside_ascii_are_one_member(
    conn: WarehouseConnection,
) -> None:
    relation = _users(conn, [("straße", [1], 1), ("STRASSE", [1], 1)])
    outcome = quality.unique_userids(conn, relation)
    assert (outcome.passed, outcome.offending_ids) == (False, ("strasse",))
