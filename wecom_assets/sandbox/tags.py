"""The sandbox's tags (标签): generated with the org, answered by ``tag/list`` and ``tag/get``.

An org's ``tags`` entry is a list of ``{"tagid", "tagname", "userlist": [userid, ...],
"partylist": [department id, ...]}``. As in WeCom, ``tag/list`` answers every tag of the corp
while ``tag/get`` leaves out members and departments outside the app's visible range.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Any

# Names as corps write them: roles, duty rotas, CJK with emoji and quotes, one English.
TAG_NAMES = (
    "管理层",
    "值班",
    "面试官",
    "新员工",
    "🚀 项目组",
    '"安全" 联络人',
    "Ops on-call",
    "党员",
    "离职交接",
)


def generate_tags(
    seed: int, departments: list[dict[str, Any]], users: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Tags for a generated org: sparse ids, CJK and emoji names, one empty tag.

    A random generator of their own keeps the org's departments and users what they were before
    orgs had tags.
    """
    rng = random.Random(f"tags-{seed}")
    ids = [1, 2, 7, 40, 1000, 65_536, 2_000_001, 4_294_967_295, 12]
    userids = [user["userid"] for user in users]
    department_ids = [department["id"] for department in departments]
    tags: list[dict[str, Any]] = []
    for position, (tag_id, name) in enumerate(zip(ids, TAG_NAMES, strict=True)):
        if position == len(ids) - 1:
            # A tag nobody carries yet, as freshly created ones are.
            members: list[str] = []
            parties: list[int] = []
        else:
            members = rng.sample(userids, min(len(userids), rng.randint(1, 12)))
            parties = rng.sample(department_ids, min(len(department_ids), rng.randint(0, 2)))
        tags.append({"tagid": tag_id, "tagname": name, "userlist": members, "partylist": parties})
    return tags


def tags_of(org: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The org's tags; an org saved before the sandbox had tags has none."""
    tags = org.get("tags") or []
    return [tag for tag in tags if isinstance(tag, dict) and type(tag.get("tagid")) is int]


def visible_tag(
    tag: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], department_ids: Collection[int]
) -> dict[str, Any]:
    """A tag as ``tag/get`` answers it to an app that sees ``users`` and ``department_ids``.

    Args:
        tag: The tag as the org holds it.
        users: Visible users by lower-cased userid (userids compare case-insensitively).
        department_ids: Visible department ids.
    """
    members = (users.get(userid.lower()) for userid in tag.get("userlist") or ())
    return {
        "tagname": tag.get("tagname"),
        "userlist": [
            {"userid": user["userid"], "name": user.get("name")} for user in members if user
        ],
        "partylist": [d for d in tag.get("partylist") or () if d in department_ids],
    }


def evolve_tags(org: dict[str, Any], rng: random.Random) -> dict[str, int]:
    """Edit ``org``'s tags in place the way admins do between two syncs; returns what changed.

    One member is tagged and one untagged in the first tags that allow it, one tag is renamed
    and a new one is created with a member, so every tag event has an example.
    """
    tags = org.setdefault("tags", [])
    userids = [user["userid"] for user in org["users"]]
    changes = {"tagged": 0, "untagged": 0, "renamed_tags": 0, "added_tags": 0}
    carrying = [tag for tag in tags if tag.get("userlist")]
    if carrying:
        tag = carrying[0]
        tag["userlist"] = tag["userlist"][1:]
        changes["untagged"] += 1
    free = [userid for userid in userids if tags and userid not in tags[0].get("userlist", [])]
    if free:
        tags[0].setdefault("userlist", []).append(rng.choice(free))
        changes["tagged"] += 1
    if len(tags) > 1:
        tags[1]["tagname"] = f"{tags[1].get('tagname') or ''} (新)"
        changes["renamed_tags"] += 1
    # Tag ids are unsigned 32-bit in WeCom: the lowest free one, never beyond.
    taken = {tag["tagid"] for tag in tags}
    next_id = next(tag_id for tag_id in range(1, len(taken) + 2) if tag_id not in taken)
    members = rng.sample(userids, min(1, len(userids)))
    tags.append({"tagid": next_id, "tagname": "周末值班 🌙", "userlist": members, "partylist": []})
    changes["added_tags"] += 1
    return changes
