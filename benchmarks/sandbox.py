"""The sandbox in its own process, as a real WeCom is another machine: served, queried, stopped.

Each measurement gets a fresh sandbox process serving the same org file with the same settings.
WeCom's limit is a sliding 60 s window per API, so two fetches of a 10,000-department org in one
minute would share a window and the second would be throttled; a fresh process is the same
service hours later, with an empty window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procmon import cpu_seconds
from wecom_assets.sandbox.process import SandboxProcess, serve_in_subprocess


@dataclass(frozen=True)
class ServedSandbox:
    """A running sandbox process and how long it took to start serving."""

    process: SandboxProcess
    started_seconds: float

    @property
    def url(self) -> str:
        """Base URL of the sandbox."""
        return self.process.url

    @property
    def pid(self) -> int:
        """Process id, for CPU and memory sampling."""
        return self.process.pid

    def stats(self) -> dict[str, Any]:
        """The sandbox's call counts, without the issued tokens a report has no use for."""
        stats = self.process.stats()
        stats.pop("issued_tokens", None)
        return stats

    def cpu_seconds(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        return cpu_seconds(self.pid) or 0.0


@contextmanager
def serve(
    org_path: Path, *, latency_ms: float, rate_limit_per_minute: int
) -> Iterator[ServedSandbox]:
    """Serve ``org_path`` from a sandbox subprocess until the block ends."""
    started = time.monotonic()
    options = (
        "--latency-ms",
        str(latency_ms),
        "--rate-limit-per-minute",
        str(rate_limit_per_minute),
    )
    with serve_in_subprocess(org_path, *options) as process:
        yield ServedSandbox(process=process, started_seconds=time.monotonic() - started)
