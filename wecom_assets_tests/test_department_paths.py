"""wecom_department_paths: depth, id path and name path of every visible department."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from history_support import load_snapshot

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org, subtree_ids, visible_view
from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import WarehouseConnection

T1 = datetime(2025, 3, 1, tzinfo=UTC)
PATHS_SQL = "SELECT id, depth, id_path, name_path, path_names FROM wecom_department_paths"


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=60, departments=40, seed=5, max_depth=5)


def _expected(departments: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Paths computed by walking up the parents, independent of the SQL."""
    by_id = {d["id"]: d for d in departments}
    rows = set()
    for department_id in by_id:
        chain = [department_id]
        while by_id[chain[0]]["parentid"] in by_id:
            chain.insert(0, by_id[chain[0]]["parentid"])
        names = tuple(by_id[i]["name"] for i in chain)
        rows.add((department_id, len(chain), tuple(chain), "/".join(names), names))
    return rows


def _rows(conn: WarehouseConnection, sql: str) -> set[tuple[Any, ...]]:
    return {
        tuple(tuple(v) if isinstance(v, list) else v for v in row)
        for row in conn.execute(sql).fetchall()
    }


def test_every_department_has_its_depth_and_root_to_node_paths(
    conn: WarehouseConnection, org: dict[str, Any]
) -> None:
    load_snapshot(conn, org, T1)
    history.ensure_schema(conn, org["corp_id"])
    rows = _rows(conn, PATHS_SQL)
    assert rows == _expected(org["departments"])
    assert max(row[1] for row in rows) == 5
    assert {row[2][0] for row in rows} == {1}


def test_a_partial_visible_range_starts_paths_at_the_visible_roots(
    conn: WarehouseConnection, org: dict[str, Any]
) -> None:
    deep = [d["id"] for d in org["departments"] if d["parentid"] not in (0, 1)][:2]
    roots = [
        r for r in deep if not any(r in subtree_ids(org["departments"], [o]) - {o} for o in deep)
    ]
    load_snapshot(conn, org, T1, visible=roots)
    history.ensure_schema(conn, org["corp_id"])
    rows = _rows(conn, PATHS_SQL)
    visible = visible_view(org, roots)["departments"]
    assert rows == _expected(visible)
    assert {row[0] for row in rows if row[1] == 1} == set(roots)
    assert {row[0] for row in rows} == subtree_ids(org["departments"], roots)


def test_a_name_with_a_slash_stays_whole_in_path_names(
    conn: WarehouseConnection, org: dict[str, Any]
) -> None:
    changed = OrgEditor(org)
    leaf = changed.data["departments"][-1]
    changed.rename_department(leaf["id"], "Ops/SRE 小组")
    load_snapshot(conn, changed.snapshot(), T1)
    history.ensure_schema(conn, org["corp_id"])
    (row,) = conn.execute(
        "SELECT name_path, path_names FROM wecom_department_paths WHERE id = $id",
        {"id": leaf["id"]},
    ).fetchall()
    assert row[0].endswith("/Ops/SRE 小组")
    assert row[1][-1] == "Ops/SRE 小组"


def test_the_view_follows_each_replacement_of_the_departments_table(
    conn: WarehouseConnection, org: dict[str, Any]
) -> None:
    load_snapshot(conn, org, T1)
    history.ensure_schema(conn, org["corp_id"])
    changed = OrgEditor(org)
    moved = changed.data["departments"][-1]["id"]
    changed.reparent(moved, 1)
    load_snapshot(conn, changed.snapshot(), T1 + timedelta(days=1))
    assert _rows(conn, PATHS_SQL) == _expected(changed.data["departments"])
    assert _rows(conn, f"SELECT id_path FROM wecom_department_paths WHERE id = {moved}") == {
        ((1, moved),)
    }


def test_renaming_a_department_versions_the_path_of_its_whole_subtree(
    conn: WarehouseConnection, org: dict[str, Any]
) -> None:
    load_snapshot(conn, org, T1)
    history.apply_snapshot(conn, org["corp_id"])
    changed = OrgEditor(org)
    parent = next(
        d["id"]
        for d in org["departments"][1:]
        if len(subtree_ids(org["departments"], [d["id"]])) >= 3
    )
    changed.rename_department(parent, "新的名字")
    load_snapshot(conn, changed.snapshot(), T1 + timedelta(days=1))
    result = history.apply_snapshot(conn, org["corp_id"])
    paths = {t.table: t for t in result.tables}["wecom_department_paths_history"]
    subtree = subtree_ids(org["departments"], [parent])
    assert (paths.opened, paths.closed) == (len(subtree), len(subtree))
    assert _rows(
        conn, "SELECT id FROM wecom_department_paths_history WHERE valid_to IS NOT NULL"
    ) == {(i,) for i in subtree}
