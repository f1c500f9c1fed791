"""Change an org the way people change a real one, between two syncs.

Used to drive the history tables through realistic days in the demo, the benchmarks and the
tests. Every edit keeps ``department_leader`` and ``is_leader_in_dept`` in agreement, as WeCom
does, so an edited org stays a valid sandbox org.
"""

from __future__ import annotations

import copy
import random
from typing import Any


class OrgEditor:
    """A mutable copy of an org dict with the changes that happen between two syncs."""

    def __init__(self, org: dict[str, Any]) -> None:
        self.data = copy.deepcopy(org)

    def snapshot(self) -> dict[str, Any]:
        """A frozen copy to serve or load."""
        return copy.deepcopy(self.data)

    def user(self, userid: str) -> dict[str, Any]:
        """The user record (mutable), by exact userid."""
        return next(u for u in self.data["users"] if u["userid"] == userid)

    def department(self, department_id: int) -> dict[str, Any]:
        """The department record (mutable)."""
        return next(d for d in self.data["departments"] if d["id"] == department_id)

    def members(self, department_id: int) -> list[str]:
        """Userids of the department's direct members."""
        return [u["userid"] for u in self.data["users"] if department_id in u["department"]]

    def join(self, userid: str, name: str, department_id: int, status: int = 1) -> None:
        """A new member in one department, with the contact fields an older app still sees."""
        self.data["users"].append(
            {
                "userid": userid,
                "name": name,
                "department": [department_id],
                "order": [0],
                "is_leader_in_dept": [0],
                "main_department": department_id,
                "status": status,
                "position": "工程师",
                "mobile": "13800000000",
                "email": f"{userid.lower()}@example.com",
            }
        )

    def leave(self, userid: str) -> None:
        """Delete the user, as WeCom does: gone from leader lists and others' direct leaders."""
        self._drop_leadership(userid)
        self.data["users"] = [u for u in self.data["users"] if u["userid"] != userid]
        for other in self.data["users"]:
            if userid in (other.get("direct_leader") or []):
                other["direct_leader"] = [u for u in other["direct_leader"] if u != userid]

    def move(self, userid: str, department_id: int) -> None:
        """Make ``department_id`` the user's only (and main) department."""
        self._drop_leadership(userid)
        user = self.user(userid)
        user.update(
            department=[department_id],
            order=[0],
            is_leader_in_dept=[0],
            main_department=department_id,
        )

    def rename_user(self, userid: str, name: str) -> None:
        """Change a member's display name."""
        self.user(userid)["name"] = name

    def set_status(self, userid: str, status: int) -> None:
        """Change a member's status (1 active, 2 disabled, 4 not activated, 5 left)."""
        self.user(userid)["status"] = status

    def make_sole_leader(self, department_id: int, userid: str) -> None:
        """``userid`` (a member) becomes the only leader of the department."""
        department = self.department(department_id)
        for user in self.data["users"]:
            if department_id in user["department"]:
                index = user["department"].index(department_id)
                user["is_leader_in_dept"][index] = int(user["userid"] == userid)
        department["department_leader"] = [userid]

    def rename_department(self, department_id: int, name: str) -> None:
        """Change a department's name."""
        self.department(department_id)["name"] = name

    def reparent(self, department_id: int, parent_id: int) -> None:
        """Move a department (and its subtree) under another parent."""
        self.department(department_id)["parentid"] = parent_id

    def add_department(self, department_id: int, name: str, parent_id: int) -> None:
        """A new empty department without leaders."""
        self.data["departments"].append(
            {
                "id": department_id,
                "name": name,
                "parentid": parent_id,
                "order": 0,
                "department_leader": [],
            }
        )

    def remove_department(self, department_id: int) -> None:
        """Remove an empty leaf department."""
        assert not self.members(department_id), "move the members out first"
        assert not [d for d in self.data["departments"] if d.get("parentid") == department_id]
        self.data["departments"] = [d for d in self.data["departments"] if d["id"] != department_id]

    def _drop_leadership(self, userid: str) -> None:
        for department in self.data["departments"]:
            leaders = department.get("department_leader") or []
            if userid in leaders:
                department["department_leader"] = [u for u in leaders if u != userid]
        user = self.user(userid)
        user["is_leader_in_dept"] = [0] * len(user["department"])


def evolve_org(org: OrgEditor, rng: random.Random, scale: int) -> dict[str, int]:
    """Apply a day's worth of changes, about ``scale`` of each kind per 20k users."""
    users = [u["userid"] for u in org.data["users"]]
    departments = [d["id"] for d in org.data["departments"]]
    chosen = rng.sample(users, 5 * scale)
    leaves, moves, renames, statuses = (chosen[i * scale : (i + 1) * scale] for i in range(4))
    for userid in leaves:
        org.leave(userid)
    for userid in moves:
        org.move(userid, rng.choice(departments))
    for userid in renames:
        org.rename_user(userid, org.user(userid)["name"] + "·改")
    for userid in statuses:
        org.set_status(userid, 2 if org.user(userid).get("status") == 1 else 1)
    for number in range(scale):
        org.join(f"hire.{rng.getrandbits(48):012x}.{number}", "新同事", rng.choice(departments))
    renamed = rng.sample(departments[1:], max(1, scale // 10))
    for department_id in renamed:
        org.rename_department(department_id, org.department(department_id)["name"] + " (新)")
    leaves_of_tree = [
        d
        for d in departments[1:]
        if not any(x.get("parentid") == d for x in org.data["departments"])
    ]
    for department_id in rng.sample(leaves_of_tree, max(1, scale // 20)):
        org.reparent(department_id, rng.choice([d for d in departments if d != department_id][:50]))
    members: dict[int, list[str]] = {}
    for user in org.data["users"]:
        for department_id in user["department"]:
            members.setdefault(department_id, []).append(user["userid"])
    led = rng.sample(sorted(members), max(1, scale // 10))
    for department_id in led:
        org.make_sole_leader(department_id, rng.choice(members[department_id]))
    return {
        "joined": scale,
        "left": scale,
        "moved": scale,
        "renamed_users": scale,
        "status_changes": scale,
        "renamed_departments": len(renamed),
        "reparented_departments": max(1, scale // 20),
        "leader_changes": len(led),
    }
