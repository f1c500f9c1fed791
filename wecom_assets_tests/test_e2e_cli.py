"""The real `dagster asset materialize` CLI against a sandbox child process and a real DAGSTER_HOME.

This is the path a nightly run takes: the CLI process plus one process per step, this repo's
dagster.yaml, the token cache under DAGSTER_HOME, the DuckDB file on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster_support import (
    DEPARTMENT_COLUMNS,
    expected_departments,
    expected_membership,
    expected_users,
    table_rows,
    users_sql,
)

from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.sandbox.process import SandboxProcess, serve_in_subprocess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).with_name("dagster"))
MEMBERSHIP_SQL = "SELECT userid, department_id, sort_order, is_leader, is_main FROM dept_membership"
SELECTION = "wecom_departments,wecom_users,dept_membership"


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=3000, departments=300, seed=21)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-cli")


@pytest.fixture(scope="module")
def sandbox(org: dict[str, Any], workdir: Path) -> Iterator[SandboxProcess]:
    org_path = workdir / "org.json"
    save_org(org, org_path)
    with serve_in_subprocess(org_path) as served:
        yield served


@pytest.fixture(scope="module")
def env(org: dict[str, Any], workdir: Path, sandbox: SandboxProcess) -> dict[str, str]:
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WECOM_CORP_ID": org["corp_id"],
        "WECOM_CORP_SECRET": org["corp_secret"],
        "WECOM_API_BASE_URL": sandbox.url,
        "WECOM_DUCKDB_PATH": str(workdir / "wecom.duckdb"),
    }
    environment.pop("WECOM_TOKEN_CACHE_DIR", None)
    subprocess.run([DAGSTER, "instance", "migrate"], env=environment, check=True, cwd=REPO)
    return environment


def _materialize(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "wecom_assets.definitions", "--select", SELECTION],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(env: dict[str, str], sandbox: SandboxProcess) -> list[tuple[str, dict[str, Any]]]:
    """Two runs in a row; the output and the sandbox's counts of each."""
    outputs = []
    for _ in range(2):
        sandbox.reset()
        done = _materialize(env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs.append((done.stdout + done.stderr, sandbox.stats()))
    return outputs


def test_the_cli_run_writes_tables_equal_to_the_org(
    org: dict[str, Any], workdir: Path, runs: list[tuple[str, dict[str, Any]]]
) -> None:
    database = workdir / "wecom.duckdb"
    assert table_rows(database, f"SELECT {DEPARTMENT_COLUMNS} FROM wecom_departments") == (
        expected_departments(org)
    )
    assert table_rows(database, users_sql()) == expected_users(org)
    assert table_rows(database, MEMBERSHIP_SQL) == expected_membership(org)


def test_three_step_processes_share_one_token(runs: list[tuple[str, dict[str, Any]]]) -> None:
    _, first = runs[0]
    assert first["gettoken"] == 1
    assert first["calls"] == {"department/list": 1, "user/list": 300}


def test_a_second_run_within_the_tokens_life_fetches_no_token(
    runs: list[tuple[str, dict[str, Any]]],
) -> None:
    _, second = runs[1]
    assert second["gettoken"] == 0
    assert second["calls"] == {"department/list": 1, "user/list": 300}


def test_neither_secret_nor_token_is_left_in_home_database_or_output(
    org: dict[str, Any],
    workdir: Path,
    sandbox: SandboxProcess,
    runs: list[tuple[str, dict[str, Any]]],
) -> None:
    secrets = [org["corp_secret"], *sandbox.stats()["issued_tokens"]]
    assert len(secrets) >= 2
    token_cache = workdir / "dagster_home" / ".wecom"
    haystacks = {f"output of run {i}": out.encode() for i, (out, _) in enumerate(runs)}
    for path in workdir.rglob("*"):
        if path.is_file() and path.name != "org.json" and token_cache not in path.parents:
            haystacks[str(path)] = path.read_bytes()
    leaks = [
        where for where, data in haystacks.items() for secret in secrets if secret.encode() in data
    ]
    assert leaks == []
    assert str(workdir / "wecom.duckdb") in haystacks


def test_the_token_cache_file_is_private_and_holds_no_secret(
    org: dict[str, Any], workdir: Path, runs: list[tuple[str, dict[str, Any]]]
) -> None:
    cache_files = list((workdir / "dagster_home" / ".wecom").glob("*.json"))
    assert len(cache_files) == 1
    assert cache_files[0].stat().st_mode & 0o777 == 0o600
    assert org["corp_secret"].encode() not in cache_files[0].read_bytes()
