"""API payloads parse into typed records; optional fields are tolerant, identifiers strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
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
    withheld = (user.avatar, user.thumb_avatar, user.mobile, user.email, user.biz_mail)
    assert (*withheld, user.qr_code, user.address) == (None,) * 7


def test_a_new_apps_gender_is_the_0_wecom_answers_not_none() -> None:
    assert _users("wecom_user_list_new_app.json")["lisi"].gender == "0"


def test_a_new_app_still_gets_the_landline() -> None:
    assert _users("wecom_user_list_new_app.json")["lisi"].telephone == "020-12345678"


def test_a_new_apps_other_fields_are_kept_as_answered() -> None:
    user = _users("wecom_user_list_new_app.json")["lisi"]
    assert user.main_department is None
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


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"child": value}
    return value


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wecom_assets.wecom.models"]


@pytest.mark.parametrize("status", [2**31, -(2**31) - 1, 2**40, 1e30])
def test_status_beyond_int32_becomes_null_with_a_warning_naming_user_and_field(
    caplog: pytest.LogCaptureFixture, status: object
) -> None:
    user = User.from_api({"userid": "zhangsan", "status": status}, department_id=7)
    assert user.status is None
    (warning,) = _warnings(caplog)
    assert "user 'zhangsan' in department 7" in warning
    assert "status" in warning
    assert "INTEGER" in warning


def test_status_at_the_int32_bounds_is_kept() -> None:
    assert User.from_api({"userid": "a", "status": 2**31 - 1}).status == 2**31 - 1
    assert User.from_api({"userid": "a", "status": -(2**31)}).status == -(2**31)


def test_user_numbers_beyond_int64_become_null_and_memberships_stay_aligned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = User.from_api(
        {
            "userid": "lisi",
            "main_department": 2**63,
            "department": [1, 2**63, 3, 1e30],
            "order": [2**63, 5, 6, 7],
            "is_leader_in_dept": [1, 0, 1, 0],
        }
    )
    assert user.main_department is None
    assert user.departments == (1, 3)
    assert user.orders == (None, 6)
    assert user.leader_flags == (True, True)
    (warning,) = _warnings(caplog)
    for field in ("main_department", "department[1]", "department[3]", "order[0]", "BIGINT"):
        assert field in warning


def test_department_numbers_beyond_int64_become_null_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    department = Department.from_api({"id": 5, "parentid": 2**63, "order": -(2**63) - 1})
    assert (department.parent_id, department.order) == (None, None)
    (warning,) = _warnings(caplog)
    assert "department 5" in warning
    assert "parentid" in warning
    assert "order" in warning


@pytest.mark.parametrize("department_id", [2**63, 1e30, "99999999999999999999999"])
def test_department_id_beyond_int64_fails_naming_the_department_and_field(
    department_id: object,
) -> None:
    with pytest.raises(WeComResponseError) as caught:
        Department.from_api({"id": department_id, "name": "研发"})
    assert "name '研发'" in str(caught.value)
    assert "field id" in str(caught.value)


def test_text_with_a_lone_surrogate_gets_replacement_characters_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = json.loads(
        '{"userid": "wangwu", "name": "王\\ud800五", "direct_leader": ["\\udfff"]}'
    )
    user = User.from_api(payload, department_id=3)
    assert user.name == "王\ufffd五"
    assert user.direct_leaders == ("\ufffd",)
    (warning,) = _warnings(caplog)
    assert "user 'wangwu' in department 3" in warning
    assert "name" in warning
    assert "direct_leader[0]" in warning


def test_userid_with_a_lone_surrogate_fails_naming_department_user_and_field() -> None:
    payload = json.loads('{"userid": "bad\\ud800id", "name": "赵六"}')
    with pytest.raises(WeComResponseError) as caught:
        User.from_api(payload, department_id=12)
    message = str(caught.value)
    assert "department 12" in message
    assert "name '赵六'" in message
    assert "field userid" in message
    assert "\\ud800" in message


def test_extattr_nested_deeper_than_the_limit_becomes_null_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deep = _nested(5000)
    as_object = User.from_api({"userid": "a", "extattr": deep})
    as_text = User.from_api({"userid": "b", "external_profile": "[" * 5000 + "]" * 5000})
    assert as_object.extattr is None
    assert as_text.external_profile is None
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert "extattr is nested deeper than 32 levels" in warnings[0]
    assert "external_profile is nested deeper than 32 levels" in warnings[1]


def test_extattr_at_the_depth_limit_is_kept() -> None:
    user = User.from_api({"userid": "a", "extattr": _nested(32)})
    assert user.extattr is not None
    assert json.loads(user.extattr) == _nested(32)


def test_every_value_of_a_hostile_record_fits_its_arrow_column() -> None:
    payload = json.loads(
        '{"userid": "u", "name": "\\ud83d", "status": 4294967296, "main_department": 1e30,'
        ' "department": [1, 9223372036854775808], "order": [9223372036854775808, 1],'
        ' "extattr": {"k": "\\udc00"}}'
    )
    user = User.from_api(payload)
    pa.array([user.status], type=pa.int32())
    pa.array([user.main_department, *user.departments], type=pa.int64())
    pa.array(list(user.orders), type=pa.int64())
    pa.array([user.name, user.extattr], type=pa.string())
    assert user.extattr == '{"k": "\ufffd"}'


def test_well_formed_records_log_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    _users("wecom_user_list_full.json")
    _users("wecom_user_list_new_app.json")
    Department.from_api(_load("wecom_department_list.json")["department"][0])
    assert _warnings(caplog) == []
