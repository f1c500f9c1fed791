"""One full materialization through the real CLI, measured from outside and from the event log.

The run happens exactly as an operator would start it: ``dagster asset materialize --select '*'``
in a subprocess, against a fresh ``DAGSTER_HOME`` initialised once with ``dagster instance
migrate`` (two processes creating a brand-new SQLite instance at once can corrupt it). The code
location runs its one step, ``wecom_org``, inside the CLI process (``in_process_executor``); the
freshness checks that target the selected assets run as a second step in the same process. From
outside the harness measures wall time and polls /proc for the peak RSS of the CLI and every
process it starts; afterwards it reads the instance's event log and splits the wall time into
consecutive phases, and the step into the parts its materialization metadata reports
(``wecom/api_seconds``, ``duckdb/copy_seconds``, ``duckdb/load_seconds``,
``duckdb/publish_seconds``, ``duration_seconds``). The warehouse is the instance's DuckDB file
unless the caller points the run elsewhere (``warehouse_env``) and counts the tables there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from benchmarks.procmon import ProcessRecord, TreeMonitor
from benchmarks.sandbox import ServedSandbox

ROOT = Path(__file__).resolve().parent.parent
SELECTION = "*"
SYNC_STEP = "wecom_org"
# The tags' own step, which the in-process executor runs after the org's.
TAG_STEP = "wecom_tag_sync"
TAG_CALLS = ("tag/list", "tag/get")
FRESHNESS_STEP = "wecom_freshness_checks"
# The tables a sync replaces from the API (their metadata has the API and load times) and the
# tables the harness counts afterwards.
FETCHED = ("wecom_departments", "wecom_users")
LOADED = ("wecom_departments", "wecom_users", "dept_membership")
# What the step logs when the fetch ends and when the copy has been renamed over the file; their
# timestamps split the step into fetch, write and the events written after publishing.
FETCHED_LOG = "Fetched "
PUBLISHED_LOG = "Published "


@dataclass(frozen=True)
class Instance:
    """A prepared ``DAGSTER_HOME`` and the DuckDB file the run writes."""

    home: Path
    database: Path


def _cli(tool: str) -> str:
    return str(Path(sys.executable).with_name(tool))


def prepare_instance(work_dir: Path) -> Instance:
    """A fresh instance directory with this repository's ``dagster.yaml``, migrated once."""
    home = work_dir / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    database = work_dir / "wecom.duckdb"
    database.unlink(missing_ok=True)
    subprocess.run(
        [_cli("dagster"), "instance", "migrate"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    return Instance(home, database)


def _metadata_value(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclass
class EventLog:
    """What the instance recorded of the run: event times, counts and asset metadata."""

    run_id: str
    status: str
    first_event: float
    run_events: dict[str, float]
    steps: dict[str, dict[str, float]]
    step_logs: dict[str, float]
    events_by_type: dict[str, int]
    events_after_publish: int
    materializations: dict[str, dict[str, Any]]


def read_event_log(home: Path) -> EventLog:
    """Timeline, event counts and asset metadata of the instance's only run."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            raise RuntimeError(f"no run recorded in {home}")
        run = runs[0]
        entries = instance.all_logs(run.run_id)
        run_events: dict[str, float] = {}
        steps: dict[str, dict[str, float]] = {}
        step_logs: dict[str, float] = {}
        counts: dict[str, int] = {}
        for entry in entries:
            event = entry.dagster_event
            if event is None:
                for prefix in (FETCHED_LOG, PUBLISHED_LOG):
                    if entry.step_key == SYNC_STEP and entry.user_message.startswith(prefix):
                        step_logs.setdefault(prefix.strip(), entry.timestamp)
                continue
            kind = event.event_type.name
            counts[kind] = counts.get(kind, 0) + 1
            if event.step_key is None:
                run_events.setdefault(kind, entry.timestamp)
            else:
                steps.setdefault(event.step_key, {}).setdefault(kind, entry.timestamp)
        published = step_logs.get(PUBLISHED_LOG.strip())
        after_publish = sum(
            1
            for entry in entries
            if published is not None
            and entry.dagster_event is not None
            and entry.step_key == SYNC_STEP
            and entry.timestamp > published
        )
        materializations: dict[str, dict[str, Any]] = {}
        for spec in instance.get_asset_keys():
            record = instance.get_latest_materialization_event(spec)
            if record is None or record.run_id != run.run_id:
                continue
            assert record.asset_materialization is not None
            materializations[spec.to_user_string()] = {
                key: _metadata_value(value)
                for key, value in record.asset_materialization.metadata.items()
                if key.startswith(("wecom/", "duckdb/", "duration", "dagster/row_count"))
                or key == "departments_fetched"
            }
        return EventLog(
            run_id=run.run_id,
            status=run.status.value,
            first_event=min(entry.timestamp for entry in entries),
            run_events=run_events,
            steps=steps,
            step_logs=step_logs,
            events_by_type=counts,
            events_after_publish=after_publish,
            materializations=materializations,
        )


def _table_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as conn:
        counts = {}
        for name in LOADED:
            row = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def materialize(
    instance: Instance,
    sandbox: ServedSandbox,
    corp_id: str,
    corp_secret: str,
    log_path: Path,
    *,
    warehouse_env: Mapping[str, str] | None = None,
    count_tables: Callable[[], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Materialize every asset (``--select '*'``) through the CLI against ``sandbox``; measure.

    ``warehouse_env`` adds to the run's environment (``WECOM_WAREHOUSE_URL`` for PostgreSQL),
    and ``count_tables`` then counts the loaded tables there instead of in the DuckDB file.
    """
    env = {
        **os.environ,
        "DAGSTER_HOME": str(instance.home),
        "WECOM_CORP_ID": corp_id,
        "WECOM_CORP_SECRET": corp_secret,
        "WECOM_API_BASE_URL": sandbox.url,
        "WECOM_DUCKDB_PATH": str(instance.database),
        "WECOM_TOKEN_CACHE_DIR": str(instance.home / ".wecom"),
        **(warehouse_env or {}),
    }
    command = [
        *(_cli("dagster"), "asset", "materialize", "-m", "wecom_assets.definitions"),
        *("--select", SELECTION),
    ]
    sandbox_cpu_before = sandbox.cpu_seconds()
    load_before = os.getloadavg()
    with log_path.open("wb") as output:
        started_wall = time.time()
        started = time.monotonic()
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
        with TreeMonitor(process.pid, extra=(sandbox.pid,)) as monitor:
            returncode = process.wait()
        wall = time.monotonic() - started
    if returncode != 0:
        raise RuntimeError(f"dagster asset materialize failed ({returncode}); see {log_path}")
    sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu_before
    log = read_event_log(instance.home)
    step = sync_step(log)
    phases = timeline(log, started_wall, started_wall + wall)
    used, covered = monitor.extra[sandbox.pid].between(
        log.steps[SYNC_STEP]["STEP_START"], log.step_logs[FETCHED_LOG.strip()]
    )
    return {
        "command": f"dagster asset materialize -m wecom_assets.definitions --select '{SELECTION}'",
        "wall_seconds": wall,
        "phases": phases,
        "step": step,
        "events": {
            "total": sum(log.events_by_type.values()),
            "by_type": log.events_by_type,
            "written_after_publish": log.events_after_publish,
        },
        "processes": _processes(monitor.processes, process.pid),
        "sandbox": {
            **sandbox.stats(),
            "cpu_seconds": sandbox_cpu,
            "cpu_share_of_run": round(sandbox_cpu / wall, 3),
            "cpu_share_during_fetch": round(used / covered, 3) if covered else None,
        },
        # A tag sync is 1 tag/list + 1 tag/get per tag, beside the org's calls.
        "tag_calls": {path: sandbox.stats()["calls"].get(path, 0) for path in TAG_CALLS},
        "retries": sum(log.materializations[name].get("wecom/retries", 0) for name in FETCHED),
        "client_errcodes": _merge_counts(
            log.materializations[name].get("wecom/errcodes", {}) for name in FETCHED
        ),
        "rows": {
            name: metadata["dagster/row_count"]
            for name, metadata in sorted(log.materializations.items())
        },
        "tables": count_tables() if count_tables else _table_counts(instance.database),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def sync_step(log: EventLog) -> dict[str, float]:
    """The sync step's parts, from its metadata and the two log lines that bound its fetch.

    The metadata times the API calls, the file copy, each table's load and the rename; what the
    step spent between fetching and publishing beyond those is the history (folding the snapshot
    into the history tables, their consistency checks and row counts) and opening the copy.
    PostgreSQL writes in place, so it reports no copy and no rename: both are 0 there, and its
    ``COMMIT`` is part of the history until the caller splits it out.
    """
    meta = log.materializations
    first = meta[FETCHED[0]]
    started = log.steps[SYNC_STEP]["STEP_START"]
    fetched = log.step_logs.get(FETCHED_LOG.strip())
    published = log.step_logs.get(PUBLISHED_LOG.strip())
    if fetched is None or published is None:
        raise RuntimeError(
            f"the {SYNC_STEP} step did not log {FETCHED_LOG!r} and {PUBLISHED_LOG!r}; the "
            "benchmark cannot split it into fetch and write"
        )
    api = sum(meta[name].get("wecom/api_seconds", 0.0) for name in FETCHED)
    load = {name: float(meta[name]["duckdb/load_seconds"]) for name in LOADED}
    copy = float(first.get("duckdb/copy_seconds", 0.0))
    publish = float(first.get("duckdb/publish_seconds", 0.0))
    write = published - fetched
    return {
        "step_seconds": log.steps[SYNC_STEP]["STEP_SUCCESS"] - started,
        "duration_seconds": float(first["duration_seconds"]),
        "fetch_seconds": fetched - started,
        "api_seconds": api,
        "fetch_other_seconds": fetched - started - api,
        "write_seconds": write,
        "copy_seconds": copy,
        "load_seconds": sum(load.values()),
        **{f"load_{name}_seconds": seconds for name, seconds in load.items()},
        "history_seconds": write - copy - sum(load.values()) - publish,
        "publish_seconds": publish,
        "events_seconds": log.steps[SYNC_STEP]["STEP_SUCCESS"] - published,
    }


def timeline(log: EventLog, launched: float, exited: float) -> dict[str, float]:
    """Consecutive phases of the run, from launching the CLI to its exit; they sum to the wall.

    - ``cli_start``: Python, Dagster and the code location imported, the run created;
    - ``run_planned``: the run's planned-materialization and planned-check events written;
    - ``run_start_to_step``: resources initialised, log capture started;
    - ``sync_step``: the org step (fetch, write, publish, its materialization and check events);
    - ``tag_step``: the tag step (``tag/list``, a ``tag/get`` per tag, write, publish);
    - ``freshness_step``: the freshness checks that ``--select '*'`` also runs;
    - ``run_end``: the run's closing events;
    - ``exit``: from ``RUN_SUCCESS`` to the CLI's exit.
    """
    sync = log.steps[SYNC_STEP]
    tag_end = log.steps.get(TAG_STEP, {}).get("STEP_SUCCESS", sync["STEP_SUCCESS"])
    freshness = log.steps.get(FRESHNESS_STEP, {})
    last_step_end = freshness.get("STEP_SUCCESS", tag_end)
    marks = [
        ("cli_start", launched),
        ("run_planned", log.first_event),
        ("run_start_to_step", log.run_events["RUN_START"]),
        ("sync_step", sync["STEP_START"]),
        ("tag_step", sync["STEP_SUCCESS"]),
        ("freshness_step", tag_end),
        ("run_end", last_step_end),
        ("exit", log.run_events["RUN_SUCCESS"]),
    ]
    ends = [mark for _, mark in marks[1:]] + [exited]
    return {name: end - start for (name, start), end in zip(marks, ends, strict=True)}


def _processes(processes: dict[int, ProcessRecord], cli: int) -> dict[str, dict[str, Any]]:
    """Peak RSS and CPU of the CLI and of the helpers it started, grouped by what they are."""
    groups: dict[str, dict[str, Any]] = {}
    for record in processes.values():
        role = "cli" if record.pid == cli else _role(record)
        group = groups.setdefault(role, {"count": 0, "peak_rss_mb": 0.0, "cpu_seconds": 0.0})
        group["count"] += 1
        group["peak_rss_mb"] = max(group["peak_rss_mb"], round(record.peak_rss_kb / 1024, 1))
        group["cpu_seconds"] = round(group["cpu_seconds"] + record.cpu_seconds, 2)
    return groups


def _role(record: ProcessRecord) -> str:
    if record.cmdline.startswith("tail "):
        return "compute-log tail"
    if "watch_orphans" in record.cmdline:
        return "compute-log orphan watcher"
    return record.cmdline[:60]


def _merge_counts(counts: Any) -> dict[str, int]:
    merged: dict[str, int] = {}
    for mapping in counts:
        for key, value in mapping.items():
            merged[str(key)] = merged.get(str(key), 0) + int(value)
    return merged
