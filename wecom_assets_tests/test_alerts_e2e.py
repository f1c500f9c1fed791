"""A failed sync reaches the WeCom group end to end: ``dg dev``, its daemon, the sensor, the robot.

The stack is what a deployment runs: the sandbox (serving the org and a group robot) and
``dg dev`` through :class:`~wecom_assets.dev.dev_ui.DevServer` with a tmp ``DAGSTER_HOME`` holding
this repository's ``dagster.yaml``, configured only through environment variables. The corp
secret is wrong, so ``wecom_sync`` fails with errcode 40001; the daemon's sensor must post it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient
from e2e_env import cli_env
from e2e_instance import new_dagster_home
from leak_scan import find_leaks
from ui_support import ARTIFACTS, LOCATION, REPOSITORY, processes_mentioning

from wecom_assets.dev.dev_ui import DevServer, free_port
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    # dagster-graphql's client still calls gql with arguments gql has deprecated.
    pytest.mark.filterwarnings(
        "ignore:Using variable_values and operation_name:DeprecationWarning"
    ),
]

KEY = "e2e-robot-key-8d41c6a0"
WRONG_SECRET = "wrong-secret-e2e-5b9f03d7c1"
SENSOR_QUERY = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename ... on Sensor {
    sensorState {
      status
      typeSpecificData { ... on SensorData { lastCursor } }
      ticks(limit: 50) { status skipReason }
    }
  } }
}
"""
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RESOURCE_QUERY = """
query { workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { allTopLevelResourceDetails {
    name configuredValues { key value type }
  } } }
} } } } }
"""

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180.0) -> T:
    """Poll ``probe`` until it returns something, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(1.0)


class Stack:
    """GraphQL answers of the running webserver, each kept to search for secrets afterwards."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.answers: list[str] = []

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(
            f"{self.server.url}/graphql",
            json={"query": query, "variables": variables},
            timeout=30,
        )
        response.raise_for_status()
        self.answers.append(response.text)
        payload = response.json()
        assert not payload.get("errors"), payload["errors"]
        data: dict[str, Any] = payload["data"]
        return data

    def sensor(self) -> dict[str, Any]:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": "wecom_alerts",
        }
        answer = self.graphql(SENSOR_QUERY, selector=selector)["sensorOrError"]
        assert answer["__typename"] == "Sensor", answer
        state: dict[str, Any] = answer["sensorState"]
        return state

    def cursor(self) -> dict[str, Any] | None:
        text = (self.sensor()["typeSpecificData"] or {}).get("lastCursor")
        return json.loads(text) if text else None

    def run_status(self, run_id: str) -> str | None:
        status: str = self.graphql(RUN_QUERY, id=run_id)["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    def robot_resource(self) -> dict[str, dict[str, Any]]:
        entries = self.graphql(RESOURCE_QUERY)["workspaceOrError"]["locationEntries"]
        (repository,) = entries[0]["locationOrLoadError"]["repositories"]
        (robot,) = [
            r for r in repository["allTopLevelResourceDetails"] if r["name"] == "wecom_robot"
        ]
        return {value["key"]: value for value in robot["configuredValues"]}


def test_a_failed_sync_is_posted_to_the_group_by_the_daemon(tmp_path: Path) -> None:
    org = generate_org(users=60, departments=8, seed=5)
    home = new_dagster_home(tmp_path / "dagster_home")
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "alerts-dg-dev.log"
    with (
        SandboxServer(org, SandboxConfig(webhook_keys=[KEY])) as sandbox,
        log_path.open("wb") as log,
    ):
        env = cli_env(
            dagster_home=home,
            duckdb_path=tmp_path / "wecom.duckdb",
            corp_id=str(org["corp_id"]),
            corp_secret=WRONG_SECRET,
            base_url=sandbox.url,
            extra={"WECOM_ALERT_WEBHOOK_KEY": KEY, "WECOM_ALERT_UI_BASE_URL": ui},
        )
        server = DevServer(env, home, port, log).start()
        stack = Stack(server)
        try:
            server.wait_until_ready()
            started = wait_for("the sensor's first tick", stack.cursor)
            run_id = DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution(
                "wecom_sync", repository_location_name=LOCATION, repository_name=REPOSITORY
            )
            status = wait_for("the run's end", lambda: stack.run_status(run_id))
            messages = wait_for(
                "a message in the group", lambda: sandbox.webhook_messages() or None
            )
            reasons = wait_for(
                "the posting tick in the UI",
                lambda: (
                    [t["skipReason"] for t in stack.sensor()["ticks"]]
                    if (stack.cursor() or {}).get("failing_jobs")
                    else None
                ),
            )
            after = stack.cursor()
            robot = stack.robot_resource()
        finally:
            exit_code = server.stop()
    assert exit_code == 0, f"`dg dev` exited with {exit_code}; see {log_path}"
    assert not processes_mentioning(str(home))
    assert started == {
        "after_failure": 0,
        "after_success": 0,
        "failing_jobs": {},
        "failing_checks": [],
    }
    assert status == "FAILURE"
    (message,) = messages
    assert "**wecom_sync** failed at " in message["content"]
    assert "errcode 40001 · " in message["content"]
    assert "Check WECOM_CORP_SECRET" in message["content"]
    assert f"({ui}/runs/{run_id})" in message["content"]
    assert "Posted one message: 1 problem(s)." in reasons
    assert after is not None and after["failing_jobs"] == {"wecom_sync": run_id}
    assert robot["webhook_key"]["value"] == "WECOM_ALERT_WEBHOOK_KEY"
    assert robot["webhook_key"]["type"] == "ENV_VAR"
    secrets = {"robot key": KEY, "wrong secret": WRONG_SECRET}
    assert [label for label, value in secrets.items() if value in message["body"]] == []
    assert [
        label for label, value in secrets.items() if any(value in a for a in stack.answers)
    ] == []
    assert find_leaks([home, log_path], {"robot key": KEY}) == []
