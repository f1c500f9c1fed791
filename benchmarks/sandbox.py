"""The sandbox in its own process, as a real WeCom is another machine: served, queried, stopped.

Each measurement gets a fresh sandbox process serving the same org file with the same settings.
WeCom's limit is a sliding 60 s window per API, so two fetches of a 10,000-department org in one
minute would share a window and the second would be throttled; a fresh process is the same
service hours later, with an empty window.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procmon import cpu_seconds


@dataclass
class ServedSandbox:
    """A running sandbox process."""

    url: str
    pid: int
    started_seconds: float

    def stats(self) -> dict[str, Any]:
        """The sandbox's call counts (``GET /sandbox/stats``)."""
        with urllib.request.urlopen(f"{self.url}/sandbox/stats", timeout=30) as response:
            stats: dict[str, Any] = json.load(response)
        stats.pop("issued_tokens", None)
        return stats

    def cpu_seconds(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        return cpu_seconds(self.pid) or 0.0


@contextmanager
def serve(
    org_path: Path, work_dir: Path, *, latency_ms: float, rate_limit_per_minute: int
) -> Iterator[ServedSandbox]:
    """Serve ``org_path`` from a sandbox subprocess until the block ends."""
    port_file = work_dir / f"sandbox-{time.monotonic_ns()}.url"
    started = time.monotonic()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "wecom_assets.sandbox", "serve"),
            *("--org", str(org_path), "--port", "0", "--port-file", str(port_file)),
            *("--latency-ms", str(latency_ms)),
            *("--rate-limit-per-minute", str(rate_limit_per_minute)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start serving {org_path}")
            time.sleep(0.05)
        yield ServedSandbox(
            url=port_file.read_text().strip(),
            pid=process.pid,
            started_seconds=time.monotonic() - started,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        port_file.unlink(missing_ok=True)
