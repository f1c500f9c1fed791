"""The sandbox's org generator, org files, and the visible-range view of an org."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wecom_assets.sandbox.org import (
    MAX_USERID_BYTES,
    generate_org,
    load_org,
    save_org,
    subtree_ids,
    visible_view,
)

PARALLEL_LISTS = ("order", "is_leader_in_dept")
POLICY_HIDDEN = ("mobile", "email", "biz_mail", "avatar", "thumb_avatar", "qr_code", "address")


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=3000, departments=300, seed=3)


def _depths(departments: list[dict[str, Any]]) -> dict[int, int]:
    parent = {d["id"]: d["parentid"] for d in departments}
    depths: dict[int, int] = {}
    for dept_id in parent:
        depth, current, seen = 1, dept_id, set()
        while parent[current] != 0:
            assert current not in seen, f"cycle through department {current}"
            seen.add(current)
            current = parent[current]
            depth += 1
        depths[dept_id] = depth
    return depths


def _users_by_id(org: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {user["userid"]: user for user in org["users"]}


def test_generated_org_has_the_requested_size(org: dict[str, Any]) -> None:
    assert len(org["users"]) == 3000
    assert len(org["departments"]) == 300


def test_generated_org_is_deterministic_per_seed() -> None:
    assert generate_org(300, 40, seed=5) == generate_org(300, 40, seed=5)
    assert generate_org(300, 40, seed=5) != generate_org(300, 40, seed=6)


def test_generated_org_is_plain_json(org: dict[str, Any]) -> None:
    assert json.loads(json.dumps(org, ensure_ascii=False)) == org


def test_credentials_look_like_wecom_ones(org: dict[str, Any]) -> None:
    assert org["corp_id"].startswith("ww")
    assert len(org["corp_secret"]) == 43


def test_credentials_can_be_given() -> None:
    org = generate_org(10, 3, corp_id="ww-given", corp_secret="s" * 43)
    assert (org["corp_id"], org["corp_secret"]) == ("ww-given", "s" * 43)
    assert org["users"] == generate_org(10, 3)["users"]


def test_top_department_is_1_with_parent_0(org: dict[str, Any]) -> None:
    tops = [d for d in org["departments"] if d["parentid"] == 0]
    assert [d["id"] for d in tops] == [1]


def test_department_tree_is_connected_and_acyclic(org: dict[str, Any]) -> None:
    ids = [d["id"] for d in org["departments"]]
    assert len(set(ids)) == len(ids)
    assert all(d["parentid"] in set(ids) for d in org["departments"] if d["id"] != 1)
    assert len(_depths(org["departments"])) == len(ids)


def test_department_tree_reaches_max_depth_unevenly(org: dict[str, Any]) -> None:
    depths = _depths(org["departments"])
    assert max(depths.values()) == 8
    leaf_depths = {
        depths[d["id"]]
        for d in org["departments"]
        if not any(c["parentid"] == d["id"] for c in org["departments"])
    }
    assert len(leaf_depths) >= 3


def test_max_depth_is_respected() -> None:
    org = generate_org(100, 200, seed=1, max_depth=3)
    assert max(_depths(org["departments"]).values()) == 3


def test_department_ids_are_sparse_and_fit_uint32(org: dict[str, Any]) -> None:
    ids = sorted(d["id"] for d in org["departments"])
    assert ids[-1] > len(ids) * 2
    assert ids != list(range(1, len(ids) + 1))
    assert all(0 < i < 2**32 for i in ids)


def test_children_do_not_always_have_larger_ids_than_parents(org: dict[str, Any]) -> None:
    assert any(d["id"] < d["parentid"] for d in org["departments"])


def test_sibling_departments_have_distinct_names(org: dict[str, Any]) -> None:
    pairs = [(d["parentid"], d["name"]) for d in org["departments"]]
    assert len(set(pairs)) == len(pairs)


def test_some_departments_have_english_names(org: dict[str, Any]) -> None:
    with_en = [d for d in org["departments"] if d.get("name_en")]
    assert 0 < len(with_en) < len(org["departments"])


def test_department_orders_are_uint32(org: dict[str, Any]) -> None:
    assert all(0 <= d["order"] < 2**32 for d in org["departments"])


def test_userids_are_unique_case_insensitively(org: dict[str, Any]) -> None:
    lowered = [u["userid"].lower() for u in org["users"]]
    assert len(set(lowered)) == len(lowered)


def test_userids_mix_cases_and_styles(org: dict[str, Any]) -> None:
    userids = [u["userid"] for u in org["users"]]
    assert any(u != u.lower() and u != u.upper() for u in userids)
    assert any(u == u.lower() for u in userids)
    assert any("." in u and "_" in u for u in userids)


def test_userids_are_at_most_64_bytes_and_some_exactly(org: dict[str, Any]) -> None:
    lengths = [len(u["userid"].encode()) for u in org["users"]]
    assert max(lengths) == MAX_USERID_BYTES
    assert min(lengths) >= 1


def test_names_include_cjk_emoji_quotes_and_astral_characters(org: dict[str, Any]) -> None:
    names = [u["name"] for u in org["users"]]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) or "'" in n for n in names)
    assert any('"' in n for n in names)
    assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names)
    assert any("·" in n for n in names)


def test_about_one_user_in_ten_is_in_several_departments(org: dict[str, Any]) -> None:
    several = sum(len(u["department"]) > 1 for u in org["users"])
    assert 0.05 < several / len(org["users"]) < 0.15


def test_users_list_each_department_once(org: dict[str, Any]) -> None:
    assert all(len(set(u["department"])) == len(u["department"]) for u in org["users"])


def test_users_belong_to_existing_departments(org: dict[str, Any]) -> None:
    ids = {d["id"] for d in org["departments"]}
    assert all(set(u["department"]) <= ids for u in org["users"])


def test_parallel_lists_match_departments(org: dict[str, Any]) -> None:
    for user in org["users"]:
        for key in PARALLEL_LISTS:
            assert len(user[key]) == len(user["department"]), (user["userid"], key)


def test_main_department_is_one_of_the_users_departments(org: dict[str, Any]) -> None:
    assert all(u["main_department"] in u["department"] for u in org["users"])


def test_every_status_occurs(org: dict[str, Any]) -> None:
    assert set(Counter(u["status"] for u in org["users"])) == {1, 2, 4, 5}


def test_small_orgs_still_cover_every_status_and_feature() -> None:
    org = generate_org(users=8, departments=3, seed=11)
    assert {2, 4, 5} <= {u["status"] for u in org["users"]}
    assert any(len(u["userid"]) == MAX_USERID_BYTES for u in org["users"])
    assert any(len(u["department"]) > 1 for u in org["users"])
    assert any(u["gender"] == "0" for u in org["users"])


def test_department_leaders_agree_with_is_leader_in_dept(org: dict[str, Any]) -> None:
    flagged: dict[int, set[str]] = {}
    for user in org["users"]:
        for dept_id, flag in zip(user["department"], user["is_leader_in_dept"], strict=True):
            if flag:
                flagged.setdefault(dept_id, set()).add(user["userid"])
    for dept in org["departments"]:
        assert set(dept["department_leader"]) == flagged.get(dept["id"], set())


def test_some_departments_have_leaders_and_some_have_none(org: dict[str, Any]) -> None:
    counts = Counter(len(d["department_leader"]) for d in org["departments"])
    assert counts[0] > 0
    assert counts[1] > 0
    assert counts[2] > 0


def test_direct_leaders_are_other_existing_users(org: dict[str, Any]) -> None:
    users = _users_by_id(org)
    with_leader = [u for u in org["users"] if u["direct_leader"]]
    assert len(with_leader) > len(org["users"]) / 2
    for user in with_leader:
        assert len(user["direct_leader"]) <= 5
        assert user["userid"] not in user["direct_leader"]
        assert all(leader in users for leader in user["direct_leader"])


def test_some_users_lack_fields_hidden_by_the_2022_policy(org: dict[str, Any]) -> None:
    hidden = [u for u in org["users"] if not any(k in u for k in POLICY_HIDDEN)]
    assert hidden
    assert all(u["gender"] == "0" for u in hidden)
    assert any(all(k in u for k in POLICY_HIDDEN) for u in org["users"])


def test_some_users_lack_optional_fields(org: dict[str, Any]) -> None:
    assert any("position" not in u and "open_userid" not in u for u in org["users"])
    assert any(u.get("alias") == "" for u in org["users"])


def test_extattr_has_text_and_web_attributes(org: dict[str, Any]) -> None:
    attrs = [a for u in org["users"] if "extattr" in u for a in u["extattr"]["attrs"]]
    assert any(a["type"] == 0 and "value" in a["text"] for a in attrs)
    assert any(a["type"] == 1 and {"url", "title"} <= set(a["web"]) for a in attrs)
    assert any(u.get("extattr") == {"attrs": []} for u in org["users"])


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="departments"):
        generate_org(users=10, departments=0)
    with pytest.raises(ValueError, match="users"):
        generate_org(users=-1)
    with pytest.raises(ValueError, match="max_depth"):
        generate_org(max_depth=0)


def test_save_then_load_gives_the_same_org(org: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "nested" / "org.json"
    save_org(org, path)
    assert load_org(path) == org
    assert org["departments"][0]["name"] in path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["org.json"]


def test_load_rejects_a_file_that_is_not_an_org(tmp_path: Path) -> None:
    path = tmp_path / "org.json"
    path.write_text('{"corp_id": "ww1", "corp_secret": "s", "departments": {}}')
    with pytest.raises(ValueError, match="departments"):
        load_org(path)


def test_load_rejects_invalid_json_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"corp_id": ')
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_org(path)


# Visible range ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return generate_org(users=400, departments=40, seed=9)


def _first_child_with_subtree(org: dict[str, Any]) -> int:
    children = Counter(d["parentid"] for d in org["departments"])
    return max(
        (d["id"] for d in org["departments"] if d["parentid"] == 1),
        key=lambda i: children[i],
    )


def test_whole_org_view_is_the_org(small: dict[str, Any]) -> None:
    assert visible_view(small, None) == small


def test_view_of_the_top_department_is_the_whole_org(small: dict[str, Any]) -> None:
    assert visible_view(small, [1]) == small


def test_view_holds_the_subtrees_of_the_visible_roots(small: dict[str, Any]) -> None:
    root = _first_child_with_subtree(small)
    view = visible_view(small, [root])
    expected = subtree_ids(small["departments"], [root])
    assert {d["id"] for d in view["departments"]} == expected
    assert len(expected) > 1
    assert [d["id"] for d in view["departments"]] == [
        d["id"] for d in small["departments"] if d["id"] in expected
    ]


def test_view_keeps_users_with_a_visible_department_only(small: dict[str, Any]) -> None:
    root = _first_child_with_subtree(small)
    visible = subtree_ids(small["departments"], [root])
    view = visible_view(small, [root])
    expected = [u["userid"] for u in small["users"] if set(u["department"]) & visible]
    assert [u["userid"] for u in view["users"]] == expected


def test_view_filters_users_department_lists_in_parallel(small: dict[str, Any]) -> None:
    root = _first_child_with_subtree(small)
    visible = subtree_ids(small["departments"], [root])
    original = _users_by_id(small)
    for user in visible_view(small, [root])["users"]:
        source = original[user["userid"]]
        kept = [i for i, d in enumerate(source["department"]) if d in visible]
        assert user["department"] == [source["department"][i] for i in kept]
        for key in PARALLEL_LISTS:
            assert user[key] == [source[key][i] for i in kept]


def test_view_drops_an_invisible_main_department(small: dict[str, Any]) -> None:
    org = copy.deepcopy(small)
    root = _first_child_with_subtree(org)
    visible = subtree_ids(org["departments"], [root])
    outside = next(d["id"] for d in org["departments"] if d["id"] not in visible)
    user = org["users"][0]
    user.update(
        department=[root, outside], order=[1, 2], is_leader_in_dept=[0, 0], main_department=outside
    )
    seen = _users_by_id(visible_view(org, [root]))[user["userid"]]
    assert "main_department" not in seen
    assert seen["department"] == [root]


def test_view_filters_department_leaders_to_visible_users(small: dict[str, Any]) -> None:
    org = copy.deepcopy(small)
    root = _first_child_with_subtree(org)
    visible = subtree_ids(org["departments"], [root])
    outsider = next(u for u in org["users"] if not set(u["department"]) & visible)
    org["departments"][[d["id"] for d in org["departments"]].index(root)][
        "department_leader"
    ].append(outsider["userid"])
    view = visible_view(org, [root])
    leaders = {uid for d in view["departments"] for uid in d["department_leader"]}
    assert outsider["userid"] not in leaders
    assert leaders <= {u["userid"] for u in view["users"]}


def test_view_ignores_unknown_roots_and_overlaps(small: dict[str, Any]) -> None:
    root = _first_child_with_subtree(small)
    child = next(d["id"] for d in small["departments"] if d["parentid"] == root)
    assert visible_view(small, [root, child, 999_999_999]) == visible_view(small, [root])
    assert visible_view(small, [999_999_999])["departments"] == []


def test_view_does_not_modify_the_org(small: dict[str, Any]) -> None:
    before = copy.deepcopy(small)
    visible_view(small, [_first_child_with_subtree(small)])
    assert small == before
