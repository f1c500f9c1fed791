"""Answers a real WeCom never sends: redirects, oversized or bomb bodies, other encodings.

Each fails clearly and at once when a retry would get the same answer, and never sends the
credentials anywhere but the configured API root.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from client_helpers import (
    SECRET,
    TOKEN,
    calls_to,
    client_for,
    config_for,
    expect_token,
    raw_server,
)
from pytest_httpserver import HTTPServer

from wecom_assets.wecom import WeComApiError, WeComClient, WeComResponseError

DEPARTMENTS = {"errcode": 0, "department": [{"id": 1, "name": "总部", "parentid": 0}]}


def _departments_answer(server: HTTPServer, body: bytes, **headers: str) -> None:
    expect_token(server)
    server.expect_request("/cgi-bin/department/list").respond_with_data(
        body, content_type="application/json", headers=headers
    )


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[bytes]]]:
    """A second server that records every request reaching it."""
    seen: list[bytes] = []

    def record(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        seen.append(request)

    with raw_server(record) as url:
        yield url, seen


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_of_gettoken_elsewhere_is_not_followed(
    httpserver: HTTPServer, elsewhere: tuple[str, list[bytes]], status: int
) -> None:
    url, seen = elsewhere
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_data(
        "", status=status, headers={"Location": f"{url}/steal?keep=1#frag"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComApiError) as caught:
        client.list_departments()
    assert seen == []
    message = str(caught.value)
    assert f"a redirect to {url}/steal." in message
    assert "keep=1" not in message
    assert "frag" not in message
    assert SECRET not in message
    assert calls_to(httpserver, "gettoken") == 1


def test_redirect_to_the_same_host_is_refused_too(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_data(
        "", status=302, headers={"Location": "/v2/cgi-bin/department/list"}
    )
    httpserver.expect_request("/v2/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client, pytest.raises(WeComApiError, match="redirect"):
        client.list_departments()
    assert calls_to(httpserver, "department/list") == 1
    assert len(httpserver.log) == 2


def test_redirect_target_with_user_info_is_printed_without_it(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_data(
        "", status=302, headers={"Location": "https://admin:hunter2@evil.example/x?a=1"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComApiError) as caught:
        client.list_departments()
    assert "https://evil.example/x" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_gzip_answer_is_decompressed(httpserver: HTTPServer) -> None:
    _departments_answer(
        httpserver, gzip.compress(json.dumps(DEPARTMENTS).encode()), **{"Content-Encoding": "gzip"}
    )
    with client_for(httpserver) as client:
        assert [d.name for d in client.list_departments()] == ["总部"]


def test_body_over_the_size_limit_fails_without_retrying(httpserver: HTTPServer) -> None:
    padded = {**DEPARTMENTS, "padding": "x" * 5000}
    _departments_answer(httpserver, json.dumps(padded).encode())
    with client_for(httpserver, max_response_bytes=4096) as client:
        with pytest.raises(WeComResponseError, match="more than 4096 bytes") as caught:
            client.list_departments()
    assert "max_response_bytes" in str(caught.value)
    assert calls_to(httpserver, "department/list") == 1


def test_gzip_bomb_is_refused_once_it_inflates_beyond_the_limit(httpserver: HTTPServer) -> None:
    # 8 MB of valid JSON in about 8 KB of gzip: the limit must apply after decompression.
    bomb = gzip.compress(b'{"department": [], "pad": "' + b" " * 8_000_000 + b'"}')
    assert len(bomb) < 64 * 1024
    _departments_answer(httpserver, bomb, **{"Content-Encoding": "gzip"})
    with client_for(httpserver, max_response_bytes=1024 * 1024) as client:
        with pytest.raises(WeComResponseError, match="decompressed"):
            client.list_departments()
    assert calls_to(httpserver, "department/list") == 1


def test_declared_length_over_the_limit_is_refused_before_the_body_arrives() -> None:
    def promise_a_gigabyte(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if b"gettoken" in request.split(b"\r\n", 1)[0]:
            body = json.dumps({"access_token": TOKEN, "expires_in": 7200}).encode()
            head = f"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
            conn.sendall(head.encode() + body)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        stop.wait(30)

    with raw_server(promise_a_gigabyte) as url:
        with WeComClient(config_for(url, request_timeout=20.0)) as client:
            with pytest.raises(WeComResponseError, match="Content-Length 1000000000"):
                client.list_departments()


def test_compression_not_asked_for_is_refused(httpserver: HTTPServer) -> None:
    _departments_answer(httpserver, b"\x8b\x00\x80", **{"Content-Encoding": "br"})
    with client_for(httpserver) as client, pytest.raises(WeComResponseError, match="'br'"):
        client.list_departments()
    assert calls_to(httpserver, "department/list") == 1


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(DEPARTMENTS, ensure_ascii=False).encode("gbk"),
        b'{"errcode": 0, "department": [{"id": 1, "name": "\xff"}]}',
    ],
    ids=["gbk", "stray-0xff"],
)
def test_complete_json_in_another_encoding_is_not_utf8_json_and_not_retried(
    httpserver: HTTPServer, body: bytes
) -> None:
    _departments_answer(httpserver, body)
    with client_for(httpserver) as client, pytest.raises(WeComResponseError) as caught:
        client.list_departments()
    assert "not UTF-8 JSON" in str(caught.value)
    assert "truncated" not in str(caught.value)
    assert calls_to(httpserver, "department/list") == 1


def test_json_cut_in_the_middle_of_a_character_is_truncated_and_retried(
    httpserver: HTTPServer,
) -> None:
    whole = json.dumps(DEPARTMENTS, ensure_ascii=False).encode()
    cut = whole[: whole.index("总".encode()) + 1]
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_data(
        cut, content_type="application/json"
    )
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        assert [d.name for d in client.list_departments()] == ["总部"]
        assert client.stats.retries == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b"1" * 5000, "number too long")],
    ids=["deep", "long-number"],
)
def test_json_python_cannot_decode_fails_without_retrying(
    httpserver: HTTPServer, body: bytes, reason: str
) -> None:
    _departments_answer(httpserver, body)
    with client_for(httpserver) as client, pytest.raises(WeComResponseError, match=reason):
        client.list_departments()
    assert calls_to(httpserver, "department/list") == 1


def test_invalid_userid_in_a_user_list_answer_names_the_department(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_data(
        b'{"errcode": 0, "userlist": [{"userid": "\\ud800", "name": "x"}]}',
        content_type="application/json",
    )
    with client_for(httpserver) as client, pytest.raises(WeComResponseError) as caught:
        list(client.iter_users([42]))
    assert "user/list for department 42" in str(caught.value)
    assert "field userid" in str(caught.value)
    assert calls_to(httpserver, "user/list") == 1
