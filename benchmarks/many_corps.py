"""``make bench-corps``: 20 corps synced through the run queue at once, and one after another.

Generates 20 orgs of 1,000 users / 100 departments, serves each from a sandbox process of its
own (20 ms per answer, WeCom's 10,000 calls a minute per API) and lists them in one corps file,
one corp with a wrong secret. Then, twice, in a fresh ``DAGSTER_HOME`` with this repository's
``dagster.yaml`` and ``dagster-daemon`` dequeuing: all 20 partitions of ``wecom_sync`` are
submitted at once as queued runs (``dagster job backfill``), and the time from submitting to the
last run's end is measured with the peak RSS and CPU of every process and the calls each sandbox
answered. The first time the pool ``wecom_duckdb`` and ``max_concurrent_runs`` allow 4 corps at
once; the second time 1, so the same 20 runs go one after another through the same queue.

Each time, every corp's rows must equal the org its sandbox served (the test suite's oracle), the
wrong-secret corp's run must fail with errcode 40001 and leave no row, and every other run must
succeed; otherwise the benchmark fails. Results go to ``benchmarks/results_many_corps.json`` and
the section "Many corps" of ``docs/benchmarks.md`` (the rest of that file is left as it is).

    .venv/bin/python -m benchmarks.many_corps [--corps 20 --users 1000 --pool-limit 4]
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import dagster_run, many_corps_report, queued_runs, results_file
from benchmarks.procmon import ProcessRecord, TreeMonitor
from benchmarks.run import machine
from benchmarks.sandbox import ServedSandbox, serve
from wecom_assets.defs.settings import POOL
from wecom_assets.sandbox.org import generate_org, save_org

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "benchmarks" / "out" / "many_corps"
RESULTS = ROOT / "benchmarks" / "results_many_corps.json"
DOCS = ROOT / "docs" / "benchmarks.md"
JOB = "wecom_sync"
LATENCY_MS = 20.0
RATE_LIMIT_PER_MINUTE = 10_000
MAX_DEPTH = 7
SEED = 20_240_613
# Enough for 20 runs one after another on a loaded machine; a stuck run fails the benchmark.
RUNS_TIMEOUT = 900.0
# Process polling: the kernel keeps each process's peak RSS, so a poll only has to see a process
# once before it exits; polling faster would take CPU from the 2 cores the runs share.
POLL_SECONDS = 0.25
_CONTROLLED_ENV = ("WECOM_", "DAGSTER_")
# What each process is, by its command line; the code server launches a run worker with
# multiprocessing's spawn.
_ROLES = (
    ("multiprocessing.spawn", "run worker"),
    ("multiprocessing.resource_tracker", "multiprocessing resource tracker"),
    ("api grpc", "code server"),
    ("dagster-daemon", "daemon"),
    ("wecom_assets.sandbox", "sandbox"),
    ("job backfill", "backfill CLI"),
    ("watch_orphans", "compute-log orphan watcher"),
)


@dataclass(frozen=True)
class Scenario:
    """How many corps may sync at once: the pool's limit and the queue's run limit."""

    name: str
    pool_limit: int
    max_concurrent_runs: int


@dataclass(frozen=True)
class Fleet:
    """The corps, their sandboxes and the environment that names their secrets."""

    orgs: list[dict[str, Any]]
    sandboxes: list[ServedSandbox]
    corps_file: Path
    secrets_env: dict[str, str]
    wrong: int

    @property
    def corp_ids(self) -> list[str]:
        """Partition keys, in corps-file order."""
        return [str(org["corp_id"]) for org in self.orgs]


def _log(message: str) -> None:
    print(f"[bench-corps {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _corps_file(path: Path, orgs: list[dict[str, Any]], sandboxes: list[ServedSandbox]) -> Path:
    entries = [
        {
            "corp_id": org["corp_id"],
            "secret_env": f"WECOM_SECRET_{n:02d}",
            "name": f"子公司{n:02d}",
            "base_url": sandbox.url,
        }
        for n, (org, sandbox) in enumerate(zip(orgs, sandboxes, strict=True))
    ]
    path.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _env(fleet: Fleet, instance: dagster_run.Instance) -> dict[str, str]:
    """The deployment's environment: the corps file, each corp's secret, the instance, the file.

    The harness's own ``WECOM_*`` and ``DAGSTER_*`` variables are left out, so a developer's
    shell cannot change what is measured.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_CONTROLLED_ENV)}
    return {
        **inherited,
        "DAGSTER_HOME": str(instance.home),
        "WECOM_CORPS_FILE": str(fleet.corps_file),
        "WECOM_DUCKDB_PATH": str(instance.database),
        **fleet.secrets_env,
    }


