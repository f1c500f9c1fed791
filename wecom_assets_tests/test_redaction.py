"""No corp secret or access token ever appears in a log line, error text or repr."""

from __future__ import annotations

import logging
import socket
import traceback
from pathlib import Path

import pytest
from client_helpers import (
    CORP_ID,
    SECRET,
    TOKEN,
    TOKEN_2,
    calls_to,
    client_for,
    closing_server,
    config_for,
    expect_token,
    token_answer,
)
from pytest_httpserver import HTTPServer

from wecom_assets.wecom import WeComClient, WeComError
from wecom_assets.wecom.redact import Redactor, redact_url_params
from wecom_assets.wecom.tokens import TokenGrant, TokenProvider

CREDENTIALS = (SECRET, TOKEN, TOKEN_2)


@pytest.fixture(autouse=True)
def _urllib3_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    """urllib3 logs at DEBUG here even when an imported library (dagster-k8s) quieted it."""
    caplog.set_level(logging.DEBUG, logger="urllib3")


def _our_log_text(caplog: pytest.LogCaptureFixture) -> str:
    # The fake WeCom server (werkzeug) logs the raw request lines it receives; that is the
    # server's side, not the client's.
    return "\n".join(
        f"{record.name} {record.getMessage()}"
        for record in caplog.records
        if not record.name.startswith("werkzeug")
    )


def _assert_clean(text: str) -> None:
    for value in CREDENTIALS:
        assert value not in text


def _refusing_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host, port = probe.getsockname()
    return f"http://{host}:{port}"


def _error_texts(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


def test_config_repr_hides_the_secret() -> None:
    config = config_for("https://qyapi.weixin.qq.com")
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_client_and_its_stats_reprs_hide_credentials(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json({"department": []})
    with client_for(httpserver) as client:
        client.list_departments()
        assert client.stats.token_fetches == 1
        _assert_clean(repr(client))
        _assert_clean(repr(client.config))
        _assert_clean(repr(client.stats))


def test_token_provider_and_grant_reprs_hide_the_token(tmp_path: Path) -> None:
    grant = TokenGrant(TOKEN, 7200.0)
    provider = TokenProvider(
        lambda: grant,
        corp_id=CORP_ID,
        corp_secret=SECRET,
        cache_dir=tmp_path,
        refresh_margin=300.0,
    )
    assert provider.get() == TOKEN
    _assert_clean(repr(grant))
    _assert_clean(repr(provider))


def test_logs_of_a_sync_with_retries_and_token_refresh_hold_no_credentials(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_oneshot_request("/cgi-bin/gettoken").respond_with_json(token_answer(TOKEN))
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(token_answer(TOKEN_2))
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 42001, "errmsg": f"access_token expired: {TOKEN}"}
    )
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_data(status=502)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"department": [{"id": 1}, {"id": 2}]}
    )
    httpserver.expect_oneshot_request("/cgi-bin/user/list").respond_with_json(
        {"errcode": -1, "errmsg": f"busy, token={TOKEN_2}"}
    )
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json({"userlist": []})
    with client_for(httpserver) as client:
        departments = client.list_departments()
        list(client.iter_users(d.id for d in departments))
    text = _our_log_text(caplog)
    assert "urllib3.connectionpool" in text
    assert "wecom_assets.wecom" in text
    _assert_clean(text)


def test_transport_error_text_is_redacted_and_not_chained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # requests puts the full URL, query string included, into connection-refused errors.
    client = WeComClient(config_for(_refusing_url(), max_retries=1))
    with client, pytest.raises(WeComError) as caught:
        client.list_departments()
    error = caught.value
    assert "corpsecret=***" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    _assert_clean(_error_texts(error))
    _assert_clean(_our_log_text(caplog))


def test_dropped_connection_error_is_transient_and_clean() -> None:
    with closing_server() as url:
        client = WeComClient(config_for(url, max_retries=1))
        with client, pytest.raises(WeComError) as caught:
            client.list_departments()
    assert "Connection aborted" in str(caught.value)
    _assert_clean(_error_texts(caught.value))


def test_errmsg_echoing_a_token_is_redacted(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 60003, "errmsg": f"bad request /cgi-bin/x?access_token={TOKEN} token {TOKEN}"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComError) as caught:
        client.list_departments()
    _assert_clean(_error_texts(caught.value))
    assert caught.value.errmsg is not None
    _assert_clean(caught.value.errmsg)


def test_wrong_secret_error_holds_no_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 40001, "errmsg": f"invalid credential, corpsecret={SECRET}"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComError) as caught:
        client.list_departments()
    _assert_clean(_error_texts(caught.value))
    assert calls_to(httpserver, "gettoken") == 1


def test_token_cache_file_holds_no_secret(httpserver: HTTPServer, tmp_path: Path) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json({"department": []})
    with client_for(httpserver, token_cache_dir=tmp_path) as client:
        client.list_departments()
    cache_files = [path for path in tmp_path.iterdir() if path.suffix == ".json"]
    assert len(cache_files) == 1
    assert TOKEN in cache_files[0].read_text()
    for path in tmp_path.iterdir():
        assert SECRET not in path.name
        assert SECRET not in path.read_text()


