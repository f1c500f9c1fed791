"""Typed records of the WeCom contact API, with all payload parsing in one place.

WeCom's answers vary by app age, secret type and visible range: fields go missing (since
2022-06-20 new apps no longer receive mobile, email, avatar, ...), legacy fields linger and a few
numbers arrive as strings. Parsing is therefore tolerant for optional fields (coerced when the
conversion is lossless, else None) and strict only for the identifiers a record cannot exist
without.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wecom_assets.wecom.errors import WeComResponseError

_INT_TEXT = re.compile(r"-?[0-9]+")


def userid_key(userid: str) -> str:
    """The form in which two userids are the same member: WeCom compares userids ignoring case.

    The merge of users listed by several departments and the warehouse's uniqueness check both
    use this one function, so they cannot disagree (``casefold`` and SQL ``lower`` do, on ``ß``).
    """
    return userid.casefold()


def _as_int(value: Any) -> int | None:
    """Return ``value`` as an int when that loses nothing (``"7"`` -> 7, ``7.0`` -> 7), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    return None


def _as_str(value: Any) -> str | None:
    """Return ``value`` as text; integers become their digits, anything else non-text None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _as_bool(value: Any) -> bool | None:
    """Return the 0/1 flags WeCom uses (``is_leader_in_dept``) as bools, else None."""
    if isinstance(value, bool):
        return value
    flag = _as_int(value)
    if flag in (0, 1):
        return bool(flag)
    return None


def _as_str_tuple(value: Any) -> tuple[str, ...] | None:
    """Return a list of userids as a tuple, skipping entries that are not text; None if absent."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return None
    return tuple(text for text in (_as_str(item) for item in value) if text is not None)


def _as_json_text(value: Any) -> str | None:
    """Return structured data as canonical JSON text (stable for comparisons and storage)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping | list):
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _item(values: Any, index: int) -> Any:
    """Return ``values[index]`` of a parallel array, or None when the array is short or absent."""
    if isinstance(values, Sequence) and not isinstance(values, str | bytes):
        if index < len(values):
            return values[index]
    return None


@dataclass(frozen=True, slots=True)
class Department:
    """One department as ``department/list`` returns it.

    Attributes:
        id: Department id.
        name: Name, or None when not returned.
        name_en: English name, or None.
        parent_id: API ``parentid``; 0 for the top department.
        order: API ``order`` (larger sorts first), or None.
        leaders: API ``department_leader`` (userids in the visible range), None when omitted.
    """

    id: int
    name: str | None
    name_en: str | None
    parent_id: int | None
    order: int | None
    leaders: tuple[str, ...] | None

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> Department:
        """Build a department from one item of ``department/list``'s ``department`` array.

        Args:
            payload: The API object.

        Returns:
            The parsed department.

        Raises:
            WeComResponseError: The item is not an object or has no usable ``id``.
        """
        if not isinstance(payload, Mapping):
            raise WeComResponseError(
                f"department entry is {type(payload).__name__}, not an object",
                path="department/list",
            )
        department_id = _as_int(payload.get("id"))
        if department_id is None:
            raise WeComResponseError(
                f"department entry without a valid integer id: id={payload.get('id')!r}",
                path="department/list",
            )
        return cls(
            id=department_id,
            name=_as_str(payload.get("name")),
            name_en=_as_str(payload.get("name_en")),
            parent_id=_as_int(payload.get("parentid")),
            order=_as_int(payload.get("order")),
            leaders=_as_str_tuple(payload.get("department_leader")),
        )


@dataclass(frozen=True, slots=True)
class User:
    """One member as ``user/list`` (or ``user/get``) returns them.

    ``departments``, ``orders`` and ``leader_flags`` are parallel: entry *i* of each belongs to
    the same department. Only departments in the app's visible range are listed.
    """

    userid: str
    name: str | None
    alias: str | None
    position: str | None
    status: int | None
    main_department: int | None
    departments: tuple[int, ...]
    orders: tuple[int | None, ...]
    leader_flags: tuple[bool | None, ...]
    mobile: str | None
    email: str | None
    biz_mail: str | None
    gender: str | None
    telephone: str | None
    open_userid: str | None
    avatar: str | None
    thumb_avatar: str | None
    address: str | None
    external_position: str | None
    english_name: str | None
    qr_code: str | None
    direct_leaders: tuple[str, ...] | None
    extattr: str | None
    external_profile: str | None

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> User:
        """Build a user from one item of ``user/list``'s ``userlist`` array.

        Args:
            payload: The API object.

        Returns:
            The parsed user.

        Raises:
            WeComResponseError: The item is not an object or its ``userid`` is not non-empty text.
        """
        if not isinstance(payload, Mapping):
            raise WeComResponseError(
                f"user entry is {type(payload).__name__}, not an object", path="user/list"
            )
        userid = payload.get("userid")
        if not isinstance(userid, str) or not userid:
            raise WeComResponseError(
                f"user entry without a valid userid: userid={userid!r}", path="user/list"
            )
        raw_departments = payload.get("department")
        if not isinstance(raw_departments, Sequence) or isinstance(raw_departments, str | bytes):
            raw_departments = ()
        departments: list[int] = []
        orders: list[int | None] = []
        leader_flags: list[bool | None] = []
        for index, raw_id in enumerate(raw_departments):
            department_id = _as_int(raw_id)
            if department_id is None:
                # Dropping the whole index keeps the three arrays aligned.
                continue
            departments.append(department_id)
            orders.append(_as_int(_item(payload.get("order"), index)))
            leader_flags.append(_as_bool(_item(payload.get("is_leader_in_dept"), index)))
        return cls(
            userid=userid,
            name=_as_str(payload.get("name")),
            alias=_as_str(payload.get("alias")),
            position=_as_str(payload.get("position")),
            status=_as_int(payload.get("status")),
            main_department=_as_int(payload.get("main_department")),
            departments=tuple(departments),
            orders=tuple(orders),
            leader_flags=tuple(leader_flags),
            mobile=_as_str(payload.get("mobile")),
            email=_as_str(payload.get("email")),
            biz_mail=_as_str(payload.get("biz_mail")),
            gender=_as_str(payload.get("gender")),
            telephone=_as_str(payload.get("telephone")),
            open_userid=_as_str(payload.get("open_userid")),
            avatar=_as_str(payload.get("avatar")),
            thumb_avatar=_as_str(payload.get("thumb_avatar")),
            address=_as_str(payload.get("address")),
            external_position=_as_str(payload.get("external_position")),
            english_name=_as_str(payload.get("english_name")),
            qr_code=_as_str(payload.get("qr_code")),
            direct_leaders=_as_str_tuple(payload.get("direct_leader")),
            extattr=_as_json_text(payload.get("extattr")),
            external_profile=_as_json_text(payload.get("external_profile")),
        )
