"""``dg dev`` for this repository: start it on a port, wait for the UI, stop all it started.

``make ui`` and the browser tests both run the webserver through :class:`DevServer`, so the way the
tests start and stop it is the way a developer does.

``dg dev -w workspace.yaml`` is used rather than ``dagster dev`` (which warns at start-up that it is
superseded by ``dg dev``) and rather than a bare ``dg dev`` (which validates component YAML this
project does not have and checks the active virtualenv). It runs with ``DAGSTER_HOME`` as its
working directory: started anywhere else with a ``dagster.yaml`` next to it, it warns that this
file is not the instance config, which is true but only noise here.

``dg dev`` starts the webserver, the daemon (it dequeues runs from the ``QueuedRunCoordinator``
and evaluates schedules) and code servers, and those start run and step processes. They all stay in
one new process group: one SIGINT to ``dg dev`` shuts the services down gracefully, and whatever is
still alive afterwards (a run that was in flight) is terminated with the group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "workspace.yaml"
DEFAULT_PORT = 3000
HOST = "127.0.0.1"
_ENDED = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})

_LOCATIONS_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


# A process started in the background (`make ui &`, some CI runners) ignores SIGINT, and so would
# `dg dev`, its children and, through Dagster's SIGTERM-to-SIGINT mapping, SIGTERM too: restore the
# default before exec so that the one SIGINT of `DevServer.stop` shuts it down.
_WITH_SIGINT = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the kernel considers free at the moment of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def dev_command(port: int, workspace: Path = WORKSPACE) -> list[str]:
    """The ``dg dev`` command line of this interpreter's environment."""
    dg = Path(sys.executable).with_name("dg")
    return [str(dg), "dev", "-w", str(workspace), "--host", HOST, "--port", str(port)]


def live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still running (zombies excluded).

    Orphaned zombies are only reaped by the init process, which some containers lack, so signalling
    the group (which succeeds for zombies) would report processes that no longer run.
    """
    members = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] in _ENDED:
            continue
        try:
            group = os.getpgid(process.pid)
        except OSError:
            continue
        if group == pgid:
            members.append(process.pid)
    return sorted(members)


class DevServer:
    """One ``dg dev`` process group: webserver, daemon and code servers of this workspace."""

    def __init__(
        self,
        env: Mapping[str, str],
        dagster_home: Path,
        port: int,
        output: IO[Any] | None = None,
    ) -> None:
        """Prepare, without starting, ``dg dev`` on ``port`` for the instance in ``dagster_home``.

        Args:
            env: Environment of the services: ``DAGSTER_HOME`` and the ``WECOM_*`` settings.
            dagster_home: Instance directory holding ``dagster.yaml``; the working directory.
            port: Port of the webserver on 127.0.0.1.
            output: Where the services' log goes; ``None`` inherits this process's terminal.
        """
        self.env = dict(env)
        self.dagster_home = dagster_home
        self.port = port
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Root URL of the Dagster UI."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> DevServer:
        """Start ``dg dev`` in a new session, so that a Ctrl-C reaches it once, through us."""
        self.process = subprocess.Popen(
            [*_WITH_SIGINT, *dev_command(self.port)],
            env=self.env,
            cwd=self.dagster_home,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT if self.output is not None else None,
            start_new_session=True,
        )
        return self

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Block until the webserver answers and the code location has loaded.

        Raises:
            RuntimeError: ``dg dev`` exited, the location failed to load, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("`dg dev` exited before the UI was up; see its log above")
            entries = self._location_entries()
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [
                    f"{entry['name']}: {entry['locationOrLoadError'].get('message', '')}"
                    for entry in entries
                    if (entry.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
                ]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Dagster UI at {self.url} was not ready in {timeout:.0f}s")
            time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Shut the services down as Ctrl-C would, then end whatever of the group is left.

        Returns:
            The exit code of ``dg dev``, or ``None`` if it was never started.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        self._end_group()
        return self.process.returncode

    def wait(self) -> int:
        """Block until ``dg dev`` exits on its own; its exit code."""
        assert self.process is not None, "start() first"
        return self.process.wait()

    def kill(self) -> None:
        """End every process of the group at once, without a graceful shutdown."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
            self.process.wait()

    def leftover_processes(self) -> list[int]:
        """Processes this server started that are still running."""
        return [] if self.process is None else live_group_members(self.process.pid)

    def _end_group(self, grace: float = 5.0) -> None:
        if not self.leftover_processes():
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.leftover_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.leftover_processes():
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def _graphql(self, query: str) -> dict[str, Any] | None:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                payload: dict[str, Any] = json.load(response)
        except (OSError, ValueError, urllib.error.URLError):
            return None
        return payload.get("data")

    def _location_entries(self) -> list[dict[str, Any]]:
        workspace = (self._graphql(_LOCATIONS_QUERY) or {}).get("workspaceOrError") or {}
        entries: list[dict[str, Any]] = workspace.get("locationEntries") or []
        return entries
