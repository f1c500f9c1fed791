"""The client applies WeCom's errcode policy: retry, refresh the token, or fail clearly."""

from __future__ import annotations

import pytest
from client_helpers import (
    SECRET,
    TOKEN,
    TOKEN_2,
    FakeClock,
    calls_to,
    client_for,
    expect_token,
    token_answer,
)
from pytest_httpserver import HTTPServer

from wecom_assets.wecom import (
    WeComApiError,
    WeComAuthError,
    WeComPermissionError,
    WeComResponseError,
    WeComTransientError,
)

DEPARTMENTS = {
    "errcode": 0,
    "errmsg": "ok",
    "department": [{"id": 1, "name": "总部", "parentid": 0}],
}


def test_answer_without_errcode_is_success(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"department": [{"id": 1}]}
    )
    with client_for(httpserver) as client:
        assert [d.id for d in client.list_departments()] == [1]


def test_errcode_zero_returns_payload(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        assert client.get("department/list")["department"][0]["name"] == "总部"


def test_access_token_is_sent_with_every_call(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request(
        "/cgi-bin/user/list", query_string={"department_id": "7", "access_token": TOKEN}
    ).respond_with_json({"userlist": []})
    with client_for(httpserver) as client:
        assert client.list_users(7) == []


def test_system_busy_is_retried_until_success(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    for _ in range(2):
        httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(
            {"errcode": -1, "errmsg": "system busy"}
        )
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1
        stats = client.stats
    assert stats.calls["department/list"] == 3
    assert stats.retries == 2
    assert stats.errcodes == {-1: 2}


@pytest.mark.parametrize("errcode", [45009, 45033])
def test_rate_limit_answer_is_retried_and_slows_the_limiter(
    httpserver: HTTPServer, errcode: int
) -> None:
    expect_token(httpserver)
    httpserver.expect_oneshot_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": errcode, "errmsg": "api freq out of limit"}
    )
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    clock = FakeClock()
    with client_for(httpserver, clock=clock, rate_limit_per_minute=160) as client:
        client.list_departments()
        assert client._limiter.limit_for("department/list") == 10
    assert calls_to(httpserver, "department/list") == 2


@pytest.mark.parametrize("errcode", [40014, 41001, 42001])
def test_rejected_token_is_replaced_and_the_call_retried(
    httpserver: HTTPServer, errcode: int
) -> None:
    httpserver.expect_oneshot_request("/cgi-bin/gettoken").respond_with_json(token_answer(TOKEN))
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(token_answer(TOKEN_2))
    httpserver.expect_request(
        "/cgi-bin/department/list", query_string={"access_token": TOKEN}
    ).respond_with_json({"errcode": errcode, "errmsg": "invalid access_token"})
    httpserver.expect_request(
        "/cgi-bin/department/list", query_string={"access_token": TOKEN_2}
    ).respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        assert len(client.list_departments()) == 1
        stats = client.stats
    assert stats.token_fetches == 2
    assert stats.calls["department/list"] == 2
    assert stats.retries == 1


def test_token_refresh_is_bounded_when_every_fresh_token_is_rejected(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 40014, "errmsg": "invalid access_token"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComApiError) as caught:
        client.list_departments()
    assert caught.value.errcode == 40014
    assert "rejected 4 access tokens in a row" in str(caught.value)
    assert calls_to(httpserver, "gettoken") == 4
    assert calls_to(httpserver, "department/list") == 4


def test_wrong_secret_fails_fast_naming_the_setting_not_the_value(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 40001, "errmsg": "invalid credential"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComAuthError) as caught:
        client.list_departments()
    message = str(caught.value)
    assert "WECOM_CORP_SECRET" in message
    assert SECRET not in message
    assert caught.value.errcode == 40001
    assert calls_to(httpserver, "gettoken") == 1
    assert calls_to(httpserver, "department/list") == 0


def test_wrong_secret_of_a_listed_corp_names_that_corps_variable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 40001, "errmsg": "invalid credential"}
    )
    with (
        client_for(httpserver, secret_variable="WECOM_SECRET_ACME") as client,
        pytest.raises(WeComAuthError) as caught,
    ):
        client.list_departments()
    assert "Check WECOM_SECRET_ACME" in str(caught.value)
    assert "WECOM_CORP_SECRET" not in str(caught.value)


