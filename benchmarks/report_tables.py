"""The Markdown tables of the benchmark report and the sentences computed from them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# The step's parts that are the sync's own work; the rest of a run's wall time is Dagster's.
WORK_PARTS = (
    "api_seconds",
    "fetch_other_seconds",
    "copy_seconds",
    "load_seconds",
    "history_seconds",
    "publish_seconds",
)
PHASES = (
    ("cli_start", "CLI start"),
    ("run_planned", "run planned"),
    ("run_start_to_step", "resources, log capture"),
    ("sync_step", "the step"),
    ("tag_step", "tag step"),
    ("freshness_step", "freshness-check step"),
    ("run_end", "run end"),
    ("exit", "exit"),
)
STEP_PARTS = (
    ("api_seconds", "API"),
    ("fetch_other_seconds", "fetch, other"),
    ("copy_seconds", "copy of the file"),
    ("load_seconds", "DuckDB load"),
    ("history_seconds", "history"),
    ("publish_seconds", "publish rename"),
    ("events_seconds", "events after publish"),
)


def s(value: float) -> str:
    """Seconds with two decimals below 10 s and one above."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def runs(sizes: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Every (size result, sync kind, run) in order."""
    for result in sizes:
        for kind, run in result["runs"].items():
            yield result, kind, run


def work_seconds(run: dict[str, Any]) -> float:
    """What the sync itself did (API, Arrow, copy, load, history, rename), without Dagster."""
    return sum(run["step"][part] for part in WORK_PARTS)


