"""The README's "Connecting a real corp" commands, run as written, put the tables where it says.

They run in a copy of the project (its package, ``pyproject.toml``, ``workspace.yaml``,
``dagster.yaml`` and a link to ``.venv``) so that neither the repository's ``.dagster_home`` nor
its ``data/`` is touched; the copy's package is imported (``PYTHONPATH``), so its project root is
the copy's. The only changes to the commands: the two placeholder credentials become the
sandbox org's, and ``WECOM_API_BASE_URL`` points at the sandbox.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from e2e_env import clean_environ
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROJECT_FILES = ("pyproject.toml", "workspace.yaml", "dagster.yaml")


def section(title: str) -> str:
    """The README's text from the ``## title`` heading to the next heading of that level."""
    start = README.index(f"\n## {title}\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def first_shell_block(text: str) -> tuple[str, str]:
    """The first ```sh block of ``text`` and the paragraph right after it."""
    match = re.search(r"```sh\n(.*?)```\n\n(.+?)\n\n", text, flags=re.DOTALL)
    assert match, "no ```sh block followed by a paragraph"
    return match.group(1), " ".join(match.group(2).split())


def with_credentials(commands: str, org: dict[str, Any]) -> str:
    """The commands with the sandbox org's corp id and secret instead of the placeholders."""
    replaced = re.sub(
        r"^export WECOM_CORP_ID=\S+", f"export WECOM_CORP_ID={org['corp_id']}", commands, flags=re.M
    )
    replaced = re.sub(
        r"^export WECOM_CORP_SECRET=\S+",
        f"export WECOM_CORP_SECRET={org['corp_secret']}",
        replaced,
        flags=re.M,
    )
    assert replaced.count(str(org["corp_secret"])) == 1, "the README no longer exports the secret"
    return replaced


def project_copy(tmp_path: Path) -> Path:
    """The files the commands need, in a directory of their own, and the repository's venv."""
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "wecom_assets",
        project / "wecom_assets",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in PROJECT_FILES:
        shutil.copyfile(ROOT / name, project / name)
    (project / ".venv").symlink_to(Path(sys.prefix))
    return project


def test_the_real_corp_commands_put_the_tables_where_the_readme_says(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    commands, after = first_shell_block(section("Connecting a real corp"))
    where = re.match(r"The tables are then in `([^`]+)` of this repository", after)
    assert where, f"the README no longer says where the tables are: {after!r}"
    project = project_copy(tmp_path)
    env = {
        **{k: v for k, v in clean_environ().items() if k != "VIRTUAL_ENV"},
        "PYTHONPATH": str(project),
        "WECOM_API_BASE_URL": sandbox.url,
    }
    script = "set -euo pipefail\n" + with_credentials(commands, sandbox_org)
    done = subprocess.run(
        ["bash", "-c", script],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    database = project / where.group(1)
    assert_warehouse_holds(database, sandbox_org)
    assert sorted(p.relative_to(project) for p in project.rglob("*.duckdb")) == [
        Path(where.group(1))
    ]
    with dg.DagsterInstance.from_config(str(project / ".dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("wecom_users"))
        assert event is not None and event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
    assert metadata["dagster/uri"].value == database.as_uri()
    assert metadata["duckdb/path"].value == str(database)
