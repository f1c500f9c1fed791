"""One full materialization through the real CLI, measured from outside and from the event log.

The run happens exactly as an operator would start it: ``dagster asset materialize`` in a
subprocess, a fresh ``DAGSTER_HOME`` initialised once with ``dagster instance migrate`` (two
processes creating a brand-new SQLite instance at once can corrupt it), the code location's own
forkserver executor. From outside the harness measures wall time and polls /proc for the peak RSS
of every process the CLI starts; afterwards it reads the instance's event log for the step
timeline and the metadata each asset reports (``wecom/api_seconds``, ``duckdb/load_seconds``,
``duration_seconds``, call counts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from benchmarks.procmon import ProcessRecord, TreeMonitor
from benchmarks.sandbox import ServedSandbox

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ("wecom_departments", "wecom_users", "dept_membership")
FETCH_ASSET = "wecom_users"


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


def _event_log(home: Path) -> dict[str, Any]:
    """Timeline and asset metadata of the instance's only run."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            raise RuntimeError(f"no run recorded in {home}")
        run = runs[0]
        timeline: dict[str, float] = {}
        steps: dict[str, dict[str, Any]] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type.name
            if event.step_key is None:
                timeline.setdefault(kind, entry.timestamp)
                continue
            step = steps.setdefault(event.step_key, {})
            step.setdefault(kind, entry.timestamp)
            if kind == "STEP_WORKER_STARTED":
                metadata = event.event_specific_data.metadata  # type: ignore[union-attr]
                step["pid"] = int(_metadata_value(metadata["pid"]))
        materializations: dict[str, dict[str, Any]] = {}
        for name in ASSETS:
            record = instance.get_latest_materialization_event(dg.AssetKey(name))
            if record is None or record.run_id != run.run_id:
                raise RuntimeError(f"{name} was not materialized by run {run.run_id}")
            assert record.asset_materialization is not None
            materializations[name] = {
                key: _metadata_value(value)
                for key, value in record.asset_materialization.metadata.items()
                if key.startswith(("wecom/", "duckdb/", "duration", "dagster/row_count"))
                or key == "departments_fetched"
            }
        return {
            "run_id": run.run_id,
            "status": run.status.value,
            "timeline": timeline,
            "steps": steps,
            "materializations": materializations,
        }


def _table_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as conn:
        counts = {}
        for name in ASSETS:
            row = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def materialize(
    instance: Instance,
    sandbox: ServedSandbox,
    corp_id: str,
    corp_secret: str,
    log_path: Path,
) -> dict[str, Any]:
    """Materialize the three assets through the CLI against ``sandbox`` and measure it."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(instance.home),
        "WECOM_CORP_ID": corp_id,
        "WECOM_CORP_SECRET": corp_secret,
        "WECOM_API_BASE_URL": sandbox.url,
        "WECOM_DUCKDB_PATH": str(instance.database),
        "WECOM_TOKEN_CACHE_DIR": str(instance.home / ".wecom"),
    }
    command = [
        *(_cli("dagster"), "asset", "materialize", "-m", "wecom_assets.definitions"),
        *("--select", ",".join(ASSETS)),
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
        ended_wall = started_wall + wall
    if returncode != 0:
        raise RuntimeError(f"dagster asset materialize failed ({returncode}); see {log_path}")
    sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu_before
    log = _event_log(instance.home)
    stats = sandbox.stats()
    steps: dict[str, dict[str, Any]] = {}
    pids_of_steps = set()
    for key, events in log["steps"].items():
        record = monitor.processes.get(events.get("pid", -1))
        pids_of_steps.add(events.get("pid"))
        metadata = log["materializations"].get(key, {})
        step: dict[str, Any] = {
            "startup_seconds": events["STEP_START"] - events["STEP_WORKER_STARTING"],
            "step_seconds": events["STEP_SUCCESS"] - events["STEP_START"],
            "peak_rss_mb": None if record is None else round(record.peak_rss_kb / 1024, 1),
            "cpu_seconds": None if record is None else record.cpu_seconds,
        }
        if metadata:
            step.update(
                {
                    "duration_seconds": metadata["duration_seconds"],
                    "api_seconds": metadata.get("wecom/api_seconds", 0.0),
                    "load_seconds": metadata["duckdb/load_seconds"],
                    "rows": metadata["dagster/row_count"],
                    "api_calls_by_endpoint": metadata.get("wecom/api_calls_by_endpoint", {}),
                    "retries": metadata.get("wecom/retries", 0),
                    "errcodes": metadata.get("wecom/errcodes", {}),
                }
            )
        if key == FETCH_ASSET:
            used, covered = monitor.extra[sandbox.pid].between(
                events["STEP_START"], events["STEP_SUCCESS"]
            )
            step["sandbox_cpu_share"] = round(used / covered, 3) if covered else None
        steps[key] = step
    other_processes: dict[str, dict[str, Any]] = {}
    for record in monitor.processes.values():
        if record.pid in pids_of_steps:
            continue
        role = "cli" if record.pid == process.pid else _role(record, monitor.processes)
        group = other_processes.setdefault(
            role, {"count": 0, "peak_rss_mb": 0.0, "cpu_seconds": 0.0}
        )
        group["count"] += 1
        group["peak_rss_mb"] = max(group["peak_rss_mb"], round(record.peak_rss_kb / 1024, 1))
        group["cpu_seconds"] = round(group["cpu_seconds"] + record.cpu_seconds, 2)
    asset_steps = [steps[name] for name in ASSETS]
    body = sum(step["duration_seconds"] for step in asset_steps)
    api = sum(step["api_seconds"] for step in asset_steps)
    load = sum(step["load_seconds"] for step in asset_steps)
    timeline = log["timeline"]
    return {
        "command": " ".join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command)),
        "wall_seconds": wall,
        "cli_to_run_start_seconds": timeline["RUN_START"] - started_wall,
        "run_success_to_exit_seconds": ended_wall - timeline["RUN_SUCCESS"],
        "api_seconds": api,
        "load_seconds": load,
        "other_in_assets_seconds": body - api - load,
        "dagster_overhead_seconds": wall - body,
        "steps": steps,
        "other_processes": other_processes,
        "sandbox": {
            **stats,
            "cpu_seconds": sandbox_cpu,
            "cpu_share_of_run": round(sandbox_cpu / wall, 3),
        },
        "retries": sum(step["retries"] for step in asset_steps),
        "client_errcodes": _merge_counts(step["errcodes"] for step in asset_steps),
        "tables": _table_counts(instance.database),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def _role(record: ProcessRecord, processes: dict[int, ProcessRecord]) -> str:
    parent = processes.get(record.parent)
    if "forkserver" in record.cmdline:
        if parent is not None and "forkserver" in parent.cmdline:
            return "forkserver child, not a step"
        return "forkserver"
    if "resource_tracker" in record.cmdline:
        return "multiprocessing resource tracker"
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
