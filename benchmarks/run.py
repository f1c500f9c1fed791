"""``make bench``: sync generated orgs of three sizes through Dagster and the sequential recipe.

First Dagster's floor: a no-op asset materialized the same way, and the imports alone. Then for
each size: generate a deep, uneven org, serve it from a sandbox subprocess with WeCom's
latency and per-API limit, and materialize every asset (``--select '*'``: the three tables, the
history and the freshness checks that target them) with the real CLI in a fresh
``DAGSTER_HOME`` twice: the first sync into an empty file, then the repeat sync that copies the
first one's file, as every nightly run does. Then fetch the same org with the plain sequential
recipe. Each of the three gets a fresh sandbox process serving the same file. Then the users
fetch alone at a few ``max_concurrency`` values. Results go to ``benchmarks/results.json`` and a
Markdown report (``docs/benchmarks.md``, with an SVG plot next to it). The whole run takes about
seven minutes with a client spending 1.5 ms of CPU per call, most of it the sequential recipe on
the 10,000-department org (10,000 round trips of 20 ms one after another) and the 100k syncs.

Run ``python -m benchmarks.run --help`` for options; ``--sizes 1k --sweep ''`` is a quick check.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import (
    dagster_run,
    doc_sections,
    floor,
    many_corps_report,
    plot,
    postgres_report,
    report,
    results_file,
    targets,
)
from benchmarks.reference import fetch_sequentially
from benchmarks.sandbox import serve
from benchmarks.sweep import fetch_point
from wecom_assets.defs.resources import WeComResource
from wecom_assets.sandbox.org import generate_org, save_org

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "results.json"
DOCS = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.svg"
LATENCY_MS = 20.0
RATE_LIMIT_PER_MINUTE = 10_000
RATE_LIMIT_WINDOW = 60.0
# The resource's default, which the code location uses.
CLIENT_CONCURRENCY: int = WeComResource.model_fields["max_concurrency"].default
SEED = 20_240_601
# The thread-pool knee is a rate per call, the same at any size; the 20k org gives each point
# 2,000 calls, enough to measure it, in a quarter of the 100k org's time.
SWEEP_SIZE = "20k"
SWEEP_CONCURRENCY = (16, 24, 32)
# The first sync writes an empty file; the repeat sync copies it and folds an unchanged org into
# a history that already holds it, as a nightly run does.
SYNC_KINDS = ("first", "repeat")


@dataclass(frozen=True)
class Size:
    """One org size."""

    label: str
    users: int
    departments: int
    max_depth: int


SIZES = {
    "1k": Size("1k", 1_000, 100, 7),
    "20k": Size("20k", 20_000, 2_000, 10),
    "100k": Size("100k", 100_000, 10_000, 13),
}


_SANDBOX: dict[str, Any] = {
    "latency_ms": LATENCY_MS,
    "rate_limit_per_minute": RATE_LIMIT_PER_MINUTE,
}


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    """The machine and software the numbers were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    packages = ("dagster", "dagster-duckdb", "duckdb", "pyarrow", "requests")
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {name: importlib.metadata.version(name) for name in packages},
    }


def org_shape(org: dict[str, Any]) -> dict[str, Any]:
    """Depth and membership distribution of a generated org."""
    parent = {d["id"]: d["parentid"] for d in org["departments"]}
    depth_cache: dict[int, int] = {}

    def depth(dept_id: int) -> int:
        chain = []
        while dept_id not in depth_cache and dept_id in parent:
            chain.append(dept_id)
            dept_id = parent[dept_id]
        level = depth_cache.get(dept_id, 0)
        for item in reversed(chain):
            level += 1
            depth_cache[item] = level
        return level

    members: Counter[int] = Counter()
    for user in org["users"]:
        members.update(user.get("department") or ())
    sizes = [members.get(d["id"], 0) for d in org["departments"]]
    return {
        "users": len(org["users"]),
        "departments": len(org["departments"]),
        "depth": max(depth(d["id"]) for d in org["departments"]),
        "memberships": sum(sizes),
        "largest_department": max(sizes),
        "median_department": statistics.median(sizes),
        "empty_departments": sum(1 for s in sizes if s == 0),
        "tags": len(org.get("tags", ())),
    }


