"""The Dagster UI stack for the browser and GraphQL tests, started once per session.

The stack is what ``make ui`` runs: the sandbox and ``dg dev`` (webserver, daemon, code server)
through :class:`wecom_assets.dev.dev_ui.DevServer`, on free ports, with a tmp ``DAGSTER_HOME`` that
holds this repository's ``dagster.yaml`` and a tmp DuckDB file. Its log and the screenshots go to
``test-artifacts/`` (git-ignored) so a failure can be read after the run.

The ``ui_stack`` fixture in ``conftest.py`` starts it with :func:`running_ui_stack`; a session
fixture imported into test modules instead would be a separate fixture in each of them, and each
would start its own stack.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient
from e2e_env import cli_env
from e2e_instance import new_dagster_home

from wecom_assets.dev.dev_ui import DevServer, free_port
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
LOCATION = "wecom_assets"
REPOSITORY = "__repository__"

# Without the background-networking flags Chromium tries to reach Google's services and stalls
# when there is no route to them.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# The UI shows a "Join the Dagster community" dialog over the first page on localhost; this is the
# browser-side flag its "Skip" button sets.
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'))"

TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

# The DAGSTER_HOME of every stack this session started; the suite asserts there is one.
STARTED_STACKS: list[Path] = []


def chromium_executable() -> str:
    """Debian's Chromium; the browser tests fail (never skip) without it."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "chromium is not installed: run `make browser-deps` "
            "(apt-get install chromium fonts-noto-cjk)",
            pytrace=False,
        )
    return path


@dataclass
class UiStack:
    """A running sandbox + ``dg dev`` pair and what the tests need to check their work."""

    org: dict[str, Any] = field(repr=False)
    sandbox: SandboxServer
    server: DevServer
    dagster_home: Path
    database: Path

    @property
    def url(self) -> str:
        """Root URL of the Dagster UI."""
        return self.server.url

    @property
    def secret(self) -> str:
        """The corp secret the code location reads from ``WECOM_CORP_SECRET``."""
        return str(self.org["corp_secret"])

    def client(self) -> DagsterGraphQLClient:
        """Dagster's own GraphQL client for this webserver."""
        return DagsterGraphQLClient("127.0.0.1", port_number=self.server.port, timeout=30)

    def graphql(self, query: str, **variables: Any) -> tuple[dict[str, Any], str]:
        """Run a GraphQL query; its ``data`` and the raw response text (to search for secrets)."""
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        payload = response.json()
        assert not payload.get("errors"), payload["errors"]
        return payload["data"], response.text

    def wait_for_run(self, run_id: str, timeout: float = 120.0) -> str:
        """Poll the run until it ends; its final status (``SUCCESS``, ``FAILURE``, ...)."""
        deadline = time.monotonic() + timeout
        while True:
            data, _ = self.graphql(
                "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
            )
            status = data["runOrError"]["status"]
            if status in TERMINAL_RUN_STATUSES:
                return status
            assert time.monotonic() < deadline, f"run {run_id} still {status} after {timeout}s"
            time.sleep(0.5)


def stack_env(org: dict[str, Any], sandbox_url: str, home: Path, database: Path) -> dict[str, str]:
    """The environment ``make ui`` gives the services, pointed at tmp paths."""
    return cli_env(
        dagster_home=home,
        duckdb_path=database,
        corp_id=str(org["corp_id"]),
        corp_secret=str(org["corp_secret"]),
        base_url=sandbox_url,
        # Evaluate freshness policies every 2 s instead of 30 s, so the UI shows the result of a
        # fresh materialization while the test looks.
        extra={"FRESHNESS_DAEMON_INTERVAL_SECONDS": "2"},
    )


@contextmanager
def running_dev_server(env: Mapping[str, str], home: Path, log_name: str) -> Iterator[DevServer]:
    """``dg dev`` with ``env`` on a free port until the block ends; stopped as Ctrl-C stops it.

    Its log goes to ``test-artifacts/<log_name>``. Leaving the block sends ``dg dev`` a SIGINT and
    fails unless it exits cleanly and leaves no process of the stack behind.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / log_name).open("wb") as log:
        server = DevServer(dict(env), home, free_port(), log)
        server.start()
        try:
            server.wait_until_ready()
            yield server
        finally:
            exit_code = server.stop()
    assert exit_code == 0, f"`dg dev` exited with {exit_code} on SIGINT; see {log_name}"
    left = processes_mentioning(str(home))
    assert not left, f"processes of the stack still running after it stopped: {left}"


@contextmanager
def running_ui_stack(tmp: Path) -> Iterator[UiStack]:
    """Sandbox + ``dg dev`` on free ports, in ``tmp`` (see :func:`running_dev_server`)."""
    home = new_dagster_home(tmp / "dagster_home")
    database = tmp / "wecom.duckdb"
    org = generate_org(users=200, departments=30, seed=7)
    with (
        SandboxServer(org) as sandbox,
        running_dev_server(
            stack_env(org, sandbox.url, home, database), home, "dg-dev.log"
        ) as server,
    ):
        STARTED_STACKS.append(home)
        yield UiStack(org, sandbox, server, home, database)


def processes_mentioning(text: str) -> dict[int, str]:
    """Running processes whose command line contains ``text`` (the instance path, for one).

    Zombies are left out: a child that exited and is waiting to be reaped runs nothing.
    """
    found = {}
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.info["pid"] == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(process.info["cmdline"] or ())
        if text in cmdline:
            found[process.info["pid"]] = cmdline[:200]
    return found
