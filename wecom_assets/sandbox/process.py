"""Run the sandbox in a child process, for the demo, end-to-end tests and benchmarks.

A child process keeps the simulator off the GIL of whatever it is measuring or driving, and is the
way a Dagster run (itself several processes) reaches it. The child binds a free port and writes
its URL to a file; this module waits for that file, then talks to the control endpoints.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SandboxControl:
    """The control endpoints of a running sandbox, wherever it runs."""

    url: str

    def stats(self) -> dict[str, Any]:
        """The sandbox's call counts (``GET /sandbox/stats``)."""
        with urllib.request.urlopen(f"{self.url}/sandbox/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.load(answer)
        return stats

    def webhook_messages(self) -> list[dict[str, Any]]:
        """What group robots delivered, oldest first (``GET /sandbox/webhook``)."""
        with urllib.request.urlopen(f"{self.url}/sandbox/webhook", timeout=10) as answer:
            messages: list[dict[str, Any]] = json.load(answer)["messages"]
        return messages

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change behaviour live (``POST /sandbox/config``), e.g. ``fail_after=10``."""
        return self._post("config", changes)

    def replace_org(self, org: dict[str, Any]) -> dict[str, Any]:
        """Serve another org from now on (``POST /sandbox/org``)."""
        return self._post("org", org)

    def reset(self) -> dict[str, Any]:
        """Zero the call counts (``POST /sandbox/reset``)."""
        return self._post("reset", {})

    def _post(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/sandbox/{name}",
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.load(answer)
        return result


@dataclass(frozen=True)
class SandboxProcess(SandboxControl):
    """A running sandbox child process."""

    pid: int


@contextmanager
def serve_in_subprocess(
    org_path: Path, *options: str, startup_timeout: float = 120.0
) -> Iterator[SandboxProcess]:
    """Serve ``org_path`` from ``python -m wecom_assets.sandbox serve`` until the block ends.

    Args:
        org_path: Org JSON file.
        options: Further ``serve`` options, e.g. ``"--latency-ms", "20"``.
        startup_timeout: Seconds to wait for the child to listen (large orgs take a while).

    Yields:
        The running sandbox.

    Raises:
        RuntimeError: The child exited or did not listen in time.
    """
    with tempfile.TemporaryDirectory(prefix="wecom-sandbox-") as scratch:
        port_file = Path(scratch) / "url"
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "wecom_assets.sandbox", "serve", "--org", str(org_path)),
                *("--port", "0", "--port-file", str(port_file), *options),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while not port_file.exists():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the sandbox exited with code {process.returncode} before listening; "
                        f"run `python -m wecom_assets.sandbox serve --org {org_path}` to see why"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not listen within {startup_timeout:g}s")
                time.sleep(0.05)
            yield SandboxProcess(url=port_file.read_text().strip(), pid=process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
