"""Many corps in one warehouse: one partition per corp, each run touching only its own rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_support import resources, table_rows
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.checks import build_freshness_checks
from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import FaultConfig, SandboxServer
from wecom_assets.wecom.corps import Corp


@pytest.fixture
def orgs() -> list[dict[str, Any]]:
    return [
        generate_org(users=80, departments=10, seed=31, corp_id="ww_acme"),
        generate_org(users=60, departments=8, seed=32, corp_id="ww_beta"),
    ]


@pytest.fixture
def sandboxes(
    orgs: list[dict[str, Any]], start_sandbox: Callable[..., SandboxServer]
) -> list[SandboxServer]:
    return [start_sandbox(org) for org in orgs]


@pytest.fixture
def corps(
    orgs: list[dict[str, Any]],
    sandboxes: list[SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[Corp]]:
    found = []
    for n, (org, sandbox) in enumerate(zip(orgs, sandboxes, strict=True)):
        monkeypatch.setenv(f"WECOM_SECRET_{n}", org["corp_secret"])
        found.append(Corp(org["corp_id"], f"WECOM_SECRET_{n}", base_url=sandbox.url))
    yield found


def _sync(
    corps: list[Corp], tmp_path: Path, corp: Corp, org: dict[str, Any]
) -> dg.ExecuteInProcessResult:
    settings = resources(org, "", tmp_path)
    settings["wecom"] = settings["wecom"].model_copy(
        update={"corp_id": "", "corp_secret": "", "base_url": ""}
    )
    return dg.materialize(
        [build_org_assets(corps)],
        partition_key=corp.corp_id,
        resources=settings,
        raise_on_error=False,
    )


def test_each_partition_syncs_its_corp_into_one_warehouse(
    corps: list[Corp], orgs: list[dict[str, Any]], tmp_path: Path
) -> None:
    for corp, org in zip(corps, orgs, strict=True):
        assert _sync(corps, tmp_path, corp, org).success
    database = tmp_path / "wecom.duckdb"
    for org in orgs:
        assert_warehouse_holds(database, org)
    runs = table_rows(database, "SELECT corp_id, users FROM wecom_history_runs")
    assert runs == {(org["corp_id"], len(org["users"])) for org in orgs}


def test_a_failed_corp_leaves_its_own_rows_and_never_touches_another_corps(
    corps: list[Corp],
    orgs: list[dict[str, Any]],
    sandboxes: list[SandboxServer],
    tmp_path: Path,
) -> None:
    for corp, org in zip(corps, orgs, strict=True):
        assert _sync(corps, tmp_path, corp, org).success
    acme, beta = orgs
    changed = OrgEditor(beta)
    changed.rename_department(changed.data["departments"][1]["id"], "改名")
    sandboxes[1].replace_org(changed.snapshot())
    sandboxes[1].update_config(faults=FaultConfig(fail_after=3))
    assert not _sync(corps, tmp_path, corps[1], beta).success
    renamed = OrgEditor(acme)
    renamed.rename_department(renamed.data["departments"][1]["id"], "新名字")
    sandboxes[0].replace_org(renamed.snapshot())
    assert _sync(corps, tmp_path, corps[0], acme).success
    database = tmp_path / "wecom.duckdb"
    assert_warehouse_holds(database, renamed.snapshot())
    assert_warehouse_holds(database, beta)
    events = table_rows(database, "SELECT corp_id, entity, event FROM wecom_org_changes")
    assert events == {("ww_acme", "department", "renamed")}


def test_a_corp_whose_secret_variable_is_unset_fails_naming_it(
    corps: list[Corp], orgs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WECOM_SECRET_1")
    result = _sync(corps, tmp_path, corps[1], orgs[1])
    assert not result.success
    failure = result.failure_data_for_node("wecom_org")
    assert failure is not None and failure.error is not None
    assert "WECOM_SECRET_1 is not set" in failure.error.message


def test_freshness_is_checked_per_corp_naming_the_stale_one(
    corps: list[Corp], orgs: list[dict[str, Any]], tmp_path: Path
) -> None:
    assets = build_org_assets(corps)
    checks = build_freshness_checks([corp.corp_id for corp in corps])
    with dg.instance_for_test() as instance:
        settings = resources(orgs[0], "", tmp_path)
        settings["wecom"] = settings["wecom"].model_copy(update={"corp_id": "", "corp_secret": ""})
        synced = dg.materialize(
            [assets], partition_key=corps[0].corp_id, resources=settings, instance=instance
        )
        assert synced.success
        result = dg.materialize(
            [assets, checks],
            selection=dg.AssetSelection.checks(checks),
            resources=settings,
            instance=instance,
            raise_on_error=False,
        )
    evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    users = evaluations["wecom_users"]
    assert not users.passed
    assert "ww_beta (never)" in (users.description or "")
    assert users.metadata["stale_corps"].value == ["ww_beta"]


def test_a_corp_with_case_sensitive_userids_keeps_members_that_differ_only_in_case(
    orgs: list[dict[str, Any]],
    sandboxes: list[SandboxServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = OrgEditor(orgs[0])
    twin = dict(org.data["users"][0], userid=org.data["users"][0]["userid"].swapcase())
    org.data["users"].append(twin)
    sandboxes[0].replace_org(org.snapshot())
    monkeypatch.setenv("WECOM_SECRET_0", orgs[0]["corp_secret"])
    corps = [
        Corp(
            orgs[0]["corp_id"],
            "WECOM_SECRET_0",
            base_url=sandboxes[0].url,
            userids_case_sensitive=True,
        )
    ]
    assert _sync(corps, tmp_path, corps[0], orgs[0]).success
    userids = table_rows(tmp_path / "wecom.duckdb", "SELECT userid FROM wecom_users")
    assert {(org.data["users"][0]["userid"],), (twin["userid"],)} <= userids