def test_wrong_corp_id_names_the_corp_id_setting(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 40013, "errmsg": "invalid corpid"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComAuthError, match="WECOM_CORP_ID"):
        client.list_departments()


def test_auth_failures_stop_calling_gettoken_after_two_tries(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 40001, "errmsg": "invalid credential"}
    )
    with client_for(httpserver) as client:
        for _ in range(5):
            with pytest.raises(WeComAuthError):
                client.list_departments()
    assert calls_to(httpserver, "gettoken") == 2


def test_untrusted_ip_says_to_add_the_host_to_trusted_ips(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 60020, "errmsg": "not allow to access from your ip"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComPermissionError) as caught:
        client.list_departments()
    assert "trusted IP" in str(caught.value)
    assert caught.value.errcode == 60020
    assert calls_to(httpserver, "department/list") == 1


def test_untrusted_ip_on_gettoken_is_a_permission_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 60020, "errmsg": "not allow to access from your ip"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComPermissionError, match="trusted IP"):
        client.list_departments()


def test_contact_sync_secret_from_new_ip_explains_the_2022_policy(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json(
        {"errcode": 48009, "errmsg": "api forbidden for contact sync secret"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComPermissionError) as caught:
        client.list_users(1)
    assert "contact-sync secret" in str(caught.value)
    assert "self-built app" in str(caught.value)


def test_missing_api_permission_explains_what_to_grant(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 48002, "errmsg": "api forbidden"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComPermissionError, match="48002"):
        client.list_departments()


def test_out_of_range_department_names_it_and_the_visible_range(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json(
        {"errcode": 60011, "errmsg": "no privilege to access/modify contact/party/agent"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComPermissionError) as caught:
        client.list_users(42)
    assert "department 42" in str(caught.value)
    assert "visible range" in str(caught.value)
    assert calls_to(httpserver, "user/list") == 1


def test_other_errcode_fails_with_code_message_and_path(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"errcode": 60003, "errmsg": "department not found"}
    )
    with client_for(httpserver) as client, pytest.raises(WeComApiError) as caught:
        client.list_departments(root_id=99)
    assert caught.value.path == "department/list"
    assert caught.value.errcode == 60003
    assert "60003" in str(caught.value)
    assert "department not found" in str(caught.value)
    assert "department/list" in str(caught.value)
    assert calls_to(httpserver, "department/list") == 1


def test_exhausted_busy_retries_name_path_and_last_errcode(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json(
        {"errcode": -1, "errmsg": "system busy"}
    )
    with client_for(httpserver, max_retries=2) as client:
        with pytest.raises(WeComTransientError) as caught:
            client.list_users(3)
        assert client.stats.retries == 2
    assert caught.value.errcode == -1
    assert "user/list" in str(caught.value)
    assert "errcode -1" in str(caught.value)
    assert calls_to(httpserver, "user/list") == 3


def test_gettoken_busy_is_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": -1, "errmsg": "system busy"}
    )
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(DEPARTMENTS)
    with client_for(httpserver) as client:
        client.list_departments()
        assert client.stats.token_fetches == 2


def test_gettoken_without_access_token_is_a_response_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json({"errcode": 0})
    with client_for(httpserver) as client, pytest.raises(WeComResponseError):
        client.list_departments()


def test_answer_missing_its_array_is_a_response_error(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json({"errcode": 0})
    with client_for(httpserver) as client, pytest.raises(WeComResponseError, match="userlist"):
        client.list_users(1)


def test_json_that_is_not_an_object_is_a_response_error(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json([1, 2])
    with client_for(httpserver) as client, pytest.raises(WeComResponseError):
        client.list_departments()
    assert calls_to(httpserver, "department/list") == 1


def test_http_404_is_not_retried_and_points_at_the_base_url(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_data("nope", status=404)
    with client_for(httpserver) as client, pytest.raises(WeComApiError, match="WECOM_API_BASE_URL"):
        client.list_departments()
    assert calls_to(httpserver, "department/list") == 1
