"""The real CLI materializing everything (`--select '*'`) with the tag step, on a real DAGSTER_HOME."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster_support import table_rows
from e2e_env import cli_env
from e2e_events import step_windows
from e2e_instance import copy_dagster_home
from e2e_processes import materialize
from leak_scan import find_leaks

from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.sandbox.process import serve_in_subprocess

pytestmark = pytest.mark.e2e


def test_a_cli_run_of_every_asset_syncs_the_tags_in_their_own_step_after_the_org(
    tmp_path: Path, migrated_dagster_home: Path
) -> None:
    org = generate_org(users=300, departments=30, seed=5)
    save_org(org, tmp_path / "org.json")
    with serve_in_subprocess(tmp_path / "org.json") as sandbox:
        env = cli_env(
            dagster_home=copy_dagster_home(migrated_dagster_home, tmp_path / "dagster_home"),
            duckdb_path=tmp_path / "wecom.duckdb",
            corp_id=org["corp_id"],
            corp_secret=org["corp_secret"],
            base_url=sandbox.url,
        )
        result = materialize(["*"], env=env, cwd=tmp_path, log_dir=tmp_path / "logs", name="all")
        stats: dict[str, Any] = sandbox.stats()
    assert result.returncode == 0, result.explain()
    assert (stats["calls"]["tag/list"], stats["calls"]["tag/get"]) == (1, len(org["tags"]))
    assert table_rows(tmp_path / "wecom.duckdb", "SELECT tag_id, tag_name FROM wecom_tags") == {
        (tag["tagid"], tag["tagname"]) for tag in org["tags"]
    }
    steps = step_windows(tmp_path / "dagster_home", result.run_id)
    assert steps["wecom_org"].succeeded and steps["wecom_tag_sync"].succeeded
    # The benchmark's timeline reads the tag step as the phase after the org step.
    assert steps["wecom_org"].ended <= steps["wecom_tag_sync"].started
    needles = {"corp secret": org["corp_secret"]}
    searched = [tmp_path / "dagster_home", tmp_path / "wecom.duckdb", tmp_path / "logs"]
    assert find_leaks(searched, needles, exclude=[tmp_path / "dagster_home" / ".wecom"]) == []
