"""Client calls per second: the users fetch alone, to see the client's per-call cost.

``python -m benchmarks.client_rate`` generates the 20k org (2,000 departments), serves it from a
fresh sandbox process and fetches every department's members with the product client and the
Arrow conversion, as the sync step does, then prints ``user/list`` calls per second and the CPU
the client and the sandbox spent per call. ``--latency-ms 0`` shows the CPU-bound ceiling; run
it under ``py-spy record`` to see where the client's time goes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.run import LATENCY_MS, RATE_LIMIT_PER_MINUTE, SEED, SIZES, WORK_DIR
from benchmarks.sweep import fetch_point
from wecom_assets.sandbox.org import generate_org, save_org


def _org_file(label: str) -> Path:
    """The generated org of size ``label``, written once and reused."""
    path = WORK_DIR / "client_rate" / label / "org.json"
    if not path.exists():
        size = SIZES[label]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_org(
            generate_org(size.users, size.departments, seed=SEED, max_depth=size.max_depth), path
        )
    return path


def main(argv: list[str] | None = None) -> int:
    """Measure and print the client's rate."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="20k")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--concurrency", type=int, default=24)
    args = parser.parse_args(argv)
    org_path = _org_file(args.size)
    point = fetch_point(
        org_path,
        args.concurrency,
        latency_ms=args.latency_ms,
        rate_limit_per_minute=RATE_LIMIT_PER_MINUTE,
    )
    print(
        f"{args.size} at {args.latency_ms:g} ms, max_concurrency {args.concurrency}: "
        f"{point['user_list_calls']} user/list calls in {point['seconds']:.2f} s = "
        f"{point['calls_per_second']:.0f} calls/s; client CPU {point['client_cpu_ms_per_call']:.2f}"
        f" ms per call, sandbox CPU share {point['sandbox_cpu_share']:.0%}, "
        f"latency floor {point['latency_floor_seconds']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
