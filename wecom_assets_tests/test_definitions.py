"""How the code location runs a sync."""

from __future__ import annotations

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