def results_table(sizes: list[dict[str, Any]]) -> list[str]:
    """One row per sync: wall time against the sequential fetch, and what the step did."""
    lines = [
        "| org | sync | materialize `--select '*'` (wall) | sequential fetch | speedup | API "
        "| copy + DuckDB load + history + rename | Dagster | calls (dept/list + user/list, "
        "gettoken) | tag calls (tag/list + tag/get) | retries / 45009 | peak RSS, CLI process |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result, kind, run in runs(sizes):
        org, step, served = result["org"], run["step"], run["sandbox"]
        reference = result.get("reference")
        sequential = f"{s(reference['seconds'])} s" if reference else "not run"
        speedup = f"{result['speedup'][kind]:.2f}x" if reference else "-"
        storage = sum(
            step[part]
            for part in ("copy_seconds", "load_seconds", "history_seconds", "publish_seconds")
        )
        lines.append(
            f"| {org['users']:,} users / {org['departments']:,} depts | {kind} "
            f"| **{s(run['wall_seconds'])} s** | {sequential} | {speedup} "
            f"| {s(step['api_seconds'])} s | {s(storage)} s "
            f"| {s(run['wall_seconds'] - work_seconds(run))} s "
            f"| {served['calls'].get('department/list', 0)} + "
            f"{served['calls'].get('user/list', 0):,}, {served['gettoken']} "
            f"| {_tag_calls(served['calls'])} "
            f"| {run['retries']} / {served['errcodes'].get('45009', 0)} "
            f"| {run['processes']['cli']['peak_rss_mb']:.0f} MB |"
        )
    return lines


def _tag_calls(calls: dict[str, int]) -> str:
    """``tag/list + tag/get`` calls, or "-" for a run measured before the tag step existed."""
    if "tag/list" not in calls:
        return "-"
    return f"{calls['tag/list']} + {calls.get('tag/get', 0)}"


def phases_table(sizes: list[dict[str, Any]]) -> list[str]:
    """The run's consecutive phases, which add up to its wall time."""
    lines = [
        "| org, sync | " + " | ".join(title for _, title in PHASES) + " | wall |",
        "|---|" + "---|" * (len(PHASES) + 1),
    ]
    for result, kind, run in runs(sizes):
        # Runs measured before the tag step existed have no tag phase.
        cells = [f"{s(run['phases'][key])} s" if key in run["phases"] else "-" for key, _ in PHASES]
        lines.append(
            f"| {result['size']['label']} {kind} | "
            + " | ".join(cells)
            + f" | **{s(run['wall_seconds'])} s** |"
        )
    return lines


def step_table(sizes: list[dict[str, Any]]) -> list[str]:
    """The one step's parts, from its metadata and the log lines around its fetch."""
    lines = [
        "| org, sync | " + " | ".join(title for _, title in STEP_PARTS) + " | step |",
        "|---|" + "---|" * (len(STEP_PARTS) + 1),
    ]
    for result, kind, run in runs(sizes):
        step = run["step"]
        cells = [f"{s(step[key])} s" for key, _ in STEP_PARTS]
        cells[-1] += f" ({run['events']['written_after_publish']} events)"
        lines.append(
            f"| {result['size']['label']} {kind} | "
            + " | ".join(cells)
            + f" | **{s(step['step_seconds'])} s** |"
        )
    return lines


def event_cost(run: dict[str, Any]) -> tuple[int, float]:
    """Events the run wrote and the milliseconds each took, from the two phases that are
    nothing but event writes: the planned events and the events after publishing."""
    planned = sum(
        count for name, count in run["events"]["by_type"].items() if name.endswith("_PLANNED")
    )
    after = run["events"]["written_after_publish"]
    seconds = run["phases"]["run_planned"] + run["step"]["events_seconds"]
    return run["events"]["total"], 1000 * seconds / (planned + after)


def fixed_cost_text(sizes: list[dict[str, Any]]) -> list[str]:
    """Per sync: the sync's own work against Dagster's share, and what that share is made of."""
    lines = []
    for result, kind, run in runs(sizes):
        phases, step = run["phases"], run["step"]
        events, per_event = event_cost(run)
        dagster = run["wall_seconds"] - work_seconds(run)
        lines.append(
            f"- {result['size']['label']} {kind}: the sync's own work (API, Arrow, copy, load, "
            f"history, rename) is {s(work_seconds(run))} s of {s(run['wall_seconds'])} s; "
            f"Dagster's {s(dagster)} s are the CLI start ({s(phases['cli_start'])} s), "
            f"{events} event-log writes at about {per_event:.0f} ms each "
            f"({s(phases['run_planned'])} s planned before the run starts, "
            f"{s(step['events_seconds'])} s after publishing), the freshness-check step "
            f"({s(phases['freshness_step'])} s) and the exit ({s(phases['exit'])} s)."
        )
    return lines


def cost_table(sizes: list[dict[str, Any]]) -> list[str]:
    """Cost per user and per department of the repeat sync, and the marginal cost."""
    lines = [
        "| org | wall per user | wall per department | API per department | "
        "DuckDB load per 1k users | Dagster (fixed) |",
        "|---|---|---|---|---|---|",
    ]
    for result in sizes:
        run, org = result["runs"]["repeat"], result["org"]
        lines.append(
            f"| {org['users']:,} / {org['departments']:,} "
            f"| {1e6 * run['wall_seconds'] / org['users']:,.0f} µs "
            f"| {1e3 * run['wall_seconds'] / org['departments']:.1f} ms "
            f"| {1e3 * run['step']['api_seconds'] / org['departments']:.2f} ms "
            f"| {1e6 * run['step']['load_wecom_users_seconds'] / org['users']:.1f} ms "
            f"| {s(run['wall_seconds'] - work_seconds(run))} s |"
        )
    if len(sizes) >= 2:
        first, last = sizes[-2], sizes[-1]
        extra_users = last["org"]["users"] - first["org"]["users"]
        extra_departments = last["org"]["departments"] - first["org"]["departments"]
        extra_wall = (
            last["runs"]["repeat"]["wall_seconds"] - first["runs"]["repeat"]["wall_seconds"]
        )
        lines += [
            "",
            f"Marginal cost of the repeat sync from {first['size']['label']} to "
            f"{last['size']['label']}: {s(extra_wall)} s for {extra_users:,} more users in "
            f"{extra_departments:,} more departments = {1e6 * extra_wall / extra_users:.0f} µs "
            f"per user, {1e3 * extra_wall / extra_departments:.2f} ms per department.",
        ]
    return lines


def rss_table(sizes: list[dict[str, Any]]) -> list[str]:
    """Peak RSS of the CLI process and of each kind of helper it started."""
    roles = sorted({role for _, _, run in runs(sizes) for role in run["processes"]} - {"cli"})
    lines = [
        "| org, sync | CLI process (runs the step) | " + " | ".join(roles) + " |",
        "|---|" + "---|" * (len(roles) + 1),
    ]
    for result, kind, run in runs(sizes):
        processes = run["processes"]
        cells = [
            f"{processes[role]['peak_rss_mb']:.0f} MB x {processes[role]['count']}"
            if role in processes
            else "-"
            for role in roles
        ]
        lines.append(
            f"| {result['size']['label']} {kind} | {processes['cli']['peak_rss_mb']:.0f} MB | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def sandbox_table(sizes: list[dict[str, Any]]) -> list[str]:
    """The sandbox's load during the first sync of each size."""
    lines = [
        "| org | sandbox CPU, whole run | share of one core during the fetch "
        "| CPU per API call | peak requests in flight | TCP connections |",
        "|---|---|---|---|---|---|",
    ]
    for result in sizes:
        served = result["runs"]["first"]["sandbox"]
        calls = sum(served["calls"].values()) + served["gettoken"]
        share = served.get("cpu_share_during_fetch")
        share_text = f"{100 * share:.0f}%" if share is not None else "-"
        lines.append(
            f"| {result['size']['label']} | {served['cpu_seconds']:.2f} s | {share_text} "
            f"| {1000 * served['cpu_seconds'] / calls:.2f} ms "
            f"| {served['max_in_flight']} | {served['connections']} |"
        )
    return lines


def sandbox_verdict(results: dict[str, Any]) -> list[str]:
    """Whether the sandbox or the client limits the fetch."""
    served = [result["runs"]["first"]["sandbox"] for result in results["sizes"]]
    shares = [entry.get("cpu_share_during_fetch") or 0.0 for entry in served]
    per_call = [
        1000 * entry["cpu_seconds"] / (sum(entry["calls"].values()) + entry["gettoken"])
        for entry in served
    ]
    latency = results["settings"]["latency_ms"]
    text = (
        "The sandbox is one Python process (a `ThreadingHTTPServer`, one thread per keep-alive "
        f"connection). During the fetch it used at most {100 * max(shares):.0f}% of one core, "
        "so it is not the bottleneck. Its own work is "
        f"{min(per_call):.2f}-{max(per_call):.2f} ms of CPU per call, which each round trip "
        f"pays on top of the {latency:.0f} ms added latency, plus a little queueing when "
        "requests collide."
    )
    sweep = results.get("sweep")
    if sweep:
        cpu = [point["client_cpu_ms_per_call"] for point in sweep["points"]]
        best = max(point["calls_per_second"] for point in sweep["points"])
        text += (
            " The client is what saturates: it spends "
            f"{min(cpu):.2f}-{max(cpu):.2f} ms of CPU per `user/list` call (requests, JSON, "
            "parsing the users, the Arrow batches), so one Python process tops out near "
            f"{best:.0f} calls per second on this machine (see the sweep below)."
        )
    return [text]


def sweep_table(sweep: dict[str, Any]) -> list[str]:
    """The users fetch alone at each ``max_concurrency``."""
    lines = [
        "| max_concurrency | users fetch | user/list calls/s | latency floor | "
        "client CPU per call | sandbox CPU share | 45009 | load average before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {point['max_concurrency']} | {s(point['seconds'])} s "
        f"| {point['calls_per_second']:.0f} | {s(point['latency_floor_seconds'])} s "
        f"| {point['client_cpu_ms_per_call']:.2f} ms "
        f"| {100 * point['sandbox_cpu_share']:.0f}% | {point['errcodes'].get('45009', 0)} "
        f"| {point['load_average_before']:.2f} / {point['load_average_after']:.2f} |"
        for point in sweep["points"]
    )
    return lines


def sweep_verdict(sweep: dict[str, Any], default: int) -> list[str]:
    """Where more workers stop helping, against the code location's default."""
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
