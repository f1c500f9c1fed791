"""The sandbox's org: generate a realistic one, load and save it, and compute an app's view of it.

An org is a plain JSON-able dict, the same in memory and on disk:
``{"corp_id", "corp_secret", "departments": [...], "users": [...], "tags": [...]}`` where
departments and users are shaped exactly as ``department/list`` and ``user/list`` return them and
tags as :mod:`wecom_assets.sandbox.tags` describes (an org without ``tags`` has none). Tests compare what the client
fetched with :func:`visible_view` of the org, so that function is the single definition of what a
WeCom app with a given visible range is supposed to see.
"""

from __future__ import annotations

import json
import os
import random
import string
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from wecom_assets.sandbox import names
from wecom_assets.sandbox.bulk import gc_paused
from wecom_assets.sandbox.tags import generate_tags

MAX_USERID_BYTES = 64

_T = TypeVar("_T")

_SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"
_STATUSES = (1, 2, 4, 5)
_STATUS_WEIGHTS = (80, 6, 10, 4)
_CITIES = ("北京市朝阳区", "上海市浦东新区", "深圳市南山区", "杭州市西湖区", "成都市高新区")
_STREETS = ("科技园路", "望京街", "张江路", "文三路", "天府大道")
_AREA_CODES = ("10", "21", "755", "571", "28")

# Since 2022-06-20 WeCom no longer answers these to apps created after that date (nor to base
# apps other than contact sync): they need the member's own OAuth consent. ``gender`` is not
# left out but answered "0", "not defined"; ``telephone`` is not on the list.
WITHHELD_FROM_NEW_APPS = (
    "avatar",
    "thumb_avatar",
    "mobile",
    "email",
    "biz_mail",
    "qr_code",
    "address",
)
UNAVAILABLE_GENDER = "0"

# Features that every org big enough gets at least once, so small test orgs still cover each case.
_FORCED_FEATURES = (
    "status_2",
    "status_4",
    "status_5",
    "long_userid",
    "odd_name",
    "multi_department",
    "restricted",
    "minimal",
)


