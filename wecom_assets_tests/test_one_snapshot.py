"""One sync is one snapshot: published whole, never blocked by analysts' open sessions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_support import resources, table_rows
from warehouse_oracle import assert_same_tables, warehouse_tables

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.server import FaultConfig, SandboxServer
from wecom_assets.warehouse.tables import HISTORY_TABLES

ASSETS = [build_org_assets()]


class Session:
    """A DuckDB session held open by another process, as an analyst's notebook or CLI holds it."""

    def __init__(self, path: Path, *, read_only: bool, write: str = "") -> None:
        code = textwrap.dedent(
            f"""
            import duckdb, sys
            conn = duckdb.connect({str(path)!r}, read_only={read_only})
            if {write!r}:
                conn.execute({write!r})
            print("open", flush=True)
            for line in sys.stdin:
                print(conn.execute(line).fetchall(), flush=True)
            """
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "open"

    def query(self, sql: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def settings(sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    # A lock wait far beyond the test's patience: a sync that waited for a reader would hang.
    found = resources(sandbox_org, sandbox.url, tmp_path)
    found["duckdb"] = found["duckdb"].model_copy(update={"lock_timeout_seconds": 600})
    return found


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "wecom.duckdb"


@pytest.fixture
def synced(settings: dict[str, Any], database: Path) -> Iterator[Path]:
    assert dg.materialize(ASSETS, resources=settings).success
    yield database


def _changed(sandbox: SandboxServer, org: dict[str, Any]) -> OrgEditor:
    editor = OrgEditor(org)
    editor.rename_department(editor.data["departments"][1]["id"], "改名后的部门")
    sandbox.replace_org(editor.snapshot())
    return editor


def _history(database: Path) -> dict[str, set[tuple[Any, ...]]]:
    return {
        spec.name: table_rows(database, f"SELECT * FROM {spec.name}") for spec in HISTORY_TABLES
    }


def test_a_failure_part_way_through_the_users_keeps_every_table_and_the_history(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    tables, history = warehouse_tables(synced), _history(synced)
    _changed(sandbox, sandbox_org)
    sandbox.update_config(faults=FaultConfig(fail_after=8))
    failed = dg.materialize(ASSETS, resources=settings, raise_on_error=False)
    assert not failed.success
    assert_same_tables(warehouse_tables(synced), tables)
    assert _history(synced) == history


def test_a_rejected_check_publishes_nothing_although_earlier_tables_passed(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    editor = _changed(sandbox, sandbox_org)
    # A member listed in a department that department/list does not return: the users' check
    # only warns, the membership's blocks.
    member = editor.data["users"][0]
    member["department"] = [*member["department"], 999_999]
    member["order"] = [*(member.get("order") or [0] * (len(member["department"]) - 1)), 0]
    sandbox.replace_org(editor.snapshot())
    names_before = table_rows(synced, "SELECT name FROM wecom_departments")
    result = dg.materialize(ASSETS, resources=settings, raise_on_error=False)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"user_departments_exist", "membership_references_exist"}
    assert table_rows(synced, "SELECT name FROM wecom_departments") == names_before


def test_open_readers_neither_block_the_sync_nor_see_half_of_it(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    count = "SELECT count(*) FROM wecom_departments WHERE name = '改名后的部门'"
    reader = Session(synced, read_only=True)
    idle_writer = Session(synced.with_name("other.duckdb"), read_only=False)
    try:
        _changed(sandbox, sandbox_org)
        assert dg.materialize(ASSETS, resources=settings).success
        assert reader.query(count) == "[(0,)]"
        with duckdb.connect(str(synced), read_only=True) as fresh:
            assert fresh.execute(count).fetchall() == [(1,)]
    finally:
        reader.close()
        idle_writer.close()


def test_an_idle_read_write_session_on_the_file_does_not_block_the_sync(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    session = Session(synced, read_only=False)
    try:
        _changed(sandbox, sandbox_org)
        assert dg.materialize(ASSETS, resources=settings).success
        assert session.query("SELECT count(*) FROM wecom_history_runs") == "[(1,)]"
    finally:
        session.close()
    with duckdb.connect(str(synced)) as after:
        assert after.execute("SELECT count(*) FROM wecom_history_runs").fetchall() == [(2,)]


def test_unsaved_changes_of_an_open_session_are_moved_aside_and_the_file_still_opens(
    settings: dict[str, Any], synced: Path
) -> None:
    session = Session(synced, read_only=False, write="CREATE TABLE scratch AS SELECT 1 AS x")
    try:
        assert synced.with_name("wecom.duckdb.wal").exists()
        assert dg.materialize(ASSETS, resources=settings).success
        assert not synced.with_name("wecom.duckdb.wal").exists()
        assert list(synced.parent.glob("wecom.duckdb.wal.orphaned-*"))
        with duckdb.connect(str(synced), read_only=True) as reader:
            assert reader.execute("SELECT count(*) FROM wecom_history_runs").fetchall() == [(2,)]
    finally:
        session.close()
    with duckdb.connect(str(synced)) as after:
        assert after.execute("SELECT count(*) FROM wecom_history_runs").fetchall() == [(2,)]


def test_a_table_an_analyst_saved_in_the_file_is_carried_over(
    settings: dict[str, Any], synced: Path
) -> None:
    with duckdb.connect(str(synced)) as analyst:
        analyst.execute("CREATE TABLE my_notes AS SELECT 'keep me' AS note")
    assert dg.materialize(ASSETS, resources=settings).success
    assert table_rows(synced, "SELECT note FROM my_notes") == {("keep me",)}


def test_only_membership_is_re_derived_without_any_api_call(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer
) -> None:
    calls_before = dict(sandbox.stats()["calls"])
    with duckdb.connect(str(synced)) as conn:
        conn.execute("DELETE FROM dept_membership WHERE is_main")
    result = dg.materialize(ASSETS, selection=["dept_membership"], resources=settings)
    assert result.success
    assert dict(sandbox.stats()["calls"]) == calls_before
    assert table_rows(synced, "SELECT count(*) FROM dept_membership WHERE is_main") != {(0,)}


def test_only_users_lists_the_current_departments_members_without_department_list(
    settings: dict[str, Any], synced: Path, sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    calls_before = dict(sandbox.stats()["calls"])
    result = dg.materialize(ASSETS, selection=["wecom_users"], resources=settings)
    assert result.success
    calls = sandbox.stats()["calls"]
    assert calls["department/list"] == calls_before["department/list"]
    assert calls["user/list"] - calls_before["user/list"] == len(sandbox_org["departments"])
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == dg.AssetKey("wecom_users")
