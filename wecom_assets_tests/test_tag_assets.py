"""The tag step materialized in process against the sandbox, beside the org step of the same job."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_support import resources, table_rows

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.checks import build_freshness_checks
from wecom_assets.defs.layout import Layout
from wecom_assets.defs.schedules import sync_job
from wecom_assets.defs.tag_assets import TAG_OUTPUTS, build_tag_assets
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer
from wecom_assets.warehouse.tables import TAG_TABLES
from wecom_assets.wecom.corps import Corp


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=300, departments=30, seed=11)


@pytest.fixture
def sandbox(org: dict[str, Any]) -> Iterator[SandboxServer]:
    with SandboxServer(org, SandboxConfig()) as server:
        yield server


def _run_sync_job(org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path) -> Any:
    """The nightly job, org step and tag step, as the schedule runs it."""
    defs = dg.Definitions(
        assets=[build_org_assets(), build_tag_assets()],
        asset_checks=[build_freshness_checks()],
        jobs=[sync_job(Layout())],
        resources=resources(org, sandbox.url, tmp_path),
    )
    return defs.resolve_job_def("wecom_sync").execute_in_process(raise_on_error=False)


def _tag_rows(database: Path) -> dict[str, set[tuple[Any, ...]]]:
    return {spec.name: table_rows(database, f"SELECT * FROM {spec.name}") for spec in TAG_TABLES}


def _org_rows(database: Path) -> dict[str, set[tuple[Any, ...]]]:
    """The org tables' rows without the fetch time, which every successful org step renews."""
    return {
        "wecom_departments": table_rows(
            database, "SELECT * EXCLUDE (synced_at) FROM wecom_departments"
        ),
        "wecom_users": table_rows(database, "SELECT * EXCLUDE (synced_at) FROM wecom_users"),
        "dept_membership": table_rows(database, "SELECT * FROM dept_membership"),
    }


def test_the_nightly_job_publishes_the_org_and_the_tags(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _run_sync_job(org, sandbox, tmp_path)
    assert result.success
    database = tmp_path / "wecom.duckdb"
    assert table_rows(database, "SELECT tag_id, tag_name FROM wecom_tags") == {
        (tag["tagid"], tag["tagname"]) for tag in org["tags"]
    }
    assert table_rows(database, "SELECT tag_id, userid FROM tag_membership") == {
        (tag["tagid"], userid) for tag in org["tags"] for userid in tag["userlist"]
    }
    assert table_rows(database, "SELECT tag_id, department_id FROM tag_departments") == {
        (tag["tagid"], department) for tag in org["tags"] for department in tag["partylist"]
    }
    materialized = {
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    }
    assert {spec.name for spec in TAG_OUTPUTS} <= materialized


def test_the_tag_step_makes_one_tag_list_and_one_tag_get_per_tag(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _run_sync_job(org, sandbox, tmp_path).success
    calls = sandbox.stats()["calls"]
    assert (calls["tag/list"], calls["tag/get"]) == (1, len(org["tags"]))


def test_tag_checks_pass_when_the_org_was_synced_with_the_same_range(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _run_sync_job(org, sandbox, tmp_path)
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[-1].startswith(("wecom_tags", "tag_"))
    }
    assert evaluations == {
        ("wecom_tags", "unique_tag_ids"): True,
        ("tag_membership", "references_existing_tags"): True,
        ("tag_membership", "tagged_users_exist"): True,
        ("tag_departments", "references_existing_tags"): True,
        ("tag_departments", "tagged_departments_exist"): True,
        ("wecom_tags_history", "history_is_consistent"): True,
        ("tag_membership_history", "history_is_consistent"): True,
        ("tag_departments_history", "history_is_consistent"): True,
    }


def test_an_app_without_tag_access_fails_the_tag_step_alone_saying_what_to_grant(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.update_config(tags_forbidden=True)
    result = _run_sync_job(org, sandbox, tmp_path)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["wecom_tag_sync"]
    message = failures[0].step_failure_data.error.message
    assert "48002" in message
    assert "标签" in message
    assert _org_rows(tmp_path / "wecom.duckdb")["wecom_users"]


def test_a_forbidden_tag_sync_keeps_the_last_good_tags_while_the_org_publishes(
    org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert _run_sync_job(org, sandbox, tmp_path).success
    database = tmp_path / "wecom.duckdb"
    tags_before, org_before = _tag_rows(database), _org_rows(database)
    sandbox.update_config(tags_forbidden=True)
    assert not _run_sync_job(org, sandbox, tmp_path).success
    assert _tag_rows(database) == tags_before
    assert _org_rows(database) == org_before


def test_tags_are_partitioned_by_corp_like_the_org(org: dict[str, Any]) -> None:
    corps = [Corp(corp_id=org["corp_id"], secret_env="SECRET_A"), Corp("wwother", "SECRET_B")]
    tag_assets = build_tag_assets(corps)
    assert tag_assets.partitions_def is not None
    assert tag_assets.partitions_def.get_partition_keys() == [org["corp_id"], "wwother"]
    assert tag_assets.op.name == "wecom_tag_sync"


def test_each_corps_partition_writes_its_own_tags_and_a_forbidden_corp_fails_alone(
    tmp_path: Path, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    orgs = [
        generate_org(users=60, departments=8, seed=31, corp_id="ww_acme"),
        generate_org(users=40, departments=6, seed=32, corp_id="ww_beta"),
    ]
    servers = [
        start_sandbox(orgs[0]),
        start_sandbox(orgs[1], SandboxConfig(tags_forbidden=True)),
    ]
    corps = []
    for n, (org, server) in enumerate(zip(orgs, servers, strict=True)):
        monkeypatch.setenv(f"WECOM_SECRET_{n}", org["corp_secret"])
        corps.append(Corp(org["corp_id"], f"WECOM_SECRET_{n}", base_url=server.url))
    settings = resources(orgs[0], "", tmp_path)
    settings["wecom"] = settings["wecom"].model_copy(
        update={"corp_id": "", "corp_secret": "", "base_url": ""}
    )
    outcomes = [
        dg.materialize(
            [build_tag_assets(corps)],
            partition_key=corp.corp_id,
            resources=settings,
            raise_on_error=False,
        ).success
        for corp in corps
    ]
    assert outcomes == [True, False]
    assert table_rows(tmp_path / "wecom.duckdb", "SELECT DISTINCT corp_id FROM wecom_tags") == {
        ("ww_acme",)
    }
    assert table_rows(tmp_path / "wecom.duckdb", "SELECT count(*) FROM wecom_tags") == {
        (len(orgs[0]["tags"]),)
    }