def generate_org(
    users: int = 3000,
    departments: int = 300,
    seed: int = 0,
    max_depth: int = 8,
    corp_id: str | None = None,
    corp_secret: str | None = None,
) -> dict[str, Any]:
    """Generate a deterministic, realistic org.

    The same arguments always give the same org. It contains what real orgs contain and naive
    code gets wrong: CJK and emoji names with quotes, mixed-case and 64-byte userids (unique only
    case-insensitively), users in several departments, leaders, every status, sparse department
    ids (some near the top of uint32), an uneven tree exactly ``max_depth`` levels deep (when there
    are enough departments), and users without the fields that WeCom's 2022 privacy policy hides.

    Args:
        users: Number of users.
        departments: Number of departments, including the top department (id 1, parentid 0).
        seed: Seed of the random generator.
        max_depth: Levels of the department tree; the top department is level 1.
        corp_id: Corp id to use instead of the generated ``ww...`` one.
        corp_secret: Secret to use instead of the generated 43-character one.

    Returns:
        The org dict (see the module docstring).

    Raises:
        ValueError: On a negative user count, fewer than one department or a depth below 1.
    """
    if users < 0:
        raise ValueError(f"users must be >= 0, got {users}")
    if departments < 1:
        raise ValueError(f"departments must be >= 1 (the top department), got {departments}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    with gc_paused():
        return _generate(users, departments, seed, max_depth, corp_id, corp_secret)


def _generate(
    users: int,
    departments: int,
    seed: int,
    max_depth: int,
    corp_id: str | None,
    corp_secret: str | None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    generated_id = f"ww{rng.getrandbits(64):016x}"
    generated_secret = "".join(rng.choices(_SECRET_ALPHABET, k=43))
    company, company_en = rng.choice(names.COMPANY_NAMES)
    dept_list = _generate_departments(rng, departments, max_depth, company, company_en)
    user_list = _generate_users(rng, users, dept_list)
    return {
        "corp_id": corp_id or generated_id,
        "corp_secret": corp_secret or generated_secret,
        "departments": dept_list,
        "users": user_list,
        "tags": generate_tags(seed, dept_list, user_list),
    }


def _department_ids(rng: random.Random, count: int) -> list[int]:
    """Sparse ids in random order: gaps as deleted departments leave, a few set by hand (huge)."""
    huge = count // 50
    small = rng.sample(range(2, 2 + 4 * count), count - huge)
    large = rng.sample(range(100_000_000, 1 << 32), huge)
    ids = small + large
    rng.shuffle(ids)
    return ids


def _department_name(rng: random.Random, depth: int) -> tuple[str, str | None]:
    """A (name, name_en) pair that fits the level; about 40% of departments have name_en."""
    function, function_en = rng.choice(names.FUNCTIONS)
    if rng.random() < 0.04:
        return rng.choice(names.ODD_DEPARTMENT_NAMES), None
    if depth <= 2:
        suffix, suffix_en = rng.choice(names.SUFFIXES[:4])
        name, name_en = f"{function}{suffix}", f"{function_en} {suffix_en}"
    elif depth == 3:
        region, region_en = rng.choice(names.REGIONS)
        suffix, suffix_en = rng.choice(names.SUFFIXES)
        name, name_en = f"{region}{function}{suffix}", f"{region_en} {function_en} {suffix_en}"
    else:
        number = rng.randrange(len(names.TEAM_NUMBERS))
        name = f"{function}{names.TEAM_NUMBERS[number]}组"
        name_en = f"{function_en} Team {number + 1}"
    return name, (name_en if rng.random() < 0.4 else None)


def _generate_departments(
    rng: random.Random, count: int, max_depth: int, company: str, company_en: str
) -> list[dict[str, Any]]:
    """Departments in creation order (parents before children), leaders still empty."""
    top: dict[str, Any] = {
        "id": 1,
        "name": company,
        "name_en": company_en,
        "parentid": 0,
        "order": 100_000_000,
        "department_leader": [],
    }
    result = [top]
    depth_of = {1: 1}
    eligible = [1] if max_depth > 1 else []
    sibling_names: dict[int, set[str]] = {}
    ids = _department_ids(rng, count - 1) if max_depth > 1 else []
    chain = max_depth - 1
    for position, dept_id in enumerate(ids):
        last = result[-1]["id"]
        roll = rng.random()
        if position < chain or (roll < 0.25 and depth_of[last] < max_depth):
            parent = last
        elif roll < 0.6:
            # Early departments take many children: wide upper levels, as in real orgs.
            parent = eligible[rng.randrange(min(len(eligible), max(8, len(eligible) // 10)))]
        else:
            parent = eligible[rng.randrange(len(eligible))]
        depth = depth_of[parent] + 1
        depth_of[dept_id] = depth
        if depth < max_depth:
            eligible.append(dept_id)
        name, name_en = _department_name(rng, depth)
        taken = sibling_names.setdefault(parent, set())
        base, suffix = name, 2
        while name in taken:
            # WeCom rejects duplicate names under one parent.
            name, suffix = f"{base}{suffix}", suffix + 1
        taken.add(name)
        dept: dict[str, Any] = {"id": dept_id, "name": name}
        if name_en is not None:
            dept["name_en"] = name_en
        dept["parentid"] = parent
        dept["order"] = rng.getrandbits(32) if rng.random() < 0.7 else 0
        dept["department_leader"] = []
        result.append(dept)
    return result


def _userid(rng: random.Random, surname: str, given: str, long: bool, taken: set[str]) -> str:
    """A userid in one of the styles seen in real orgs, unique case-insensitively."""
    if long:
        base = f"{surname.title()}{given.title()}.External.Contractor.Account_"
        while True:
            filler = f"{rng.getrandbits(256):064x}"
            candidate = (base + filler)[:MAX_USERID_BYTES]
            if candidate.lower() not in taken:
                taken.add(candidate.lower())
                return candidate
    style = rng.random()
    if style < 0.3:
        base = f"{surname.title()}{given.title()}"
    elif style < 0.55:
        base = f"{surname}{given}"
    elif style < 0.7:
        base = f"{surname}.{given}_{rng.randrange(100):02d}"
    elif style < 0.75:
        base = f"{surname}{given}".upper()
    elif style < 0.9:
        base = f"WX{rng.randrange(100_000):05d}"
    else:
        base = f"{surname}-{given}"
    candidate, number = base, 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{base}{number}"
    taken.add(candidate.lower())
    return candidate


def _odd_name(rng: random.Random, surname: str, given: str) -> str:
    """Names that need escaping or careful rendering: quotes, emoji, apostrophes, dots."""
    kind = rng.randrange(5)
    emoji = rng.choice(names.EMOJI)
    if kind == 0:
        return f'{surname}"{given}"{emoji}'
    if kind == 1:
        return f"{surname}{given}{emoji}"
    if kind == 2:
        english = rng.choice(names.ENGLISH_NAMES)
        return f"{surname}{given}{names.FULLWIDTH_OPEN}{english}{names.FULLWIDTH_CLOSE}"
    if kind == 3:
        return rng.choice(names.DOTTED_NAMES)[0]
    return f"O'{rng.choice(names.ENGLISH_NAMES)} {surname}"


def _extattr(rng: random.Random, number: int, userid: str) -> dict[str, Any]:
    """Custom fields: text attributes and a web link, sometimes none at all."""
    if rng.random() < 0.1:
        return {"attrs": []}
    attrs: list[dict[str, Any]] = [{"type": 0, "name": "工号", "text": {"value": f"E{number:06d}"}}]
    if rng.random() < 0.5:
        label, value = rng.choice(names.EXTATTR_TEXTS)
        attrs.append({"type": 0, "name": label, "text": {"value": value}})
    if rng.random() < 0.5:
        url = f"https://intranet.example.com/people/{quote(userid)}"
        attrs.append({"type": 1, "name": "个人主页", "web": {"url": url, "title": "个人主页"}})
    return {"attrs": attrs}


def _external_profile(rng: random.Random, company: str) -> dict[str, Any]:
    return {
        "external_corp_name": company,
        "wechat_channels": {"nickname": rng.choice(names.ENGLISH_NAMES), "status": 1},
        "external_attr": [
            {"type": 0, "name": "服务时间", "text": {"value": "9:00-18:00"}},
            {"type": 1, "name": "官网", "web": {"url": "https://www.example.com", "title": "官网"}},
        ],
    }


def _generate_users(
    rng: random.Random, count: int, departments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Users with memberships, then leaders per department and direct leaders per user."""
    dept_ids = [d["id"] for d in departments]
    # Heavy-tailed team sizes: most departments are small, a few are large, some are empty.
    weights = [rng.paretovariate(1.2) for _ in dept_ids]
    mains = rng.choices(dept_ids, weights=weights, k=count)
    statuses = rng.choices(_STATUSES, _STATUS_WEIGHTS, k=count)
    forced = dict(
        zip(rng.sample(range(count), min(count, len(_FORCED_FEATURES))), _FORCED_FEATURES)
    )
    company = departments[0]["name"]
    taken: set[str] = set()
    members: dict[int, list[tuple[dict[str, Any], int]]] = {}
    result: list[dict[str, Any]] = []
    random_ = rng.random

    def choice(options: Sequence[_T]) -> _T:
        # Random.choice is exact but slow; a float index is plenty for sample data.
        return options[int(random_() * len(options))]

    for number in range(count):
        feature = forced.get(number)
        surname, surname_py = choice(names.SURNAMES)
        chars = [choice(names.GIVEN) for _ in range(1 if random_() < 0.3 else 2)]
        given = "".join(c[0] for c in chars)
        given_py = "".join(c[1] for c in chars)
        name = surname + given
        if feature == "odd_name" or random_() < 0.03:
            name = _odd_name(rng, surname, given)
        long = feature == "long_userid" or random_() < 0.005
        userid = _userid(rng, surname_py, given_py, long, taken)
        main = mains[number]
        depts = [main]
        if (feature == "multi_department" or random_() < 0.1) and len(dept_ids) > 1:
            for _ in range(min(1 if random_() < 0.7 else 2, len(dept_ids) - 1)):
                extra = choice(dept_ids)
                while extra in depts:
                    extra = choice(dept_ids)
                depts.append(extra)
            rng.shuffle(depts)
        status = statuses[number]
        if feature is not None and feature.startswith("status_"):
            status = int(feature[-1])
        restricted = feature == "restricted" or random_() < 0.3
        minimal = feature == "minimal" or random_() < 0.05
        user: dict[str, Any] = {
            "userid": userid,
            "name": name,
            "department": depts,
            "order": [rng.getrandbits(32) if random_() < 0.5 else 0 for _ in depts],
        }
        if not minimal:
            user["position"] = choice(names.POSITIONS)
        if restricted:
            # Members as an app created after 2022-06-20 sees them (see as_new_app_sees), so
            # that an old app's sandbox answers both shapes; SandboxConfig.new_app answers every
            # member this way.
            user["gender"] = UNAVAILABLE_GENDER
        else:
            user["mobile"] = f"1{choice('3456789')}{rng.getrandbits(30) % 10**9:09d}"
            user["gender"] = choice(("1", "2"))
            user["email"] = f"{userid.lower()}@example.com"
            user["biz_mail"] = f"{userid.lower()}@example.wecom.work"
        user["is_leader_in_dept"] = [0] * len(depts)
        user["direct_leader"] = []
        if not restricted:
            picture = f"https://wework.qpic.cn/wwpic/{rng.getrandbits(96):024x}"
            user["avatar"] = f"{picture}/0"
            user["thumb_avatar"] = f"{picture}/100"
        if not minimal:
            user["telephone"] = (
                f"0{choice(_AREA_CODES)}-{10**7 + rng.getrandbits(26) % (9 * 10**6)}"
                if random_() < 0.4
                else ""
            )
            user["alias"] = choice(names.ENGLISH_NAMES) if random_() < 0.3 else ""
        if not restricted:
            user["address"] = (
                f"{choice(_CITIES)}{choice(_STREETS)}{1 + rng.getrandbits(10) % 998}号"
            )
        if random_() < 0.05:
            user["english_name"] = choice(names.ENGLISH_NAMES)
        if not minimal:
            user["open_userid"] = f"wo{rng.getrandbits(120):030x}"
        user["main_department"] = main
        if not minimal and random_() < 0.8:
            user["extattr"] = _extattr(rng, number, userid)
        user["status"] = status
        if not restricted:
            user["qr_code"] = (
                f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=vc{rng.getrandbits(64):016x}"
            )
        if not minimal:
            user["external_position"] = choice(names.POSITIONS)
        if random_() < 0.15:
            user["external_profile"] = _external_profile(rng, company)
        for index, dept_id in enumerate(depts):
            members.setdefault(dept_id, []).append((user, index))
        result.append(user)
    _assign_leaders(rng, departments, members)
    return result


def _assign_leaders(
    rng: random.Random,
    departments: list[dict[str, Any]],
    members: dict[int, list[tuple[dict[str, Any], int]]],
) -> None:
    """Pick leaders among each department's members; derive everyone's direct leaders.

    ``department_leader`` and ``is_leader_in_dept`` always agree, as they do in WeCom. A user's
    direct leader is a leader of the nearest department (main first, then upwards) led by
    someone else; about one user in six has none set.
    """
    leaders_of: dict[int, list[str]] = {}
    for dept in departments:
        dept_members = members.get(dept["id"], [])
        roll = rng.random()
        wanted = 0 if roll < 0.3 else 1 if roll < 0.85 else 2
        chosen = rng.sample(dept_members, min(wanted, len(dept_members)))
        for user, index in chosen:
            user["is_leader_in_dept"][index] = 1
        dept["department_leader"] = [user["userid"] for user, _ in chosen]
        leaders_of[dept["id"]] = dept["department_leader"]
    parent_of = {d["id"]: d["parentid"] for d in departments}
    seen: set[int] = set()
    for dept_members in members.values():
        for user, _ in dept_members:
            if id(user) in seen:
                continue
            seen.add(id(user))
            if rng.random() < 0.17:
                continue
            dept_id = user["main_department"]
            while dept_id in leaders_of:
                others = [uid for uid in leaders_of[dept_id] if uid != user["userid"]]
                if others:
                    user["direct_leader"] = others[:5]
                    break
                dept_id = parent_of[dept_id]


def as_new_app_sees(user: dict[str, Any]) -> dict[str, Any]:
    """A member as ``user/list`` and ``user/get`` answer an app created after 2022-06-20.

    The fields in :data:`WITHHELD_FROM_NEW_APPS` are left out, ``gender`` is ``"0"`` and every
    other field, ``telephone`` included, is answered as for any app. The input is not modified.
    """
    seen = {key: value for key, value in user.items() if key not in WITHHELD_FROM_NEW_APPS}
    seen["gender"] = UNAVAILABLE_GENDER
    return seen


def visible_view(
    org: dict[str, Any],
    visible_department_ids: Collection[int] | None,
    *,
    new_app: bool = False,
) -> dict[str, Any]:
    """The org as an app whose visible range is ``visible_department_ids`` sees it.

    The range is the union of the subtrees rooted at the given ids (ids not in the org are
    ignored); ``None`` means the whole org. The view holds the departments in range, in org order,
    and the users with at least one department in range. Users' ``department``, ``order`` and
    ``is_leader_in_dept`` keep only departments in range, ``main_department`` is dropped when it
    is out of range, and ``department_leader`` keeps only users in the view. Parent ids are left
    as they are, so a visible root may point at a department the app cannot see, as in WeCom.

    An app created after 2022-06-20 (``new_app``) sees every member as
    :func:`as_new_app_sees` describes.

    The input is not modified; dicts that need no filtering are shared with it.

    Args:
        org: The org dict.
        visible_department_ids: Roots of the visible range, or None for the whole org.
        new_app: Whether the app was created after 2022-06-20.

    Returns:
        An org dict with the same keys.
    """
    view = _range_view(org, visible_department_ids)
    if new_app:
        view["users"] = [as_new_app_sees(user) for user in view["users"]]
    return view


def _range_view(
    org: dict[str, Any], visible_department_ids: Collection[int] | None
) -> dict[str, Any]:
    if visible_department_ids is None:
        return {**org, "departments": list(org["departments"]), "users": list(org["users"])}
    visible = subtree_ids(org["departments"], visible_department_ids)
    users: list[dict[str, Any]] = []
    for user in org["users"]:
        depts = user.get("department") or []
        keep = [i for i, dept_id in enumerate(depts) if dept_id in visible]
        if not keep:
            continue
        if len(keep) == len(depts) and user.get("main_department", depts[0]) in visible:
            users.append(user)
            continue
        filtered = dict(user)
        for key in ("department", "order", "is_leader_in_dept"):
            values = user.get(key)
            if isinstance(values, list) and len(values) == len(depts):
                filtered[key] = [values[i] for i in keep]
        if "main_department" in filtered and filtered["main_department"] not in visible:
            del filtered["main_department"]
        users.append(filtered)
    seen_users = {user["userid"] for user in users}
    departments: list[dict[str, Any]] = []
    for dept in org["departments"]:
        if dept["id"] not in visible:
            continue
        leaders = dept.get("department_leader")
        if isinstance(leaders, list) and any(uid not in seen_users for uid in leaders):
            kept = [uid for uid in leaders if uid in seen_users]
            departments.append({**dept, "department_leader": kept})
        else:
            departments.append(dept)
    return {**org, "departments": departments, "users": users}


def subtree_ids(departments: list[dict[str, Any]], roots: Collection[int]) -> set[int]:
    """Ids of the given departments and everything below them (unknown roots are ignored)."""
    children: dict[int, list[int]] = {}
    known: set[int] = set()
    for dept in departments:
        known.add(dept["id"])
        children.setdefault(dept.get("parentid", 0), []).append(dept["id"])
    result: set[int] = set()
    pending = [root for root in roots if root in known]
    while pending:
        dept_id = pending.pop()
        if dept_id in result:
            continue
        result.add(dept_id)
        pending.extend(children.get(dept_id, ()))
    return result


def load_org(path: Path) -> dict[str, Any]:
    """Read an org JSON file and check its shape.

    Raises:
        ValueError: When the file is not an org (names the file and what is wrong).
    """
    try:
        org = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    check_org(org, source=str(path))
    return org


def check_org(org: Any, source: str = "org") -> None:
    """Check that ``org`` has the org shape the sandbox serves.

    Raises:
        ValueError: Naming ``source`` and the first problem found.
    """
    if not isinstance(org, dict):
        raise ValueError(f"{source}: expected a JSON object")
    for key in ("corp_id", "corp_secret"):
        if not isinstance(org.get(key), str) or not org[key]:
            raise ValueError(f"{source}: {key!r} must be a non-empty string")
    for key in ("departments", "users"):
        if not isinstance(org.get(key), list):
            raise ValueError(f"{source}: {key!r} must be a list")
    for dept in org["departments"]:
        if not isinstance(dept, dict) or type(dept.get("id")) is not int:
            raise ValueError(f"{source}: every department needs an integer 'id': {dept!r:.200}")
    for user in org["users"]:
        if not isinstance(user, dict) or not isinstance(user.get("userid"), str):
            raise ValueError(f"{source}: every user needs a string 'userid': {user!r:.200}")
        if not isinstance(user.get("department", []), list):
            raise ValueError(f"{source}: user {user['userid']!r}: 'department' must be a list")


def save_org(org: dict[str, Any], path: Path) -> None:
    """Write the org as UTF-8 JSON, atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(org, handle, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
