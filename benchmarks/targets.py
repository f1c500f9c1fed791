"""The speed targets a benchmark run is judged by, and whether each one held.

Issue 12 (one sync, one snapshot) sets the first four: the whole ``--select '*'`` materialization
against the sequential fetch at 20k and 1k users, the 100k org near the rate-limit floor, and
every process's peak RSS. The rest were set by the earlier performance work and guard against
regressions: the API calls a sync makes, the users load at 100k and linear growth. Every sync of
a size is judged (the first into an empty file and the repeat onto yesterday's file), so a target
holds only if it holds for both.
"""

from __future__ import annotations

from typing import Any

MIN_SPEEDUP = {"20k": 6.0, "1k": 0.8}
FLOOR_SLACK_SECONDS = 20.0
MAX_RSS_MB = 500.0
MAX_USERS_LOAD_SECONDS = 3.0
# Linear growth: the API time per department at 100k may exceed the one at 20k by this much.
MAX_PER_DEPARTMENT_GROWTH = 1.25

TITLES = {
    "speedup_20k": "20k users: `--select '*'` >= 6x faster than the sequential fetch",
    "speedup_1k": "1k users: `--select '*'` >= 0.8x the sequential fetch's speed",
    "floor_100k": "100k users: done within the rate-limit floor + 20 s",
    "peak_rss": "Peak RSS of every process < 500 MB (the CLI runs the step)",
    "api_calls": "1 department/list + 1 user/list per department, 1 tag/list + 1 tag/get per "
    "tag, <= 1 gettoken, 0 retries, no 45009",
    "users_load_100k": "100k users: DuckDB load of wecom_users < 3 s",
    "linear_cost": "Cost grows linearly (API time per department, 20k vs 100k)",
}


def _check(holds: bool, measured: str) -> dict[str, Any]:
    return {"holds": holds, "measured": measured}


def _per_sync(result: dict[str, Any], value: str) -> str:
    """``first 1.2 s, repeat 1.3 s``-style text of one number per sync."""
    return ", ".join(f"{kind} {value.format(**run)}" for kind, run in result["runs"].items())


def _speedup(label: str, result: dict[str, Any]) -> dict[str, Any]:
    speedups = result["speedup"]
    walls = ", ".join(
        f"{kind} sync {run['wall_seconds']:.2f} s ({speedups[kind]:.2f}x)"
        for kind, run in result["runs"].items()
    )
    return _check(
        min(speedups.values()) >= MIN_SPEEDUP[label],
        f"{walls} vs sequential fetch {result['reference']['seconds']:.2f} s "
        f"(target >= {MIN_SPEEDUP[label]}x)",
    )


def _api_calls(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    notes, holds = [], True
    for result in sizes:
        for kind, run in result["runs"].items():
            served = run["sandbox"]
            calls = served["calls"]
            rate_limited = served["errcodes"].get("45009", 0) + run["client_errcodes"].get(
                "45009", 0
            )
            holds = holds and (
                calls.get("department/list") == 1
                and calls.get("user/list") == result["org"]["departments"]
                and served["gettoken"] <= 1
                and run["retries"] == 0
                and rate_limited == 0
                and calls.get("tag/list", 0) == 1
                and calls.get("tag/get", 0) == result["org"]["tags"]
                and set(calls) == {"department/list", "user/list", "tag/list", "tag/get"}
            )
            notes.append(
                f"{result['size']['label']} {kind}: {calls.get('department/list', 0)} + "
                f"{calls.get('user/list', 0)} for {result['org']['departments']} departments, "
                f"{served['gettoken']} gettoken, {calls.get('tag/list', 0)} + "
                f"{calls.get('tag/get', 0)} tag calls for {result['org']['tags']} tags, "
                f"{run['retries']} retries, "
                f"{rate_limited} x 45009"
            )
    return _check(holds, "; ".join(notes))


def _peak_rss(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    peaks = [
        (group["peak_rss_mb"], f"{result['size']['label']} {kind} sync, {role}")
        for result in sizes
        for kind, run in result["runs"].items()
        for role, group in run["processes"].items()
    ]
    largest, where = max(peaks)
    return _check(
        all(peak < MAX_RSS_MB for peak, _ in peaks),
        f"largest {largest:.0f} MB ({where}; target < {MAX_RSS_MB:.0f} MB)",
    )


def _linear_cost(medium: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    def per_department(result: dict[str, Any]) -> float:
        api = max(run["step"]["api_seconds"] for run in result["runs"].values())
        return float(api / result["org"]["departments"])

    growth = per_department(large) / per_department(medium)
    return _check(
        growth <= MAX_PER_DEPARTMENT_GROWTH,
        f"API time per department {1000 * per_department(medium):.2f} ms at 20k, "
        f"{1000 * per_department(large):.2f} ms at 100k (x{growth:.2f}; "
        f"target <= x{MAX_PER_DEPARTMENT_GROWTH}; slower sync of each size)",
    )


def evaluate(sizes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each target whose sizes were measured: whether it holds, and the numbers behind it."""
    by_label = {result["size"]["label"]: result for result in sizes}
    checks: dict[str, dict[str, Any]] = {}
    for label in ("20k", "1k"):
        result = by_label.get(label)
        if result is not None and "reference" in result:
            checks[f"speedup_{label}"] = _speedup(label, result)
    large = by_label.get("100k")
    if large is not None:
        floor = large["floors"]["rate_limit_wait_floor_seconds"]
        slowest = max(run["wall_seconds"] for run in large["runs"].values())
        checks["floor_100k"] = _check(
            slowest <= floor + FLOOR_SLACK_SECONDS,
            f"{_per_sync(large, '{wall_seconds:.1f} s')}; rate-limit floor {floor:.0f} s + "
            f"{FLOOR_SLACK_SECONDS:.0f} s = {floor + FLOOR_SLACK_SECONDS:.0f} s",
        )
    checks["peak_rss"] = _peak_rss(sizes)
    checks["api_calls"] = _api_calls(sizes)
    if large is not None:
        load = max(run["step"]["load_wecom_users_seconds"] for run in large["runs"].values())
        checks["users_load_100k"] = _check(
            load < MAX_USERS_LOAD_SECONDS,
            f"{load:.2f} s, slower sync (target < {MAX_USERS_LOAD_SECONDS:.0f} s)",
        )
    medium = by_label.get("20k")
    if medium is not None and large is not None:
        checks["linear_cost"] = _linear_cost(medium, large)
    return checks
