"""The section "PostgreSQL against DuckDB" of ``docs/benchmarks.md``, from ``make bench-postgres``."""

from __future__ import annotations

from typing import Any

from benchmarks import doc_sections
from benchmarks.report_tables import s, work_seconds

HEADING = "## PostgreSQL against DuckDB"
_BACKENDS = (("duckdb", "DuckDB"), ("postgres", "PostgreSQL"))


def splice(document: str, results: dict[str, Any]) -> str:
    """``document`` with its "PostgreSQL against DuckDB" section written from ``results``."""
    return doc_sections.replace(document, HEADING, "\n".join(section(results)) + "\n")


def _columns(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (label, kind, results["runs"][backend][kind])
        for kind in ("first", "repeat")
        for backend, label in _BACKENDS
    ]


def _row(name: str, values: list[str]) -> str:
    return f"| {name} | " + " | ".join(values) + " |"


def _dagster_seconds(run: dict[str, Any]) -> float:
    """The wall time minus the org step's own work and the tag step."""
    return float(run["wall_seconds"] - work_seconds(run) - run["phases"]["tag_step"])


def table(results: dict[str, Any]) -> list[str]:
    """One column per sync, one row per measure."""
    columns = _columns(results)
    lines = [
        "| 20,000 users / 2,000 depts | " + " | ".join(f"{b} {k}" for b, k, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
        _row(
            "total: wall time of the CLI", [f"**{s(r['wall_seconds'])} s**" for _, _, r in columns]
        ),
        _row("API", [f"{s(r['step']['api_seconds'])} s" for _, _, r in columns]),
        _row(
            "load (the three tables' `duckdb/load_seconds`)",
            [f"{s(r['step']['load_seconds'])} s" for _, _, r in columns],
        ),
        _row("history", [f"{s(r['step']['history_seconds'])} s" for _, _, r in columns]),
        _row(
            "publish: copy + rename (DuckDB) / `COMMIT` (PostgreSQL)",
            [
                f"{s(r['step']['copy_seconds'] + r['step']['publish_seconds'])} s"
                for _, _, r in columns
            ],
        ),
        _row(
            "tag step (its own fetch, write and publish, with Dagster's per-step cost)",
            [f"{s(r['phases']['tag_step'])} s" for _, _, r in columns],
        ),
        _row(
            "Dagster's share (the rest: CLI start, events, freshness checks, exit)",
            [f"{s(_dagster_seconds(r))} s" for _, _, r in columns],
        ),
        _row(
            "peak RSS, CLI process",
            [f"{r['processes']['cli']['peak_rss_mb']:.0f} MB" for _, _, r in columns],
        ),
        _row(
            "machine's load average (1 min), before / after",
            [
                f"{r['load_average_before'][0]:.1f} / {r['load_average_after'][0]:.1f}"
                for _, _, r in columns
            ],
        ),
    ]
    return lines


def _rows_text(results: dict[str, Any]) -> str:
    parts = []
    for kind, rows in results["rows"].items():
        tables = ", ".join(f"`{name}` {count:,}" for name, count in rows["tables"].items())
        verdict = "equal" if rows["equal"] else "**not equal**"
        parts.append(
            f"{kind} sync: {verdict} in both backends for all {len(rows['rows'])} assets' "
            f"`dagster/row_count` and the counted tables ({tables})"
        )
    return "Row counts: " + "; ".join(parts) + "."


def _warehouse_seconds(step: dict[str, Any]) -> float:
    return sum(step[part] for part in ("load_seconds", "history_seconds", "copy_seconds"))


def _difference_text(results: dict[str, Any]) -> str:
    parts = []
    for kind in ("first", "repeat"):
        duck, pg = (results["runs"][backend][kind]["step"] for backend in ("duckdb", "postgres"))
        parts.append(
            f"{kind} sync {s(_warehouse_seconds(duck) + duck['publish_seconds'])} s (DuckDB) "
            f"against {s(_warehouse_seconds(pg) + pg['publish_seconds'])} s (PostgreSQL)"
        )
    return (
        "The warehouse's part of the sync step (load + history + publish): "
        + "; ".join(parts)
        + ". The tag step writes to the warehouse too (in PostgreSQL a transaction of its own). "
        "The rest of each run (the fetch, the CLI start, Dagster's events, the freshness checks, "
        "which read only Dagster's event log, and the exit) is the same work in both backends, "
        "so differences there are the machine's noise: compare the load average row."
    )


def section(results: dict[str, Any]) -> list[str]:
    """The lines of the section."""
    machine, settings = results["machine"], results["settings"]
    return [
        HEADING,
        "",
        "`make bench-postgres` (`python -m benchmarks.postgres`): the 20,000-user / "
        "2,000-department org of `make bench` (same generator and seed, the sandbox with 20 ms "
        "per answer and 10,000 calls a minute per API, `dagster asset materialize -m "
        "wecom_assets.definitions --select '*'` in a fresh `DAGSTER_HOME`), synced first into "
        "an empty warehouse and then again onto it, into the DuckDB file and into PostgreSQL "
        f"{settings['postgres_server_version']} on a throwaway cluster the benchmark starts on "
        "the same machine (`fsync` on, otherwise the server's defaults; every statement's "
        "duration logged, from which the sync step's `COMMIT`s are summed). The four syncs "
        "alternate: DuckDB first, PostgreSQL first, DuckDB repeat, PostgreSQL repeat. Measured "
        f"{results['started_at'][:10]} on {machine['cores']} cores, "
        f"{machine['memory_gb']} GB RAM, Python {machine['python']}, dagster "
        f"{machine['packages']['dagster']}, duckdb {machine['packages']['duckdb']}, psycopg "
        f"{machine['packages']['psycopg']}, with other work sharing the machine.",
        "",
        *table(results),
        "",
        "History is everything the step did between the fetch and the publish beyond the "
        "loads and the publish: folding the snapshot into the history tables, their checks and "
        "counts (in PostgreSQL also creating the schema if missing, in DuckDB opening the "
        "copy). The PostgreSQL server's own memory is not in the RSS column (it is not a child "
        "of the CLI).",
        "",
        _difference_text(results),
        "",
        _rows_text(results),
        "",
        "`--report-only` rewrites this section from `benchmarks/results_postgres.json`.",
    ]
