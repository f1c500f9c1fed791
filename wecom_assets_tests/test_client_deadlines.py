"""Every request has a total deadline, and a call's retry budget bounds the attempt in flight.

The hostile servers here trickle a byte every 0.1 s for as long as the client listens, so a
client that bounds only each socket read would never return; the pytest timeout turns such a
hang into a failure. The assertions themselves never depend on how fast the machine is.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from client_helpers import (
    FakeClock,
    config_for,
    json_answer,
    raw_server,
    request_path,
    token_answer,
    trickle,
)

from wecom_assets.wecom import WeComClient, WeComTransientError
from wecom_assets.wecom.deadline import deadline_of
from wecom_assets.wecom.ratelimit import RateLimiter

TRICKLE_INTERVAL = 0.1
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"


def _token_then(
    respond: Callable[[socket.socket, threading.Event], None],
) -> Callable[[socket.socket, bytes, threading.Event], None]:
    def serve(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if request_path(request) == "/cgi-bin/gettoken":
            conn.sendall(json_answer(token_answer()))
        else:
            respond(conn, stop)

    return serve


def _trickling_body(conn: socket.socket, stop: threading.Event) -> None:
    trickle(conn, JSON_HEAD + b'{"department": [', stop, TRICKLE_INTERVAL)


def _trickling_headers(conn: socket.socket, stop: threading.Event) -> None:
    trickle(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ", stop, TRICKLE_INTERVAL)


@pytest.mark.timeout(30)
def test_trickling_body_is_cut_off_at_the_request_timeout() -> None:
    with raw_server(_token_then(_trickling_body)) as url:
        config = config_for(url, request_timeout=0.5, max_retries=0)
        with WeComClient(config) as client, pytest.raises(WeComTransientError) as caught:
            client.list_departments()
    assert "no complete answer within 0.5 s" in str(caught.value)
    assert caught.value.path == "department/list"


@pytest.mark.timeout(30)
def test_trickling_headers_are_cut_off_at_the_request_timeout() -> None:
    with raw_server(_token_then(_trickling_headers)) as url:
        config = config_for(url, request_timeout=0.5, max_retries=0)
        with WeComClient(config) as client, pytest.raises(WeComTransientError) as caught:
            client.list_departments()
    assert "no complete answer within 0.5 s" in str(caught.value)


@pytest.mark.timeout(30)
def test_retry_budget_bounds_the_attempt_in_flight() -> None:
    with raw_server(_token_then(_trickling_body)) as url:
        config = config_for(url, request_timeout=600.0, retry_max_seconds=0.5, max_retries=5)
        with WeComClient(config) as client, pytest.raises(WeComTransientError) as caught:
            client.list_departments()
        stats = client.stats
    assert "0.5 s budget" in str(caught.value)
    assert stats.calls["department/list"] == 1


@pytest.mark.timeout(30)
def test_gettoken_on_behalf_of_a_call_gets_only_what_is_left_of_its_budget() -> None:
    def serve(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        trickle(conn, JSON_HEAD + b'{"access_token": "', stop, TRICKLE_INTERVAL)

    with raw_server(serve) as url:
        config = config_for(url, request_timeout=600.0, retry_max_seconds=0.5, max_retries=0)
        with WeComClient(config) as client, pytest.raises(WeComTransientError) as caught:
            client.list_departments()
    assert caught.value.path == "gettoken"
    assert "no complete answer within" in str(caught.value)


def test_rate_limiter_refuses_at_once_a_wait_longer_than_allowed() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, window=60.0, clock=clock, sleep=clock.sleep)
    assert limiter.acquire("user/list", max_wait=5.0) == 0.0
    assert limiter.acquire("user/list", max_wait=5.0) is None
    assert clock.sleeps == []
    assert limiter.acquire("user/list", max_wait=60.0) == pytest.approx(60.0)


def test_call_fails_without_waiting_when_the_limiter_needs_longer_than_its_budget() -> None:
    def serve(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if request_path(request) == "/cgi-bin/gettoken":
            conn.sendall(json_answer(token_answer()))
        else:
            conn.sendall(json_answer({"department": []}))

    clock = FakeClock()
    with raw_server(serve) as url:
        config = config_for(url, rate_limit_per_minute=1, retry_max_seconds=5.0)
        with WeComClient(config, sleep=clock.sleep, clock=clock) as client:
            client.list_departments()
            with pytest.raises(WeComTransientError, match="rate limiter"):
                client.list_departments()
    assert clock.sleeps == []


@pytest.mark.timeout(30)
def test_a_shorter_deadline_wakes_the_watchdog_sleeping_towards_a_later_one() -> None:
    reader, writer = socket.socketpair()
    with reader, writer, deadline_of(600.0), deadline_of(0.2) as short:
        short.watch(reader)

        # Shut down at the short deadline, the read ends with no data instead of hanging.
        assert reader.recv(1) == b""
        assert short.expired
