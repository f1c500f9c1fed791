"""WeComSync in a new Dagster project, as the README adds it: create-dagster, dg scaffold, dg launch.

Nothing is downloaded: ``create-dagster project --no-uv-sync`` writes the project without
``uv sync``, and ``dg`` runs from this test environment, where wecom_assets is installed with its
``dagster_dg_cli.registry_modules`` entry point. The one step ``uv sync`` would add, installing the
new project's own package, is stood in for by putting its ``src`` on ``PYTHONPATH``. The
update check against PyPI is switched off (``DAGSTER_DG_UPDATE_CHECK_ENABLED=0``), and
telemetry by the instance's ``dagster.yaml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_env import clean_environ, cli_tool
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e

TYPE = "wecom_assets.WeComSync"
# Each dg command starts a Python process that imports Dagster; a sync of the small org is seconds.
COMMAND_TIMEOUT = 180


@dataclass(frozen=True)
class Project:
    """A project made by create-dagster, with the component scaffolded at defs/wecom."""

    root: Path
    env: dict[str, str]
    scaffolded: str = ""

    @property
    def defs_yaml(self) -> Path:
        return self.root / "src" / "acme_data" / "defs" / "wecom" / "defs.yaml"

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli_tool("dg"), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    base = tmp_path_factory.mktemp("component_project")
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    root = base / "acme_data"
    env = {
        **clean_environ(),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
        "PATH": os.pathsep.join((str(Path(cli_tool("dg")).parent), os.environ.get("PATH", ""))),
        "PYTHONPATH": str(root / "src"),
    }
    created = subprocess.run(
        [cli_tool("create-dagster"), "project", str(root), "--no-uv-sync"],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    made = Project(root, env)
    scaffolded = made.run("scaffold", "defs", TYPE, "wecom")
    assert scaffolded.returncode == 0, scaffolded.stderr
    return Project(root, env, made.defs_yaml.read_text())


def configure(project: Project, attributes: str) -> None:
    """Replace the scaffolded attributes, as a user edits defs.yaml."""
    project.defs_yaml.write_text(
        f"type: {TYPE}\n\nattributes:\n{textwrap.indent(attributes, '  ')}"
    )


def test_dg_lists_the_component_with_its_summary(project: Project) -> None:
    listed = project.run("list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    items = {item["key"]: item for item in json.loads(listed.stdout)["items"]}
    assert items[TYPE]["summary"].startswith("Sync a WeCom (企业微信) org chart into DuckDB")


def test_dg_scaffold_writes_a_defs_yaml_of_the_component(project: Project) -> None:
    assert project.scaffolded.startswith(f"type: {TYPE}\n")
    assert "corp_secret_env: WECOM_CORP_SECRET\n" in project.scaffolded


def test_a_misspelled_field_fails_dg_check_naming_it_and_its_line(project: Project) -> None:
    configure(project, "api:\n  max_concurency: 8\n")
    checked = project.run("check", "defs")
    assert checked.returncode != 0
    output = checked.stdout + checked.stderr
    assert "defs.yaml:5" in output
    assert "'max_concurency' was unexpected" in output


def test_the_project_loads_and_materializes_against_the_sandbox(
    project: Project, sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    database = tmp_path / "acme.duckdb"
    configure(
        project,
        f"corp_id_env: ACME_CORP_ID\ncorp_secret_env: ACME_CORP_SECRET\nkey_prefix: [wecom]\n"
        f"warehouse:\n  path: {database}\n",
    )
    env = {
        "ACME_CORP_ID": sandbox_org["corp_id"],
        "ACME_CORP_SECRET": sandbox_org["corp_secret"],
        "WECOM_API_BASE_URL": sandbox.url,
        "WECOM_TOKEN_CACHE_DIR": str(tmp_path / "tokens"),
    }
    listed = project.run("list", "defs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    keys = {asset["asset_key"] for asset in json.loads(listed.stdout)["assets"]}
    assert {"wecom/wecom_departments", "wecom/wecom_users", "wecom/dept_membership"} <= keys
    launched = project.run("launch", "--job", "wecom_wecom_sync", env=env)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert_warehouse_holds(database, sandbox_org)