def floors(departments: int, concurrency: int) -> dict[str, float]:
    """What WeCom itself imposes on a fetch of ``departments`` departments.

    ``user/list`` is one call per department. The limit is a sliding window per API
    (``department/list`` and ``gettoken`` are other APIs), so the k-th ``user/list`` call
    (counting from 0) may start no earlier than floor(k / limit) windows after the first: the
    first ``limit`` calls may go at once, the rest wait for the window to move. With N calls the
    rate limit forces floor((N - 1) / limit) windows of waiting: none for N <= 10,000, so a
    10,000-department org needs no wait at all, and 10,001 departments would cost a full minute.
    The latency floor is three sequential round trips (gettoken, department/list, one batch of
    user/list) plus ceil(N / concurrency) batches of user/list.
    """
    calls = departments
    rate_wait = math.floor((calls - 1) / RATE_LIMIT_PER_MINUTE) * RATE_LIMIT_WINDOW
    latency = LATENCY_MS / 1000
    return {
        "user_list_calls": calls,
        "rate_limit_wait_floor_seconds": rate_wait,
        "sustained_rate_seconds": calls / RATE_LIMIT_PER_MINUTE * RATE_LIMIT_WINDOW,
        "latency_floor_seconds": (2 + math.ceil(calls / concurrency)) * latency,
        "sequential_latency_floor_seconds": (2 + calls) * latency,
    }


def _sync(
    label: str,
    kind: str,
    instance: dagster_run.Instance,
    org_path: Path,
    credentials: tuple[str, str],
    log_path: Path,
) -> dict[str, Any]:
    """One ``--select '*'`` materialization against a fresh sandbox process; measured.

    The token cache is emptied first: a nightly run finds yesterday's token expired (it lives
    2 h), and a token cached from another sandbox process would be refused and retried.
    """
    shutil.rmtree(instance.home / ".wecom", ignore_errors=True)
    with serve(org_path, **_SANDBOX) as sandbox:
        run = dagster_run.materialize(instance, sandbox, *credentials, log_path)
        run["sandbox"]["startup_seconds"] = sandbox.started_seconds
    step, phases = run["step"], run["phases"]
    _log(
        f"{label} {kind} sync: {run['wall_seconds']:.2f}s (cli start {phases['cli_start']:.2f}s, "
        f"step {phases['sync_step']:.2f}s = api {step['api_seconds']:.2f}s, copy "
        f"{step['copy_seconds']:.2f}s, load {step['load_seconds']:.2f}s, history "
        f"{step['history_seconds']:.2f}s, publish {step['publish_seconds']:.2f}s, events "
        f"{step['events_seconds']:.2f}s); peak RSS {run['processes']['cli']['peak_rss_mb']:.0f} "
        f"MB; calls {run['sandbox']['calls']}, gettoken {run['sandbox']['gettoken']}, errcodes "
        f"{run['sandbox']['errcodes']}"
    )
    return run


def bench_size(size: Size, work_dir: Path, reference: bool) -> dict[str, Any]:
    """Generate, serve and sync one org size (first and repeat sync); measure each."""
    size_dir = work_dir / size.label
    size_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    org = generate_org(
        users=size.users, departments=size.departments, seed=SEED, max_depth=size.max_depth
    )
    org_path = size_dir / "org.json"
    save_org(org, org_path)
    shape = org_shape(org)
    credentials = (org["corp_id"], org["corp_secret"])
    del org
    gc.collect()
    _log(f"{size.label}: generated {shape} in {time.monotonic() - started:.1f}s")

    instance = dagster_run.prepare_instance(size_dir)
    runs = {
        kind: _sync(
            size.label, kind, instance, org_path, credentials, size_dir / f"dagster-{kind}.log"
        )
        for kind in SYNC_KINDS
    }
    result: dict[str, Any] = {
        "size": asdict(size),
        "org": shape,
        "floors": floors(shape["departments"], CLIENT_CONCURRENCY),
        "runs": runs,
        "database_mb": round(instance.database.stat().st_size / 1e6, 1),
    }
    if reference:
        with serve(org_path, **_SANDBOX) as sandbox:
            ref = fetch_sequentially(sandbox.url, *credentials)
            ref_stats = sandbox.stats()
        result["reference"] = {**asdict(ref), "sandbox": ref_stats}
        result["speedup"] = {kind: ref.seconds / run["wall_seconds"] for kind, run in runs.items()}
        _log(
            f"{size.label}: sequential fetch {ref.seconds:.2f}s -> speedup "
            + ", ".join(f"{kind} {value:.2f}x" for kind, value in result["speedup"].items())
        )
    return result


