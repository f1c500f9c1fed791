"""A 45009 that is an hour limit's block ends the call at once, saying when it can run again.

WeCom's errmsg for 45009 does not say which limit was hit, so the client's own count decides:
per corp and API, and per IP across every process that shares the token cache directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from client_helpers import FakeClock, calls_to, config_for, expect_token
from pytest_httpserver import HTTPServer

from wecom_assets.wecom import WeComBlockedError, WeComClient, WeComTransientError
from wecom_assets.wecom.limits import local_time

DEPARTMENTS = {"errcode": 0, "department": [{"id": 1, "name": "总部", "parentid": 0}]}
FREQUENCY_LIMITED = {"errcode": 45009, "errmsg": "api freq out of limit"}


def _client(server: HTTPServer, clock: FakeClock, **overrides: Any) -> WeComClient:
    config = config_for(server.url_for("/").rstrip("/"), **overrides)
    return WeComClient(config, sleep=clock.sleep, clock=clock, wall_clock=clock)


def _answers(server: HTTPServer, successes: int) -> None:
    """``successes`` good department/list answers, then 45009 for ever."""
    for _ in range(successes):
        server.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    server.expect_request("/cgi-bin/department/list").respond_with_json(FREQUENCY_LIMITED)


def _blocked_at_the_third_call(server: HTTPServer) -> tuple[WeComBlockedError, FakeClock, int]:
    """Two calls pass, the third is answered 45009 at an hour limit of 3: error, clock, retries."""
    expect_token(server)
    _answers(server, successes=2)
    clock = FakeClock()
    with _client(server, clock, rate_limit_per_hour=3) as client:
        client.list_departments()
        client.list_departments()
        with pytest.raises(WeComBlockedError) as caught:
            client.list_departments()
        retries = client.stats.retries
    return caught.value, clock, retries


def test_a_45009_at_the_clients_hour_count_fails_at_once(httpserver: HTTPServer) -> None:
    error, clock, retries = _blocked_at_the_third_call(httpserver)
    assert retries == 0
    assert calls_to(httpserver, "department/list") == 3
    assert clock.sleeps == []
    assert error.errcode == 45009


def test_the_hour_block_says_which_limit_and_when_a_run_can_call_again(
    httpserver: HTTPServer,
) -> None:
    error, clock, _ = _blocked_at_the_third_call(httpserver)
    assert error.retry_at == clock() + 3600
    message = str(error)
    assert "limit of 3 calls an hour per corp and API" in message
    assert "blocks this API for the corp for an hour" in message
    assert f"It can run again after {local_time(clock() + 3600)}" in message


def test_a_45009_well_below_the_hour_count_is_still_retried(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(
        FREQUENCY_LIMITED
    )
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    clock = FakeClock()
    with _client(httpserver, clock, rate_limit_per_hour=1_000) as client:
        assert len(client.list_departments()) == 1
        assert client.stats.retries == 1


def test_a_call_the_hour_limit_holds_back_fails_without_being_made(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    _answers(httpserver, successes=1)
    clock = FakeClock()
    with _client(httpserver, clock, rate_limit_per_hour=1) as client:
        client.list_departments()
        clock.advance(600)
        with pytest.raises(WeComBlockedError) as caught:
            client.list_departments()
    assert calls_to(httpserver, "department/list") == 1
    assert caught.value.retry_at == pytest.approx(clock() + 3000)
    assert "not called, as it would go over WeCom's limit of 1 calls an hour" in str(caught.value)
    assert clock.sleeps == []


def test_the_per_ip_hour_count_includes_other_processes_and_is_named(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    expect_token(httpserver)
    _answers(httpserver, successes=2)
    clock = FakeClock()
    shared = {"token_cache_dir": tmp_path, "ip_rate_limit_per_hour": 4}
    with _client(httpserver, clock, **shared) as earlier_run:
        earlier_run.list_departments()
        earlier_run.list_departments()
    with _client(httpserver, clock, **shared) as client, pytest.raises(WeComBlockedError) as caught:
        client.list_departments()
    message = str(caught.value)
    assert "limit of 4 calls an hour per IP (every corp and run on this machine together)" in (
        message
    )
    assert "blocks every call from this IP for an hour" in message
    assert calls_to(httpserver, "department/list") == 3


def test_without_a_shared_count_another_runs_calls_do_not_explain_a_45009(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    _answers(httpserver, successes=2)
    clock = FakeClock()
    # Each run counts its gettoken and its calls: 3 here, 6 if the counts were shared.
    with _client(httpserver, clock, ip_rate_limit_per_hour=6) as earlier_run:
        earlier_run.list_departments()
        earlier_run.list_departments()
    with _client(httpserver, clock, ip_rate_limit_per_hour=6, max_retries=1) as client:
        with pytest.raises(WeComTransientError) as caught:
            client.list_departments()
    assert not isinstance(caught.value, WeComBlockedError)


def test_a_45009_at_the_per_ip_minute_count_is_retried_and_named_when_retries_run_out(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    _answers(httpserver, successes=0)
    clock = FakeClock()
    with _client(httpserver, clock, ip_rate_limit_per_minute=5, max_retries=2) as client:
        with pytest.raises(WeComTransientError) as caught:
            client.list_departments()
    assert not isinstance(caught.value, WeComBlockedError)
    assert calls_to(httpserver, "department/list") == 3
    assert "failed after 3 attempts" in str(caught.value)
    assert "reached WeCom's limit of 5 calls a minute per IP" in str(caught.value)


def test_a_wait_for_the_per_ip_minute_budget_beyond_the_call_budget_names_it(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    _answers(httpserver, successes=5)
    clock = FakeClock()
    with _client(httpserver, clock, ip_rate_limit_per_minute=3, retry_max_seconds=5.0) as client:
        client.list_departments()
        client.list_departments()
        with pytest.raises(WeComTransientError, match="rate limiter") as caught:
            client.list_departments()
    assert "WeCom's limit of 3 calls a minute per IP" in str(caught.value)
    assert calls_to(httpserver, "department/list") == 2
