r"""Typed records of the WeCom contact API, built under one parsing policy (:mod:`.payload`).

WeCom's answers vary by app age, secret type and visible range: fields go missing (since
2022-06-20 new apps no longer receive mobile, email, avatar, ...), legacy fields linger and a few
numbers arrive as strings. Values are coerced when the conversion loses nothing (``"7"`` -> 7,
``7.0`` -> 7, ``13800000000`` -> ``"13800000000"``).

One policy covers every value that cannot be stored as it is, so that nothing fails later in
Arrow or DuckDB (ArrowInvalid, OverflowError, UnicodeEncodeError, RecursionError) naming no
user. The columns are INTEGER (int32) for ``status``, BIGINT (int64) for ids and orders,
VARCHAR for text, and JSON text for ``extattr``/``external_profile``.

* Identifiers: a department without a valid ``id`` (an integer that fits BIGINT), or a user
  without a valid ``userid`` (non-empty, valid Unicode text), fails the call with a
  :class:`~wecom_assets.wecom.errors.WeComResponseError` naming the department, the user and
  the field: a record without its key cannot be stored or merged.
* Every other field is optional. A present value that does not fit its column (wrong type, out
  of range, nested deeper than :data:`~wecom_assets.wecom.payload.MAX_JSON_DEPTH`) becomes NULL; text that is not valid
  Unicode (a lone ``\ud800`` escape) is kept with U+FFFD in place of the bad characters. One
  warning per record names the department or user and each such field. An entry of a user's
  ``department`` list that is not a valid department id is dropped together with its ``order``
  and ``is_leader_in_dept`` entries, since a membership row cannot lack its department.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wecom_assets.wecom.errors import WeComResponseError
from wecom_assets.wecom.payload import INT32, Fields, describe, is_valid_unicode


def userid_key(userid: str, *, case_sensitive: bool = False) -> str:
    """The form in which two userids are the same member.

    Self-built apps' userids are case-insensitive in WeCom; service-provider apps (代开发)
    receive encrypted userids, which are case-sensitive. The merge of users listed by several
    departments and the warehouse's uniqueness check both use this one function, so they cannot
    disagree (``casefold`` and SQL ``lower`` do, on ``ß``).
    """
    return userid if case_sensitive else userid.casefold()


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
            The parsed department; optional fields that do not fit are None (see the module
            docstring), with a warning naming the department and the fields.

        Raises:
            WeComResponseError: The item is not an object or has no valid ``id``.
        """
        if type(payload) is not dict and not isinstance(payload, Mapping):
            raise WeComResponseError(
                f"WeCom department/list answered a department entry that is "
                f"{type(payload).__name__}, not an object",
                path="department/list",
            )
        fields = Fields(payload)
        raw_id = payload.get("id")
        department_id = fields.integer("id")
        if department_id is None:
            raise WeComResponseError(
                f"WeCom department/list answered a department (name "
                f"{describe(payload.get('name'))}) without a valid id: field id is "
                f"{describe(raw_id)}, not an integer that fits BIGINT",
                path="department/list",
            )
        department = cls(
            id=department_id,
            name=fields.text("name"),
            name_en=fields.text("name_en"),
            parent_id=fields.integer("parentid"),
            order=fields.integer("order"),
            leaders=fields.texts("department_leader"),
        )
        fields.warn("department/list", f"department {department_id}")
        return department


@dataclass(frozen=True, slots=True)
class User:
    """One member as ``user/list`` (or ``user/get``) returns them.

    ``departments``, ``orders`` and ``leader_flags`` are parallel: entry *i* of each belongs to
    the same department. Only departments in the app's visible range are listed.

    Every field is what the API answered, None when it answered nothing. What an app receives
    depends on its age (WeCom's user/get page, path/90196, and the 2022-06-20 policy): an app
    created after 2022-06-20 gets no ``avatar``, ``thumb_avatar``, ``mobile``, ``email``,
    ``biz_mail``, ``qr_code`` or ``address`` (the member's OAuth consent is needed), so those are
    None; ``gender`` is not left out but answered ``"0"`` ("not defined"; WeCom: "不可获取指返回值0")
    for every member, so it is ``"0"`` and not None; ``telephone`` is not on the list and is
    answered as to any app. ``open_userid`` is answered to third-party apps only.
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
    def from_api(cls, payload: Mapping[str, Any], *, department_id: int | None = None) -> User:
        """Build a user from one item of ``user/list``'s ``userlist`` array.

        Args:
            payload: The API object.
            department_id: The department whose listing this came from, named in messages.

        Returns:
            The parsed user; optional fields that do not fit are None (see the module
            docstring), with a warning naming the user, the department and the fields.

        Raises:
            WeComResponseError: The item is not an object or its ``userid`` is not non-empty,
                valid Unicode text.
        """
        listing = "" if department_id is None else f" for department {department_id}"
        if type(payload) is not dict and not isinstance(payload, Mapping):
            raise WeComResponseError(
                f"WeCom user/list{listing} answered a user entry that is "
                f"{type(payload).__name__}, not an object",
                path="user/list",
            )
        userid = payload.get("userid")
        if not isinstance(userid, str) or not userid or not is_valid_unicode(userid):
            raise WeComResponseError(
                f"WeCom user/list{listing} answered a user (name "
                f"{describe(payload.get('name'))}) without a valid userid: field userid is "
                f"{describe(userid)}, not non-empty valid Unicode text",
                path="user/list",
            )
        fields = Fields(payload)
        departments, orders, leader_flags = fields.memberships()
        user = cls(
            userid=userid,
            name=fields.text("name"),
            alias=fields.text("alias"),
            position=fields.text("position"),
            status=fields.integer("status", INT32),
            main_department=fields.integer("main_department"),
            departments=departments,
            orders=orders,
            leader_flags=leader_flags,
            mobile=fields.text("mobile"),
            email=fields.text("email"),
            biz_mail=fields.text("biz_mail"),
            gender=fields.text("gender"),
            telephone=fields.text("telephone"),
            open_userid=fields.text("open_userid"),
            avatar=fields.text("avatar"),
            thumb_avatar=fields.text("thumb_avatar"),
            address=fields.text("address"),
            external_position=fields.text("external_position"),
            english_name=fields.text("english_name"),
            qr_code=fields.text("qr_code"),
            direct_leaders=fields.texts("direct_leader"),
            extattr=fields.json_text("extattr"),
            external_profile=fields.json_text("external_profile"),
        )
        if fields.noted:
            where = "" if department_id is None else f" in department {department_id}"
            fields.warn("user/list", f"user {describe(userid)}{where}")
        return user