def sweep(work_dir: Path, concurrency: tuple[int, ...]) -> dict[str, Any]:
    """The users fetch alone at several concurrency settings, on the sweep size's org."""
    org_path = work_dir / SWEEP_SIZE / "org.json"
    if not org_path.exists():
        size = SIZES[SWEEP_SIZE]
        org_path.parent.mkdir(parents=True, exist_ok=True)
        save_org(
            generate_org(size.users, size.departments, seed=SEED, max_depth=size.max_depth),
            org_path,
        )
    points = []
    for value in concurrency:
        point = fetch_point(
            org_path,
            value,
            latency_ms=LATENCY_MS,
            rate_limit_per_minute=RATE_LIMIT_PER_MINUTE,
        )
        _log(
            f"sweep {SWEEP_SIZE} max_concurrency={value}: {point['seconds']:.2f}s, "
            f"{point['calls_per_second']:.0f} calls/s, "
            f"{point['client_cpu_ms_per_call']:.2f} ms CPU per call"
        )
        points.append(point)
    return {"size": SWEEP_SIZE, "points": points}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the sequential recipe (faster)"
    )
    parser.add_argument(
        "--sweep",
        default=",".join(str(value) for value in SWEEP_CONCURRENCY),
        help=f"max_concurrency values for the fetch-only sweep on {SWEEP_SIZE} ('' to skip)",
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="orgs, instances, logs")
    results_file.add_arguments(parser, RESULTS, DOCS)
    args = parser.parse_args(argv)
    if args.report_only:
        # The targets are judged again, so a change to them shows without measuring.
        stored = results_file.read(args.results)
        stored["targets"] = targets.evaluate(stored["sizes"])
        write_report(stored, args.docs)
        return 0
    labels = [label.strip() for label in args.sizes.split(",") if label.strip()]
    unknown = [label for label in labels if label not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")

    started = time.monotonic()
    dagster_floor = floor.measure(args.work_dir)
    _log(
        f"floor: no-op materialize {dagster_floor['noop_materialize_seconds']:.2f}s, import "
        f"dagster {dagster_floor['import_dagster_seconds']:.2f}s, import the code location "
        f"{dagster_floor['import_code_location_seconds']:.2f}s"
    )
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "latency_ms": LATENCY_MS,
            "rate_limit_per_minute": RATE_LIMIT_PER_MINUTE,
            "client_concurrency": CLIENT_CONCURRENCY,
            "seed": SEED,
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "floor": dagster_floor,
        "sizes": [
            bench_size(SIZES[label], args.work_dir, not args.no_reference) for label in labels
        ],
    }
    results["targets"] = targets.evaluate(results["sizes"])
    concurrency = tuple(int(value) for value in args.sweep.split(",") if value.strip())
    if concurrency:
        results["sweep"] = sweep(args.work_dir, concurrency)
    results["total_seconds"] = time.monotonic() - started
    results_file.write(args.results, results)
    _log(f"wrote {args.results}")
    write_report(results, args.docs)
    _log(f"done in {results['total_seconds']:.0f}s")
    return 0


def write_report(results: dict[str, Any], docs_path: str) -> None:
    """Write the Markdown report and, next to it, the SVG plot ('' writes nothing).

    The sections of the other benchmarks (many corps, PostgreSQL) stay as the file has them.
    """
    if not docs_path:
        return
    docs = Path(docs_path)
    docs.parent.mkdir(parents=True, exist_ok=True)
    old = docs.read_text(encoding="utf-8") if docs.exists() else ""
    new = report.markdown(results, plot_name=PLOT.name)
    kept = (many_corps_report.HEADING, postgres_report.HEADING)
    docs.write_text(doc_sections.carry_over(old, new, kept), encoding="utf-8")
    (docs.parent / PLOT.name).write_text(plot.svg(results), encoding="utf-8")
    _log(f"wrote {docs}")


if __name__ == "__main__":
    sys.exit(main())
