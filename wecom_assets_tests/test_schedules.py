"""Nightly schedule, freshness policies and the freshness check."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy

from wecom_assets.definitions import defs
from wecom_assets.defs.checks import build_freshness_checks
from wecom_assets.defs.definitions import build_defs
from wecom_assets.defs.schedules import nightly_schedule
from wecom_assets.warehouse.tables import HISTORY_TABLES, TAG_HISTORY_TABLES, TAG_TABLES
from wecom_assets.warehouse.tables import VIEWS as HISTORY_VIEWS
from wecom_assets.wecom.corps import Corp

SHANGHAI = ZoneInfo("Asia/Shanghai")
WECOM_KEYS = [dg.AssetKey(n) for n in ("wecom_departments", "wecom_users", "dept_membership")]
TAG_KEYS = [dg.AssetKey(spec.name) for spec in TAG_TABLES]


def test_nightly_schedule_runs_wecom_sync_at_two_in_shanghai() -> None:
    wecom_nightly = nightly_schedule()
    assert wecom_nightly.cron_schedule == "0 2 * * *"
    assert wecom_nightly.execution_timezone == "Asia/Shanghai"
    assert wecom_nightly.job_name == "wecom_sync"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 26, 2, 0, tzinfo=SHANGHAI)
    )
    data = wecom_nightly.evaluate_tick(context)
    assert data.run_requests is not None and len(data.run_requests) == 1


def test_with_many_corps_the_nightly_schedule_starts_one_run_per_corp() -> None:
    corps = [
        Corp(corp_id, f"WECOM_SECRET_{n}") for n, corp_id in enumerate(("ww_a", "ww_b", "ww_c"))
    ]
    many = build_defs(corps)
    wecom_nightly = many.get_schedule_def("wecom_nightly")
    assert (wecom_nightly.cron_schedule, wecom_nightly.execution_timezone) == (
        "0 2 * * *",
        "Asia/Shanghai",
    )
    context = dg.build_schedule_context(
        repository_def=many.get_repository_def(),
        scheduled_execution_time=datetime(2026, 11, 26, 2, 0, tzinfo=SHANGHAI),
    )
    data = wecom_nightly.evaluate_tick(context)
    assert data.run_requests is not None
    assert [r.partition_key for r in data.run_requests] == ["ww_a", "ww_b", "ww_c"]
    assert len({r.run_key for r in data.run_requests}) == 3


def test_wecom_sync_holds_the_tables_the_history_and_their_checks_but_not_freshness() -> None:
    job = defs.resolve_job_def("wecom_sync")
    graph = job.asset_layer.asset_graph
    history_specs = (*HISTORY_TABLES, *HISTORY_VIEWS, *TAG_HISTORY_TABLES)
    history_keys = [dg.AssetKey(spec.name) for spec in history_specs]
    assert set(graph.executable_asset_keys) == {*WECOM_KEYS, *TAG_KEYS, *history_keys}
    assert {key.name for key in graph.asset_check_keys} == {
        "unique_department_ids",
        "department_tree_is_sound",
        "unique_userids",
        "user_departments_exist",
        "membership_references_exist",
        "one_main_department_per_user",
        "history_is_consistent",
        "unique_tag_ids",
        "references_existing_tags",
        "tagged_users_exist",
        "tagged_departments_exist",
    }


def test_every_asset_has_a_26_hour_freshness_policy() -> None:
    graph = defs.resolve_asset_graph()
    for key in (*WECOM_KEYS, *TAG_KEYS):
        policy = graph.get(key).freshness_policy
        assert isinstance(policy, TimeWindowFreshnessPolicy)
        assert policy.fail_window.to_timedelta() == timedelta(hours=26)


def test_every_asset_writes_through_the_duckdb_pool() -> None:
    graph = defs.resolve_asset_graph()
    for key in (*WECOM_KEYS, *TAG_KEYS):
        assert graph.get(key).pools == {"wecom_duckdb"}


def _run_freshness(instance: dg.DagsterInstance, max_age_hours: float) -> dict[str, bool]:
    result = dg.materialize(
        [build_freshness_checks()],
        instance=instance,
        selection=dg.AssetSelection.checks(build_freshness_checks()),
        run_config=dg.RunConfig(
            ops={"wecom_freshness_checks": {"config": {"max_age_hours": max_age_hours}}}
        ),
        raise_on_error=False,
    )
    return {e.asset_key.path[-1]: e.passed for e in result.get_asset_check_evaluations()}


def _report_materializations(instance: dg.DagsterInstance) -> None:
    for key in (*WECOM_KEYS, *TAG_KEYS):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def test_freshness_check_fails_for_tables_never_materialized() -> None:
    with dg.instance_for_test() as instance:
        assert _run_freshness(instance, 26) == {
            "wecom_departments": False,
            "wecom_users": False,
            "dept_membership": False,
            "wecom_tags": False,
            "tag_membership": False,
            "tag_departments": False,
        }


def test_freshness_check_passes_right_after_a_sync() -> None:
    with dg.instance_for_test() as instance:
        _report_materializations(instance)
        assert set(_run_freshness(instance, 26).values()) == {True}


def test_freshness_check_fails_once_the_window_has_passed() -> None:
    with dg.instance_for_test() as instance:
        _report_materializations(instance)
        time.sleep(0.05)
        assert set(_run_freshness(instance, 0.00001).values()) == {False}


def test_freshness_schedule_runs_the_freshness_job_hourly() -> None:
    schedule = defs.resolve_schedule_def("wecom_freshness_hourly")
    assert schedule.job_name == "wecom_freshness"
    assert schedule.execution_timezone == "Asia/Shanghai"
    data = schedule.evaluate_tick(dg.build_schedule_context())
    assert data.run_requests is not None
    assert data.run_requests[0].run_config["ops"]["wecom_freshness_checks"]["config"] == {
        "max_age_hours": 26.0
    }
