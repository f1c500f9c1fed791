"""The WeComSync component: what a defs.yaml configures, what it builds, and the errors it gives."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox
from warehouse_oracle import assert_warehouse_holds

import wecom_assets
from wecom_assets import definitions
from wecom_assets.defs.component import WeComSync
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.sandbox.server import SandboxServer

TYPE = "wecom_assets.WeComSync"
TABLES = ("wecom_departments", "wecom_users", "dept_membership")


@contextmanager
def loaded(
    attributes: dict[str, Any], files: dict[str, str] | None = None
) -> Iterator[tuple[DefsFolderSandbox, dg.Definitions]]:
    """The definitions of a defs.yaml with ``attributes``, and ``files`` beside it."""
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            WeComSync,
            defs_path="wecom",
            defs_yaml_contents={"type": TYPE, "attributes": attributes},
        )
        for name, text in (files or {}).items():
            (path / name).write_text(text, encoding="utf-8")
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            yield sandbox, defs


def load_error(attributes: dict[str, Any]) -> str:
    """The message a user sees when the defs.yaml with ``attributes`` does not load."""
    with pytest.raises(Exception) as raised, loaded(attributes):
        pass
    return f"{raised.value}\n{raised.value.__cause__}"


def asset_keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def test_importing_the_wecom_client_and_warehouse_imports_no_dagster() -> None:
    code = (
        "import sys, wecom_assets.wecom, wecom_assets.warehouse; sys.exit('dagster' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_package_names_the_component_for_dg() -> None:
    assert "WeComSync" in dir(wecom_assets)
    assert wecom_assets.WeComSync is WeComSync


def test_the_scaffolded_defs_yaml_syncs_the_corp_of_the_two_env_vars() -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(WeComSync, defs_path="wecom")
        text = (path / "defs.yaml").read_text()
        assert "corp_id_env: WECOM_CORP_ID\n" in text
        assert "corp_secret_env: WECOM_CORP_SECRET\n" in text
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, WeComSync)
            assert set(TABLES) <= asset_keys(defs)


def test_this_code_location_is_the_component_with_its_defaults() -> None:
    mine = definitions.defs
    component = WeComSync().definitions()
    assert asset_keys(mine) == asset_keys(component)
    mine_repo, component_repo = mine.get_repository_def(), component.get_repository_def()
    assert sorted(mine_repo.job_names) == sorted(component_repo.job_names)
    assert [s.name for s in mine_repo.schedule_defs] == [
        s.name for s in component_repo.schedule_defs
    ]
    assert (
        set(mine.resources or {})
        == set(component.resources or {})
        == {
            "wecom",
            "duckdb",
            "wecom_robot",
        }
    )


def test_a_key_prefix_moves_every_asset_key_but_not_the_table_names() -> None:
    with loaded({"key_prefix": ["wecom"]}) as (_, defs):
        assert all(key.startswith("wecom/") for key in asset_keys(defs))
        graph = defs.resolve_asset_graph()
        membership = graph.get(dg.AssetKey(["wecom", "dept_membership"]))
        assert membership.parent_keys == {dg.AssetKey(["wecom", "wecom_users"])}
        assert membership.metadata["dagster/table_name"] == "main.dept_membership"
        lineage = membership.metadata["dagster/column_lineage"]
        assert lineage.deps_by_column["userid"][0].asset_key == dg.AssetKey(
            ["wecom", "wecom_users"]
        )


def test_with_a_key_prefix_checks_and_jobs_follow_the_keys() -> None:
    with loaded({"key_prefix": "acme"}) as (_, defs):
        sync = defs.resolve_job_def("acme_wecom_sync")
        freshness = defs.resolve_job_def("acme_wecom_freshness")
        users = dg.AssetKey(["acme", "wecom_users"])
        sync_checks = sync.asset_layer.asset_graph.asset_check_keys
        assert dg.AssetCheckKey(users, "unique_userids") in sync_checks
        assert dg.AssetCheckKey(users, "fresh_within_window") not in sync_checks
        assert dg.AssetCheckKey(users, "fresh_within_window") in (
            freshness.asset_layer.asset_graph.asset_check_keys
        )


def test_a_key_prefix_names_the_definitions_and_resources_apart() -> None:
    with loaded({"key_prefix": ["acme"]}) as (_, defs):
        repository = defs.get_repository_def()
        assert {s.name for s in repository.schedule_defs} == {
            "acme_wecom_nightly",
            "acme_wecom_freshness_hourly",
        }
        assert [s.name for s in repository.sensor_defs] == ["acme_wecom_alerts"]
        assert set(defs.resources or {}) == {"acme_wecom", "acme_duckdb", "acme_wecom_robot"}


def test_the_group_cron_and_timezone_come_from_defs_yaml() -> None:
    attributes = {"group_name": "org", "schedule": {"cron": "30 6 * * 1", "timezone": "UTC"}}
    with loaded(attributes) as (_, defs):
        graph = defs.resolve_asset_graph()
        assert graph.get(dg.AssetKey("wecom_users")).group_name == "org"
        nightly = defs.get_repository_def().get_schedule_def("wecom_nightly")
        assert (nightly.cron_schedule, nightly.execution_timezone) == ("30 6 * * 1", "UTC")


def test_inline_corps_make_one_partition_per_corp() -> None:
    corps = [
        {"corp_id": "ww_acme", "secret_env": "WECOM_SECRET_ACME", "name": "示例集团"},
        {"corp_id": "ww_beta", "secret_env": "WECOM_SECRET_BETA"},
    ]
    with loaded({"corps": corps}) as (_, defs):
        partitions = defs.resolve_asset_graph().get(dg.AssetKey("wecom_users")).partitions_def
        assert partitions is not None
        assert partitions.get_partition_keys() == ["ww_acme", "ww_beta"]


def test_a_corps_file_is_read_next_to_the_defs_yaml() -> None:
    corps_file = "- corp_id: ww_gamma\n  secret_env: WECOM_SECRET_GAMMA\n"
    with loaded({"corps_file": "corps.yaml"}, {"corps.yaml": corps_file}) as (_, defs):
        partitions = defs.resolve_asset_graph().get(dg.AssetKey("wecom_users")).partitions_def
        assert partitions is not None
        assert partitions.get_partition_keys() == ["ww_gamma"]


def test_one_corp_enters_by_the_names_of_its_env_vars() -> None:
    attributes = {"corp_id_env": "ACME_CORP_ID", "corp_secret_env": "ACME_CORP_SECRET"}
    with loaded(attributes) as (_, defs):
        wecom = (defs.resources or {})["wecom"]
        assert isinstance(wecom, WeComResource)
        assert (wecom.corp_id, wecom.corp_secret) == (
            dg.EnvVar("ACME_CORP_ID"),
            dg.EnvVar("ACME_CORP_SECRET"),
        )


def test_the_tuning_fields_reach_the_wecom_resource() -> None:
    api = {
        "max_concurrency": 8,
        "request_timeout_seconds": 3.5,
        "max_retries": 2,
        "retry_max_seconds": 20.0,
        "rate_limit_per_minute": 600,
    }
    with loaded({"api": api}) as (_, defs):
        wecom = (defs.resources or {})["wecom"]
        assert isinstance(wecom, WeComResource)
        assert {name: getattr(wecom, name) for name in api} == api


def test_a_relative_warehouse_path_starts_at_the_project_root() -> None:
    with loaded({"warehouse": {"path": "data/org.duckdb"}}) as (sandbox, defs):
        duckdb = (defs.resources or {})["duckdb"]
        assert isinstance(duckdb, WarehouseResource)
        assert duckdb.path == sandbox.project_root / "data" / "org.duckdb"


def test_the_warehouse_url_and_schema_reach_the_resource_and_drop_the_duckdb_pool() -> None:
    url = "postgresql://analyst@db.example.com:5432/org"
    with loaded({"warehouse": {"url": url, "schema_name": "org_chart"}}) as (_, defs):
        warehouse = (defs.resources or {})["duckdb"]
        assert isinstance(warehouse, WarehouseResource)
        assert (warehouse.url, warehouse.schema_name) == (url, "org_chart")
        pools = {a.op.pool for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}
        assert pools == {None}


def test_a_password_in_the_warehouse_url_is_refused() -> None:
    message = load_error({"warehouse": {"url": "postgresql://analyst:Hunter2-Secret@db/org"}})
    assert "must not hold a password" in message
    assert "Hunter2-Secret" not in message


def test_a_misspelled_field_is_named_with_its_line() -> None:
    message = load_error({"api": {"max_concurency": 8}})
    assert "attributes.api.max_concurency at " in message
    assert "defs.yaml:" in message
    assert "Extra inputs are not permitted" in message


def test_a_value_out_of_bounds_says_the_bound() -> None:
    message = load_error({"api": {"max_concurrency": 500}})
    assert "attributes.api.max_concurrency" in message
    assert "less than or equal to 64" in message


def test_a_secret_written_inline_is_refused() -> None:
    corps = [{"corp_id": "ww_acme", "secret_env": "WECOM_SECRET_ACME", "secret": "x" * 43}]
    assert "a secret is written in defs.yaml" in load_error({"corps": corps})


def test_a_secret_env_that_is_a_value_is_refused() -> None:
    corps = [{"corp_id": "ww_acme", "secret_env": "pasted-secret-value"}]
    message = load_error({"corps": corps})
    assert "attributes.corps.0.secret_env" in message
    assert "must be the name of an environment variable" in message


def test_a_corp_listed_twice_is_refused() -> None:
    corps = [
        {"corp_id": "ww_acme", "secret_env": "WECOM_SECRET_A"},
        {"corp_id": "ww_acme", "secret_env": "WECOM_SECRET_B"},
    ]
    assert "corp_id ww_acme is listed twice" in load_error({"corps": corps})


def test_an_unknown_timezone_is_refused() -> None:
    message = load_error({"schedule": {"timezone": "Asia/Shanghia"}})
    assert "unknown timezone 'Asia/Shanghia'" in message


def test_a_prefixed_sync_writes_the_registry_tables_against_the_sandbox(
    sandbox_org: dict[str, Any],
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACME_CORP_ID", sandbox_org["corp_id"])
    monkeypatch.setenv("ACME_CORP_SECRET", sandbox_org["corp_secret"])
    database = tmp_path / "org.duckdb"
    attributes = {
        "corp_id_env": "ACME_CORP_ID",
        "corp_secret_env": "ACME_CORP_SECRET",
        "key_prefix": ["acme"],
        "warehouse": {"path": str(database)},
        "api": {"base_url": sandbox.url, "token_cache_dir": str(tmp_path / "tokens")},
    }
    with loaded(attributes) as (_, defs), dg.instance_for_test() as instance:
        result = defs.resolve_job_def("acme_wecom_sync").execute_in_process(instance=instance)
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert dg.AssetKey(["acme", "wecom_users"]) in materialized
    assert all(check.passed for check in result.get_asset_check_evaluations())
    assert_warehouse_holds(database, sandbox_org)


def test_the_readme_defs_yaml_shows_every_field_with_its_default() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split(f"```yaml\ntype: {TYPE}\n", 1)[1].split("```", 1)[0]
    attributes = yaml.safe_load(block)["attributes"]
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            WeComSync,
            defs_path="wecom",
            defs_yaml_contents={"type": TYPE, "attributes": attributes},
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, _):
            assert component == WeComSync()
    assert set(attributes) | {"corps", "corps_file"} == set(WeComSync.model_fields)
