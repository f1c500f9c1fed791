"""Why a speed target failed, from the run's own numbers: which part of the wall time is over.

A target's verdict alone does not say whether the sync, the API or Dagster missed it; each missed
speed target gets one line that sets its time budget against the measured parts of the slower
sync of its size.
"""

from __future__ import annotations

from typing import Any

from benchmarks.report_tables import s, work_seconds
from benchmarks.targets import FLOOR_SLACK_SECONDS, MIN_SPEEDUP


def _slower(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return max(result["runs"].items(), key=lambda item: item[1]["wall_seconds"])


def _speedup_line(label: str, result: dict[str, Any], noop: float) -> str:
    budget = result["reference"]["seconds"] / MIN_SPEEDUP[label]
    kind, run = _slower(result)
    dagster = run["wall_seconds"] - work_seconds(run)
    work = work_seconds(run)
    verdict = (
        "Dagster's share alone is over the budget"
        if dagster > budget
        else "Dagster's share and the sync's own work together are over the budget"
    )
    return (
        f"- **{label}**: the target allows {s(budget)} s (the sequential fetch's "
        f"{s(result['reference']['seconds'])} s / {MIN_SPEEDUP[label]:g}). The {kind} sync took "
        f"{s(run['wall_seconds'])} s: the sync's own work {s(work)} s (API "
        f"{s(run['step']['api_seconds'])} s), Dagster {s(dagster)} s. {verdict}; a "
        f"materialization of one asset that does nothing took {s(noop)} s on its own "
        f"({100 * noop / budget:.0f}% of the budget)."
    )


def _floor_line(result: dict[str, Any], sweep: dict[str, Any] | None) -> str:
    budget = result["floors"]["rate_limit_wait_floor_seconds"] + FLOOR_SLACK_SECONDS
    kind, run = _slower(result)
    api = run["step"]["api_seconds"]
    calls = result["floors"]["user_list_calls"]
    dagster = run["wall_seconds"] - work_seconds(run)
    cpu = ""
    if sweep:
        per_call = min(point["client_cpu_ms_per_call"] for point in sweep["points"])
        cpu = (
            f" The client spends at least {per_call:.2f} ms of CPU per call (the sweep), so "
            f"one Python process cannot exceed about {1000 / per_call:.0f} calls/s here."
        )
    return (
        f"- **100k**: the target allows {s(budget)} s. The {kind} sync took "
        f"{s(run['wall_seconds'])} s; its fetch alone took {s(api)} s for {calls:,} "
        f"`user/list` calls ({calls / api:.0f} calls/s) against a latency floor of "
        f"{s(result['floors']['latency_floor_seconds'])} s: the fetch is CPU-bound, not "
        f"latency- or rate-limit-bound.{cpu} The warehouse work added "
        f"{s(work_seconds(run) - api)} s and Dagster {s(dagster)} s."
    )


def why_not(results: dict[str, Any]) -> list[str]:
    """One line per missed speed target; empty when every speed target held."""
    by_label = {result["size"]["label"]: result for result in results["sizes"]}
    checks = results["targets"]
    noop = results["floor"]["noop_materialize_seconds"]
    lines = []
    for label in ("20k", "1k"):
        check = checks.get(f"speedup_{label}")
        if check is not None and not check["holds"]:
            lines.append(_speedup_line(label, by_label[label], noop))
    check = checks.get("floor_100k")
    if check is not None and not check["holds"]:
        lines.append(_floor_line(by_label["100k"], results.get("sweep")))
    if not lines:
        return []
    return ["### Why the speed targets that fail do", "", *lines]
