r"""Typed records of the WeCom contact API, with all payload parsing in one place.

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
  of range, nested deeper than :data:`MAX_JSON_DEPTH`) becomes NULL; text that is not valid
  Unicode (a lone ``\ud800`` escape) is kept with U+FFFD in place of the bad characters. One
  warning per record names the department or user and each such field. An entry of a user's
  ``department`` list that is not a valid department id is dropped together with its ``order``
  and ``is_leader_in_dept`` entries, since a membership row cannot lack its department.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wecom_assets.wecom.errors import WeComResponseError
from wecom_assets.wecom.redact import escape_controls

logger = logging.getLogger(__name__)

# extattr/external_profile deeper than this are not data anyone configured in the admin console.
MAX_JSON_DEPTH = 32
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# What json.loads makes besides dict and list: checked by exact type first, since isinstance
# against the Mapping/Sequence ABCs costs a microsecond, and a user has some 40 values.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def userid_key(userid: str, *, case_sensitive: bool = False) -> str:
    """The form in which two userids are the same member.

    Self-built apps' userids are case-insensitive in WeCom; service-provider apps (代开发)
    receive encrypted userids, which are case-sensitive. The merge of users listed by several
    departments and the warehouse's uniqueness check both use this one function, so they cannot
    disagree (``casefold`` and SQL ``lower`` do, on ``ß``).
    """
    return userid if case_sensitive else userid.casefold()


def _as_int(value: Any) -> int | None:
    """Return ``value`` as an int when that loses nothing (``"7"`` -> 7, ``7.0`` -> 7), else None."""
    if type(value) is int:
        return value
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


def _is_valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON, counted without recursion (1 for a flat object)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if type(item) is dict or isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > MAX_JSON_DEPTH:
                break
        # Scalars are leaves: not stacking them halves the walk of a typical extattr.
        stack.extend((child, level + 1) for child in children if type(child) not in _SCALARS)
    return deepest


def _describe(value: Any) -> str:
    """A short, printable description of a raw value for a message."""
    if isinstance(value, Mapping | list):
        return f"a {type(value).__name__} of {len(value)} items"
    return escape_controls(repr(value)[:80])


def _item(values: Any, index: int) -> Any:
    """Return ``values[index]`` of a parallel array, or None when the array is short or absent."""
    if type(values) is list:
        return values[index] if index < len(values) else None
    if isinstance(values, Sequence) and not isinstance(values, str | bytes):
        if index < len(values):
            return values[index]
    return None


def _sequence(value: Any) -> Sequence[Any] | None:
    if type(value) is list:
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return None


class _Fields:
    """Reads one API object under the parsing policy, noting every value it had to drop."""

    __slots__ = ("_notes", "_payload")

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self._payload = payload
        self._notes: list[str] = []

    def note(self, field: str, problem: str) -> None:
        self._notes.append(f"{field} {problem}")

    @property
    def noted(self) -> bool:
        """Whether any value had to be dropped (naming the record is then worth its cost)."""
        return bool(self._notes)

    def warn(self, path: str, who: str) -> None:
        """Log the notes, if any, in one warning naming the record."""
        if self._notes:
            logger.warning("WeCom %s: %s: %s", path, who, "; ".join(self._notes))

    def integer(self, key: str, bounds: tuple[int, int] = _INT64) -> int | None:
        return self.fit_integer(self._payload.get(key), key, bounds)

    def fit_integer(self, raw: Any, field: str, bounds: tuple[int, int] = _INT64) -> int | None:
        if raw is None:
            return None
        value = _as_int(raw)
        if value is None:
            self.note(field, f"{_describe(raw)} is not an integer: stored as NULL")
        elif not bounds[0] <= value <= bounds[1]:
            column = "INTEGER" if bounds == _INT32 else "BIGINT"
            self.note(field, f"{_describe(value)} does not fit {column}: stored as NULL")
            return None
        return value

    def text(self, key: str) -> str | None:
        raw = self._payload.get(key)
        if raw is None:
            return None
        if type(raw) is str and raw.isascii():
            return raw
        value = _as_str(raw)
        if value is None:
            self.note(key, f"{_describe(raw)} is not text: stored as NULL")
            return None
        return self.valid_text(value, key)

    def valid_text(self, value: str, field: str) -> str:
        if _is_valid_unicode(value):
            return value
        self.note(field, "is not valid Unicode: bad characters replaced with U+FFFD")
        return _SURROGATES.sub("\ufffd", value)

    def texts(self, key: str) -> tuple[str, ...] | None:
        """A list of userids; entries that are not text are skipped."""
        raw = self._payload.get(key)
        if raw is None:
            return None
        values = _sequence(raw)
        if values is None:
            self.note(key, f"{_describe(raw)} is not a list: stored as NULL")
            return None
        kept: list[str] = []
        for index, item in enumerate(values):
            text = _as_str(item)
            if text is not None:
                kept.append(self.valid_text(text, f"{key}[{index}]"))
            elif item is not None:
                self.note(f"{key}[{index}]", f"{_describe(item)} is not text: skipped")
        return tuple(kept)

    def json_text(self, key: str) -> str | None:
        """Structured data as canonical JSON text (stable for comparisons and storage)."""
        raw = self._payload.get(key)
        if raw is None:
            return None
        value = raw
        try:
            if isinstance(raw, str):
                value = json.loads(raw)
            if not isinstance(value, Mapping | list):
                self.note(key, f"{_describe(raw)} is not a JSON object or array: stored as NULL")
                return None
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
            # Every level opens a bracket, so text with few brackets is shallow: the exact
            # (slower) walk is needed only when brackets, in strings or not, could be levels.
            if text.count("{") + text.count("[") > MAX_JSON_DEPTH and (
                _depth(value) > MAX_JSON_DEPTH
            ):
                raise RecursionError
        except RecursionError:
            self.note(key, f"is nested deeper than {MAX_JSON_DEPTH} levels: stored as NULL")
            return None
        except ValueError:
            self.note(key, f"{_describe(raw)} is not valid JSON: stored as NULL")
            return None
        return self.valid_text(text, key)

    def memberships(
        self,
    ) -> tuple[tuple[int, ...], tuple[int | None, ...], tuple[bool | None, ...]]:
        """The parallel ``department``/``order``/``is_leader_in_dept`` arrays, kept aligned."""
        raw_departments = self._payload.get("department")
        departments = _sequence(raw_departments)
        if departments is None:
            if raw_departments is not None:
                self.note("department", f"{_describe(raw_departments)} is not a list: empty")
            return (), (), ()
        raw_orders = self._payload.get("order")
        raw_flags = self._payload.get("is_leader_in_dept")
        ids: list[int] = []
        orders: list[int | None] = []
        flags: list[bool | None] = []
        for index, raw_id in enumerate(departments):
            department_id = _as_int(raw_id)
            if department_id is None or not _INT64[0] <= department_id <= _INT64[1]:
                # Dropping the whole index keeps the three arrays aligned.
                self.note(
                    f"department[{index}]",
                    f"{_describe(raw_id)} is not a department id: membership dropped",
                )
                continue
            ids.append(department_id)
            orders.append(self.fit_integer(_item(raw_orders, index), f"order[{index}]"))
            raw_flag = _item(raw_flags, index)
            flag = _as_bool(raw_flag)
            if flag is None and raw_flag is not None:
                self.note(f"is_leader_in_dept[{index}]", f"{_describe(raw_flag)} is not 0 or 1")
            flags.append(flag)
        return tuple(ids), tuple(orders), tuple(flags)


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
        fields = _Fields(payload)
        raw_id = payload.get("id")
        department_id = fields.integer("id")
        if department_id is None:
            raise WeComResponseError(
                f"WeCom department/list answered a department (name "
                f"{_describe(payload.get('name'))}) without a valid id: field id is "
                f"{_describe(raw_id)}, not an integer that fits BIGINT",
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
        if not isinstance(userid, str) or not userid or not _is_valid_unicode(userid):
            raise WeComResponseError(
                f"WeCom user/list{listing} answered a user (name "
                f"{_describe(payload.get('name'))}) without a valid userid: field userid is "
                f"{_describe(userid)}, not non-empty valid Unicode text",
                path="user/list",
            )
        fields = _Fields(payload)
        departments, orders, leader_flags = fields.memberships()
        user = cls(
            userid=userid,
            name=fields.text("name"),
            alias=fields.text("alias"),
            position=fields.text("position"),
            status=fields.integer("status", _INT32),
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
            fields.warn("user/list", f"user {_describe(userid)}{where}")
        return user
