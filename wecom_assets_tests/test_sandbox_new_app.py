"""An app created after 2022-06-20 gets members without contact details, and gender "0"."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wecom_assets.sandbox.__main__ import build_parser, serve_config
from wecom_assets.sandbox.config import SandboxConfig
from wecom_assets.sandbox.engine import SandboxEngine
from wecom_assets.sandbox.org import WITHHELD_FROM_NEW_APPS, visible_view
from wecom_assets.wecom.models import User

# As WeCom's user/get page lists them (path/90196): "头像、性别、手机、邮箱、企业邮箱、员工个人二维码、地址";
# thumb_avatar is the avatar's thumbnail.
DOCUMENTED = {"avatar", "thumb_avatar", "mobile", "email", "biz_mail", "qr_code", "address"}


def _get(engine: SandboxEngine, path: str, **params: str) -> dict[str, Any]:
    org = engine.org
    token_query = {"corpid": org["corp_id"], "corpsecret": org["corp_secret"]}
    token = json.loads(engine.handle("GET", "gettoken", token_query, b"").body)["access_token"]
    return json.loads(engine.handle("GET", path, {"access_token": token, **params}, b"").body)


def _full_user(org: dict[str, Any]) -> dict[str, Any]:
    """A member the org holds every contact detail and a landline for."""
    return next(
        u for u in org["users"] if DOCUMENTED <= u.keys() and u.get("telephone") and u["gender"]
    )


def test_the_withheld_fields_are_the_documented_ones() -> None:
    assert set(WITHHELD_FROM_NEW_APPS) == DOCUMENTED


def test_user_list_leaves_out_contact_details_and_answers_gender_0(
    sandbox_org: dict[str, Any],
) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig(new_app=True))
    full = _full_user(sandbox_org)
    department = str(full["department"][0])
    listed = _get(engine, "user/list", department_id=department)["userlist"]
    member = next(u for u in listed if u["userid"] == full["userid"])
    assert not DOCUMENTED & member.keys()
    assert member["gender"] == "0"
    assert member["telephone"] == full["telephone"]
    assert member["name"] == full["name"]
    assert all(u["gender"] == "0" and not DOCUMENTED & u.keys() for u in listed)


def test_user_get_answers_the_same_member_as_user_list(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig(new_app=True))
    full = _full_user(sandbox_org)
    answer = _get(engine, "user/get", userid=full["userid"])
    assert not DOCUMENTED & answer.keys()
    assert (answer["gender"], answer["telephone"]) == ("0", full["telephone"])


def test_an_old_app_gets_the_contact_details(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig())
    full = _full_user(sandbox_org)
    answer = _get(engine, "user/get", userid=full["userid"])
    assert {key: answer[key] for key in DOCUMENTED} == {key: full[key] for key in DOCUMENTED}
    assert answer["gender"] == full["gender"] != "0"


def test_turning_new_app_on_applies_to_the_next_call(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig())
    full = _full_user(sandbox_org)
    engine.update_config({"new_app": True})
    assert "mobile" not in _get(engine, "user/get", userid=full["userid"])


def test_the_view_of_a_new_app_is_what_the_sandbox_answers(sandbox_org: dict[str, Any]) -> None:
    engine = SandboxEngine(sandbox_org, SandboxConfig(new_app=True))
    view = visible_view(sandbox_org, None, new_app=True)
    for user in view["users"][:20]:
        answer = _get(engine, "user/get", userid=user["userid"])
        assert {k: v for k, v in answer.items() if k not in ("errcode", "errmsg")} == user


def test_a_new_apps_member_parses_to_null_contact_details_gender_0_and_the_landline(
    sandbox_org: dict[str, Any],
) -> None:
    view = visible_view(sandbox_org, None, new_app=True)
    full = next(u for u in view["users"] if u["userid"] == _full_user(sandbox_org)["userid"])
    user = User.from_api(full)
    withheld = {key: getattr(user, key) for key in DOCUMENTED}
    assert withheld == dict.fromkeys(DOCUMENTED)
    assert (user.gender, user.telephone) == ("0", full["telephone"])


def test_the_new_app_view_leaves_the_org_unchanged(sandbox_org: dict[str, Any]) -> None:
    full = dict(_full_user(sandbox_org))
    visible_view(sandbox_org, None, new_app=True)
    assert _full_user(sandbox_org) == full


@pytest.mark.parametrize(("flags", "expected"), [([], False), (["--new-app"], True)])
def test_the_cli_serves_a_new_app_when_asked(flags: list[str], expected: bool) -> None:
    args = build_parser().parse_args(["serve", "--org", "org.json", *flags])
    assert serve_config(args).new_app is expected
