"""The Markdown report and SVG plot of a benchmark run, written from ``results.json`` data."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

STEP_ORDER = ("wecom_departments", "wecom_users", "dept_membership", "wecom_freshness_checks")
TARGET_TITLES = {
    "speedup_20k": "20k users: materialization >= 4x faster than the sequential fetch",
    "api_calls": "1 department/list + 1 user/list per department, <= 1 gettoken, 0 retries, "
    "no 45009",
    "floor_100k": "100k users: done within the rate-limit floor + 30 s",
    "users_load_100k": "100k users: DuckDB load of wecom_users < 3 s",
    "step_rss_100k": "100k users: peak RSS of every step < 500 MB",
    "linear_cost": "Cost grows linearly (API time per department, 20k vs 100k)",
}


def _s(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _machine(results: dict[str, Any]) -> str:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    return (
        f"{machine['cores']} cores ({machine['cpu_model'] or 'unknown CPU'}), "
        f"{machine['memory_gb']} GB RAM, {machine['os']}, Python {machine['python']}; "
        f"{packages}"
    )


def _results_table(sizes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| org | materialize (wall) | sequential fetch | speedup | API | DuckDB load | "
        "other in assets | Dagster overhead | calls (dept/list + user/list, gettoken) | "
        "retries / 45009 | peak RSS, largest step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in sizes:
        run, org = result["dagster"], result["org"]
        served = run["sandbox"]
        reference = result.get("reference")
        peaks = [step["peak_rss_mb"] or 0 for step in run["steps"].values()]
        rate_limited = served["errcodes"].get("45009", 0)
        sequential = f"{_s(reference['seconds'])} s" if reference else "not run"
        speedup = f"{result['speedup_vs_reference_fetch']:.1f}x" if reference else "-"
        lines.append(
            f"| {org['users']:,} users / {org['departments']:,} depts "
            f"| **{_s(run['wall_seconds'])} s** "
            f"| {sequential} | {speedup} "
            f"| {_s(run['api_seconds'])} s | {_s(run['load_seconds'])} s "
            f"| {_s(run['other_in_assets_seconds'])} s | {_s(run['dagster_overhead_seconds'])} s "
            f"| {served['calls'].get('department/list', 0)} + "
            f"{served['calls'].get('user/list', 0):,}, {served['gettoken']} "
            f"| {run['retries']} / {rate_limited} | {max(peaks):.0f} MB |"
        )
    return lines


def _cost_table(sizes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| org | wall per user | wall per department | API per department | "
        "DuckDB load per 1k users | Dagster overhead (fixed) |",
        "|---|---|---|---|---|---|",
    ]
    for result in sizes:
        run, org = result["dagster"], result["org"]
        users_load = run["steps"]["wecom_users"]["load_seconds"]
        lines.append(
            f"| {org['users']:,} / {org['departments']:,} "
            f"| {1e6 * run['wall_seconds'] / org['users']:,.0f} µs "
            f"| {1e3 * run['wall_seconds'] / org['departments']:.1f} ms "
            f"| {1e3 * run['api_seconds'] / org['departments']:.2f} ms "
            f"| {1e3 * users_load / org['users'] * 1000:.1f} ms "
            f"| {_s(run['dagster_overhead_seconds'])} s |"
        )
    if len(sizes) >= 2:
        first, last = sizes[-2], sizes[-1]
        extra_users = last["org"]["users"] - first["org"]["users"]
        extra_departments = last["org"]["departments"] - first["org"]["departments"]
        extra_wall = last["dagster"]["wall_seconds"] - first["dagster"]["wall_seconds"]
        lines += [
            "",
            f"Marginal cost from {first['size']['label']} to {last['size']['label']}: "
            f"{_s(extra_wall)} s for {extra_users:,} more users in {extra_departments:,} more "
            f"departments = {1e6 * extra_wall / extra_users:.0f} µs per user, "
            f"{1e3 * extra_wall / extra_departments:.2f} ms per department.",
        ]
    return lines


def _breakdown_table(sizes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| org | CLI start to RUN_START | step start-ups | asset bodies (API + load + other) "
        "| freshness-check step | RUN_SUCCESS to exit | load average before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in sizes:
        run = result["dagster"]
        steps = run["steps"]
        startups = " + ".join(
            f"{steps[name]['startup_seconds']:.2f}" for name in STEP_ORDER if name in steps
        )
        bodies = sum(steps[name]["duration_seconds"] for name in STEP_ORDER[:3] if name in steps)
        freshness = steps.get("wecom_freshness_checks")
        freshness_text = f"{freshness['step_seconds']:.2f} s" if freshness else "-"
        lines.append(
            f"| {result['size']['label']} | {run['cli_to_run_start_seconds']:.2f} s "
            f"| {startups} s | {_s(bodies)} s | {freshness_text} "
            f"| {run['run_success_to_exit_seconds']:.2f} s "
            f"| {run['load_average_before'][0]:.2f} / {run['load_average_after'][0]:.2f} |"
        )
    return lines


def _rss_table(sizes: list[dict[str, Any]]) -> list[str]:
    names = [name for name in STEP_ORDER if any(name in r["dagster"]["steps"] for r in sizes)]
    lines = [
        "| org | " + " | ".join(names) + " | CLI process | forkserver |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for result in sizes:
        run = result["dagster"]
        cells = []
        for name in names:
            step = run["steps"].get(name)
            cells.append(f"{step['peak_rss_mb']:.0f} MB" if step and step["peak_rss_mb"] else "-")
        others = run["other_processes"]
        cells += [
            f"{others[role]['peak_rss_mb']:.0f} MB" if role in others else "-"
            for role in ("cli", "forkserver")
        ]
        lines.append(f"| {result['size']['label']} | " + " | ".join(cells) + " |")
    return lines


def _sandbox_table(sizes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| org | sandbox CPU, whole run | share of one core during the users fetch "
        "| CPU per API call | peak requests in flight | TCP connections |",
        "|---|---|---|---|---|---|",
    ]
    for result in sizes:
        run = result["dagster"]
        served = run["sandbox"]
        calls = sum(served["calls"].values()) + served["gettoken"]
        share = run["steps"]["wecom_users"].get("sandbox_cpu_share")
        share_text = f"{100 * share:.0f}%" if share is not None else "-"
        lines.append(
            f"| {result['size']['label']} | {served['cpu_seconds']:.2f} s | {share_text} "
            f"| {1000 * served['cpu_seconds'] / calls:.2f} ms "
            f"| {served['max_in_flight']} | {served['connections']} |"
        )
    return lines


def _sweep_table(sweep: dict[str, Any]) -> list[str]:
    lines = [
        "| max_concurrency | users fetch | user/list calls/s | latency floor | "
        "client CPU per call | sandbox CPU share | 45009 | load average before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {point['max_concurrency']} | {_s(point['seconds'])} s "
        f"| {point['calls_per_second']:.0f} | {_s(point['latency_floor_seconds'])} s "
        f"| {point['client_cpu_ms_per_call']:.2f} ms "
        f"| {100 * point['sandbox_cpu_share']:.0f}% | {point['errcodes'].get('45009', 0)} "
        f"| {point['load_average_before']:.2f} / {point['load_average_after']:.2f} |"
        for point in sweep["points"]
    )
    return lines


def _sandbox_verdict(results: dict[str, Any]) -> list[str]:
    sizes = results["sizes"]
    shares = [r["dagster"]["steps"]["wecom_users"].get("sandbox_cpu_share") or 0.0 for r in sizes]
    per_call = [
        1000
        * r["dagster"]["sandbox"]["cpu_seconds"]
        / (sum(r["dagster"]["sandbox"]["calls"].values()) + r["dagster"]["sandbox"]["gettoken"])
        for r in sizes
    ]
    latency = results["settings"]["latency_ms"]
    text = (
        "The sandbox is one Python process (a `ThreadingHTTPServer`, one thread per keep-alive "
        f"connection). During the users fetch it used at most {100 * max(shares):.0f}% of one "
        "core, so it is not the bottleneck: it could serve several times the rate the client "
        f"asked for. Its own work is {min(per_call):.2f}-{max(per_call):.2f} ms of CPU per "
        f"call, which each round trip pays on top of the {latency:.0f} ms added latency "
        f"(about {100 * max(per_call) / latency:.0f}% of it), plus a little queueing when "
        "requests collide."
    )
    sweep = results.get("sweep")
    if sweep:
        cpu = [point["client_cpu_ms_per_call"] for point in sweep["points"]]
        best = max(point["calls_per_second"] for point in sweep["points"])
        text += (
            " The client is what saturates: it spends "
            f"{min(cpu):.2f}-{max(cpu):.2f} ms of CPU per `user/list` call (requests, JSON, "
            f"parsing the users, the Arrow batches), so one Python process tops out near "
            f"{best:.0f} calls per second on this machine (see the sweep below)."
        )
    return [text]


def _sweep_verdict(sweep: dict[str, Any], default: int) -> list[str]:
    points = sweep["points"]
    best = max(point["calls_per_second"] for point in points)
    knee = min(
        (point for point in points if point["calls_per_second"] >= 0.95 * best),
        key=lambda point: point["max_concurrency"],
    )
    return [
        "With 20 ms round trips the fetch is latency-bound while max_concurrency / round trip "
        f"is below what the client's CPU allows (about {best:.0f} calls/s here); from "
        f"max_concurrency {knee['max_concurrency']} on, more workers add less than 5%. The "
        f"code location's default is {default}. Slower links (WeCom reached from outside "
        "China, proxies) move the knee up; raise `max_concurrency` there. WeCom's per-minute "
        "limit is kept by the client's limiter whatever the setting."
    ]


def markdown(results: dict[str, Any], plot_name: str) -> str:
    """The benchmark report as Markdown (for ``docs/benchmarks.md`` and the README)."""
    settings = results["settings"]
    sizes = results["sizes"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['started_at']} with `make bench` (`python -m benchmarks.run`, "
        f"{results['total_seconds'] / 60:.1f} minutes) on: {_machine(results)}.",
        "",
        "Each org is generated (deep, uneven trees; heavy-tailed department sizes) and served by "
        f"the bundled sandbox in its own process with {settings['latency_ms']:.0f} ms added "
        f"latency per call and WeCom's published limit of "
        f"{settings['rate_limit_per_minute']:,} calls per minute per API (sliding window, "
        "answering 45009). The three assets are materialized with the real CLI "
        "(`dagster asset materialize -m wecom_assets.definitions --select "
        "wecom_departments,wecom_users,dept_membership`) in a fresh, migrated `DAGSTER_HOME`, "
        f"with the code location's defaults (forkserver executor, max_concurrency "
        f"{settings['client_concurrency']}). The baseline is the plain sequential recipe "
        "(`gettoken`, `department/list`, then `user/list` per department one after another, "
        "`requests` with one keep-alive session) fetching the same org; it stores nothing, so "
        "the comparison is a full materialization against a fetch alone. Each measurement gets "
        "a fresh sandbox process serving the same org file, so none inherits another's "
        "rate-limit window.",
        "",
        "## Results",
        "",
        *_results_table(sizes),
        "",
        "API = `wecom/api_seconds` of the assets (wall time with at least one call in flight); "
        "DuckDB load = `duckdb/load_seconds` (bulk insert, rules and atomic swap of each "
        "table); other = the rest of the asset bodies (`duration_seconds` minus both: reading "
        "department ids, Arrow conversion not overlapped with the fetch); Dagster overhead = "
        "wall time minus the asset bodies (CLI start, step processes, event log, the "
        "freshness-check step). Read from the materialization metadata in the instance's event "
        "log after each run. Calls, retries and 45009 answers are the sandbox's own counts.",
        "",
        f"![Wall time against org size]({plot_name})",
        "",
        "## Targets",
        "",
        "| target | holds | measured |",
        "|---|---|---|",
    ]
    for key, check in results["targets"].items():
        verdict = "yes" if check["holds"] else "**no**"
        lines.append(f"| {TARGET_TITLES.get(key, key)} | {verdict} | {check['measured']} |")
    lines += [
        "",
        "### What the rate-limit floor is",
        "",
        "WeCom counts calls per API in a sliding 60 s window: 10,000 `user/list` calls and, "
        "separately, 10,000 `department/list` and `gettoken` calls. A sync makes one "
        "`department/list`, at most one `gettoken` and one `user/list` per department, so only "
        "`user/list` can meet the limit. A sliding window lets the first 10,000 calls go at "
        "once; call k (counting from 0) can start no earlier than floor(k / 10,000) windows "
        "after the first. The rate-limit floor of N departments is therefore "
        "floor((N - 1) / 10,000) x 60 s: **0 s for the 10,000-department org**, which needs "
        "exactly one window's worth of calls, and a full minute for 10,001 departments. The "
        "often-quoted 60 s (10,000 calls at the sustained rate of 166/s) is what a smooth "
        "per-second limiter would impose; the client's sliding-window limiter does not, so the "
        "100k target is measured against 0 s + 30 s. What remains is latency and CPU: "
        "10,000 calls x 20 ms / max_concurrency, plus Dagster's fixed start-up. A second sync "
        "within the same minute would find the window full and wait for it to move; the "
        "benchmark gives every run a fresh window, as a nightly schedule does.",
        "",
        "| org | user/list calls | rate-limit floor | sustained-rate time | latency floor "
        "at max_concurrency | latency floor, sequential |",
        "|---|---|---|---|---|---|",
    ]
    for result in sizes:
        floors = result["floors"]
        lines.append(
            f"| {result['size']['label']} | {floors['user_list_calls']:,} "
            f"| {floors['rate_limit_wait_floor_seconds']:.0f} s "
            f"| {_s(floors['sustained_rate_seconds'])} s "
            f"| {_s(floors['latency_floor_seconds'])} s "
            f"| {_s(floors['sequential_latency_floor_seconds'])} s |"
        )
    lines += [
        "",
        "## Cost per user and per department",
        "",
        *_cost_table(sizes),
        "",
        "The fixed Dagster overhead dominates small orgs; above it the cost is the `user/list` "
        "calls (one per department, in parallel) and a bulk load that grows with the users.",
        "",
        "## Where the time goes",
        "",
        *_breakdown_table(sizes),
        "",
        "Step start-ups are from `STEP_WORKER_STARTING` to `STEP_START` in the event log, in "
        "the order departments, users, membership, freshness check; the first includes starting "
        "the forkserver, which preloads the code location. `dagster asset materialize` also "
        "runs the `wecom_freshness_checks` step, because those checks target the selected "
        "assets; the `wecom_sync` job that the nightly schedule runs leaves it out.",
        "",
        "## Peak RSS per process",
        "",
        *_rss_table(sizes),
        "",
        "Peak resident set (`VmHWM`) of every process the CLI started, polled from /proc every "
        "20 ms; step processes are identified by the pid in their `STEP_WORKER_STARTED` event. "
        "A step starts near 90 MB (pages shared with the forkserver) and grows to about 170 MB "
        "of Dagster and library state before it does any work. Users stream from the API into "
        "Arrow record batches, so the users step holds the Arrow snapshot (about 0.55 KB per "
        "user) rather than Python records (about 1.8 KB per user); its peak is the DuckDB "
        "insert and commit of that snapshot. Beyond the Arrow data, the users step at 100k "
        "holds about 80 MB that glibc's per-thread malloc arenas keep after the worker threads "
        "parsed the largest departments' answers, and DuckDB needs 140-180 MB to build and "
        "commit the new table. Where memory is tight, `MALLOC_ARENA_MAX=2` in the environment "
        "of the Dagster processes cut the fetch's share by about 40 MB in a standalone "
        "measurement.",
        "",
        "## Is the sandbox the bottleneck?",
        "",
        *_sandbox_table(sizes),
        "",
        *_sandbox_verdict(results),
    ]
    sweep = results.get("sweep")
    if sweep:
        lines += [
            "",
            "## Thread-pool sizing",
            "",
            f"The users fetch alone (product client, Arrow conversion included) on the "
            f"{sweep['size']} org, each point against a fresh sandbox:",
            "",
            *_sweep_table(sweep),
            "",
            *_sweep_verdict(sweep, settings["client_concurrency"]),
        ]
    lines += [
        "",
        "## What keeps it near the floor",
        "",
        "- `user/list` calls run in a bounded thread pool (`max_concurrency`, default 24, "
        "sized from the sweep above) over one pooled keep-alive session; the proxy and CA "
        "settings are read from the environment once per session, not on every request.",
        "- A sliding-window limiter per API allows WeCom's whole per-minute budget as a burst, "
        "so a 10,000-department org never waits; it slows down only when 45009 does arrive.",
        "- One `gettoken` per run: the token is cached in a file that every step process reads.",
        "- Users are merged (case-insensitively, first seen wins) as departments complete and "
        "streamed into Arrow record batches of 2,048 rows; no per-call state outlives its "
        "batch, and merging is one set lookup per user.",
        "- DuckDB loads each snapshot in one vectorised insert from Arrow; the data-quality "
        "rules read the Arrow data through a view instead of a temporary copy.",
        "- The forkserver preloads the code location, so each step process starts in about "
        "0.6 s instead of re-importing Dagster, DuckDB and Arrow.",
        "",
        "## Reproducing",
        "",
        "`make bench` runs all three sizes and the sweep and rewrites `benchmarks/results.json` "
        "and this page; `python -m benchmarks.run --sizes 1k --sweep ''` is a quick check, and "
        "`--report-only` rewrites this page from the JSON. "
        "Other processes on the machine disturb the timings (the load average before and after "
        "each run is in the JSON); run it on an otherwise idle machine.",
        "",
    ]
    return "\n".join(lines)


def svg(results: dict[str, Any]) -> str:
    """Wall time against org size, materialization and sequential fetch, as a standalone SVG."""
    sizes = results["sizes"]
    width, height, left, bottom, top, right = 600, 380, 70, 50, 30, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    max_users = max(r["org"]["users"] for r in sizes)
    max_seconds = max(
        max(r["dagster"]["wall_seconds"], r.get("reference", {}).get("seconds", 0)) for r in sizes
    )
    y_step = next(step for step in (5, 10, 20, 25, 50, 100, 200, 500) if max_seconds / step <= 8)
    y_max = y_step * (int(max_seconds // y_step) + 1)

    def x(users: float) -> float:
        return left + plot_w * users / max_users

    def y(seconds: float) -> float:
        return top + plot_h * (1 - seconds / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Wall time against org size '
        f"({results['settings']['latency_ms']:.0f} ms latency)</text>",
    ]
    for tick in range(0, int(y_max) + 1, y_step):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
            'stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick} s</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>'
    )
    for result in sizes:
        users = result["org"]["users"]
        parts.append(
            f'<text x="{x(users):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
            f"{users // 1000}k</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">users '
        "(departments = users / 10)</text>"
    )
    series = [
        ("dagster asset materialize", "#1f77b4", [r["dagster"]["wall_seconds"] for r in sizes]),
    ]
    if all("reference" in r for r in sizes):
        series.append(
            ("sequential fetch only", "#d62728", [r["reference"]["seconds"] for r in sizes])
        )
    highest = [max(values[i] for _, _, values in series) for i in range(len(sizes))]
    for index, (label, colour, values) in enumerate(series):
        points = " ".join(
            f"{x(r['org']['users']):.1f},{y(v):.1f}" for r, v in zip(sizes, values, strict=True)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for position, (result, value) in enumerate(zip(sizes, values, strict=True)):
            cx, cy = x(result["org"]["users"]), y(value)
            # The higher series is labelled above its points, the lower one below.
            dy = -8 if value >= highest[position] else 16
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}"/>')
            parts.append(
                f'<text x="{cx + 6:.1f}" y="{cy + dy:.1f}" fill="{colour}">{_s(value)} s</text>'
            )
        legend_y = top + 16 + 18 * index
        parts.append(
            f'<line x1="{left + 12}" y1="{legend_y - 4}" x2="{left + 32}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{left + 38}" y="{legend_y}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
