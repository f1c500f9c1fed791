"""The sandbox server: WeCom's endpoints, errcodes, tokens, limits and faults over real HTTP."""

from __future__ import annotations

import http.client
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from clock_support import ManualClock

from wecom_assets.sandbox.org import generate_org, save_org, subtree_ids, visible_view
from wecom_assets.sandbox.server import (
    FaultConfig,
    SandboxConfig,
    SandboxServer,
    exposure_warning,
)

Start = Callable[..., SandboxServer]
StartClocked = Callable[[dict[str, Any], SandboxConfig], SandboxServer]


@pytest.fixture
def start_clocked_sandbox(clock: ManualClock) -> Iterator[StartClocked]:
    """Start sandboxes whose token lifetimes and rate-limit windows follow ``clock``."""
    servers: list[SandboxServer] = []

    def start(org: dict[str, Any], config: SandboxConfig) -> SandboxServer:
        server = SandboxServer(org, config, clock=clock).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clocked_sandbox(
    sandbox_org: dict[str, Any], start_clocked_sandbox: StartClocked
) -> SandboxServer:
    """A well-behaved sandbox (tokens live 7200 s) on the test's ``clock``."""
    return start_clocked_sandbox(sandbox_org, SandboxConfig())


def gettoken(server: SandboxServer, **params: str) -> dict[str, Any]:
    org = server.org
    query = {"corpid": org["corp_id"], "corpsecret": org["corp_secret"], **params}
    response = requests.get(f"{server.url}/cgi-bin/gettoken", params=query, timeout=5)
    return response.json()


def token_of(server: SandboxServer) -> str:
    return str(gettoken(server)["access_token"])


def call(server: SandboxServer, path: str, token: str | None = None, **params: Any) -> Any:
    if token is not None:
        params["access_token"] = token
    return requests.get(f"{server.url}/cgi-bin/{path}", params=params, timeout=5).json()


def api(server: SandboxServer, path: str, **params: Any) -> Any:
    """A GET call with a valid token."""
    return call(server, path, token_of(server), **params)


def list_id(server: SandboxServer, body: Any, token: str | None = None) -> Any:
    url = f"{server.url}/cgi-bin/user/list_id"
    params = {"access_token": token or token_of(server)}
    return requests.post(url, params=params, json=body, timeout=5).json()


def visible_root(org: dict[str, Any]) -> int:
    """A child of the top department with a subtree below it."""
    return max(
        (d["id"] for d in org["departments"] if d["parentid"] == 1),
        key=lambda i: len(subtree_ids(org["departments"], [i])),
    )


def outside(org: dict[str, Any], root: int) -> int:
    visible = subtree_ids(org["departments"], [root])
    return next(d["id"] for d in org["departments"] if d["id"] not in visible)


# Tokens ----------------------------------------------------------------------------------------


def test_gettoken_answers_a_token_and_its_lifetime(sandbox: SandboxServer) -> None:
    answer = gettoken(sandbox)
    assert answer["errcode"] == 0
    assert answer["errmsg"] == "ok"
    assert answer["expires_in"] == 7200
    assert len(answer["access_token"]) >= 64
    assert sandbox.stats()["issued_tokens"] == [answer["access_token"]]


def test_gettoken_within_the_tokens_life_returns_the_same_token(sandbox: SandboxServer) -> None:
    assert token_of(sandbox) == token_of(sandbox)
    assert sandbox.stats()["gettoken"] == 2
    assert len(sandbox.stats()["issued_tokens"]) == 1


def test_concurrent_gettoken_calls_share_one_token(sandbox: SandboxServer) -> None:
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: token_of(sandbox), range(16)))
    assert len(tokens) == 1


def test_gettoken_with_a_wrong_corp_id_answers_40013(sandbox: SandboxServer) -> None:
    assert gettoken(sandbox, corpid="ww-wrong")["errcode"] == 40013


def test_gettoken_with_non_ascii_credentials_answers_an_errcode(sandbox: SandboxServer) -> None:
    assert gettoken(sandbox, corpid="企业")["errcode"] == 40013
    assert gettoken(sandbox, corpsecret="密钥")["errcode"] == 40001


