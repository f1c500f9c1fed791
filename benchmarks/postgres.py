"""``make bench-postgres``: the 20k org's first and repeat sync into DuckDB and into PostgreSQL.

The org, the sandbox and the run are ``make bench``'s (the same generator and seed, 20 ms per
answer, 10,000 calls a minute per API, ``dagster asset materialize --select '*'`` through the
real CLI in a fresh, migrated ``DAGSTER_HOME``); only the warehouse differs. PostgreSQL runs on a
throwaway cluster this benchmark starts on the same machine, with ``fsync`` on as a production
server has it and every statement's duration in its log, from which the sync's ``COMMIT`` is
read. The syncs alternate (DuckDB first, PostgreSQL first, DuckDB repeat, PostgreSQL repeat) so
that a change in the machine's load falls on both backends alike. Afterwards the row counts of
every asset and of the loaded tables must be equal in the two backends, or the benchmark fails.

Results go to ``benchmarks/results_postgres.json`` and the section "PostgreSQL against DuckDB"
of ``docs/benchmarks.md`` (the rest of that file is left as it is). It takes about three minutes.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import dagster_run, postgres_report, results_file, run
from benchmarks.sandbox import serve
from wecom_assets.dev.postgres_cluster import PostgresServer, start_postgres
from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA, display_url

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "benchmarks" / "out" / "postgres"
RESULTS = ROOT / "benchmarks" / "results_postgres.json"
DOCS = ROOT / "docs" / "benchmarks.md"
SIZE = run.SIZES["20k"]
BACKENDS = ("duckdb", "postgres")
DATABASE = "wecom_bench"
# fsync on as in production; every statement's duration logged, in UTC, to find the COMMITs.
SERVER_SETTINGS = {"fsync": "on", "log_min_duration_statement": "0", "log_timezone": "UTC"}
_COMMIT = "statement: COMMIT"


def _log(message: str) -> None:
    print(f"[bench-postgres {time.strftime('%H:%M:%S')}] {message}", flush=True)


def commit_seconds(server_log: str, start: float, end: float) -> float:
    """Seconds the server spent in ``COMMIT`` statements logged between ``start`` and ``end``.

    A line reads ``2026-12-01 08:00:00.123 UTC [pid] LOG:  duration: 1.234 ms  statement:
    COMMIT``; its time is when the statement ended.
    """
    total = 0.0
    for line in server_log.splitlines():
        if not line.endswith(_COMMIT) or "duration: " not in line:
            continue
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        if start <= stamp.timestamp() <= end:
            total += float(line.split("duration: ", 1)[1].split(" ms", 1)[0]) / 1000
    return total


def _postgres_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        counts = {}
        for name in dagster_run.LOADED:
            row = conn.execute(f'SELECT count(*) FROM {DEFAULT_SCHEMA}."{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def _sync(
    backend: str,
    kind: str,
    instance: dagster_run.Instance,
    org_path: Path,
    credentials: tuple[str, str],
    server: PostgresServer,
    url: str,
) -> dict[str, Any]:
    """One ``--select '*'`` materialization into ``backend`` against a fresh sandbox process.

    For PostgreSQL the sync step's ``COMMIT`` (from the server's log) moves from the history
    part, where the event log's timeline puts it, to the publish part, DuckDB's copy and rename.
    """
    shutil.rmtree(instance.home / ".wecom", ignore_errors=True)
    extra: dict[str, Any] = {}
    if backend == "postgres":
        extra = {
            "warehouse_env": {"WECOM_WAREHOUSE_URL": url},
            "count_tables": lambda: _postgres_counts(url),
        }
    with serve(
        org_path, latency_ms=run.LATENCY_MS, rate_limit_per_minute=run.RATE_LIMIT_PER_MINUTE
    ) as sandbox:
        result = dagster_run.materialize(
            instance, sandbox, *credentials, instance.home.parent / f"dagster-{kind}.log", **extra
        )
    step = result["step"]
    if backend == "postgres":
        window = dagster_run.read_event_log(instance.home).steps[dagster_run.SYNC_STEP]
        commit = commit_seconds(
            server.log_path.read_text(encoding="utf-8", errors="replace"),
            window["STEP_START"],
            window["STEP_SUCCESS"],
        )
        step["history_seconds"] -= commit
        step["publish_seconds"] = commit
    _log(
        f"{backend} {kind} sync: {result['wall_seconds']:.2f}s (api {step['api_seconds']:.2f}s, "
        f"load {step['load_seconds']:.2f}s, history {step['history_seconds']:.2f}s, publish "
        f"{step['publish_seconds']:.2f}s); peak RSS "
        f"{result['processes']['cli']['peak_rss_mb']:.0f} MB; tables {result['tables']}"
    )
    return result


def compare_rows(runs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Row counts of every asset and of the loaded tables, per sync kind; equal in both or not."""
    kinds: dict[str, Any] = {}
    for kind in run.SYNC_KINDS:
        duckdb, postgres = runs["duckdb"][kind], runs["postgres"][kind]
        kinds[kind] = {
            "rows": duckdb["rows"],
            "tables": duckdb["tables"],
            "equal": duckdb["rows"] == postgres["rows"] and duckdb["tables"] == postgres["tables"],
        }
        if not kinds[kind]["equal"]:
            kinds[kind]["postgres_rows"] = postgres["rows"]
            kinds[kind]["postgres_tables"] = postgres["tables"]
    return kinds


