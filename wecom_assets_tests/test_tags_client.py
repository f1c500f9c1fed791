"""Fetching tags: one tag/list and one tag/get per tag, the visible range, and a forbidden app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from client_helpers import config_for

from wecom_assets.sandbox.config import FaultConfig, SandboxConfig
from wecom_assets.sandbox.org import subtree_ids
from wecom_assets.sandbox.server import SandboxServer
from wecom_assets.wecom import WeComClient, WeComPermissionError
from wecom_assets.wecom.errors import WeComApiError
from wecom_assets.wecom.tags import Tag, TagDetail, fetch_tags, get_tag

StartSandbox = Callable[..., SandboxServer]


def _client(sandbox: SandboxServer, org: dict[str, Any]) -> WeComClient:
    return WeComClient(
        config_for(sandbox.url, corp_id=org["corp_id"], corp_secret=org["corp_secret"])
    )


def test_a_sync_makes_one_tag_list_and_one_tag_get_per_tag(
    sandbox_org: dict[str, Any], sandbox: SandboxServer
) -> None:
    with _client(sandbox, sandbox_org) as client:
        tags = fetch_tags(client)
        calls = client.stats.calls
    assert len(tags) == len(sandbox_org["tags"])
    assert calls["tag/list"] == 1
    assert calls["tag/get"] == len(sandbox_org["tags"])


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_names_members_and_departments_are_what_the_org_holds_in_tag_list_order(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, max_concurrency: int
) -> None:
    with _client(sandbox, sandbox_org) as client:
        tags = fetch_tags(client, max_concurrency)
    assert tags == [
        TagDetail(tag["tagid"], tag["tagname"], tuple(tag["userlist"]), tuple(tag["partylist"]))
        for tag in sandbox_org["tags"]
    ]
    assert {"值班", "🚀 项目组", '"安全" 联络人'} <= {tag.tag_name for tag in tags}


def test_members_and_departments_outside_the_visible_range_are_left_out(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    root = sandbox_org["departments"][1]["id"]
    visible = subtree_ids(sandbox_org["departments"], [root])
    seen = {
        user["userid"]
        for user in sandbox_org["users"]
        if set(user.get("department") or ()) & visible
    }
    server = start_sandbox(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    with _client(server, sandbox_org) as client:
        tags = fetch_tags(client)
    assert len(tags) == len(sandbox_org["tags"])
    for tag, listed in zip(tags, sandbox_org["tags"], strict=True):
        assert tag.userids == tuple(u for u in listed["userlist"] if u in seen)
        assert tag.department_ids == tuple(d for d in listed["partylist"] if d in visible)


def test_an_app_without_tag_access_fails_saying_what_to_grant(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    server = start_sandbox(sandbox_org, SandboxConfig(tags_forbidden=True))
    with _client(server, sandbox_org) as client, pytest.raises(WeComPermissionError) as raised:
        fetch_tags(client, 4)
    assert raised.value.errcode == 48002
    assert "标签" in str(raised.value)
    assert "admin console" in str(raised.value)


def test_injected_faults_are_retried_to_the_same_tags(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    faults = FaultConfig(busy_rate=0.2, http_5xx_rate=0.1, bad_json_rate=0.1)
    server = start_sandbox(sandbox_org, SandboxConfig(faults=faults, seed=3))
    with _client(server, sandbox_org) as client:
        tags = fetch_tags(client, 4)
    assert [tag.tag_id for tag in tags] == [tag["tagid"] for tag in sandbox_org["tags"]]
    assert sum(server.stats()["faults"].values()) > 0


class _Scripted:
    """A client whose answers, or errors, are given per path."""

    def __init__(self, answers: dict[str, dict[str, Any] | Exception]) -> None:
        self._answers = answers

    def get(self, path: str, params: Any = None) -> dict[str, Any]:
        answer = self._answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_failing_tag_get_fails_the_fetch_with_that_error() -> None:
    busy = WeComApiError("boom", path="tag/get", errcode=60020, errmsg="untrusted ip")
    scripted = _Scripted({"tag/list": {"taglist": [{"tagid": 1, "tagname": "a"}]}, "tag/get": busy})
    with pytest.raises(WeComApiError, match="boom"):
        fetch_tags(scripted, 4)


def test_a_tag_deleted_between_list_and_get_is_left_out() -> None:
    gone = WeComApiError("gone", path="tag/get", errcode=40068, errmsg="invalid tagid")
    assert get_tag(_Scripted({"tag/get": gone}), Tag(5, "值班")) is None


def test_60011_on_tags_is_explained_as_missing_tag_access() -> None:
    denied = WeComPermissionError("no", path="tag/list", errcode=60011, errmsg="no privilege")
    with pytest.raises(WeComPermissionError, match="may not read tags"):
        fetch_tags(_Scripted({"tag/list": denied}))


def test_tag_get_keeps_each_member_once_and_skips_entries_without_a_userid() -> None:
    answer = {
        "tagname": "面试官",
        "userlist": [{"userid": "a"}, {"name": "no id"}, {"userid": "a"}, {"userid": "B"}],
        "partylist": [3, "x", 3, 9],
    }
    detail = get_tag(_Scripted({"tag/get": answer}), Tag(1, "old"))
    assert detail == TagDetail(1, "面试官", ("a", "B"), (3, 9))