def test_gettoken_with_a_wrong_secret_answers_40001(sandbox: SandboxServer) -> None:
    answer = gettoken(sandbox, corpsecret="wrong")
    assert answer["errcode"] == 40001
    assert "access_token" not in answer
    stats = sandbox.stats()
    assert (stats["gettoken"], stats["gettoken_failed"]) == (1, 1)
    assert stats["errcodes"] == {40001: 1}


def test_error_messages_follow_wecoms_format(sandbox: SandboxServer) -> None:
    errmsg = call(sandbox, "department/list")["errmsg"]
    assert re.fullmatch(
        r"access_token missing \(.*\), hint: \[\d+_\d+\], from ip: 127\.0\.0\.1, "
        r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=41001",
        errmsg,
    )


@pytest.mark.parametrize(
    ("field", "errcode"), [("corpid", 40013), ("corpsecret", 40001)], ids=["corp id", "secret"]
)
def test_rejected_credentials_are_answered_as_the_sandbox_not_as_wecom(
    sandbox: SandboxServer, field: str, errcode: int
) -> None:
    real_looking = {"corpid": "ww8f3c2a9b1d4e7f60", "corpsecret": "Xq3" * 14 + "A"}
    answer = gettoken(sandbox, **{field: real_looking[field]})
    assert answer["errcode"] == errcode
    note = "(wecom_assets sandbox, not WeCom: it accepts only the corp id and secret of the org "
    assert note in answer["errmsg"]


