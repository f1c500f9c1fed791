"""The parsing policy of WeCom payloads: coercing, checking and noting each value of a record.

:mod:`wecom_assets.wecom.models` builds its records with :class:`Fields`; the policy itself (what
is coerced, what becomes NULL, what is only warned about) is described there. The checks come
first by exact type, since nearly every value is one ``json.loads`` made.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from wecom_assets.wecom.redact import escape_controls

# The warnings keep the logger name they had when this was part of models, which operators'
# logging configuration may name.
logger = logging.getLogger("wecom_assets.wecom.models")

# extattr/external_profile deeper than this are not data anyone configured in the admin console.
MAX_JSON_DEPTH = 32
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# What json.loads makes besides dict and list: checked by exact type first, since isinstance
# against the Mapping/Sequence ABCs costs a microsecond, and a user has some 40 values.
_SCALARS = frozenset({str, int, float, bool, type(None)})


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


def is_valid_unicode(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8: JSON escapes can make lone surrogates."""
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


def describe(value: Any) -> str:
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


class Fields:
    """Reads one API object under the parsing policy, noting every value it had to drop."""

    __slots__ = ("_notes", "_payload")

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self._payload = payload
        self._notes: list[str] = []

    def note(self, field: str, problem: str) -> None:
        """Remember a dropped or repaired value for the record's one warning."""
        self._notes.append(f"{field} {problem}")

    @property
    def noted(self) -> bool:
        """Whether any value had to be dropped (naming the record is then worth its cost)."""
        return bool(self._notes)

    def warn(self, path: str, who: str) -> None:
        """Log the notes, if any, in one warning naming the record."""
        if self._notes:
            logger.warning("WeCom %s: %s: %s", path, who, "; ".join(self._notes))

    def integer(self, key: str, bounds: tuple[int, int] = INT64) -> int | None:
        """The field ``key`` as an integer within ``bounds``, else None (noted)."""
        return self.fit_integer(self._payload.get(key), key, bounds)

    def fit_integer(self, raw: Any, field: str, bounds: tuple[int, int] = INT64) -> int | None:
        """``raw`` as an integer within ``bounds`` (the column's type), else None (noted)."""
        if raw is None:
            return None
        value = _as_int(raw)
        if value is None:
            self.note(field, f"{describe(raw)} is not an integer: stored as NULL")
        elif not bounds[0] <= value <= bounds[1]:
            column = "INTEGER" if bounds == INT32 else "BIGINT"
            self.note(field, f"{describe(value)} does not fit {column}: stored as NULL")
            return None
        return value

    def text(self, key: str) -> str | None:
        """The field ``key`` as text; integers become digits, other non-text None (noted)."""
        raw = self._payload.get(key)
        if raw is None:
            return None
        if type(raw) is str and raw.isascii():
            return raw
        value = _as_str(raw)
        if value is None:
            self.note(key, f"{describe(raw)} is not text: stored as NULL")
            return None
        return self.valid_text(value, key)

    def valid_text(self, value: str, field: str) -> str:
        """``value`` with characters UTF-8 cannot hold replaced by U+FFFD (noted)."""
        if is_valid_unicode(value):
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
            self.note(key, f"{describe(raw)} is not a list: stored as NULL")
            return None
        kept: list[str] = []
        for index, item in enumerate(values):
            text = _as_str(item)
            if text is not None:
                kept.append(self.valid_text(text, f"{key}[{index}]"))
            elif item is not None:
                self.note(f"{key}[{index}]", f"{describe(item)} is not text: skipped")
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
                self.note(key, f"{describe(raw)} is not a JSON object or array: stored as NULL")
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
            self.note(key, f"{describe(raw)} is not valid JSON: stored as NULL")
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
                self.note("department", f"{describe(raw_departments)} is not a list: empty")
            return (), (), ()
        raw_orders = self._payload.get("order")
        raw_flags = self._payload.get("is_leader_in_dept")
        ids: list[int] = []
        orders: list[int | None] = []
        flags: list[bool | None] = []
        for index, raw_id in enumerate(departments):
            department_id = _as_int(raw_id)
            if department_id is None or not INT64[0] <= department_id <= INT64[1]:
                # Dropping the whole index keeps the three arrays aligned.
                self.note(
                    f"department[{index}]",
                    f"{describe(raw_id)} is not a department id: membership dropped",
                )
                continue
            ids.append(department_id)
            orders.append(self.fit_integer(_item(raw_orders, index), f"order[{index}]"))
            raw_flag = _item(raw_flags, index)
            flag = _as_bool(raw_flag)
            if flag is None and raw_flag is not None:
                self.note(f"is_leader_in_dept[{index}]", f"{describe(raw_flag)} is not 0 or 1")
            flags.append(flag)
        return tuple(ids), tuple(orders), tuple(flags)
