"""The distributed shape of deploy/ on one machine: 10 corps' runs at once, sharing only Postgres.

The instance is ``deploy/dagster.yaml`` as shipped, its storage pointed (through the same
``DAGSTER_PG_*`` variables a deployment sets) at a fresh database of the tests' throwaway
PostgreSQL server. ``dagster-daemon`` dequeues the runs, and the default run launcher starts each
in a process of its own: the processes share nothing but PostgreSQL (Dagster's storage in one
database, the warehouse, ``WECOM_WAREHOUSE_URL``, in another) and the WeCom API (one sandbox per
corp). With a PostgreSQL URL the definitions leave the DuckDB pool off the steps, so the corps'
syncs run, and publish, at the same time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_support import write_corps_file
from deploy_files import DEPLOY
from e2e_env import clean_environ, cli_tool
from postgres_oracle import assert_postgres_holds
from warehouse_reader import WarehouseReader, expected_counts, postgres_counts

from benchmarks import queued_runs
from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxServer

CORPS = 10
JOB = "wecom_sync"
# A hang guard, not a timing bound: on 2 busy shared cores the 10 runs took up to 216 s.
RUNS_TIMEOUT = 480.0

# The test's own limit is the runs' hang guard plus its set-up, not the suite's default of 300 s,
# which would cut the guard short on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(RUNS_TIMEOUT + 120)]


@pytest.fixture
def warehouse_url(postgres: PostgresServer, tmp_path: Path) -> str:
    """A fresh database for the warehouse; the first sync creates its schema ``wecom``."""
    return postgres.create_database(f"warehouse_{tmp_path.name.lower().replace('-', '_')}")


@pytest.fixture(scope="module")
def orgs() -> list[dict[str, Any]]:
    return [
        generate_org(users=40, departments=8, seed=140 + n, corp_id=f"ww_deploy{n}")
        for n in range(CORPS)
    ]


@pytest.fixture
def sandboxes(orgs: list[dict[str, Any]]) -> Iterator[list[SandboxServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(SandboxServer(org)) for org in orgs]


@pytest.fixture
def deploy_instance(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A ``DAGSTER_HOME`` holding ``deploy/dagster.yaml`` on a fresh database; its env.

    The test process reads the instance too (the daemon's heartbeat, the runs), so the
    ``DAGSTER_PG_*`` variables are set in it as well.
    """
    database = f"dagster_{tmp_path.name.lower().replace('-', '_')}"
    postgres.create_database(database)
    pg_env = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": database,
    }
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    env = {**clean_environ(), **pg_env, "DAGSTER_HOME": str(home)}
    subprocess.run(
        [cli_tool(), "instance", "migrate"],
        env=env,
        cwd=home,
        check=True,
        capture_output=True,
        timeout=180,
    )
    return env


def run_worker_pids(home: Path) -> dict[str, int]:
    """The process each run started in, as its ``RUN_START`` event recorded it."""
    pids: dict[str, int] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START):
                if entry.dagster_event is not None and entry.dagster_event.pid is not None:
                    pids[run.run_id] = entry.dagster_event.pid
    return pids


def test_ten_corps_sync_at_once_in_separate_processes_into_postgres_each_exact(
    orgs: list[dict[str, Any]],
    sandboxes: list[SandboxServer],
    deploy_instance: dict[str, str],
    warehouse_url: str,
    tmp_path: Path,
) -> None:
    corps_file = write_corps_file(tmp_path / "corps.yaml", orgs, [s.url for s in sandboxes])
    env = {
        **deploy_instance,
        "WECOM_WAREHOUSE_URL": warehouse_url,
        "WECOM_CORPS_FILE": str(corps_file),
        **{f"WECOM_SECRET_{n}": org["corp_secret"] for n, org in enumerate(orgs)},
    }
    home = Path(env["DAGSTER_HOME"])
    corp_ids = [org["corp_id"] for org in orgs]
    expected = {org["corp_id"]: expected_counts(org) for org in orgs}

    with (
        queued_runs.running_daemon(home, env, tmp_path / "daemon.log"),
        WarehouseReader(postgres_counts(warehouse_url), expected) as reader,
    ):
        queued_runs.submit_backfill(home, env, JOB, corp_ids, tmp_path / "backfill.log")
        queued_runs.wait_for_runs(home, CORPS, RUNS_TIMEOUT)

    runs = queued_runs.read_runs(home)
    assert sorted((run.partition, run.status) for run in runs) == [
        (corp_id, "SUCCESS") for corp_id in sorted(corp_ids)
    ]
    assert len(set(run_worker_pids(home).values())) == CORPS
    assert (
        queued_runs.peak_overlap(
            (run.step_started, run.step_ended)
            for run in runs
            if run.step_started is not None and run.step_ended is not None
        )
        > 1
    ), "no two corps' syncs overlapped: they took turns instead of running at once"
    for org in orgs:
        assert_postgres_holds(warehouse_url, org)
    assert [sandbox.stats()["gettoken"] for sandbox in sandboxes] == [1] * CORPS
    assert reader.failures == []
    assert reader.half_corps == []
    assert reader.lost_corps == []
    assert reader.complete_corps == set(corp_ids)
