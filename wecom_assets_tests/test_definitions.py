"""How the code location runs a sync."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from wecom_assets.definitions import defs


def test_a_sync_is_one_org_step_and_one_tag_step_run_in_the_run_process() -> None:
    job = defs.resolve_job_def("wecom_sync")
    assert job.executor_def is dg.in_process_executor
    assert sorted(node.name for node in job.graph.nodes) == ["wecom_org", "wecom_tag_sync"]


def test_the_tag_step_does_not_depend_on_the_org_step() -> None:
    job = defs.resolve_job_def("wecom_sync")
    assert not job.graph.dependency_structure.all_upstream_outputs_from_node("wecom_tag_sync")
    assert not job.graph.dependency_structure.all_upstream_outputs_from_node("wecom_org")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_definitions_load_without_the_postgres_extra() -> None:
    loaded = _python(
        "import sys\n"
        "sys.modules['psycopg'] = sys.modules['sqlglot'] = None\n"
        "from wecom_assets.definitions import defs\n"
        "print(sorted(key.to_user_string() for key in defs.resolve_all_asset_keys())[0])\n"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "dept_membership"


def test_a_duckdb_code_location_does_not_import_the_postgres_extra() -> None:
    loaded = _python(
        "import sys\n"
        "from wecom_assets.definitions import defs\n"
        "print(sorted({'psycopg', 'sqlglot'} & set(sys.modules)))\n"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
