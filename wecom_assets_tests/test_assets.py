"""The three WeCom tables materialized in process against the sandbox into a tmp DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_support import (
    DEPARTMENT_COLUMNS,
    expected_departments,
    expected_membership,
    resources,
    table_rows,
)
from warehouse_oracle import assert_same_tables, assert_warehouse_holds, warehouse_tables

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import FaultConfig, SandboxConfig, SandboxServer
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, USERS

ASSETS = [build_org_assets()]
ORG_TABLES = [DEPARTMENTS.name, USERS.name, MEMBERSHIP.name]


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=300, departments=30, seed=11)


@pytest.fixture
def sandbox(org: dict[str, Any]) -> Iterator[SandboxServer]:
    with SandboxServer(org, SandboxConfig()) as server:
        yield server


def _materialize(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=ORG_TABLES,
        resources=resources(org, sandbox.url, tmp_path),
        raise_on_error=False,
        **kwargs,
    )


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.metadata.items()}
        for event in (
            e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()
        )
    }


def test_tables_equal_the_visible_org_exactly(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _materialize(org, sandbox, tmp_path)
    assert result.success
    assert_warehouse_holds(tmp_path / "wecom.duckdb", org)


def test_a_run_makes_one_department_list_and_one_user_list_per_department(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _materialize(org, sandbox, tmp_path).success
    stats = sandbox.stats()
    assert stats["gettoken"] == 1
    assert stats["calls"]["department/list"] == 1
    assert stats["calls"]["user/list"] == len(org["departments"])


def test_materializations_report_rows_schema_table_and_api_calls(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    metadata = _materializations(_materialize(org, sandbox, tmp_path))
    users = metadata["wecom_users"]
    assert users["dagster/row_count"] == len(org["users"])
    assert users["dagster/table_name"] == "main.wecom_users"
    assert [c.name for c in users["dagster/column_schema"].columns] == list(USERS.column_names)
    assert users["wecom/api_calls"] == len(org["departments"])
    assert users["wecom/retries"] == 0
    departments = metadata["wecom_departments"]
    assert departments["dagster/row_count"] == len(org["departments"])
    assert departments["wecom/api_calls"] == 1
    assert metadata["dept_membership"]["dagster/row_count"] == len(expected_membership(org))


def test_column_types_match_the_design(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _materialize(org, sandbox, tmp_path).success
    with duckdb.connect(str(tmp_path / "wecom.duckdb"), read_only=True) as conn:
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()"
            ).fetchall()
        )
    assert types["wecom_departments.leaders"] == "VARCHAR[]"
    assert types["wecom_departments.synced_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["wecom_users.status"] == "INTEGER"
    assert types["wecom_users.departments"] == "BIGINT[]"
    assert types["wecom_users.extattr"] == "JSON"
    assert types["dept_membership.is_main"] == "BOOLEAN"
    assert [name for name in types if name.startswith("wecom_departments.")] == [
        f"wecom_departments.{c}" for c in DEPARTMENTS.column_names
    ]


def test_all_checks_pass_on_a_healthy_org(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _materialize(org, sandbox, tmp_path)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 6
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_an_api_outage_keeps_the_previous_tables(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _materialize(org, sandbox, tmp_path).success
    database = tmp_path / "wecom.duckdb"
    before = warehouse_tables(database)
    sandbox.update_config(faults=FaultConfig(fail_after=5))
    result = dg.materialize(
        ASSETS,
        selection=ORG_TABLES,
        resources=resources(org, sandbox.url, tmp_path, max_retries=1, retry_max_seconds=2),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("wecom_org")
    assert failure is not None
    assert "user/list" in (failure.error.message if failure.error else "")
    assert_same_tables(warehouse_tables(database), before)


def test_a_shrinking_org_is_refused_until_the_run_allows_it(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _materialize(org, sandbox, tmp_path).success
    keep = {d["id"] for d in org["departments"][:3]}
    small = {
        **org,
        "departments": [d for d in org["departments"] if d["id"] in keep],
        "users": [u for u in org["users"] if set(u["department"]) <= keep][:10],
    }
    sandbox.replace_org(small)
    refused = _materialize(org, sandbox, tmp_path)
    assert not refused.success
    failure = refused.failure_data_for_node("wecom_org")
    assert failure is not None and failure.error is not None
    assert "max_shrink_fraction" in failure.error.message
    assert table_rows(tmp_path / "wecom.duckdb", "SELECT id FROM wecom_departments") == {
        (d["id"],) for d in org["departments"]
    }
    allowed = _materialize(
        org,
        sandbox,
        tmp_path,
        run_config=dg.RunConfig(ops={"wecom_org": {"config": {"max_shrink_fraction": 1.0}}}),
    )
    assert allowed.success
    assert table_rows(tmp_path / "wecom.duckdb", "SELECT id FROM wecom_departments") == {
        (i,) for i in keep
    }


def test_a_department_cycle_fails_its_check_and_keeps_the_previous_table(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _materialize(org, sandbox, tmp_path).success
    departments = [dict(d) for d in org["departments"]]
    first, second = departments[1]["id"], departments[2]["id"]
    departments[1]["parentid"], departments[2]["parentid"] = second, first
    sandbox.replace_org({**org, "departments": departments})
    result = _materialize(org, sandbox, tmp_path)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["department_tree_is_sound"]
    offending = failed[0].metadata["offending_ids"].value
    assert isinstance(offending, list)
    assert {str(first), str(second)} <= set(offending)
    assert table_rows(
        tmp_path / "wecom.duckdb", f"SELECT {DEPARTMENT_COLUMNS} FROM wecom_departments"
    ) == (expected_departments(org))


def test_missing_credentials_fail_the_run_naming_the_variable(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wecom_assets.defs.resources import WarehouseResource, WeComResource

    monkeypatch.delenv("WECOM_CORP_ID", raising=False)
    monkeypatch.setenv("WECOM_CORP_SECRET", org["corp_secret"])
    with pytest.raises(dg.DagsterInvalidConfigError, match="WECOM_CORP_ID"):
        dg.materialize(
            ASSETS,
            resources={
                "wecom": WeComResource(
                    corp_id=dg.EnvVar("WECOM_CORP_ID"),
                    corp_secret=dg.EnvVar("WECOM_CORP_SECRET"),
                    base_url=sandbox.url,
                ),
                "duckdb": WarehouseResource(database=str(tmp_path / "wecom.duckdb")),
            },
        )
    assert sandbox.stats()["gettoken"] == 0


def test_an_empty_secret_fails_the_run_naming_the_variable(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = dg.materialize(
        ASSETS,
        resources=resources(org, sandbox.url, tmp_path, corp_secret="  "),
        raise_on_error=False,
    )
    failure = result.failure_data_for_node("wecom_org")
    assert failure is not None and failure.error is not None
    assert "WECOM_CORP_SECRET" in failure.error.message
    assert sandbox.stats()["gettoken"] == 0
