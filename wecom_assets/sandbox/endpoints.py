"""The contact-API endpoints, answering from an :class:`OrgIndex` as the public docs describe.

Each handler gets the index, the query parameters and the request body and returns the success
body, or raises :class:`ApiError`. Tokens, limits and faults are handled before a handler runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wecom_assets.sandbox.index import ApiError, OrgIndex, encode

INVALID_PARAMETER = 40058
BAD_BODY = 47001
LIST_ID_MAX = 10_000
_TAG_ID = re.compile(r"[0-9]{1,19}")

Handler = Callable[[OrgIndex, Mapping[str, str], bytes], bytes]


def _ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def department_list(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``department/list``: all visible departments, or one and its whole subtree."""
    raw = query.get("id") or None
    if raw is None:
        return index.cached("department/list", lambda: encode(_ok(department=index.departments)))
    dept_id = index.department_id(raw)
    return index.cached(
        ("department/list", dept_id),
        lambda: encode(_ok(department=index.subtree(dept_id))),
    )


def department_simplelist(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``department/simplelist``: ids, parent ids and orders only, same scope as the list."""
    raw = query.get("id") or None
    departments = index.departments if raw is None else index.subtree(index.department_id(raw))
    rows = [
        {"id": d["id"], "parentid": d.get("parentid"), "order": d.get("order")} for d in departments
    ]
    return encode(_ok(department_id=rows))


def department_get(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``department/get``: one department."""
    dept_id = index.department_id(query.get("id"))
    return encode(_ok(department=index.department(dept_id)))


def user_get(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``user/get``: one user, fields at the top level next to errcode."""
    return encode(_ok(**index.user(query.get("userid"))))


def user_list(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``user/list``: the direct members of one department, full details.

    ``fetch_child`` is deprecated by WeCom and ignored here, so clients cannot come to rely on it.
    """
    dept_id = index.department_id(query.get("department_id"))
    return index.cached(
        ("user/list", dept_id), lambda: encode(_ok(userlist=index.members(dept_id)))
    )


def user_simplelist(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``user/simplelist``: the direct members of one department, ids and names only."""
    dept_id = index.department_id(query.get("department_id"))
    rows = []
    for user in index.members(dept_id):
        row = {
            "userid": user["userid"],
            "name": user.get("name"),
            "department": user.get("department"),
        }
        if "open_userid" in user:
            row["open_userid"] = user["open_userid"]
        rows.append(row)
    return encode(_ok(userlist=rows))


@dataclass(frozen=True)
class _Page:
    offset: int
    limit: int


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _parse_list_id(body: bytes) -> _Page:
    try:
        request = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(BAD_BODY) from exc
    if not isinstance(request, dict):
        raise ApiError(BAD_BODY)
    limit = request.get("limit", LIST_ID_MAX)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_ID_MAX:
        raise ApiError(INVALID_PARAMETER)
    cursor = request.get("cursor") or ""
    if not isinstance(cursor, str):
        raise ApiError(INVALID_PARAMETER)
    if not cursor:
        return _Page(0, limit)
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        offset = int(decoded[1:]) if decoded.startswith("o") else -1
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER) from exc
    if offset < 0:
        raise ApiError(INVALID_PARAMETER)
    return _Page(offset, limit)


def user_list_id(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``POST user/list_id``: one row per (user, visible department), paged by cursor.

    ``next_cursor`` is empty on the last page.
    """
    page = _parse_list_id(body)
    rows = index.membership_rows()
    chunk = rows[page.offset : page.offset + page.limit]
    end = page.offset + len(chunk)
    next_cursor = _cursor(end) if end < len(rows) else ""
    return encode(_ok(next_cursor=next_cursor, dept_user=chunk))


def tag_list(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``tag/list``: every tag of the corp, whatever the visible range."""
    rows = [{"tagid": tag["tagid"], "tagname": tag.get("tagname")} for tag in index.tags]
    return encode(_ok(taglist=rows))


def tag_get(index: OrgIndex, query: Mapping[str, str], body: bytes) -> bytes:
    """``tag/get``: one tag's members and departments inside the visible range."""
    raw = query.get("tagid") or ""
    if not _TAG_ID.fullmatch(raw):
        raise ApiError(INVALID_PARAMETER)
    return encode(_ok(**index.visible_tag(int(raw))))


@dataclass(frozen=True)
class Endpoint:
    """An API path: the HTTP method WeCom requires and the handler."""

    method: str
    handler: Handler


ENDPOINTS: dict[str, Endpoint] = {
    "department/list": Endpoint("GET", department_list),
    "department/simplelist": Endpoint("GET", department_simplelist),
    "department/get": Endpoint("GET", department_get),
    "user/get": Endpoint("GET", user_get),
    "user/list": Endpoint("GET", user_list),
    "user/simplelist": Endpoint("GET", user_simplelist),
    "user/list_id": Endpoint("POST", user_list_id),
    "tag/list": Endpoint("GET", tag_list),
    "tag/get": Endpoint("GET", tag_get),
}
# What an app without access to tags is refused (see ``SandboxConfig.tags_forbidden``).
TAG_PATHS = frozenset({"tag/list", "tag/get"})
