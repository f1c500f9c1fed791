"""Helpers for the history tests: load an org straight into the tables, and evolve an org.

``load_snapshot`` writes exactly what a sync of that org would (the same parsing, Arrow snapshots,
rules and atomic replacement as the assets), without HTTP or Dagster, so scenario tests over many
syncs stay fast. The ``Org`` helpers change an org the way people change a real one; each keeps
``department_leader`` and ``is_leader_in_dept`` in agreement, as WeCom does.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import duckdb

from wecom_assets import snapshots, warehouse
from wecom_assets.quality import DEPARTMENT_RULES, MEMBERSHIP_RULES, USER_RULES
from wecom_assets.sandbox.org import visible_view
from wecom_assets.tables import DEPARTMENTS, USERS
from wecom_assets.wecom.models import Department, User


def load_snapshot(
    conn: duckdb.DuckDBPyConnection,
    org: dict[str, Any],
    synced_at: datetime,
    visible: Collection[int] | None = None,
) -> None:
    """Replace the three current tables with ``org`` as an app with ``visible`` range sees it."""
    view = visible_view(org, visible)
    departments = [Department.from_api(d) for d in view["departments"]]
    users = [User.from_api(u) for u in view["users"]]
    warehouse.replace_table(
        conn,
        DEPARTMENTS,
        snapshots.departments_table(departments, synced_at),
        rules=DEPARTMENT_RULES,
        max_shrink_fraction=None,
    )
    warehouse.replace_table(
        conn,
        USERS,
        snapshots.users_table(users, synced_at),
        rules=USER_RULES,
        max_shrink_fraction=None,
    )
    warehouse.replace_membership(conn, rules=MEMBERSHIP_RULES)


def plain_users(org: Org, count: int) -> list[str]:
    """``count`` active members of exactly one department who lead nothing, in org order."""
    leaders = {uid for d in org.data["departments"] for uid in d.get("department_leader") or []}
    found = [
        u["userid"]
        for u in org.data["users"]
        if u.get("status") == 1
        and len(u["department"]) == 1
        and u.get("main_department") == u["department"][0]
        and u["userid"] not in leaders
    ]
    assert len(found) >= count, "the generated org has too few plain members"
    return found[:count]


class Org:
    """A mutable copy of an org dict with the changes that happen between two syncs."""

    def __init__(self, org: dict[str, Any]) -> None:
        self.data = copy.deepcopy(org)

    def snapshot(self) -> dict[str, Any]:
        """A frozen copy to serve or load."""
        return copy.deepcopy(self.data)

    def user(self, userid: str) -> dict[str, Any]:
        return next(u for u in self.data["users"] if u["userid"] == userid)

    def department(self, department_id: int) -> dict[str, Any]:
        return next(d for d in self.data["departments"] if d["id"] == department_id)

    def members(self, department_id: int) -> list[str]:
        return [u["userid"] for u in self.data["users"] if department_id in u["department"]]

    def join(self, userid: str, name: str, department_id: int, status: int = 1) -> None:
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
        self.user(userid)["name"] = name

    def set_status(self, userid: str, status: int) -> None:
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
        self.department(department_id)["name"] = name

    def reparent(self, department_id: int, parent_id: int) -> None:
        self.department(department_id)["parentid"] = parent_id

    def add_department(self, department_id: int, name: str, parent_id: int) -> None:
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


def expected_intervals(
    snapshots: Sequence[set[tuple[Any, ...]]], key_length: int
) -> set[tuple[tuple[Any, ...], int, int | None]]:
    """The versions a type-2 history of these snapshots must hold, by snapshot index.

    A key's version runs from the snapshot where its row first appears (or changes) to the
    snapshot where the row changes or is gone (None while it still holds at the last one).
    """
    result: set[tuple[tuple[Any, ...], int, int | None]] = set()
    open_versions: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for index, rows in enumerate(snapshots):
        current = {row[:key_length]: row for row in rows}
        for key, (row, start) in list(open_versions.items()):
            if current.get(key) != row:
                result.add((key, start, index))
                del open_versions[key]
        for key, row in current.items():
            open_versions.setdefault(key, (row, index))
    result.update((key, start, None) for key, (_, start) in open_versions.items())
    return result
