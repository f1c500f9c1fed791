"""The sandbox's group robots: ``webhook/send`` with WeCom's key check, limits and errcodes."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from wecom_assets.sandbox.org import save_org
from wecom_assets.sandbox.process import serve_in_subprocess
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer

KEY = "robot-key-0f3a9c"


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def robot_sandbox(sandbox_org: dict[str, Any], clock: ManualClock) -> Iterator[SandboxServer]:
    """A sandbox with one group robot whose rate window follows ``clock``."""
    with SandboxServer(sandbox_org, SandboxConfig(webhook_keys=[KEY]), clock=clock) as server:
        yield server


def post(server: SandboxServer, body: Any, key: str = KEY, method: str = "POST") -> dict[str, Any]:
    answer = requests.request(
        method,
        f"{server.url}/cgi-bin/webhook/send",
        params={"key": key},
        json=body,
        timeout=5,
    )
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def markdown(content: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": content}}


def test_a_known_robot_delivers_markdown_and_answers_ok(robot_sandbox: SandboxServer) -> None:
    assert post(robot_sandbox, markdown("**wecom_sync** failed")) == {"errcode": 0, "errmsg": "ok"}
    (message,) = robot_sandbox.webhook_messages()
    assert (message["msgtype"], message["content"]) == ("markdown", "**wecom_sync** failed")


def test_an_unknown_key_answers_93000_and_delivers_nothing(robot_sandbox: SandboxServer) -> None:
    answer = post(robot_sandbox, markdown("hello"), key="not-a-robot")
    assert answer["errcode"] == 93000
    assert "invalid webhook url" in answer["errmsg"]
    assert robot_sandbox.webhook_messages() == []


def test_the_21st_message_within_a_minute_answers_45009_until_the_window_moves(
    robot_sandbox: SandboxServer, clock: ManualClock
) -> None:
    codes = [post(robot_sandbox, markdown(f"message {n}"))["errcode"] for n in range(21)]
    assert codes == [0] * 20 + [45009]
    clock.now += 60
    assert post(robot_sandbox, markdown("after a minute"))["errcode"] == 0
    assert len(robot_sandbox.webhook_messages()) == 21


def test_the_limit_counts_each_robot_separately(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    config = SandboxConfig(webhook_keys=[KEY, "other-robot"], webhook_limit_per_minute=1)
    with SandboxServer(sandbox_org, config, clock=clock) as server:
        assert post(server, markdown("one"))["errcode"] == 0
        assert post(server, markdown("two"))["errcode"] == 45009
        assert post(server, markdown("three"), key="other-robot")["errcode"] == 0


def test_markdown_of_4096_bytes_is_delivered_and_one_byte_more_answers_40058(
    robot_sandbox: SandboxServer,
) -> None:
    exact = "组" * 1365 + "a"  # 3 bytes per CJK character: 4,096 bytes
    assert post(robot_sandbox, markdown(exact))["errcode"] == 0
    assert post(robot_sandbox, markdown(exact + "b"))["errcode"] == 40058
    assert [m["content"] for m in robot_sandbox.webhook_messages()] == [exact]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"msgtype": "voice", "voice": {"content": "x"}}, 40008),
        (markdown(""), 44004),
        ({"msgtype": "markdown"}, 44004),
        ([1, 2], 47001),
    ],
)
def test_malformed_messages_answer_wecom_errcodes(
    robot_sandbox: SandboxServer, body: Any, errcode: int
) -> None:
    assert post(robot_sandbox, body)["errcode"] == errcode
    assert robot_sandbox.webhook_messages() == []


def test_the_webhook_requires_post(robot_sandbox: SandboxServer) -> None:
    assert post(robot_sandbox, None, method="GET")["errcode"] == 43002


def test_errcodes_of_robot_posts_are_counted(robot_sandbox: SandboxServer) -> None:
    post(robot_sandbox, markdown("x"), key="wrong")
    post(robot_sandbox, markdown("y"))
    stats = robot_sandbox.stats()
    assert stats["errcodes"] == {93000: 1}
    assert stats["calls"] == {"webhook/send": 2}


def test_the_control_endpoint_lists_messages_and_reset_forgets_them(
    robot_sandbox: SandboxServer,
) -> None:
    post(robot_sandbox, markdown("first"))
    listed = requests.get(f"{robot_sandbox.url}/sandbox/webhook", timeout=5).json()
    assert [m["content"] for m in listed["messages"]] == ["first"]
    requests.post(f"{robot_sandbox.url}/sandbox/reset", timeout=5)
    assert robot_sandbox.webhook_messages() == []


def test_the_sandbox_log_never_shows_a_robot_key(
    robot_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wecom_assets.sandbox")
    post(robot_sandbox, markdown("x"))
    # A malformed request line is logged whole, query string included.
    with socket.create_connection(("127.0.0.1", robot_sandbox.port), timeout=5) as raw:
        raw.sendall(f"POST /cgi-bin/webhook/send?key={KEY} extra HTTP/1.1\r\n\r\n".encode())
        raw.recv(4096)
    robot_sandbox.stop()
    assert "Bad request syntax" in caplog.text
    assert KEY not in caplog.text


def test_served_from_the_command_line_a_robot_key_is_an_option(
    sandbox_org: dict[str, Any], tmp_path: Path
) -> None:
    save_org(sandbox_org, tmp_path / "org.json")
    with serve_in_subprocess(tmp_path / "org.json", "--webhook-key", KEY) as sandbox:
        answer = requests.post(
            f"{sandbox.url}/cgi-bin/webhook/send",
            params={"key": KEY},
            json=markdown("from the CLI"),
            timeout=5,
        )
        assert answer.json()["errcode"] == 0
        assert [m["content"] for m in sandbox.webhook_messages()] == ["from the CLI"]
