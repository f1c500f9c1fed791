"""API payloads parse into typed records; optional fields are tolerant, identifiers strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wecom_assets.wecom import Department, User, WeComResponseError

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def _users(name: str) -> dict[str, User]:
    return {u.userid: u for u in map(User.from_api, _load(name)["userlist"])}


def _departments() -> list[Department]:
    return [Department.from_api(item) for item in _load("wecom_department_list.json")["department"]]


def test_department_fields_map_from_api_names() -> None:
    top = _departments()[0]
    assert top == Department(
        id=1,
        name="广州研发中心",
        name_en="RDGZ",
        parent_id=0,
        order=100000000,
        leaders=("ZhangSan", "lisi"),
    )


def test_department_text_is_kept_exactly_as_received() -> None:
    by_id = {d.id: d for d in _departments()}
    assert by_id[3].name == '😀 Emoji & "Quotes" 部'
    assert by_id[400000].name == "  leading and trailing spaces  "
    assert by_id[3].order == 4294967295


def test_department_numbers_as_text_are_coerced() -> None:
    department = {d.id: d for d in _departments()}[17]
    assert (department.parent_id, department.order) == (3, 12)
    assert department.name is None
    assert {d.id: d for d in _departments()}[400000].order == 7


def test_department_leaders_absent_or_malformed_are_none_and_empty_stays_empty() -> None:
    by_id = {d.id: d for d in _departments()}
    assert by_id[2].leaders == ()
    assert by_id[3].leaders is None
    assert by_id[400000].leaders is None


@pytest.mark.parametrize("payload", [{}, {"id": None}, {"id": "one"}, {"id": True}, {"id": 1.5}])
def test_department_without_a_valid_id_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(WeComResponseError, match="id"):
        Department.from_api(payload)


def test_department_entry_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(WeComResponseError):
        Department.from_api([1, 2])  # type: ignore[arg-type]


def test_full_user_maps_every_documented_field() -> None:
    user = _users("wecom_user_list_full.json")["ZhangSan"]
    assert user.name == "张三"
    assert user.departments == (1, 2)
    assert user.orders == (1, 2)
    assert user.leader_flags == (True, False)
    assert user.main_department == 1
    assert user.status == 1
    assert user.direct_leaders == ("lisi", "wangwu")
    assert (user.mobile, user.email, user.biz_mail) == (
        "13800000000",
        "zhangsan@gzdev.com",
        "zhangsan@qyycs2.wecom.work",
    )
    assert (user.gender, user.telephone, user.alias) == ("1", "020-123456", "jackzhang")
    assert user.address == "广州市海珠区新港中路"
    assert user.english_name == "jacky"
    assert user.open_userid == "xxxxxx"
    assert user.external_position == "产品经理"
    assert user.qr_code is not None and user.avatar is not None and user.thumb_avatar is not None


def test_structured_fields_become_canonical_json_text() -> None:
    user = _users("wecom_user_list_full.json")["ZhangSan"]
    assert user.extattr is not None and user.external_profile is not None
    assert json.loads(user.extattr) == _load("wecom_user_list_full.json")["userlist"][0]["extattr"]
    assert "文本名称" in user.extattr
    assert user.extattr == json.dumps(json.loads(user.extattr), ensure_ascii=False, sort_keys=True)
    assert json.loads(user.external_profile)["external_corp_name"] == "企业简称"


def test_fields_withheld_from_new_apps_are_none() -> None:
    user = _users("wecom_user_list_new_app.json")["lisi"]
    assert (user.mobile, user.email, user.biz_mail, user.avatar, user.qr_code) == (None,) * 5
    assert user.address is None
    assert user.main_department is None
    assert user.gender == "0"
    assert user.position == ""
    assert user.direct_leaders == ()
    assert user.extattr == '{"attrs": []}'
    assert user.name == "李四 🚀"


def test_sparse_user_has_empty_department_arrays_aligned() -> None:
    user = _users("wecom_user_list_new_app.json")["wangwu"]
    assert user.departments == (2, 3)
    assert user.orders == (None, None)
    assert user.leader_flags == (None, None)
    assert user.direct_leaders is None
    assert user.extattr is None


def test_lossless_coercions_apply_and_lossy_values_become_none() -> None:
    user = _users("wecom_user_odd_types.json")["Odd.Types-01@corp"]
    assert user.name == "12345"
    assert user.departments == (2, 3, 5)
    assert user.orders == (7, None, None)
    assert user.leader_flags == (True, None, None)
    assert user.status == 5
    assert user.main_department == 2
    assert user.gender == "2"
    assert user.mobile == "13800000000"
    assert user.email is None
    assert user.avatar is None
    assert user.direct_leaders == ("lisi", "42")


def test_json_text_in_structured_fields_is_parsed_and_invalid_text_dropped() -> None:
    user = _users("wecom_user_odd_types.json")["Odd.Types-01@corp"]
    assert user.extattr is not None
    assert json.loads(user.extattr)["attrs"][0]["text"]["value"] == "007"
    assert user.external_profile is None


def test_legacy_english_name_is_kept_and_other_legacy_fields_ignored() -> None:
    user = _users("wecom_user_odd_types.json")["Odd.Types-01@corp"]
    assert user.english_name == "Legacy Name"
    assert not hasattr(user, "enable")
    assert not hasattr(user, "isleader")


def test_nulls_become_none_or_empty_departments() -> None:
    user = _users("wecom_user_odd_types.json")["nulls"]
    assert user.departments == () and user.orders == () and user.leader_flags == ()
    assert (user.name, user.status, user.main_department) == (None, None, None)
    assert (user.direct_leaders, user.extattr, user.external_profile) == (None, None, None)


def test_wrong_container_types_become_none() -> None:
    user = _users("wecom_user_odd_types.json")["wrong-containers"]
    assert user.departments == ()
    assert user.status is None
    assert user.main_department is None
    assert user.direct_leaders is None
    assert user.extattr == "[]"


def test_odd_unicode_is_kept_byte_for_byte() -> None:
    user = _users("wecom_user_odd_types.json")["wrong-containers"]
    assert user.name == "\x00nul\u200b零宽😀"


def test_userid_case_is_kept_as_returned() -> None:
    assert "Odd.Types-01@corp" in _users("wecom_user_odd_types.json")


@pytest.mark.parametrize("userid", [None, "", 42, ["a"]])
def test_user_without_a_text_userid_is_rejected(userid: object) -> None:
    with pytest.raises(WeComResponseError, match="userid"):
        User.from_api({"userid": userid, "name": "x"})


def test_records_are_frozen() -> None:
    department = _departments()[0]
    with pytest.raises(AttributeError):
        department.name = "changed"  # type: ignore[misc]
