"""Transient failures are retried with bounded exponential backoff; the session is pooled."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import requests
from client_helpers import (
    TOKEN,
    ExtremeJitter,
    FakeClock,
    calls_to,
    client_for,
    closing_server,
    config_for,
    expect_token,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from wecom_assets.wecom import WeComClient, WeComTransientError

DEPARTMENTS = {"errcode": 0, "department": [{"id": 1, "name": "总部", "parentid": 0}]}


def _fail_once_then_succeed(server: HTTPServer, **failure: Any) -> None:
    expect_token(server)
    server.expect_oneshot_request("/cgi-bin/department/list").respond_with_data(**failure)
    server.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_http_server_error_and_429_are_retried(httpserver: HTTPServer, status: int) -> None:
    _fail_once_then_succeed(httpserver, response_data="busy", status=status)
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1
        assert client.stats.retries == 1


def test_truncated_json_is_retried(httpserver: HTTPServer) -> None:
    _fail_once_then_succeed(
        httpserver, response_data='{"errcode": 0, "departm', content_type="application/json"
    )
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1
    assert calls_to(httpserver, "department/list") == 2


def test_non_json_body_is_retried(httpserver: HTTPServer) -> None:
    _fail_once_then_succeed(
        httpserver, response_data="<html>gateway</html>", content_type="text/html"
    )
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1


def test_read_timeout_is_retried(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    answered_late = threading.Event()

    # The test server answers one request at a time, so the first answer is held back until the
    # client has given up on it and backs off: the timeout is certain, not a race of sleeps.
    def late(request: Request) -> Response:
        answered_late.wait(timeout=30)
        return Response('{"department": []}', content_type="application/json")

    def back_off(seconds: float) -> None:
        answered_late.set()

    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_handler(late)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    config = config_for(httpserver.url_for("/").rstrip("/"), request_timeout=0.3)
    with WeComClient(config, sleep=back_off) as client:
        assert len(client.list_departments()) == 1
        assert client.stats.retries == 1
    assert answered_late.is_set()


def test_dropped_connections_exhaust_retries_with_a_transient_error() -> None:
    with closing_server() as url:
        client = WeComClient(config_for(url, max_retries=2))
        with client, pytest.raises(WeComTransientError) as caught:
            client.list_departments()
        assert client.stats.calls["gettoken"] == 3
    assert caught.value.path == "gettoken"
    assert "ConnectionError" in str(caught.value)


def test_retries_stop_after_max_retries(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_data("down", status=503)
    with client_for(httpserver, max_retries=4) as client:
        with pytest.raises(WeComTransientError, match="HTTP 503"):
            client.list_departments()
    assert calls_to(httpserver, "department/list") == 5


def test_retries_stop_when_the_time_budget_is_spent(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": -1, "errmsg": "system busy"}
    )
    clock = FakeClock()
    config = config_for(
        httpserver.url_for("/").rstrip("/"),
        max_retries=100,
        retry_max_seconds=5.0,
        retry_base_delay=1.0,
        retry_max_delay=1.0,
    )
    client = WeComClient(config, sleep=clock.sleep, clock=clock, rng=ExtremeJitter(top=True))
    with client, pytest.raises(WeComTransientError, match="5 s budget"):
        client.list_departments()
    # Four 1 s waits leave 1 s: a fifth wait would spend it all, leaving no time to retry.
    assert clock.sleeps == [1.0] * 4
    assert calls_to(httpserver, "department/list") == 5


def _backoff_waits(
    server: HTTPServer, errcode: int, rng: random.Random, retries: int
) -> list[float]:
    server.clear()
    expect_token(server)
    server.expect_request("/cgi-bin/department/list").respond_with_json({"errcode": errcode})
    clock = FakeClock()
    config = config_for(
        server.url_for("/").rstrip("/"),
        max_retries=retries,
        retry_base_delay=0.5,
        retry_max_delay=4.0,
        retry_max_seconds=1000.0,
    )
    client = WeComClient(config, sleep=clock.sleep, clock=clock, rng=rng)
    with client, pytest.raises(WeComTransientError):
        client.list_departments()
    return clock.sleeps


def test_backoff_grows_exponentially_within_its_cap(httpserver: HTTPServer) -> None:
    waits = _backoff_waits(httpserver, -1, ExtremeJitter(top=True), retries=8)
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_backoff_is_jittered_below_its_ceiling(httpserver: HTTPServer) -> None:
    waits = _backoff_waits(httpserver, -1, random.Random(7), retries=8)
    ceilings = [min(4.0, 0.5 * 2**retry) for retry in range(8)]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))
    assert waits != ceilings


def test_rate_limit_backoff_is_longer_than_busy_backoff(httpserver: HTTPServer) -> None:
    longest_busy = _backoff_waits(httpserver, -1, ExtremeJitter(top=True), retries=4)
    shortest_rate_limited = _backoff_waits(httpserver, 45009, ExtremeJitter(top=False), retries=4)
    assert len(shortest_rate_limited) == len(longest_busy) == 4
    for busy, rate_limited in zip(longest_busy, shortest_rate_limited, strict=True):
        assert rate_limited > busy


def test_post_sends_the_json_body_and_is_retried(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/user/list_id", method="POST").respond_with_json(
        {"errcode": -1}
    )
    httpserver.expect_request(
        "/cgi-bin/user/list_id",
        method="POST",
        json={"limit": 2},
        query_string={"access_token": TOKEN},
    ).respond_with_json({"errcode": 0, "dept_user": [{"userid": "a", "department": 1}]})
    with client_for(httpserver) as client:
        answer = client.post("user/list_id", {"limit": 2})
    assert answer["dept_user"] == [{"userid": "a", "department": 1}]


def test_session_pool_holds_a_connection_per_worker(httpserver: HTTPServer) -> None:
    with client_for(httpserver, max_concurrency=40) as client:
        adapter = client._session.get_adapter("https://qyapi.weixin.qq.com/")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.poolmanager.connection_pool_kw["maxsize"] >= 40


def test_proxy_from_environment_is_honoured(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    config = config_for("http://qyapi.wecom.invalid")
    with WeComClient(config) as client:
        assert len(client.list_departments()) == 1
    assert calls_to(httpserver, "department/list") == 1


def test_no_proxy_from_environment_is_honoured(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.wecom.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1


def test_ca_bundle_from_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp-proxy-ca.pem")
    with WeComClient(config_for("https://qyapi.weixin.qq.com")) as client:
        assert client._session.verify == "/etc/ssl/corp-proxy-ca.pem"


def test_stats_count_calls_retries_and_errcodes_exactly(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json({"errcode": -1})
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_data(status=502)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json({"userlist": []})
    with client_for(httpserver) as client:
        client.list_departments()
        client.list_users(1)
        client.list_users(2)
        stats = client.stats
    assert dict(stats.calls) == {"gettoken": 1, "department/list": 3, "user/list": 2}
    assert stats.total_calls == 6
    assert stats.retries == 2
    assert dict(stats.errcodes) == {-1: 1}
    assert stats.token_fetches == 1
    assert stats.api_seconds > 0
