"""The history asset in real Dagster runs: three syncs of an evolving org served by the sandbox.

Between the syncs people join, leave, come back, move and change status; departments are
renamed, re-parented, added and change leaders. The history must reconstruct every sync exactly,
hold one version per change and list exactly the change events made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_support import (
    DEPARTMENT_COLUMNS,
    expected_departments,
    expected_membership,
    expected_users,
    resources,
    table_rows,
    users_sql,
)
from history_support import expected_intervals, plain_users

from wecom_assets.definitions import defs
from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.settings import OWNERS
from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org, subtree_ids
from wecom_assets.sandbox.server import FaultConfig, SandboxServer
from wecom_assets.warehouse.tables import HISTORY_TABLES, VIEWS

ASSETS = [build_org_assets()]
HISTORY_KEYS = [spec.name for spec in (*HISTORY_TABLES, *VIEWS)]
MEMBERSHIP_COLUMNS = "userid, department_id, sort_order, is_leader, is_main"
NEW_DEPARTMENT = 990_001


@dataclass
class Scenario:
    database: Path
    snapshots: list[dict[str, Any]]
    times: list[datetime]
    events: set[tuple[int, str, str, str]]
    metadata: list[dict[str, dict[str, Any]]]


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.metadata.items()}
        for event in (
            e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()
        )
    }


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    org = OrgEditor(generate_org(users=150, departments=20, seed=31))
    tmp_path = tmp_path_factory.mktemp("history")
    snapshots: list[dict[str, Any]] = []
    metadata: list[dict[str, dict[str, Any]]] = []
    events: set[tuple[int, str, str, str]] = set()
    departments = org.data["departments"]
    leaver, mover, disabled, moved_b, moved_c = picked = plain_users(org, 5)
    renamed = departments[2]["id"]
    reparented = departments[5]["id"]
    below = subtree_ids(departments, [reparented])
    new_parent = next(
        d["id"]
        for d in departments
        if d["id"] not in below and d["id"] != org.department(reparented)["parentid"]
    )
    led = next(
        d
        for d in departments
        if len(d["department_leader"]) == 1
        and set(org.members(d["id"])) - {*d["department_leader"], *picked}
    )
    old_leader = led["department_leader"][0]
    new_leader = sorted(set(org.members(led["id"])) - {old_leader, *picked})[0]
    target = next(d["id"] for d in departments if d["id"] != org.user(mover)["main_department"])
    with SandboxServer(org.snapshot()) as server:

        def sync() -> None:
            server.replace_org(org.snapshot())
            result = dg.materialize(ASSETS, resources=resources(org.data, server.url, tmp_path))
            assert result.success
            snapshots.append(org.snapshot())
            metadata.append(_metadata(result))

        sync()
        returning = org.user(leaver)
        org.leave(leaver)
        org.move(mover, target)
        org.set_status(disabled, 2)
        org.join("NewHire", "新同事", target)
        org.rename_department(renamed, "更名中心")
        org.reparent(reparented, new_parent)
        org.make_sole_leader(led["id"], new_leader)
        events |= {
            (1, "user", "left", leaver),
            (1, "user", "moved", mover),
            (1, "user", "status_changed", disabled),
            (1, "user", "joined", "NewHire"),
            (1, "user", "leader_changed", old_leader),
            (1, "user", "leader_changed", new_leader),
            (1, "department", "renamed", str(renamed)),
            (1, "department", "moved", str(reparented)),
            (1, "department", "leader_changed", str(led["id"])),
        }
        sync()
        org.data["users"].append(returning)
        org.rename_user("NewHire", "新同事 (已转正)")
        org.add_department(NEW_DEPARTMENT, "新业务部", 1)
        org.move(moved_b, NEW_DEPARTMENT)
        org.move(moved_c, NEW_DEPARTMENT)
        org.rename_department(renamed, "再次更名中心")
        events |= {
            (2, "user", "joined", leaver),
            (2, "user", "renamed", "NewHire"),
            (2, "user", "moved", moved_b),
            (2, "user", "moved", moved_c),
            (2, "department", "added", str(NEW_DEPARTMENT)),
            (2, "department", "renamed", str(renamed)),
        }
        sync()
    with duckdb.connect(str(tmp_path / "wecom.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT snapshot_at FROM wecom_history_runs ORDER BY 1").fetchall()
    times = [row[0] for row in rows]
    yield Scenario(tmp_path / "wecom.duckdb", snapshots, times, events, metadata)


def _as_of(table: str, at: datetime) -> str:
    stamp = f"TIMESTAMPTZ '{at.isoformat()}'"
    return f"FROM {table} WHERE valid_from <= {stamp} AND (valid_to IS NULL OR valid_to > {stamp})"


def test_every_sync_is_one_row_of_the_run_log(scenario: Scenario) -> None:
    assert len(scenario.times) == 3
    assert table_rows(scenario.database, "SELECT users, departments FROM wecom_history_runs") == {
        (len(s["users"]), len(s["departments"])) for s in scenario.snapshots
    }


def test_the_org_as_of_each_sync_equals_that_sync_exactly(scenario: Scenario) -> None:
    for at, snapshot in zip(scenario.times, scenario.snapshots, strict=True):
        probe = at + timedelta(microseconds=1)
        users = users_sql().replace("FROM wecom_users", _as_of("wecom_users_history", probe))
        assert table_rows(scenario.database, users) == expected_users(snapshot)
        assert table_rows(
            scenario.database,
            f"SELECT {DEPARTMENT_COLUMNS} {_as_of('wecom_departments_history', probe)}",
        ) == expected_departments(snapshot)
        assert table_rows(
            scenario.database,
            f"SELECT {MEMBERSHIP_COLUMNS} {_as_of('dept_membership_history', probe)}",
        ) == expected_membership(snapshot)


@pytest.mark.parametrize(
    ("table", "key", "expected", "key_length"),
    [
        ("wecom_users_history", "userid", expected_users, 1),
        ("wecom_departments_history", "id", expected_departments, 1),
        ("dept_membership_history", "userid, department_id", expected_membership, 2),
    ],
)
def test_the_history_holds_one_version_per_change_and_nothing_else(
    scenario: Scenario, table: str, key: str, expected: Any, key_length: int
) -> None:
    index = {at: i for i, at in enumerate(scenario.times)}
    rows = table_rows(scenario.database, f"SELECT {key}, valid_from, valid_to FROM {table}")
    actual = {
        (row[:key_length], index[row[key_length]], index.get(row[key_length + 1])) for row in rows
    }
    wanted = expected_intervals([expected(s) for s in scenario.snapshots], key_length)
    assert actual == wanted


def test_the_change_events_are_exactly_the_changes_made(scenario: Scenario) -> None:
    index = {at: i for i, at in enumerate(scenario.times)}
    rows = table_rows(
        scenario.database, "SELECT changed_at, entity, event, entity_id FROM wecom_org_changes"
    )
    assert {(index[row[0]], *row[1:]) for row in rows} == scenario.events


@pytest.mark.parametrize("spec", [*HISTORY_TABLES, *VIEWS], ids=lambda spec: spec.name)
def test_columns_the_catalog_shows_as_not_null_hold_no_null(scenario: Scenario, spec: Any) -> None:
    shown = defs.resolve_assets_def(spec.name).specs_by_key[dg.AssetKey(spec.name)].metadata
    not_null = [
        c.name for c in shown["dagster/column_schema"].columns if not c.constraints.nullable
    ]
    assert not_null
    with duckdb.connect(str(scenario.database), read_only=True) as conn:
        nulls = conn.execute(
            f"SELECT {', '.join(f'count(*) - count({name})' for name in not_null)} FROM {spec.name}"
        ).fetchone()
        assert conn.execute(f"SELECT count(*) FROM {spec.name}").fetchone() != (0,)
    assert dict(zip(not_null, nulls or (), strict=True)) == dict.fromkeys(not_null, 0)


def test_the_department_paths_follow_renames_and_moves(scenario: Scenario) -> None:
    last = scenario.snapshots[-1]
    by_id = {d["id"]: d for d in last["departments"]}

    def path(department_id: int) -> list[int]:
        chain = [department_id]
        while by_id[chain[0]]["parentid"] in by_id:
            chain.insert(0, by_id[chain[0]]["parentid"])
        return chain

    expected = {
        (i, len(path(i)), tuple(path(i)), "/".join(by_id[p]["name"] for p in path(i)))
        for i in by_id
    }
    assert (
        table_rows(
            scenario.database, "SELECT id, depth, id_path, name_path FROM wecom_department_paths"
        )
        == expected
    )


def test_materializations_report_versions_and_events_of_the_sync(scenario: Scenario) -> None:
    second = scenario.metadata[1]
    first_users, second_users = (expected_users(s) for s in scenario.snapshots[:2])
    users = second["wecom_users_history"]
    assert users["history/versions_opened"] == len(second_users - first_users)
    assert users["history/versions_closed"] == len(first_users - second_users)
    assert users["dagster/row_count"] == len(first_users) + len(second_users - first_users)
    assert second["wecom_org_changes"]["history/events_in_this_snapshot"] == {
        "department/leader_changed": 1,
        "department/moved": 1,
        "department/renamed": 1,
        "user/joined": 1,
        "user/leader_changed": 2,
        "user/left": 1,
        "user/moved": 1,
        "user/status_changed": 1,
    }
    assert second["wecom_history_runs"]["dagster/row_count"] == 2
    columns = [c.name for c in second["wecom_users_history"]["dagster/column_schema"].columns]
    assert columns[-3:] == ["valid_from", "valid_to", "row_hash"]


def test_rerunning_the_history_step_on_the_same_snapshot_changes_nothing(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = resources(sandbox_org, sandbox.url, tmp_path)
    assert dg.materialize(ASSETS, resources=settings).success
    before = _dump(tmp_path / "wecom.duckdb")
    rerun = dg.materialize(ASSETS, selection=HISTORY_KEYS, resources=settings)
    assert rerun.success
    assert _dump(tmp_path / "wecom.duckdb") == before
    metadata = _metadata(rerun)["wecom_users_history"]
    assert metadata["history/applied"] is False
    assert metadata["history/versions_opened"] == 0


def test_a_failed_sync_leaves_the_history_unchanged(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert dg.materialize(ASSETS, resources=resources(sandbox_org, sandbox.url, tmp_path)).success
    before = _dump(tmp_path / "wecom.duckdb")
    org = OrgEditor(sandbox_org)
    org.rename_department(org.data["departments"][1]["id"], "不会被记录的名字")
    org.leave(plain_users(org, 1)[0])
    sandbox.replace_org(org.snapshot())
    sandbox.update_config(faults=FaultConfig(fail_after=3))
    failed = dg.materialize(
        ASSETS,
        resources=resources(sandbox_org, sandbox.url, tmp_path, max_retries=0),
        raise_on_error=False,
    )
    assert not failed.success
    assert _dump(tmp_path / "wecom.duckdb") == before


def _dump(database: Path) -> dict[str, set[tuple[Any, ...]]]:
    return {
        spec.name: table_rows(database, f"SELECT * FROM {spec.name}") for spec in HISTORY_TABLES
    }


def test_an_inconsistent_history_fails_its_check_and_is_not_updated(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = resources(sandbox_org, sandbox.url, tmp_path)
    assert dg.materialize(ASSETS, resources=settings).success
    userid = sandbox_org["users"][0]["userid"]
    with duckdb.connect(str(tmp_path / "wecom.duckdb")) as conn:
        conn.execute(
            "INSERT INTO wecom_departments_history SELECT * REPLACE (valid_from + INTERVAL 1 "
            "SECOND AS valid_from) FROM wecom_departments_history WHERE id = 1"
        )
    before = _dump(tmp_path / "wecom.duckdb")
    org = OrgEditor(sandbox_org)
    org.rename_user(userid, "新名字")
    sandbox.replace_org(org.snapshot())
    result = dg.materialize(ASSETS, resources=settings, raise_on_error=False)
    assert not result.success
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    assert failed == [("wecom_departments_history", "history_is_consistent")]
    assert _dump(tmp_path / "wecom.duckdb") == before


@pytest.mark.parametrize("spec", [*HISTORY_TABLES, *VIEWS], ids=lambda spec: spec.name)
def test_history_assets_show_owners_description_table_name_and_columns(spec: Any) -> None:
    asset = defs.resolve_assets_def(spec.name).specs_by_key[dg.AssetKey(spec.name)]
    assert asset.owners == OWNERS
    assert asset.group_name == "wecom"
    assert (asset.description or "").strip()
    assert asset.metadata["dagster/table_name"] == f"main.{spec.name}"
    columns = asset.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type) for c in columns] == [(c.name, c.sql_type) for c in spec.columns]
    assert all(c.description for c in columns)
    assert defs.resolve_asset_graph().get(dg.AssetKey(spec.name)).pools == {"wecom_duckdb"}