def test_every_error_message_names_the_sandbox(
    sandbox: SandboxServer, sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    busy = faulty(start_sandbox, sandbox_org, busy_rate=1.0)
    errmsgs = [
        call(sandbox, "department/list")["errmsg"],
        call(sandbox, "department/list", "not-a-token")["errmsg"],
        api(sandbox, "department/list", id=987_654_321)["errmsg"],
        api(busy, "department/list")["errmsg"],
    ]
    assert all("(wecom_assets sandbox, not WeCom" in errmsg for errmsg in errmsgs), errmsgs


def test_a_call_without_token_answers_41001(sandbox: SandboxServer) -> None:
    assert call(sandbox, "department/list")["errcode"] == 41001


def test_a_call_with_an_unknown_token_answers_40014(sandbox: SandboxServer) -> None:
    assert call(sandbox, "department/list", "not-a-token")["errcode"] == 40014


def test_a_token_is_accepted_until_its_lifetime_ends(
    clocked_sandbox: SandboxServer, clock: ManualClock
) -> None:
    token = token_of(clocked_sandbox)
    clock.advance(7199)
    assert call(clocked_sandbox, "department/list", token)["errcode"] == 0


def test_an_expired_token_answers_42001_and_gettoken_issues_a_new_one(
    clocked_sandbox: SandboxServer, clock: ManualClock
) -> None:
    first = token_of(clocked_sandbox)
    clock.advance(7200)
    assert call(clocked_sandbox, "department/list", first)["errcode"] == 42001
    second = token_of(clocked_sandbox)
    assert second != first
    assert call(clocked_sandbox, "department/list", second)["errcode"] == 0


def test_a_repeated_gettoken_reports_the_remaining_life(
    clocked_sandbox: SandboxServer, clock: ManualClock
) -> None:
    gettoken(clocked_sandbox)
    clock.advance(1000)
    assert gettoken(clocked_sandbox)["expires_in"] == 6200


def test_the_token_is_invalidated_after_invalidate_every_calls(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(invalidate_every=3))
    first = token_of(server)
    answers = [call(server, "department/list", first)["errcode"] for _ in range(4)]
    assert answers == [0, 0, 0, 40014]
    second = token_of(server)
    assert second != first
    assert call(server, "department/list", second)["errcode"] == 0
    assert server.stats()["tokens_invalidated"] == 1
    assert server.stats()["issued_tokens"] == [first, second]


# Departments -----------------------------------------------------------------------------------


def test_department_list_returns_every_department(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    answer = api(sandbox, "department/list")
    assert answer["errcode"] == 0
    assert answer["department"] == sandbox_org["departments"]


def test_department_list_with_an_id_returns_its_subtree(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    root = visible_root(sandbox_org)
    expected = subtree_ids(sandbox_org["departments"], [root])
    answer = api(sandbox, "department/list", id=root)
    assert {d["id"] for d in answer["department"]} == expected
    assert answer["department"][0]["id"] == root


def test_department_list_of_an_unknown_id_answers_60003(sandbox: SandboxServer) -> None:
    assert api(sandbox, "department/list", id=987_654_321)["errcode"] == 60003


@pytest.mark.parametrize("bad_id", ["abc", "0", "-3", "1.5", "99999999999"])
def test_department_list_of_a_malformed_id_answers_60123(
    sandbox: SandboxServer, bad_id: str
) -> None:
    assert api(sandbox, "department/list", id=bad_id)["errcode"] == 60123


def test_department_list_is_limited_to_the_visible_range(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    root = visible_root(sandbox_org)
    server = start_sandbox(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    answer = api(server, "department/list")
    assert answer["department"] == visible_view(sandbox_org, [root])["departments"]


def test_department_outside_the_visible_range_answers_60011(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    root = visible_root(sandbox_org)
    server = start_sandbox(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    hidden = outside(sandbox_org, root)
    assert api(server, "department/list", id=hidden)["errcode"] == 60011
    assert api(server, "department/get", id=hidden)["errcode"] == 60011
    assert api(server, "user/list", department_id=hidden)["errcode"] == 60011


def test_department_simplelist_returns_ids_parents_and_orders(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    answer = api(sandbox, "department/simplelist")
    expected = [
        {"id": d["id"], "parentid": d["parentid"], "order": d["order"]}
        for d in sandbox_org["departments"]
    ]
    assert answer["department_id"] == expected


def test_department_get_returns_one_department(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    dept = sandbox_org["departments"][5]
    answer = api(sandbox, "department/get", id=dept["id"])
    assert answer["department"] == dept


def test_department_get_without_an_id_answers_60123(sandbox: SandboxServer) -> None:
    assert api(sandbox, "department/get")["errcode"] == 60123


# Users -----------------------------------------------------------------------------------------


def test_user_list_returns_the_direct_members_only(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    root = visible_root(sandbox_org)
    answer = api(sandbox, "user/list", department_id=root)
    expected = [u for u in sandbox_org["users"] if root in u["department"]]
    assert answer["errcode"] == 0
    assert answer["userlist"] == expected


def test_user_lists_of_all_departments_hold_every_user(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    seen = {
        u["userid"]
        for d in sandbox_org["departments"]
        for u in call(sandbox, "user/list", token, department_id=d["id"])["userlist"]
    }
    assert seen == {u["userid"] for u in sandbox_org["users"]}


def test_user_list_in_a_visible_range_matches_the_visible_view(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    root = visible_root(sandbox_org)
    server = start_sandbox(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    view = visible_view(sandbox_org, [root])
    token = token_of(server)
    for dept in view["departments"]:
        answer = call(server, "user/list", token, department_id=dept["id"])
        assert answer["userlist"] == [u for u in view["users"] if dept["id"] in u["department"]]


def test_user_simplelist_returns_ids_names_and_departments(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    root = visible_root(sandbox_org)
    rows = api(sandbox, "user/simplelist", department_id=root)["userlist"]
    members = [u for u in sandbox_org["users"] if root in u["department"]]
    assert [r["userid"] for r in rows] == [u["userid"] for u in members]
    assert all(set(r) <= {"userid", "name", "department", "open_userid"} for r in rows)
    assert rows[0]["department"] == members[0]["department"]


def test_user_get_finds_userids_case_insensitively(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    user = next(u for u in sandbox_org["users"] if u["userid"] != u["userid"].lower())
    answer = api(sandbox, "user/get", userid=user["userid"].lower())
    assert answer["errcode"] == 0
    assert {k: v for k, v in answer.items() if k not in ("errcode", "errmsg")} == user


def test_user_get_of_an_unknown_user_answers_60111(sandbox: SandboxServer) -> None:
    assert api(sandbox, "user/get", userid="nobody-here")["errcode"] == 60111


def test_user_get_of_an_invisible_user_answers_60111(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    root = visible_root(sandbox_org)
    visible = subtree_ids(sandbox_org["departments"], [root])
    hidden = next(u for u in sandbox_org["users"] if not set(u["department"]) & visible)
    server = start_sandbox(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    assert api(server, "user/get", userid=hidden["userid"])["errcode"] == 60111


def test_user_list_id_pages_through_every_membership(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    rows: list[dict[str, Any]] = []
    body: dict[str, Any] = {"limit": 70}
    while True:
        answer = list_id(sandbox, body, token)
        assert answer["errcode"] == 0
        assert len(answer["dept_user"]) <= 70
        rows.extend(answer["dept_user"])
        if not answer["next_cursor"]:
            break
        body = {"cursor": answer["next_cursor"], "limit": 70}
    expected = [
        {"userid": u["userid"], "department": d}
        for u in sandbox_org["users"]
        for d in u["department"]
    ]
    assert rows == expected


def test_user_list_id_requires_post(sandbox: SandboxServer) -> None:
    assert api(sandbox, "user/list_id")["errcode"] == 43002


@pytest.mark.parametrize("body", [{"limit": 0}, {"limit": 10_001}, {"cursor": "@@"}])
def test_user_list_id_rejects_invalid_paging(sandbox: SandboxServer, body: Any) -> None:
    assert list_id(sandbox, body)["errcode"] == 40058


def test_an_unknown_api_path_answers_http_404(sandbox: SandboxServer) -> None:
    assert requests.get(f"{sandbox.url}/cgi-bin/no/such/api", timeout=5).status_code == 404


# Rate limit ------------------------------------------------------------------------------------


def test_calls_beyond_the_rate_limit_answer_45009(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(rate_limit_per_minute=3))
    token = token_of(server)
    codes = [call(server, "department/list", token)["errcode"] for _ in range(5)]
    assert codes == [0, 0, 0, 45009, 45009]
    assert server.stats()["errcodes"] == {45009: 2}


def test_the_rate_limit_counts_each_api_path_separately(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(rate_limit_per_minute=1))
    token = token_of(server)
    assert call(server, "department/list", token)["errcode"] == 0
    assert call(server, "department/simplelist", token)["errcode"] == 0
    assert call(server, "department/list", token)["errcode"] == 45009


def test_gettoken_has_its_own_rate_limit(sandbox_org: dict[str, Any], start_sandbox: Start) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(rate_limit_per_minute=2))
    assert [gettoken(server)["errcode"] for _ in range(3)] == [0, 0, 45009]


def test_the_rate_limit_window_slides(
    sandbox_org: dict[str, Any], start_clocked_sandbox: StartClocked, clock: ManualClock
) -> None:
    server = start_clocked_sandbox(sandbox_org, SandboxConfig(rate_limit_per_minute=2))
    token = token_of(server)
    assert [call(server, "department/list", token)["errcode"] for _ in range(3)] == [0, 0, 45009]
    clock.advance(59)
    assert call(server, "department/list", token)["errcode"] == 45009
    clock.advance(1)
    assert call(server, "department/list", token)["errcode"] == 0


# Faults ----------------------------------------------------------------------------------------


def faulty(start: Start, org: dict[str, Any], **faults: Any) -> SandboxServer:
    return start(org, SandboxConfig(faults=FaultConfig(**faults)))


def test_the_busy_fault_answers_errcode_minus_1(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, busy_rate=1.0)
    assert api(server, "department/list") == {
        "errcode": -1,
        "errmsg": "system busy (wecom_assets sandbox, not WeCom)",
    }
    stats = server.stats()
    assert stats["faults"]["busy"] == 1
    assert stats["errcodes"] == {-1: 1}


def test_the_http_5xx_fault_answers_a_gateway_error_page(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, http_5xx_rate=1.0)
    token = token_of(server)
    response = requests.get(
        f"{server.url}/cgi-bin/department/list", params={"access_token": token}, timeout=5
    )
    assert response.status_code in (502, 503)
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    assert server.stats()["faults"]["http_5xx"] == 1


def test_the_drop_fault_closes_the_connection_without_an_answer(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, drop_rate=1.0)
    token = token_of(server)
    with pytest.raises(requests.ConnectionError):
        call(server, "department/list", token)
    assert server.stats()["faults"]["drop"] == 1


def test_the_truncate_fault_sends_half_the_announced_body(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, truncate_rate=1.0)
    token = token_of(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", f"/cgi-bin/department/list?access_token={token}")
    response = connection.getresponse()
    announced = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert len(cut.value.partial) == announced // 2
    assert server.stats()["faults"]["truncate"] == 1


def test_a_truncated_answer_fails_in_requests(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, truncate_rate=1.0)
    token = token_of(server)
    with pytest.raises(requests.RequestException):
        call(server, "department/list", token)


def test_the_bad_json_fault_answers_cut_off_json(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, bad_json_rate=1.0)
    token = token_of(server)
    response = requests.get(
        f"{server.url}/cgi-bin/department/list", params={"access_token": token}, timeout=5
    )
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert server.stats()["faults"]["bad_json"] == 1


def test_fail_after_answers_503_for_every_later_call(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, fail_after=2)
    token = token_of(server)
    url = f"{server.url}/cgi-bin/department/list"
    statuses = [
        requests.get(url, params={"access_token": token}, timeout=5).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 503, 503]
    assert server.stats()["faults"]["outage"] == 2


def test_gettoken_is_exempt_from_faults_by_default(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, busy_rate=1.0, fail_after=0)
    assert gettoken(server)["errcode"] == 0


def test_gettoken_faults_applies_faults_to_gettoken(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, busy_rate=1.0, gettoken_faults=True)
    assert gettoken(server)["errcode"] == -1
    assert server.stats()["gettoken_failed"] == 1


def test_a_cut_off_gettoken_answer_counts_as_failed(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, bad_json_rate=1.0, gettoken_faults=True)
    with pytest.raises(ValueError):
        gettoken(server)
    assert server.stats()["gettoken_failed"] == 1


def test_faults_hit_about_their_rate_and_are_all_counted(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = faulty(start_sandbox, sandbox_org, busy_rate=0.3)
    token = token_of(server)
    busy = sum(call(server, "department/list", token)["errcode"] == -1 for _ in range(200))
    assert 30 < busy < 90
    assert server.stats()["faults"]["busy"] == busy


def test_the_same_seed_gives_the_same_faults(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    def pattern() -> list[int]:
        server = faulty(start_sandbox, sandbox_org, busy_rate=0.5)
        token = token_of(server)
        return [call(server, "department/list", token)["errcode"] for _ in range(20)]

    assert pattern() == pattern()


# Stats, settings, transport --------------------------------------------------------------------


def test_stats_count_every_call_exactly_under_concurrency(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
    dept_ids = [d["id"] for d in sandbox_org["departments"]] * 5

    def fetch(dept_id: int) -> int:
        params: dict[str, str | int] = {"access_token": token, "department_id": dept_id}
        url = f"{sandbox.url}/cgi-bin/user/list"
        return int(session.get(url, params=params, timeout=5).json()["errcode"])

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(fetch, dept_ids)) == {0}
    stats = sandbox.stats()
    assert stats["calls"] == {"user/list": len(dept_ids)}
    assert stats["gettoken"] == 1
    assert stats["connections"] <= 17
    assert stats["max_in_flight"] <= 16


def test_reset_stats_zeroes_counts_but_keeps_issued_tokens(sandbox: SandboxServer) -> None:
    token = token_of(sandbox)
    call(sandbox, "department/list", token)
    sandbox.reset_stats()
    stats = sandbox.stats()
    assert stats["calls"] == {}
    assert stats["gettoken"] == 0
    assert stats["issued_tokens"] == [token]
    assert call(sandbox, "department/list", token)["errcode"] == 0


def test_update_config_applies_to_the_next_call(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    root = visible_root(sandbox_org)
    sandbox.update_config(visible_department_ids=[root], busy_rate=0.0)
    answer = call(sandbox, "department/list", token)
    assert answer["department"] == visible_view(sandbox_org, [root])["departments"]
    sandbox.update_config(faults={"busy_rate": 1.0})
    assert call(sandbox, "department/list", token)["errcode"] == -1


@pytest.mark.parametrize(
    "change",
    [{"no_such_setting": 1}, {"busy_rate": 1.5}, {"busy_rate": 0.6, "drop_rate": 0.6}],
)
def test_update_config_rejects_invalid_settings(
    sandbox: SandboxServer, change: dict[str, Any]
) -> None:
    before = sandbox.config
    with pytest.raises(ValueError):
        sandbox.update_config(**change)
    assert sandbox.config == before


def test_replace_org_serves_the_new_org_with_the_same_token(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    changed = {**sandbox_org, "users": sandbox_org["users"][:10]}
    sandbox.replace_org(changed)
    userids = {
        u["userid"]
        for d in changed["departments"]
        for u in call(sandbox, "user/list", token, department_id=d["id"])["userlist"]
    }
    assert userids == {u["userid"] for u in changed["users"]}


def test_replace_org_with_other_credentials_invalidates_tokens(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    token = token_of(sandbox)
    sandbox.replace_org({**sandbox_org, "corp_secret": "another-secret"})
    assert call(sandbox, "department/list", token)["errcode"] == 40014


def test_control_endpoints_serve_stats_config_reset_and_org(
    sandbox: SandboxServer, sandbox_org: dict[str, Any]
) -> None:
    base = f"{sandbox.url}/sandbox"
    token = token_of(sandbox)
    stats = requests.get(f"{base}/stats", timeout=5).json()
    assert stats["gettoken"] == 1
    config = requests.post(f"{base}/config", json={"latency_ms": 1, "busy_rate": 0.5}, timeout=5)
    assert config.json()["faults"]["busy_rate"] == 0.5
    assert sandbox.config.latency_ms == 1
    assert requests.post(f"{base}/config", json={"nope": 1}, timeout=5).status_code == 400
    assert requests.post(f"{base}/reset", timeout=5).json() == {"ok": True}
    assert sandbox.stats()["gettoken"] == 0
    smaller = {**sandbox_org, "users": sandbox_org["users"][:3]}
    assert requests.post(f"{base}/org", json=smaller, timeout=5).json()["users"] == 3
    assert call(sandbox, "user/get", token, userid=sandbox_org["users"][5]["userid"])[
        "errcode"
    ] == (60111)


def test_stats_over_http_use_string_errcode_keys(sandbox: SandboxServer) -> None:
    gettoken(sandbox, corpsecret="wrong")
    assert requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()["errcodes"] == {
        "40001": 1
    }


def test_a_keep_alive_session_uses_one_connection(sandbox: SandboxServer) -> None:
    session = requests.Session()
    token = session.get(
        f"{sandbox.url}/cgi-bin/gettoken",
        params={"corpid": sandbox.org["corp_id"], "corpsecret": sandbox.org["corp_secret"]},
        timeout=5,
    ).json()["access_token"]
    for _ in range(20):
        session.get(
            f"{sandbox.url}/cgi-bin/department/list", params={"access_token": token}, timeout=5
        )
    assert sandbox.stats()["connections"] == 1


def test_latency_delays_answers_without_blocking_other_requests(
    sandbox_org: dict[str, Any], start_sandbox: Start
) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(latency_ms=200))
    token = token_of(server)
    started = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: call(server, "department/list", token), range(10)))
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 1.0


def test_the_servers_log_never_shows_tokens_or_secrets(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wecom_assets.sandbox")
    token = token_of(sandbox)
    call(sandbox, "department/list", token)
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw:
        raw.sendall(f"GET /cgi-bin/user/get?access_token={token} HTTP/1.1 extra\r\n\r\n".encode())
        raw.recv(4096)
    sandbox.stop()
    assert caplog.records
    assert token not in caplog.text
    assert sandbox.org["corp_secret"] not in caplog.text


def test_stop_releases_the_port_and_is_idempotent(sandbox_org: dict[str, Any]) -> None:
    server = SandboxServer(sandbox_org).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/sandbox/stats", timeout=2)


def test_url_is_unavailable_before_start(sandbox_org: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = SandboxServer(sandbox_org).url


# Exposure --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1"])
def test_listening_on_a_loopback_address_needs_no_warning(host: str) -> None:
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "sandbox.example"])
def test_listening_elsewhere_is_warned_about_as_unauthenticated(host: str) -> None:
    warning = exposure_warning(host)
    assert warning is not None
    assert f"listens on {host}, so other machines can reach it" in warning
    assert "no authentication" in warning
    assert "/sandbox/stats lists every access token" in warning


def test_a_server_bound_to_every_interface_logs_the_warning(
    sandbox_org: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wecom_assets.sandbox")
    with SandboxServer(sandbox_org, host="0.0.0.0"):
        pass
    assert [record.getMessage() for record in caplog.records] == [exposure_warning("0.0.0.0")]


def test_a_server_on_loopback_logs_no_warning(
    sandbox_org: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wecom_assets.sandbox")
    with SandboxServer(sandbox_org):
        pass
    assert caplog.records == []


# Command line ----------------------------------------------------------------------------------


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wecom_assets.sandbox", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sandbox did not write its port file"
        time.sleep(0.05)
    return path.read_text()


def test_cli_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("generate", "serve", "stats"):
        assert command in result.stdout


def test_cli_generate_writes_the_org_file(tmp_path: Path) -> None:
    out = tmp_path / "org.json"
    result = run_cli(
        "generate", "--users", "50", "--departments", "8", "--seed", "4", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == generate_org(50, 8, seed=4)


def test_cli_serve_announces_its_url_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    org = generate_org(30, 5, seed=2)
    save_org(org, tmp_path / "org.json")
    port_file = tmp_path / "run" / "sandbox.url"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "wecom_assets.sandbox", "serve"),
            *("--org", str(tmp_path / "org.json"), "--port-file", str(port_file)),
            *("--busy-rate", "1", "--visible", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = wait_for(port_file, process)
        query = {"corpid": org["corp_id"], "corpsecret": org["corp_secret"]}
        token = requests.get(f"{url}/cgi-bin/gettoken", params=query, timeout=5).json()
        assert token["errcode"] == 0
        answer = requests.get(
            f"{url}/cgi-bin/department/list",
            params={"access_token": token["access_token"]},
            timeout=5,
        ).json()
        assert answer["errcode"] == -1
        stats = run_cli("stats", "--url", url)
        assert json.loads(stats.stdout)["faults"]["busy"] == 1
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert stdout.strip() == f"WeCom sandbox listening on {url}"
    assert url.startswith("http://127.0.0.1:")


def test_cli_serve_on_every_interface_prints_the_warning(tmp_path: Path) -> None:
    save_org(generate_org(5, 2), tmp_path / "org.json")
    port_file = tmp_path / "sandbox.url"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "wecom_assets.sandbox", "serve"),
            *("--org", str(tmp_path / "org.json"), "--port-file", str(port_file)),
            *("--host", "0.0.0.0"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(port_file, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stderr == f"WARNING: {exposure_warning('0.0.0.0')}\n"


def test_cli_serve_reports_an_invalid_org_file(tmp_path: Path) -> None:
    bad = tmp_path / "org.json"
    bad.write_text("[]")
    result = run_cli("serve", "--org", str(bad))
    assert result.returncode == 1
    assert "org.json" in result.stderr


def test_cli_serve_reports_an_invalid_setting(tmp_path: Path) -> None:
    save_org(generate_org(5, 2), tmp_path / "org.json")
    result = run_cli("serve", "--org", str(tmp_path / "org.json"), "--busy-rate", "2")
    assert result.returncode == 1
    assert "busy_rate" in result.stderr
