"""Lookups over what the app can see, rebuilt whenever the org or the visible range changes.

Requests only read an index; a change builds a new one and swaps it in, so requests never see a
half-updated org and need no lock while reading it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Hashable
from typing import Any

from wecom_assets.sandbox.bulk import gc_paused
from wecom_assets.sandbox.org import visible_view
from wecom_assets.sandbox.tags import tags_of, visible_tag

INVALID_DEPARTMENT = 60123
DEPARTMENT_NOT_FOUND = 60003
NOT_VISIBLE = 60011
USER_NOT_FOUND = 60111
UNKNOWN_TAG = 40068

_DEPARTMENT_ID = re.compile(r"[0-9]{1,10}")
_UINT32_MAX = (1 << 32) - 1


class ApiError(Exception):
    """A WeCom errcode to answer with."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


def encode(payload: Any) -> bytes:
    """JSON as WeCom sends it: compact UTF-8, non-ASCII text unescaped."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class OrgIndex:
    """The visible view of one org, indexed for the endpoints."""

    def __init__(
        self,
        org: dict[str, Any],
        visible_department_ids: Collection[int] | None,
        new_app: bool = False,
    ) -> None:
        """Index what an app sees.

        Args:
            org: The whole org.
            visible_department_ids: Roots of the app's visible range; None: the whole org.
            new_app: Whether the app was created after 2022-06-20 (see
                :func:`~wecom_assets.sandbox.org.as_new_app_sees`).
        """
        self.corp_id: str = org["corp_id"]
        self.corp_secret: str = org["corp_secret"]
        self._known_departments = {d["id"] for d in org["departments"]}
        self._children: dict[int, list[int]] = {}
        self._members: dict[int, list[dict[str, Any]]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._cache: dict[Hashable, bytes] = {}
        self._rows: list[dict[str, Any]] | None = None
        with gc_paused():
            view = visible_view(org, visible_department_ids, new_app=new_app)
            self.departments: list[dict[str, Any]] = view["departments"]
            self.users: list[dict[str, Any]] = view["users"]
            self._departments = {d["id"]: d for d in self.departments}
            self._position = {d["id"]: i for i, d in enumerate(self.departments)}
            for dept in self.departments:
                self._children.setdefault(dept.get("parentid", 0), []).append(dept["id"])
            for user in self.users:
                self._users.setdefault(user["userid"].lower(), user)
                for dept_id in user.get("department") or ():
                    self._members.setdefault(dept_id, []).append(user)
        self.tags: list[dict[str, Any]] = tags_of(org)
        self._tags = {tag["tagid"]: tag for tag in self.tags}

    def cached(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """Answer bodies are pure functions of the index; build each one once.

        Two threads may build the same body at once; both results are equal, so that is harmless.
        """
        body = self._cache.get(key)
        if body is None:
            body = self._cache[key] = build()
        return body

    def department_id(self, raw: str | None) -> int:
        """Parse a department id parameter and check that the app can see it.

        Raises:
            ApiError: 60123 (malformed), 60003 (no such department), 60011 (not visible).
        """
        if raw is None or not _DEPARTMENT_ID.fullmatch(raw):
            raise ApiError(INVALID_DEPARTMENT)
        dept_id = int(raw)
        if dept_id == 0 or dept_id > _UINT32_MAX:
            raise ApiError(INVALID_DEPARTMENT)
        if dept_id not in self._known_departments:
            raise ApiError(DEPARTMENT_NOT_FOUND)
        if dept_id not in self._departments:
            raise ApiError(NOT_VISIBLE)
        return dept_id

    def department(self, dept_id: int) -> dict[str, Any]:
        """A visible department by id."""
        return self._departments[dept_id]

    def subtree(self, dept_id: int) -> list[dict[str, Any]]:
        """The department and everything below it, in org order."""
        found: list[int] = []
        pending = [dept_id]
        while pending:
            current = pending.pop()
            found.append(current)
            pending.extend(self._children.get(current, ()))
        found.sort(key=self._position.__getitem__)
        return [self._departments[i] for i in found]

    def members(self, dept_id: int) -> list[dict[str, Any]]:
        """Direct members of a visible department (users listing it among their departments)."""
        return self._members.get(dept_id, [])

    def membership_rows(self) -> list[dict[str, Any]]:
        """One ``{"userid", "department"}`` row per (user, visible department), built once."""
        if self._rows is None:
            self._rows = [
                {"userid": user["userid"], "department": dept_id}
                for user in self.users
                for dept_id in user.get("department") or ()
            ]
        return self._rows

    def visible_tag(self, tag_id: int) -> dict[str, Any]:
        """A tag's name, visible members and visible departments, as ``tag/get`` answers.

        Raises:
            ApiError: 40068 when the corp has no such tag.
        """
        tag = self._tags.get(tag_id)
        if tag is None:
            raise ApiError(UNKNOWN_TAG)
        return visible_tag(tag, self._users, self._departments)

    def user(self, userid: str | None) -> dict[str, Any]:
        """A visible user; userids compare case-insensitively, as in WeCom.

        Raises:
            ApiError: 60111 when no visible user has that id.
        """
        user = self._users.get((userid or "").lower())
        if user is None:
            raise ApiError(USER_NOT_FOUND)
        return user