def measure(scenario: Scenario, fleet: Fleet, work_dir: Path) -> dict[str, Any]:
    """Submit one run per corp at once to a fresh instance; time them, check every corp's rows."""
    for sandbox in fleet.sandboxes:
        sandbox.process.reset()
    scenario_dir = work_dir / scenario.name
    instance = dagster_run.prepare_instance(scenario_dir)
    queued_runs.limit_runs(instance.home, scenario.max_concurrent_runs)
    env = _env(fleet, instance)
    queued_runs.set_pool_limit(instance.home, env, POOL, scenario.pool_limit)
    with (
        queued_runs.running_daemon(instance.home, env, scenario_dir / "daemon.log"),
        TreeMonitor(os.getpid(), interval=POLL_SECONDS) as monitor,
    ):
        load_before = os.getloadavg()
        submitted = time.time()
        submit_seconds = queued_runs.submit_backfill(
            instance.home, env, JOB, fleet.corp_ids, scenario_dir / "backfill.log"
        )
        queued_runs.wait_for_runs(instance.home, len(fleet.orgs), RUNS_TIMEOUT)
    runs = queued_runs.read_runs(instance.home)
    outcome = verify(fleet, runs, instance.database)
    result: dict[str, Any] = {
        "scenario": asdict(scenario),
        "wall_seconds": max(run.ended for run in runs) - submitted,
        "submit_seconds": submit_seconds,
        "runs_at_once": queued_runs.peak_overlap(
            (run.launched, run.ended) for run in runs if run.launched is not None
        ),
        "syncs_at_once": queued_runs.peak_overlap(
            (run.step_started, run.step_ended)
            for run in runs
            if run.step_started is not None and run.step_ended is not None
        ),
        "queued_seconds": _spread(run.queued_seconds for run in runs),
        "run_seconds": _spread(run.run_seconds for run in runs),
        "worker_start_seconds": _spread(run.worker_start_seconds for run in runs),
        "launch_gap_seconds": _spread(_gaps(run.launched for run in runs)),
        "step_seconds": _spread(run.step_seconds for run in runs if run.status == "SUCCESS"),
        "sum_of_run_seconds": sum(run.run_seconds or 0.0 for run in runs),
        "outcome": outcome,
        "processes": _processes(monitor.processes),
        "sandboxes": [sandbox.stats() for sandbox in fleet.sandboxes],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "runs": [asdict(run) for run in runs],
    }
    _log(
        f"{scenario.name}: {result['wall_seconds']:.1f}s for {len(runs)} runs (submit "
        f"{submit_seconds:.1f}s, at once {result['runs_at_once']} runs / "
        f"{result['syncs_at_once']} syncs, run median {result['run_seconds']['median']:.1f}s); "
        f"{outcome['succeeded']} succeeded, {outcome['failed']} failed as expected"
    )
    return result


def _spread(values: Iterable[float | None]) -> dict[str, float]:
    present = [value for value in values if value is not None]
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
    }


def _gaps(moments: Iterable[float | None]) -> list[float]:
    """Seconds between consecutive moments, in time order."""
    ordered = sorted(moment for moment in moments if moment is not None)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


def verify(fleet: Fleet, runs: list[queued_runs.RunRecord], database: Path) -> dict[str, Any]:
    """Each corp's rows equal its org, the wrong-secret corp failed alone and left no row.

    Raises:
        RuntimeError: A corp had no run or more than one, a good corp's run did not succeed, or
            the wrong-secret corp's run did not fail on errcode 40001 or showed the secret.
        AssertionError: A corp's rows differ from its org (the oracle names the rows).
    """
    # The test suite's oracle, from the test folder (not a package), so that the benchmark and
    # the tests compare a warehouse with an org the same way.
    sys.path.insert(0, str(ROOT / "wecom_assets_tests"))
    from dagster_support import table_rows
    from warehouse_oracle import assert_warehouse_holds

    by_corp = {run.partition: run for run in runs}
    if sorted(by_corp) != sorted(fleet.corp_ids) or len(runs) != len(fleet.orgs):
        raise RuntimeError(f"expected one run per corp, got {[run.partition for run in runs]}")
    wrong_corp = fleet.corp_ids[fleet.wrong]
    wrong_run = by_corp[wrong_corp]
    wrong_secret = fleet.secrets_env[f"WECOM_SECRET_{fleet.wrong:02d}"]
    if wrong_run.status != "FAILURE" or "errcode 40001" not in wrong_run.failure:
        raise RuntimeError(
            f"the wrong-secret corp's run ended {wrong_run.status}: {wrong_run.failure!r}"
        )
    if wrong_secret in wrong_run.failure:
        raise RuntimeError("the wrong-secret corp's failure message shows the secret")
    for n, org in enumerate(fleet.orgs):
        if n == fleet.wrong:
            continue
        run = by_corp[org["corp_id"]]
        if run.status != "SUCCESS":
            raise RuntimeError(f"corp {org['corp_id']} run ended {run.status}: {run.failure}")
        assert_warehouse_holds(database, org)
    good = {corp_id for corp_id in fleet.corp_ids if corp_id != wrong_corp}
    with_rows = {row[0] for row in table_rows(database, "SELECT DISTINCT corp_id FROM wecom_users")}
    if with_rows != good:
        raise RuntimeError(f"corps with rows {sorted(with_rows)} are not the good corps")
    return {
        "succeeded": len(good),
        "failed": 1,
        "rows_exact": sorted(good),
        "failed_corp": wrong_corp,
        "failure": wrong_run.failure.splitlines()[0],
    }


