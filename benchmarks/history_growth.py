"""History growth: three syncs of a 20k-user org add only the rows that changed.

Serves a generated org from the in-process sandbox, materializes the three tables and the
history in process with Dagster (as ``wecom_sync`` does), changes the org between syncs the way
people change a real one (joins, leaves, moves, renames, status and leader changes, departments
renamed and re-parented) and reports per sync: versions opened and closed per history table, the
number of rows that really differ (computed here in Python from the org, independently of the
SQL), total history rows, the sync step's time (fetch, tables and history are one step) and the
DuckDB file size. It fails if a sync adds anything but the changed rows.

    .venv/bin/python -m benchmarks.history_growth [--users 20000 --departments 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.sandbox.evolve import OrgEditor, evolve_org
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxServer
from wecom_assets.wecom.models import Department, User

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "history_growth.json"
ASSETS = [build_org_assets()]
TABLES = (
    "wecom_departments_history",
    "wecom_users_history",
    "dept_membership_history",
    "wecom_department_paths_history",
)


def _rows(org: dict[str, Any]) -> dict[str, dict[Any, Any]]:
    """Current-table rows keyed like the history: what a sync of this org writes."""
    users = {u.userid: u for u in (User.from_api(p) for p in org["users"])}
    departments = {d.id: d for d in (Department.from_api(p) for p in org["departments"])}
    membership = {
        (u.userid, dept): (order, leader, dept == u.main_department)
        for u in users.values()
        for dept, order, leader in zip(u.departments, u.orders, u.leader_flags, strict=True)
    }
    return {
        "wecom_users_history": users,
        "wecom_departments_history": departments,
        "dept_membership_history": membership,
    }


def _storage(database: Path) -> dict[str, float]:
    """Used and free space in the DuckDB file, in MB.

    The file grows by more than the history: replacing the three current tables frees their old
    blocks, which DuckDB reuses on the next sync rather than returning to the file system.
    """
    with duckdb.connect(str(database), read_only=True) as conn:
        row = conn.execute(
            "SELECT block_size * used_blocks, block_size * free_blocks FROM pragma_database_size()"
        ).fetchone()
    assert row is not None
    return {"used_mb": round(row[0] / 1e6, 2), "free_mb": round(row[1] / 1e6, 2)}


def _differences(before: dict[Any, Any], after: dict[Any, Any]) -> tuple[int, int]:
    opened = sum(1 for k, v in after.items() if before.get(k) != v)
    closed = sum(1 for k, v in before.items() if after.get(k) != v)
    return opened, closed


def main(argv: list[str] | None = None) -> int:
    """Run the three syncs and print the table; exit 1 if a sync added unchanged rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--departments", type=int, default=2_000)
    parser.add_argument("--changes", type=int, default=100, help="changes of each kind per sync")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    started = time.monotonic()
    org = OrgEditor(generate_org(users=args.users, departments=args.departments, seed=args.seed))
    print(f"generated {args.users} users / {args.departments} departments")
    results: list[dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(org.snapshot()) as server:
        database = Path(tmp) / "wecom.duckdb"
        resources = {
            "wecom": WeComResource(
                corp_id=org.data["corp_id"],
                corp_secret=org.data["corp_secret"],
                base_url=server.url,
                token_cache_dir=str(Path(tmp) / "tokens"),
            ),
            "duckdb": WarehouseResource(database=str(database)),
        }
        previous: dict[str, dict[Any, Any]] = {name: {} for name in TABLES[:3]}
        for sync in (1, 2, 3):
            made = evolve_org(org, rng, args.changes) if sync > 1 else {}
            snapshot = org.snapshot()
            server.replace_org(snapshot)
            began = time.monotonic()
            run = dg.materialize(ASSETS, resources=resources)
            wall = time.monotonic() - began
            assert run.success
            metadata = {
                e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
                for e in (
                    x.step_materialization_data.materialization
                    for x in run.get_asset_materialization_events()
                )
            }
            current = _rows(snapshot)
            row: dict[str, Any] = {
                "sync": sync,
                "changes_made": made,
                "run_seconds": round(wall, 2),
                "sync_step_seconds": metadata["wecom_users_history"]["duration_seconds"],
                "duckdb_file_mb": round(database.stat().st_size / 1e6, 2),
                **_storage(database),
                "tables": {},
            }
            for name in TABLES:
                meta = metadata[name]
                entry = {
                    "opened": meta["history/versions_opened"],
                    "closed": meta["history/versions_closed"],
                    "total_rows": meta["dagster/row_count"],
                }
                if name in current:
                    expected = _differences(previous[name], current[name])
                    entry["changed_rows"] = expected[0]
                    entry["gone_or_changed_rows"] = expected[1]
                    ok &= (entry["opened"], entry["closed"]) == expected
                row["tables"][name] = entry
            row["events"] = metadata["wecom_org_changes"]["history/events_in_this_snapshot"]
            previous = {name: current[name] for name in TABLES[:3]}
            results.append(row)
            _print(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"{'OK' if ok else 'MISMATCH'}: written {OUT} in {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


def _print(row: dict[str, Any]) -> None:
    print(
        f"sync {row['sync']}: run {row['run_seconds']}s, sync step "
        f"{row['sync_step_seconds']}s, file {row['duckdb_file_mb']} MB "
        f"({row['used_mb']} MB used, {row['free_mb']} MB free)"
    )
    for name, t in row["tables"].items():
        expected = (
            f" (rows that differ: {t['changed_rows']} new/changed, "
            f"{t['gone_or_changed_rows']} gone/changed)"
            if "changed_rows" in t
            else ""
        )
        print(
            f"  {name:32} +{t['opened']:>6} opened {t['closed']:>6} closed "
            f"{t['total_rows']:>7} rows{expected}"
        )
    if row["events"]:
        print(f"  events: {row['events']}")


if __name__ == "__main__":
    sys.exit(main())
