"""The section "Many corps" of ``docs/benchmarks.md``, written from the many-corps results.

``benchmarks.run`` writes the rest of that file; this module replaces only its own section (from
its heading to the next ``## `` heading, or appends it at the end), so either benchmark can run
without undoing the other's numbers.
"""

from __future__ import annotations

from typing import Any

from benchmarks import doc_sections
from benchmarks.report_tables import s

HEADING = "## Many corps"
# Process kinds shown in the table, in this order; others are in the results file.
_PROCESS_ROWS = (
    ("run worker", "a run worker (the code server spawns one per run; the sync step runs in it)"),
    ("code server", "the daemon's code server (`dagster api grpc`)"),
    ("daemon", "`dagster-daemon`"),
    ("backfill CLI", "`dagster job backfill` (submits the runs)"),
    ("backfill CLI's code server", "the code server `dagster job backfill` starts"),
    ("sandbox", "a sandbox process (one per corp)"),
)


def splice(document: str, results: dict[str, Any]) -> str:
    """``document`` with its "Many corps" section replaced by one written from ``results``."""
    return doc_sections.replace(document, HEADING, "\n".join(section(results)) + "\n")


def _spread(values: dict[str, float]) -> str:
    return f"{s(values['median'])} s ({s(values['min'])} to {s(values['max'])} s)"


def _calls(sandboxes: list[dict[str, Any]], wrong: int) -> tuple[str, str]:
    """Calls of every good corp (one value when all agree) and of the wrong-secret corp."""
    good = {
        (
            sandbox["calls"].get("department/list", 0),
            sandbox["calls"].get("user/list", 0),
            sandbox["gettoken"],
        )
        for n, sandbox in enumerate(sandboxes)
        if n != wrong
    }
    shown = ", ".join(f"{dept} + {users}, {tokens}" for dept, users, tokens in sorted(good))
    bad = sandboxes[wrong]
    refused = ", ".join(f"{code}: {count}" for code, count in bad["errcodes"].items())
    other = sum(bad["calls"].values())
    return shown, f"{bad['gettoken']} gettoken (errcode {refused}), {other} other calls"


def section(results: dict[str, Any]) -> list[str]:
    """The lines of the section."""
    settings = results["settings"]
    at_once = results["scenarios"]["concurrent"]
    serial = results["scenarios"]["sequential"]
    machine = results["machine"]
    columns = (at_once, serial)
    outcome = at_once["outcome"]
    good_calls, wrong_calls = _calls(at_once["sandboxes"], settings["wrong_secret_corp"])
    lines = [
        HEADING,
        "",
        f"`make bench-corps` (`python -m benchmarks.many_corps`): {settings['corps']} corps of "
        f"{settings['users']:,} users / {settings['departments']} departments, each served by a "
        f"sandbox process of its own ({settings['latency_ms']:.0f} ms per answer, "
        f"{settings['rate_limit_per_minute']:,} calls a minute per API) and listed in one "
        "`WECOM_CORPS_FILE`; one corp's secret is wrong. Each scenario gets a fresh, migrated "
        "`DAGSTER_HOME` with this repository's `dagster.yaml` (the `QueuedRunCoordinator`) and "
        "an empty DuckDB file; `dagster-daemon run` dequeues and launches the runs through its "
        "code server, and all partitions of `wecom_sync` are submitted at once with `dagster "
        "job backfill --partitions ...` (queued runs, as the nightly schedule's one run per "
        "corp). **At once**: `dagster instance concurrency set wecom_duckdb "
        f"{settings['pool_limit']}` and `max_concurrent_runs: "
        f"{at_once['scenario']['max_concurrent_runs']}`; **one after another**: both 1, the "
        f"same {settings['corps']} runs through the same queue. Measured on {machine['cores']} "
        f"cores ({machine['cpu_model'] or 'unknown CPU'}), {machine['memory_gb']} GB RAM, "
        f"Python {machine['python']}, dagster {machine['packages']['dagster']}, "
        f"{results['started_at'][:10]}.",
        "",
        f"| {settings['corps']} corps | at once (pool {settings['pool_limit']}) "
        "| one after another (pool 1) |",
        "|---|---|---|",
        "| wall time, from submitting to the last run's end | "
        + " | ".join(f"**{s(c['wall_seconds'])} s**" for c in columns)
        + " |",
        "| submitting the runs (`dagster job backfill`) | "
        + " | ".join(f"{s(c['submit_seconds'])} s" for c in columns)
        + " |",
        "| runs / sync steps at the same moment (peak) | "
        + " | ".join(f"{c['runs_at_once']} / {c['syncs_at_once']}" for c in columns)
        + " |",
        "| a run, dequeued to its end: median (range) | "
        + " | ".join(_spread(c["run_seconds"]) for c in columns)
        + " |",
        "| the sync step of a run: median (range) | "
        + " | ".join(_spread(c["step_seconds"]) for c in columns)
        + " |",
        "| between two runs' launches: median (range) | "
        + " | ".join(_spread(c["launch_gap_seconds"]) for c in columns)
        + " |",
        "| waiting in the queue: median (range) | "
        + " | ".join(_spread(c["queued_seconds"]) for c in columns)
        + " |",
        "| sum of the runs' times | "
        + " | ".join(f"{s(c['sum_of_run_seconds'])} s" for c in columns)
        + " |",
        "| runs succeeded / failed | "
        + " | ".join(f"{c['outcome']['succeeded']} / {c['outcome']['failed']}" for c in columns)
        + " |",
    ]
    for role, label in _PROCESS_ROWS:
        if all(role in c["processes"] for c in columns):
            lines.append(
                f"| peak RSS of {label} | "
                + " | ".join(f"{c['processes'][role]['peak_rss_mb']:.0f} MB" for c in columns)
                + " |"
            )
    lines += [
        "| CPU of all run workers together | "
        + " | ".join(f"{s(c['processes']['run worker']['cpu_seconds'])} s" for c in columns)
        + " |",
        "",
        f"- **Speed-up at once: {results['speedup']:.1f}x** (the wall time one after another "
        "over the wall time at once). A run is a process that starts Python, imports Dagster "
        "and the code location and writes its events; its sync step is a small part of it. The "
        "daemon looks at the queue every 5 s (`dequeue_interval_seconds`); one after another, "
        "each run waits for its next look, which the sum of the runs' times leaves out.",
        f"- **Every corp's rows are exact.** In both scenarios the {outcome['succeeded']} good "
        "corps' `wecom_departments`, `wecom_users` and `dept_membership` rows equal the org "
        "each sandbox served (the oracle of the test suite, `warehouse_oracle.py`), and no "
        "other corp has rows.",
        f"- **A wrong secret fails alone.** Corp `{outcome['failed_corp']}` fails its own run: "
        f"{outcome['failure']!r}. The other runs, before, beside and after it, succeed; "
        "its sandbox saw "
        f"{wrong_calls}.",
        f"- **Calls.** Each good corp: {good_calls} (department/list + user/list, gettoken): "
        "one `gettoken` per corp however many runs share the machine.",
        "- The peak RSS is the kernel's high-water mark of each process (`VmHWM`), the largest "
        "of its kind; the raw numbers, per run and per sandbox, are in "
        "`benchmarks/results_many_corps.json`.",
    ]
    return lines
