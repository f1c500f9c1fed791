"""The real `dagster asset materialize` CLI against a sandbox child process and a real DAGSTER_HOME.

This is the path a nightly run takes: the CLI process plus one process per step, this repo's
dagster.yaml, the token cache under DAGSTER_HOME, the DuckDB file on disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_env import cli_env
from e2e_instance import copy_dagster_home
from e2e_processes import CORE_ASSETS, CliResult, materialize
from leak_scan import find_leaks
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.sandbox.process import SandboxProcess, serve_in_subprocess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=3000, departments=300, seed=21)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-cli")


@pytest.fixture(scope="module")
def sandbox_process(org: dict[str, Any], workdir: Path) -> Iterator[SandboxProcess]:
    """The sandbox in a child process, as the step processes of a deployment reach WeCom."""
    org_path = workdir / "org.json"
    save_org(org, org_path)
    with serve_in_subprocess(org_path) as served:
        yield served


@pytest.fixture(scope="module")
def runs(
    org: dict[str, Any],
    workdir: Path,
    sandbox_process: SandboxProcess,
    migrated_dagster_home: Path,
) -> list[tuple[CliResult, dict[str, Any]]]:
    """Two runs in a row on one migrated instance; each CLI result and the sandbox's counts."""
    home = copy_dagster_home(migrated_dagster_home, workdir / "dagster_home")
    env = cli_env(
        dagster_home=home,
        duckdb_path=workdir / "wecom.duckdb",
        corp_id=org["corp_id"],
        corp_secret=org["corp_secret"],
        base_url=sandbox_process.url,
    )
    done = []
    for number in range(2):
        sandbox_process.reset()
        result = materialize(
            CORE_ASSETS, env=env, cwd=workdir, log_dir=workdir / "logs", name=f"run{number}"
        )
        assert result.returncode == 0, result.explain()
        done.append((result, sandbox_process.stats()))
    return done


def test_the_cli_run_writes_tables_equal_to_the_org(
    org: dict[str, Any], workdir: Path, runs: list[tuple[CliResult, dict[str, Any]]]
) -> None:
    assert_warehouse_holds(workdir / "wecom.duckdb", org)


def test_three_step_processes_share_one_token(runs: list[tuple[CliResult, dict[str, Any]]]) -> None:
    _, first = runs[0]
    assert first["gettoken"] == 1
    assert first["calls"] == {"department/list": 1, "user/list": 300}


def test_a_second_run_within_the_tokens_life_fetches_no_token(
    runs: list[tuple[CliResult, dict[str, Any]]],
) -> None:
    _, second = runs[1]
    assert second["gettoken"] == 0
    assert second["calls"] == {"department/list": 1, "user/list": 300}


def test_neither_secret_nor_token_is_left_in_home_database_or_output(
    org: dict[str, Any],
    workdir: Path,
    sandbox_process: SandboxProcess,
    runs: list[tuple[CliResult, dict[str, Any]]],
) -> None:
    tokens = sandbox_process.stats()["issued_tokens"]
    assert tokens
    needles = {"corp secret": org["corp_secret"]}
    needles.update({f"token {i}": token for i, token in enumerate(tokens)})
    outputs = [result.output for result, _ in runs]
    assert [label for label, value in needles.items() for out in outputs if value in out] == []
    home = workdir / "dagster_home"
    searched = [home, workdir / "wecom.duckdb", workdir / "logs"]
    assert find_leaks(searched, needles, exclude=[home / ".wecom"]) == []


def test_the_token_cache_file_is_private_and_holds_no_secret(
    org: dict[str, Any], workdir: Path, runs: list[tuple[CliResult, dict[str, Any]]]
) -> None:
    cache_files = list((workdir / "dagster_home" / ".wecom").glob("*.json"))
    assert len(cache_files) == 1
    assert cache_files[0].stat().st_mode & 0o777 == 0o600
    assert org["corp_secret"].encode() not in cache_files[0].read_bytes()
