"""How the code location runs a sync."""

from __future__ import annotations

import dagster as dg

from wecom_assets.definitions import defs


def test_a_sync_is_one_step_run_in_the_run_process() -> None:
    job = defs.resolve_job_def("wecom_sync")
    assert job.executor_def is dg.in_process_executor
    assert [node.name for node in job.graph.nodes] == ["wecom_org"]
