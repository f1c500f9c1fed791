"""The sandbox's tags: realistic generated tags, tag/get's visible range, errors and edits."""

from __future__ import annotations

import json
import random
from typing import Any

from wecom_assets.sandbox.config import SandboxConfig
from wecom_assets.sandbox.engine import SandboxEngine
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.tags import evolve_tags


def _token(engine: SandboxEngine, org: dict[str, Any]) -> str:
    reply = engine.handle(
        "GET", "gettoken", {"corpid": org["corp_id"], "corpsecret": org["corp_secret"]}, b""
    )
    return str(json.loads(reply.body)["access_token"])


def _call(engine: SandboxEngine, org: dict[str, Any], path: str, **query: str) -> dict[str, Any]:
    reply = engine.handle("GET", path, {"access_token": _token(engine, org), **query}, b"")
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def test_generated_tags_have_cjk_and_emoji_names_sparse_ids_and_an_empty_tag(
    sandbox_org: dict[str, Any],
) -> None:
    tags = sandbox_org["tags"]
    names = [tag["tagname"] for tag in tags]
    assert {"管理层", "值班", "面试官"} <= set(names)
    assert any(not name.isascii() and "🚀" in name for name in names)
    assert max(tag["tagid"] for tag in tags) == 4_294_967_295
    assert any(not tag["userlist"] and not tag["partylist"] for tag in tags)


def test_the_same_arguments_generate_the_same_tags() -> None:
    assert (
        generate_org(users=50, departments=8, seed=3)["tags"]
        == (generate_org(users=50, departments=8, seed=3)["tags"])
    )


def test_tag_get_of_an_unknown_tag_answers_40068(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org)
    assert _call(engine, sandbox_org, "tag/get", tagid="123456")["errcode"] == 40068


def test_tags_forbidden_answers_48002_on_both_tag_calls(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig(tags_forbidden=True))
    assert _call(engine, sandbox_org, "tag/list")["errcode"] == 48002
    assert _call(engine, sandbox_org, "tag/get", tagid="2")["errcode"] == 48002
    assert _call(engine, sandbox_org, "department/list")["errcode"] == 0


def test_tag_list_answers_every_tag_whatever_the_visible_range(
    sandbox_org: dict[str, Any],
) -> None:
    root = sandbox_org["departments"][1]["id"]
    engine = SandboxEngine(sandbox_org, SandboxConfig(visible_department_ids=[root]))
    listed = _call(engine, sandbox_org, "tag/list")["taglist"]
    assert [tag["tagid"] for tag in listed] == [tag["tagid"] for tag in sandbox_org["tags"]]


def test_an_org_without_tags_answers_an_empty_tag_list(sandbox_org: dict[str, Any]) -> None:
    del sandbox_org["tags"]
    engine = SandboxEngine(sandbox_org)
    assert _call(engine, sandbox_org, "tag/list")["taglist"] == []


def test_evolving_tags_tags_untags_renames_and_adds(sandbox_org: dict[str, Any]) -> None:
    before = {tag["tagid"]: dict(tag) for tag in sandbox_org["tags"]}
    changes = evolve_tags(sandbox_org, random.Random(1))
    assert changes == {"tagged": 1, "untagged": 1, "renamed_tags": 1, "added_tags": 1}
    after = {tag["tagid"]: tag for tag in sandbox_org["tags"]}
    (added,) = set(after) - set(before)
    assert 0 < added < 2**32
    first = sandbox_org["tags"][0]["tagid"]
    assert after[first]["userlist"] != before[first]["userlist"]


def test_a_tagid_that_is_not_ascii_digits_answers_40058(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org)
    for raw in ("²", "-2", "abc", ""):
        assert _call(engine, sandbox_org, "tag/get", tagid=raw)["errcode"] == 40058
