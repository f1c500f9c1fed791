"""Many corps end to end: a corps file, one CLI run per corp at once on one instance."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from dagster_support import table_rows, write_corps_file
from e2e_env import cli_env
from e2e_instance import copy_dagster_home
from e2e_processes import launch_materialize
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer

pytestmark = pytest.mark.e2e

CORPS = 4
WRONG = 2


@pytest.fixture(scope="module")
def orgs() -> list[dict[str, Any]]:
    return [
        generate_org(users=150, departments=20, seed=40 + n, corp_id=f"ww_corp{n}")
        for n in range(CORPS)
    ]


@pytest.fixture(scope="module")
def sandboxes(orgs: list[dict[str, Any]]) -> Iterator[list[SandboxServer]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(SandboxServer(org, SandboxConfig(latency_ms=20))) for org in orgs
        ]


def test_one_run_per_corp_at_once_each_publishes_its_own_rows_and_a_wrong_secret_fails_alone(
    orgs: list[dict[str, Any]],
    sandboxes: list[SandboxServer],
    tmp_path: Path,
    migrated_dagster_home: Path,
) -> None:
    corps_file = write_corps_file(tmp_path / "corps.yaml", orgs, [s.url for s in sandboxes])
    secrets_env = {
        f"WECOM_SECRET_{n}": secrets.token_urlsafe(32) if n == WRONG else org["corp_secret"]
        for n, org in enumerate(orgs)
    }
    database = tmp_path / "wecom.duckdb"
    env = cli_env(
        dagster_home=copy_dagster_home(migrated_dagster_home, tmp_path / "dagster_home"),
        duckdb_path=database,
        corp_id="",
        corp_secret="",
        base_url="",
        extra={"WECOM_CORPS_FILE": str(corps_file), **secrets_env},
    )
    runs = [
        launch_materialize(
            ["*"],
            env=env,
            cwd=tmp_path,
            log_dir=tmp_path / "logs",
            name=org["corp_id"],
            partition=org["corp_id"],
        )
        for org in orgs
    ]
    results = [run.wait() for run in runs]

    for n, (org, result) in enumerate(zip(orgs, results, strict=True)):
        if n == WRONG:
            assert result.returncode != 0
            assert "WeCom rejected the corp secret (errcode 40001" in result.output
            assert secrets_env[f"WECOM_SECRET_{n}"] not in result.output
        else:
            assert result.returncode == 0, result.explain()
            assert_warehouse_holds(database, org)
    corps_with_rows = table_rows(database, "SELECT DISTINCT corp_id FROM wecom_users")
    assert corps_with_rows == {(org["corp_id"],) for n, org in enumerate(orgs) if n != WRONG}
    history = table_rows(database, "SELECT corp_id, count(*) FROM wecom_history_runs GROUP BY 1")
    assert history == {(org["corp_id"], 1) for n, org in enumerate(orgs) if n != WRONG}
