"""Thread-pool sizing: the users fetch alone at several ``max_concurrency`` values.

Each point fetches every department's members with the product client and converts them to
the Arrow snapshot, exactly as the ``wecom_users`` step does, in this process and against a
fresh sandbox process (a fresh rate-limit window). It answers whether the default concurrency
suits the latency, and where the client stops being latency-bound and becomes CPU-bound.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.sandbox import serve
from wecom_assets.warehouse import snapshots
from wecom_assets.wecom import ClientConfig, WeComClient


def fetch_point(
    org_path: Path,
    concurrency: int,
    *,
    latency_ms: float,
    rate_limit_per_minute: int,
) -> dict[str, Any]:
    """Fetch all users of ``org_path`` with ``concurrency`` workers; time it."""
    org = json.loads(org_path.read_text(encoding="utf-8"))
    corp_id, corp_secret = org["corp_id"], org["corp_secret"]
    department_ids = [department["id"] for department in org["departments"]]
    del org
    with serve(
        org_path, latency_ms=latency_ms, rate_limit_per_minute=rate_limit_per_minute
    ) as sandbox:
        config = ClientConfig(
            corp_id=corp_id,
            corp_secret=corp_secret,
            base_url=sandbox.url,
            max_concurrency=concurrency,
        )
        with WeComClient(config) as client:
            client.list_departments()
            load_before = os.getloadavg()[0]
            sandbox_cpu = sandbox.cpu_seconds()
            started, cpu_started = time.monotonic(), time.process_time()
            table = snapshots.users_table(
                client.iter_users(department_ids), corp_id, datetime.now(UTC)
            )
            seconds = time.monotonic() - started
            cpu = time.process_time() - cpu_started
            stats = client.stats
        sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu
        served = sandbox.stats()
    calls = stats.calls.get("user/list", 0)
    return {
        "max_concurrency": concurrency,
        "seconds": seconds,
        "users": table.num_rows,
        "user_list_calls": calls,
        "calls_per_second": calls / seconds,
        "client_cpu_seconds": cpu,
        "client_cpu_ms_per_call": 1000 * cpu / calls,
        "sandbox_cpu_seconds": sandbox_cpu,
        "sandbox_cpu_share": sandbox_cpu / seconds,
        "latency_floor_seconds": latency_ms / 1000 * -(-calls // concurrency),
        "retries": stats.retries,
        "errcodes": {str(code): count for code, count in served["errcodes"].items()},
        "max_in_flight": served["max_in_flight"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