def _processes(processes: dict[int, ProcessRecord]) -> dict[str, dict[str, Any]]:
    """Count, largest peak RSS and total CPU of each kind of process, the harness left out.

    The backfill CLI starts a code server of its own to read the job's partitions; it is counted
    apart from the daemon's, which launches the runs.
    """
    roles = {pid: _role(record.cmdline) for pid, record in processes.items()}
    groups: dict[str, dict[str, Any]] = {}
    for pid, record in processes.items():
        if pid == os.getpid():
            continue
        role = roles[pid]
        if role == "code server" and roles.get(record.parent) == "backfill CLI":
            role = "backfill CLI's code server"
        group = groups.setdefault(role, {"count": 0, "peak_rss_mb": 0.0, "cpu_seconds": 0.0})
        group["count"] += 1
        group["peak_rss_mb"] = max(group["peak_rss_mb"], round(record.peak_rss_kb / 1024, 1))
        group["cpu_seconds"] = round(group["cpu_seconds"] + record.cpu_seconds, 2)
    return dict(sorted(groups.items()))


def _role(cmdline: str) -> str:
    for needle, role in _ROLES:
        if needle in cmdline:
            return role
    return "compute-log tail" if cmdline.startswith("tail ") else cmdline[:60]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate and serve the corps, then measure both scenarios against the same sandboxes."""
    started = time.monotonic()
    work_dir: Path = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    orgs = [
        generate_org(
            users=args.users,
            departments=args.departments,
            seed=SEED + n,
            max_depth=MAX_DEPTH,
            corp_id=f"ww_corp{n:02d}",
        )
        for n in range(args.corps)
    ]
    for n, org in enumerate(orgs):
        save_org(org, work_dir / f"org{n:02d}.json")
    wrong = args.corps // 3
    secrets_env = {
        f"WECOM_SECRET_{n:02d}": secrets.token_urlsafe(32) if n == wrong else org["corp_secret"]
        for n, org in enumerate(orgs)
    }
    scenarios = (
        Scenario("concurrent", args.pool_limit, args.pool_limit),
        Scenario("sequential", 1, 1),
    )
    with ExitStack() as stack:
        sandboxes = [
            stack.enter_context(
                serve(
                    work_dir / f"org{n:02d}.json",
                    latency_ms=args.latency_ms,
                    rate_limit_per_minute=RATE_LIMIT_PER_MINUTE,
                )
            )
            for n in range(args.corps)
        ]
        fleet = Fleet(
            orgs,
            sandboxes,
            _corps_file(work_dir / "corps.yaml", orgs, sandboxes),
            secrets_env,
            wrong,
        )
        _log(f"{args.corps} corps of {args.users:,} users served; corp {wrong} has a wrong secret")
        measured = {scenario.name: measure(scenario, fleet, work_dir) for scenario in scenarios}
    return {
        "machine": machine(),
        "settings": {
            "corps": args.corps,
            "users": args.users,
            "departments": args.departments,
            "latency_ms": args.latency_ms,
            "rate_limit_per_minute": RATE_LIMIT_PER_MINUTE,
            "pool_limit": args.pool_limit,
            "wrong_secret_corp": wrong,
            "seed": SEED,
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenarios": measured,
        "speedup": measured["sequential"]["wall_seconds"] / measured["concurrent"]["wall_seconds"],
        "total_seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, then write the results file and the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corps", type=int, default=20, help="number of corps (20)")
    parser.add_argument("--users", type=int, default=1_000, help="users per corp (1000)")
    parser.add_argument("--departments", type=int, default=100, help="departments per corp (100)")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS, help="per answer (20)")
    parser.add_argument(
        "--pool-limit", type=int, default=4, help=f"corps syncing at once in {POOL} (4)"
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="orgs, instances, logs")
    results_file.add_arguments(parser, RESULTS, DOCS)
    args = parser.parse_args(argv)
    if args.report_only:
        results = results_file.read(args.results)
    else:
        results = run(args)
        results_file.write(args.results, results)
        _log(
            f"wrote {args.results}: at once {results['scenarios']['concurrent']['wall_seconds']:.1f}"
            f"s, one after another {results['scenarios']['sequential']['wall_seconds']:.1f}s "
            f"({results['speedup']:.1f}x), {results['total_seconds']:.0f}s in all"
        )
    if results_file.splice_docs(args.docs, many_corps_report.splice, results):
        _log(f"updated the section {many_corps_report.HEADING!r} of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