def measure(work_dir: Path) -> dict[str, Any]:
    """Generate and serve the org, start the server, run the four syncs; the results."""
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    org = generate_org(
        users=SIZE.users, departments=SIZE.departments, seed=run.SEED, max_depth=SIZE.max_depth
    )
    org_path = work_dir / "org.json"
    save_org(org, org_path)
    shape = run.org_shape(org)
    credentials = (org["corp_id"], org["corp_secret"])
    del org
    gc.collect()
    _log(f"generated {shape}")
    server = start_postgres(SERVER_SETTINGS)
    try:
        url = server.create_database(DATABASE)
        with psycopg.connect(url) as conn:
            version_row = conn.execute("SHOW server_version").fetchone()
        instances = {
            backend: dagster_run.prepare_instance(work_dir / backend) for backend in BACKENDS
        }
        runs: dict[str, dict[str, dict[str, Any]]] = {backend: {} for backend in BACKENDS}
        for kind in run.SYNC_KINDS:
            for backend in BACKENDS:
                runs[backend][kind] = _sync(
                    backend, kind, instances[backend], org_path, credentials, server, url
                )
    finally:
        server.stop()
    machine = run.machine()
    machine["packages"]["psycopg"] = importlib.metadata.version("psycopg")
    return {
        "machine": machine,
        "settings": {
            "latency_ms": run.LATENCY_MS,
            "rate_limit_per_minute": run.RATE_LIMIT_PER_MINUTE,
            "client_concurrency": run.CLIENT_CONCURRENCY,
            "seed": run.SEED,
            "postgres_server_version": version_row[0] if version_row else "",
            "postgres_settings": SERVER_SETTINGS,
            "postgres_url": display_url(url),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "size": {"label": SIZE.label, "users": SIZE.users, "departments": SIZE.departments},
        "org": shape,
        "runs": runs,
        "rows": compare_rows(runs),
        "duckdb_file_mb": round(instances["duckdb"].database.stat().st_size / 1e6, 1),
        "total_seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, then write the results file and the docs section; 1 if the row counts differ."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="org, instances, logs")
    results_file.add_arguments(parser, RESULTS, DOCS)
    args = parser.parse_args(argv)
    if args.report_only:
        results = results_file.read(args.results)
    else:
        results = measure(args.work_dir)
        results_file.write(args.results, results)
        _log(f"wrote {args.results} in {results['total_seconds']:.0f}s")
    if results_file.splice_docs(args.docs, postgres_report.splice, results):
        _log(f"updated the section {postgres_report.HEADING!r} of {args.docs}")
    unequal = [kind for kind, rows in results["rows"].items() if not rows["equal"]]
    if unequal:
        _log(f"row counts differ between DuckDB and PostgreSQL in the {unequal} syncs")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
