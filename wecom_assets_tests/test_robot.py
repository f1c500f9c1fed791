"""The group-robot client: markdown into a WeCom group, a little retrying, never the key shown."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from wecom_assets.dev.dev_ui import free_port
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer
from wecom_assets.wecom.robot import MAX_MARKDOWN_BYTES, GroupRobot, RobotError, cut_to_bytes

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
SEND = "/cgi-bin/webhook/send"


class Sleeps(list[float]):
    """Records the backoff instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def robot_sandbox(sandbox_org: dict[str, Any]) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_org, SandboxConfig(webhook_keys=[KEY])) as server:
        yield server


def test_a_message_reaches_the_group(robot_sandbox: SandboxServer, sleeps: Sleeps) -> None:
    GroupRobot(robot_sandbox.url, KEY, sleep=sleeps).send_markdown("## 同步失败\n**wecom_sync**")
    (message,) = robot_sandbox.webhook_messages()
    assert (message["msgtype"], message["content"]) == ("markdown", "## 同步失败\n**wecom_sync**")
    assert sleeps == []


def test_an_unknown_key_fails_at_once_naming_the_setting_not_the_key(
    sandbox_org: dict[str, Any], sleeps: Sleeps
) -> None:
    with SandboxServer(sandbox_org, SandboxConfig(webhook_keys=["another-robot"])) as server:
        robot = GroupRobot(server.url, KEY, sleep=sleeps)
        with pytest.raises(RobotError) as raised:
            robot.send_markdown("hello")
        assert server.stats()["calls"] == {"webhook/send": 1}
    assert (raised.value.errcode, raised.value.transient) == (93000, False)
    assert "WECOM_ALERT_WEBHOOK_KEY" in str(raised.value)
    assert KEY not in str(raised.value)
    assert sleeps == []


def test_over_the_robots_limit_it_retries_a_little_then_gives_up(
    sandbox_org: dict[str, Any], sleeps: Sleeps
) -> None:
    config = SandboxConfig(webhook_keys=[KEY], webhook_limit_per_minute=1)
    with SandboxServer(sandbox_org, config) as server:
        robot = GroupRobot(server.url, KEY, attempts=3, backoff=1.5, sleep=sleeps)
        robot.send_markdown("first")
        with pytest.raises(RobotError) as raised:
            robot.send_markdown("second")
        assert server.stats()["errcodes"] == {45009: 3}
    assert (raised.value.errcode, raised.value.transient) == (45009, True)
    assert sleeps == [1.5, 3.0]


def test_a_gateway_error_is_retried_and_the_message_delivered(
    httpserver: HTTPServer, sleeps: Sleeps
) -> None:
    httpserver.expect_ordered_request(SEND, method="POST").respond_with_data("", status=502)
    httpserver.expect_ordered_request(
        SEND, method="POST", query_string={"key": KEY}
    ).respond_with_json({"errcode": 0, "errmsg": "ok"})
    GroupRobot(httpserver.url_for("/"), KEY, sleep=sleeps).send_markdown("after a 502")
    httpserver.check_assertions()
    assert sleeps == [1.0]


def test_an_answer_that_is_not_json_is_retried_then_reported(
    httpserver: HTTPServer, sleeps: Sleeps
) -> None:
    httpserver.expect_request(SEND).respond_with_data("<html>proxy</html>")
    with pytest.raises(RobotError, match="something else than JSON") as raised:
        GroupRobot(httpserver.url_for("/"), KEY, attempts=2, sleep=sleeps).send_markdown("x")
    assert raised.value.transient
    assert len(httpserver.log) == 2


def test_an_unreachable_api_is_reported_without_the_key(sleeps: Sleeps) -> None:
    robot = GroupRobot(f"http://127.0.0.1:{free_port()}", KEY, attempts=2, sleep=sleeps)
    with pytest.raises(RobotError, match="could not be reached") as raised:
        robot.send_markdown("x")
    assert raised.value.transient
    assert KEY not in str(raised.value)
    assert sleeps == [1.0]


def test_credentials_in_the_base_url_go_as_basic_auth_and_are_never_shown(
    httpserver: HTTPServer, sleeps: Sleeps
) -> None:
    expected = "Basic " + base64.b64encode(b"proxy-user:proxy-pass").decode()
    httpserver.expect_request(
        SEND, headers={"Authorization": expected}, query_string={"key": KEY}
    ).respond_with_json({"errcode": 0, "errmsg": "ok"})
    base = f"http://proxy-user:proxy-pass@127.0.0.1:{httpserver.port}"
    robot = GroupRobot(base, KEY, sleep=sleeps)
    robot.send_markdown("through the proxy")
    httpserver.check_assertions()
    assert robot.address == f"http://127.0.0.1:{httpserver.port}/cgi-bin/webhook/send"
    assert "proxy-pass" not in repr(robot)
    assert KEY not in repr(robot)


def test_a_message_longer_than_wecom_accepts_is_refused_before_sending(
    robot_sandbox: SandboxServer,
) -> None:
    with pytest.raises(ValueError, match="4096"):
        GroupRobot(robot_sandbox.url, KEY).send_markdown("x" * (MAX_MARKDOWN_BYTES + 1))
    assert robot_sandbox.stats()["calls"] == {}


def test_an_empty_key_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="WECOM_ALERT_WEBHOOK_KEY"):
        GroupRobot("http://127.0.0.1:9", "  ")


def test_cutting_to_bytes_keeps_whole_characters_and_marks_the_cut() -> None:
    cut = cut_to_bytes("组织架构同步失败", 10)
    assert cut == "组织…"
    assert len(cut.encode()) <= 10
    assert cut_to_bytes("short", 10) == "short"