def test_redactor_masks_credential_parameters_and_known_values() -> None:
    redact = Redactor((SECRET,))
    redact.add(TOKEN)
    text = (
        f"GET /cgi-bin/gettoken?corpid=ww1&corpsecret={SECRET} "
        f"/x?access_token%3D{TOKEN}&id=2 bare {TOKEN} and {SECRET}"
    )
    redacted = redact(text)
    _assert_clean(redacted)
    assert "corpid=ww1" in redacted
    assert "&id=2" in redacted


def test_url_parameter_redaction_keeps_other_parameters() -> None:
    assert (
        redact_url_params("/cgi-bin/user/list?access_token=abc&department_id=5")
        == "/cgi-bin/user/list?access_token=***&department_id=5"
    )


@pytest.mark.parametrize(
    "logger_name", ["urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager"]
)
def test_urllib3_log_lines_with_urls_are_masked(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture, logger_name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    client_for(httpserver).close()
    logging.getLogger(logger_name).debug(
        "Incremented Retry for (url='%s')", f"/cgi-bin/user/list?access_token={TOKEN}&id=1"
    )
    assert "access_token=***&id=1" in caplog.text
    assert TOKEN not in caplog.text


PROXY_PASSWORD = "Pr0xy-Passw0rd-7c1f"


def _base_url_with_credentials(server_url: str, prefix: str = "") -> str:
    return server_url.replace("http://", f"http://proxyuser:{PROXY_PASSWORD}@") + prefix


def test_base_url_credentials_stay_out_of_a_wrong_prefix_error(httpserver: HTTPServer) -> None:
    base_url = _base_url_with_credentials(httpserver.url_for("/").rstrip("/"), "/wrong-prefix")
    httpserver.expect_request("/wrong-prefix/cgi-bin/gettoken").respond_with_data(
        "no such path", status=404
    )
    with WeComClient(config_for(base_url)) as client, pytest.raises(WeComError) as caught:
        client.list_departments()
    texts = _error_texts(caught.value)
    assert "WECOM_API_BASE_URL" in str(caught.value)
    assert "/wrong-prefix" in str(caught.value)
    assert PROXY_PASSWORD not in texts
    assert "proxyuser" not in texts


def test_base_url_credentials_stay_out_of_connection_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base_url = _base_url_with_credentials(_refusing_url())
    with WeComClient(config_for(base_url, max_retries=1)) as client:
        with pytest.raises(WeComError) as caught:
            client.list_departments()
    assert PROXY_PASSWORD not in _error_texts(caught.value)
    assert PROXY_PASSWORD not in _our_log_text(caplog)


def test_config_and_client_reprs_hide_base_url_credentials() -> None:
    config = config_for(_base_url_with_credentials("http://127.0.0.1:9"))
    with WeComClient(config) as client:
        for text in (repr(config), str(config), repr(client)):
            assert PROXY_PASSWORD not in text
            assert "http://***@127.0.0.1:9" in text


def test_configured_proxy_password_is_masked_even_when_quoted_bare(
    httpserver: HTTPServer,
) -> None:
    base_url = _base_url_with_credentials(httpserver.url_for("/").rstrip("/"))
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 60003, "errmsg": f"proxy said: password {PROXY_PASSWORD} expired"}
    )
    with WeComClient(config_for(base_url)) as client, pytest.raises(WeComError) as caught:
        client.list_departments()
    assert PROXY_PASSWORD not in _error_texts(caught.value)
    assert caught.value.errmsg is not None
    assert PROXY_PASSWORD not in caught.value.errmsg


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:secret@host.example/x", "https://***@host.example/x"),
        ("http://user:p%40ss@host.example:8080", "http://***@host.example:8080"),
        ("socks5h://user:pa@ss@proxy.example:1080", "socks5h://***@proxy.example:1080"),
        ("ftp://anonymous@files.example/pub?a=b@c", "ftp://***@files.example/pub?a=b@c"),
    ],
)
def test_user_info_of_any_url_in_any_text_is_masked(url: str, masked: str) -> None:
    assert redact_url_params(f"cannot reach ({url}) after 3 tries") == (
        f"cannot reach ({masked}) after 3 tries"
    )


FORGED = "denied\nINFO wecom_assets: sync finished OK\x1b[2K\r\u202eevil"


def test_control_characters_in_errmsg_are_escaped_in_the_error(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 60003, "errmsg": FORGED}
    )
    with client_for(httpserver) as client, pytest.raises(WeComError) as caught:
        client.list_departments()
    for text in (str(caught.value), caught.value.errmsg or ""):
        assert not any(char in text for char in "\n\r\x1b\u202e")
        assert "denied\\nINFO wecom_assets: sync finished OK\\x1b[2K\\r\\u202eevil" in text


def test_control_characters_in_errmsg_are_escaped_in_retry_logs(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": -1, "errmsg": FORGED}
    )
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json({"department": []})
    with client_for(httpserver) as client:
        client.list_departments()
    retry_lines = [
        record.getMessage() for record in caplog.records if "retry" in record.getMessage()
    ]
    assert len(retry_lines) == 1
    assert "\n" not in retry_lines[0]
    assert "\x1b" not in retry_lines[0]
    assert "\\nINFO" in retry_lines[0]


def test_wecom_error_masks_user_info_and_escapes_controls_in_any_message() -> None:
    error = WeComError("see http://proxyuser:pw@host.example/x\nnext", errmsg="a\x1b[2Kb")
    assert str(error) == "see http://***@host.example/x\\nnext"
    assert "pw@" not in repr(error)
    assert error.errmsg == "a\\x1b[2Kb"
