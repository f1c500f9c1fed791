"""Users of all departments are fetched concurrently, merged once per userid, in stable order."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Generator

import pytest
from client_helpers import TOKEN, calls_to, client_for, expect_token
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from wecom_assets.wecom import (
    User,
    WeComApiError,
    WeComPermissionError,
    WeComTransientError,
)
from wecom_assets.wecom.directory import FetchCancelled, iter_users


def _user(userid: str, *departments: int) -> User:
    return User.from_api({"userid": userid, "department": list(departments)})


def test_user_in_several_departments_appears_once_with_first_seen_case() -> None:
    members = {1: [_user("ZhangSan", 1, 2)], 2: [_user("zhangsan", 1, 2), _user("li", 2)]}
    users = list(iter_users([1, 2], lambda d, _: members[d], max_concurrency=4))
    assert [u.userid for u in users] == ["ZhangSan", "li"]


def test_case_sensitive_userids_of_a_service_provider_app_stay_two_members() -> None:
    members = {1: [_user("ZhangSan", 1, 2)], 2: [_user("zhangsan", 1, 2), _user("ZhangSan", 1, 2)]}
    users = list(
        iter_users([1, 2], lambda d, _: members[d], max_concurrency=4, userids_case_sensitive=True)
    )
    assert [u.userid for u in users] == ["ZhangSan", "zhangsan"]


def test_result_order_follows_department_order_not_completion_order() -> None:
    rng = random.Random(3)
    delays = {d: rng.uniform(0, 0.01) for d in range(1, 41)}

    def list_users(department_id: int, _: threading.Event) -> list[User]:
        time.sleep(delays[department_id])
        return [_user(f"u{department_id}", department_id)]

    users = list(iter_users(range(1, 41), list_users, max_concurrency=8))
    assert [u.userid for u in users] == [f"u{d}" for d in range(1, 41)]


def test_no_more_than_max_concurrency_calls_run_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def list_users(department_id: int, _: threading.Event) -> list[User]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return []

    list(iter_users(range(100), list_users, max_concurrency=5))
    assert 1 < peak <= 5


def test_a_slow_department_does_not_hold_back_the_others() -> None:
    others_done = threading.Event()
    finished: list[int] = []
    lock = threading.Lock()

    def list_users(department_id: int, _: threading.Event) -> list[User]:
        if department_id == 1:
            assert others_done.wait(timeout=5), "other departments were held back"
        else:
            with lock:
                finished.append(department_id)
                if len(finished) == 99:
                    others_done.set()
        return [_user(f"u{department_id}", department_id)]

    users = list(iter_users(range(1, 101), list_users, max_concurrency=3))
    assert [u.userid for u in users] == [f"u{d}" for d in range(1, 101)]


def test_first_failure_cancels_the_remaining_departments() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def list_users(department_id: int, cancel: threading.Event) -> list[User]:
        with lock:
            started.append(department_id)
        if department_id == 3:
            raise WeComApiError("department 3 broke", path="user/list", errcode=60003)
        time.sleep(0.001)
        if cancel.is_set():
            raise FetchCancelled("user/list")
        return []

    with pytest.raises(WeComApiError, match="department 3 broke"):
        list(iter_users(range(1000), list_users, max_concurrency=4))
    assert len(started) < 100


def test_iter_users_hands_out_users_while_later_departments_are_still_fetched() -> None:
    last_may_finish = threading.Event()

    def list_users(department_id: int, _: threading.Event) -> list[User]:
        if department_id == 20:
            assert last_may_finish.wait(5)
        return [_user(f"u{department_id}", department_id)]

    users = iter_users(range(1, 21), list_users, max_concurrency=4)
    first = [next(users).userid for _ in range(19)]
    last_may_finish.set()
    assert first == [f"u{d}" for d in range(1, 20)]
    assert [u.userid for u in users] == ["u20"]


def test_closing_iter_users_early_cancels_the_departments_not_yet_fetched() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def list_users(department_id: int, cancel: threading.Event) -> list[User]:
        with lock:
            started.append(department_id)
        time.sleep(0.001)
        if cancel.is_set():
            raise FetchCancelled("user/list")
        return [_user(f"u{department_id}", department_id)]

    users = iter_users(range(1000), list_users, max_concurrency=4)
    assert isinstance(users, Generator)
    assert next(users).userid == "u0"
    users.close()
    assert len(started) < 100


def test_department_that_left_the_visible_range_names_it_and_the_setting() -> None:
    def list_users(department_id: int, _: threading.Event) -> list[User]:
        if department_id == 7:
            raise WeComPermissionError("outside", path="user/list", errcode=60011, errmsg="no")
        return []

    with pytest.raises(WeComPermissionError) as caught:
        list(iter_users([1, 7, 9], list_users, max_concurrency=2))
    assert "department 7" in str(caught.value)
    assert "visible range" in str(caught.value)
    assert caught.value.errcode == 60011


def test_client_lists_departments_in_api_order(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"department": [{"id": i, "parentid": 1} for i in (1, 30, 5, 12)]}
    )
    with client_for(httpserver) as client:
        assert [d.id for d in client.list_departments()] == [1, 30, 5, 12]


def test_client_org_fetch_makes_one_call_per_department(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request("/cgi-bin/department/list").respond_with_json(
        {"department": [{"id": i, "parentid": max(0, i - 1)} for i in range(1, 31)]}
    )

    def members(request: Request) -> Response:
        department = int(request.args["department_id"])
        users = [
            {"userid": f"U{department}", "department": [department]},
            {"userid": "Everyone", "department": list(range(1, 31))},
        ]
        return Response(
            Response.json_module.dumps({"errcode": 0, "userlist": users}),
            content_type="application/json",
        )

    httpserver.expect_request("/cgi-bin/user/list").respond_with_handler(members)
    with client_for(httpserver, max_concurrency=6) as client:
        departments = client.list_departments()
        users = list(client.iter_users(d.id for d in departments))
        stats = client.stats
    assert len(departments) == 30
    assert [u.userid for u in users] == ["U1", "Everyone"] + [f"U{i}" for i in range(2, 31)]
    assert dict(stats.calls) == {"gettoken": 1, "department/list": 1, "user/list": 30}


def test_client_iter_users_raises_the_failure_of_a_department(httpserver: HTTPServer) -> None:
    expect_token(httpserver)
    httpserver.expect_request(
        "/cgi-bin/user/list", query_string={"access_token": TOKEN, "department_id": "2"}
    ).respond_with_data(status=503)
    httpserver.expect_request("/cgi-bin/user/list").respond_with_json({"userlist": []})
    with client_for(httpserver, max_retries=1) as client:
        with pytest.raises(WeComTransientError, match="department 2"):
            list(client.iter_users([1, 2, 3]))
    assert calls_to(httpserver, "user/list") >= 2


def test_failed_gettoken_is_not_repeated_by_every_worker(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_json(
        {"errcode": 60020, "errmsg": "not allow to access from your ip"}
    )
    with client_for(httpserver, max_concurrency=8) as client:
        with pytest.raises(WeComPermissionError, match="trusted IP"):
            list(client.iter_users(range(1, 50)))
    assert calls_to(httpserver, "gettoken") == 1


def test_client_iter_users_merges_userids_ignoring_case_in_department_order(
    httpserver: HTTPServer,
) -> None:
    expect_token(httpserver)

    def members(request: Request) -> Response:
        department = int(request.args["department_id"])
        users = [
            {"userid": f"U{department}", "department": [department]},
            {"userid": "everyone" if department % 2 else "Everyone", "department": [1, 2]},
        ]
        return Response(
            Response.json_module.dumps({"errcode": 0, "userlist": users}),
            content_type="application/json",
        )

    httpserver.expect_request("/cgi-bin/user/list").respond_with_handler(members)
    with client_for(httpserver, max_concurrency=3) as client:
        users = list(client.iter_users(range(1, 11)))
    assert [u.userid for u in users] == ["U1", "everyone"] + [f"U{d}" for d in range(2, 11)]


def test_fetching_users_of_no_departments_makes_no_call(httpserver: HTTPServer) -> None:
    with client_for(httpserver) as client:
        assert list(client.iter_users([])) == []
        assert client.stats.total_calls == 0
