"""Runs the way a deployment starts them: queued on an instance, dequeued by ``dagster-daemon``.

``dagster asset materialize`` runs in the process that starts it and never meets the run queue;
the many-corps measurement needs what the nightly schedule does instead: one run per corp handed to
the instance's ``QueuedRunCoordinator`` (this repository's ``dagster.yaml``), which the daemon
dequeues within ``max_concurrent_runs`` and the pool's free slots, and launches through the code
server it started from ``workspace.yaml``. The runs are submitted with ``dagster job backfill``,
the one CLI command that submits a partitioned job's runs through the run coordinator (``dg
launch`` executes in process); what happened is read back from the instance's event log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from wecom_assets.dev.dev_ui import live_group_members

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = ROOT / "workspace.yaml"
LOCATION = "wecom_assets"
SYNC_STEP = "wecom_org"
_QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
_TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
_RUN_ENDS = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)


def _cli(tool: str) -> str:
    return str(Path(sys.executable).with_name(tool))


def limit_runs(home: Path, max_concurrent_runs: int) -> None:
    """Set ``concurrency.runs.max_concurrent_runs`` in the instance's ``dagster.yaml``."""
    config_path = home / "dagster.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.setdefault("concurrency", {}).setdefault("runs", {})
    config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def set_pool_limit(home: Path, env: Mapping[str, str], pool: str, limit: int) -> None:
    """``dagster instance concurrency set <pool> <limit>``, as an operator raises a pool's limit."""
    subprocess.run(
        [_cli("dagster"), "instance", "concurrency", "set", pool, str(limit)],
        env=dict(env),
        cwd=home,
        check=True,
        capture_output=True,
    )


@contextmanager
def running_daemon(
    home: Path, env: Mapping[str, str], log_path: Path, startup_timeout: float = 180.0
) -> Iterator[int]:
    """``dagster-daemon run`` for ``workspace.yaml`` until the block ends; yields its pid.

    The block starts once the run-queue daemon has sent its first heartbeat, which it does after
    the code server has loaded the code location, so the start-up is not part of what is timed.
    The daemon, its code server and the runs it launched share a new process group; what is left
    of it after a graceful stop is killed with the group.

    Raises:
        RuntimeError: The daemon exited, or sent no heartbeat within ``startup_timeout``.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [_cli("dagster-daemon"), "run", "-w", str(WORKSPACE)],
            env=dict(env),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_heartbeat(home, process, startup_timeout, log_path)
            yield process.pid
        finally:
            _stop_group(process)


def _wait_for_heartbeat(
    home: Path, process: subprocess.Popen[bytes], timeout: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while _QUEUE_DAEMON not in instance.get_daemon_heartbeats():
            if process.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited ({process.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster-daemon sent no heartbeat in {timeout:g}s")
            time.sleep(0.5)


def _stop_group(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGINT, as Ctrl-C stops the daemon; then SIGKILL whatever of its group still runs.

    A process started in the background ignores SIGINT, and the daemon then never stops by itself;
    the group is killed after ``grace`` seconds either way.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if live_group_members(process.pid):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def submit_backfill(
    home: Path, env: Mapping[str, str], job: str, partitions: Iterable[str], log_path: Path
) -> float:
    """Queue one run of ``job`` per partition with ``dagster job backfill``; the CLI's seconds.

    Raises:
        RuntimeError: The command failed; its output is in ``log_path``.
    """
    command = [
        *(_cli("dagster"), "job", "backfill", "-w", str(WORKSPACE), "-l", LOCATION, "-j", job),
        *("--partitions", ",".join(partitions), "--noprompt"),
    ]
    started = time.monotonic()
    with log_path.open("wb") as log:
        returncode = subprocess.run(
            command, env=dict(env), cwd=home, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
    if returncode != 0:
        raise RuntimeError(f"dagster job backfill failed ({returncode}); see {log_path}")
    return time.monotonic() - started


def wait_for_runs(home: Path, count: int, timeout: float, poll: float = 0.5) -> None:
    """Block until ``count`` runs of the instance have ended (succeeded, failed or canceled).

    Raises:
        RuntimeError: They had not ended after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            runs = instance.get_runs()
            ended = sum(1 for run in runs if run.status in _TERMINAL)
            if len(runs) >= count and ended == len(runs):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ended} of {count} runs ended in {timeout:g}s; see {home}")
            time.sleep(poll)


@dataclass(frozen=True)
class RunRecord:
    """One run as the instance's event log tells it (epoch seconds; None when never reached)."""

    run_id: str
    partition: str
    status: str
    enqueued: float
    launched: float | None
    started: float | None
    step_started: float | None
    step_ended: float | None
    ended: float
    failure: str

    @property
    def queued_seconds(self) -> float | None:
        """From the submission to the daemon taking the run off the queue and launching it."""
        return None if self.launched is None else self.launched - self.enqueued

    @property
    def run_seconds(self) -> float | None:
        """From the launch to the run's end: the worker's start, the step, the closing events."""
        return None if self.launched is None else self.ended - self.launched

    @property
    def worker_start_seconds(self) -> float | None:
        """From the launch to the run worker's first event: a process importing Dagster and the
        code location."""
        if self.launched is None or self.started is None:
            return None
        return self.started - self.launched

    @property
    def step_seconds(self) -> float | None:
        """The sync step alone."""
        if self.step_started is None or self.step_ended is None:
            return None
        return self.step_ended - self.step_started


def read_runs(home: Path) -> list[RunRecord]:
    """Every run of the instance, oldest first, with its timeline and failure message."""
    kinds = {
        dg.DagsterEventType.RUN_ENQUEUED,
        dg.DagsterEventType.RUN_STARTING,
        dg.DagsterEventType.RUN_START,
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        *_RUN_ENDS,
    }
    records = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in reversed(instance.get_runs()):
            seen: dict[dg.DagsterEventType, float] = {}
            failure = ""
            for entry in instance.all_logs(run.run_id, of_type=kinds):
                event = entry.dagster_event
                if event is None or (entry.step_key not in (None, SYNC_STEP)):
                    continue
                seen.setdefault(event.event_type, entry.timestamp)
                if event.event_type == dg.DagsterEventType.STEP_FAILURE:
                    failure = _failure_message(event)
            ends = [seen[kind] for kind in _RUN_ENDS if kind in seen]
            records.append(
                RunRecord(
                    run_id=run.run_id,
                    partition=run.tags.get("dagster/partition", ""),
                    status=run.status.value,
                    enqueued=seen[dg.DagsterEventType.RUN_ENQUEUED],
                    launched=seen.get(dg.DagsterEventType.RUN_STARTING),
                    started=seen.get(dg.DagsterEventType.RUN_START),
                    step_started=seen.get(dg.DagsterEventType.STEP_START),
                    step_ended=seen.get(dg.DagsterEventType.STEP_SUCCESS)
                    or seen.get(dg.DagsterEventType.STEP_FAILURE),
                    ended=min(ends),
                    failure=failure,
                )
            )
    return records


def _failure_message(event: dg.DagsterEvent) -> str:
    """What the step said when it failed: the ``dg.Failure`` description, else the error."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.message.strip() if data.error is not None else ""


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an interval ending as another starts: not both)."""
    # At equal times an end (-1) sorts before a start (+1).
    edges = sorted(edge for start, end in intervals for edge in ((start, 1), (end, -1)))
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    return peak
