"""WeCom tags (标签): the records and the two calls a tag sync makes, ``tag/list`` and ``tag/get``.

A self-built app lists all of the corp's tags, but ``tag/get`` answers only the members and
departments inside the app's visible range: the records hold exactly what WeCom answered. An app
without access to tags gets 48002 (or 60011) from both calls; that becomes one error saying what
to grant, since the generic permission hint speaks of the contact API as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from wecom_assets.wecom.errcodes import OUT_OF_RANGE
from wecom_assets.wecom.errors import WeComApiError, WeComPermissionError, WeComResponseError
from wecom_assets.wecom.transport import Params

logger = logging.getLogger(__name__)

API_FORBIDDEN = 48002
UNKNOWN_TAG = 40068
# WeCom answers either when the app may not read tags.
TAGS_FORBIDDEN = frozenset({API_FORBIDDEN, OUT_OF_RANGE})
_INT64 = (-(2**63), 2**63 - 1)

TAGS_FORBIDDEN_HINT = (
    "the app may not read tags (标签). In the WeCom admin console open the app (应用管理), "
    "grant it access to the contact API's tags (通讯录 > 标签: 可读) or add the tags to its "
    "visible range (可见范围), or set the corp secret to that of an app that can read tags "
    "(the contact-sync secret can)"
)


class Getter(Protocol):
    """What fetching tags needs of a client: one GET with the errcode policy applied."""

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """Answer of ``path`` (errcode 0), or a WeComError."""
        ...


@dataclass(frozen=True, slots=True)
class Tag:
    """One entry of ``tag/list``."""

    tag_id: int
    tag_name: str | None

    @classmethod
    def from_api(cls, item: Any) -> Tag:
        """Parse one ``taglist`` entry.

        Raises:
            WeComResponseError: The entry has no integer ``tagid``.
        """
        if not isinstance(item, Mapping):
            raise WeComResponseError(
                "WeCom tag/list answered a taglist entry that is not an object"
            )
        tag_id = _tag_id(item.get("tagid"), "tag/list")
        name = item.get("tagname")
        return cls(tag_id, name if isinstance(name, str) else None)


@dataclass(frozen=True, slots=True)
class TagDetail:
    """A tag with the members and departments ``tag/get`` answered (those in the visible range)."""

    tag_id: int
    tag_name: str | None
    userids: tuple[str, ...]
    department_ids: tuple[int, ...]

    @classmethod
    def from_api(cls, tag: Tag, payload: Mapping[str, Any]) -> TagDetail:
        """Parse a ``tag/get`` answer; a member without a userid or a non-integer id is skipped.

        The name is ``tag/get``'s own when it answers one (newer than the list's), else the
        list's. Duplicates are kept once, in API order.
        """
        name = payload.get("tagname")
        userids: dict[str, None] = {}
        for member in _list(payload.get("userlist")):
            userid = member.get("userid") if isinstance(member, Mapping) else None
            if isinstance(userid, str) and userid:
                userids[userid] = None
            else:
                logger.warning("WeCom tag/get: tag %s lists a member without a userid", tag.tag_id)
        departments: dict[int, None] = {}
        for raw in _list(payload.get("partylist")):
            if _is_int64(raw):
                departments[int(raw)] = None
            else:
                logger.warning("WeCom tag/get: tag %s lists a bad department id", tag.tag_id)
        return cls(
            tag.tag_id,
            name if isinstance(name, str) else tag.tag_name,
            tuple(userids),
            tuple(departments),
        )


def list_tags(client: Getter) -> list[Tag]:
    """All tags the app may list (``tag/list``): every tag of the corp for a self-built app.

    Raises:
        WeComPermissionError: The app may not read tags (48002/60011); says what to grant.
        WeComResponseError: The answer has no ``taglist`` array or an entry without a tag id.
        WeComError: As for :meth:`WeComClient.get`.
    """
    payload = _forbidden_explained(client, "tag/list", {})
    items = payload.get("taglist")
    if not isinstance(items, list):
        raise WeComResponseError(
            "WeCom tag/list answered without a 'taglist' array", path="tag/list"
        )
    return [Tag.from_api(item) for item in items]


def get_tag(client: Getter, tag: Tag) -> TagDetail | None:
    """One tag's members and departments (``tag/get``); None when the tag is gone (40068).

    A tag deleted between ``tag/list`` and ``tag/get`` no longer exists, so it is left out
    rather than failing the sync.

    Raises:
        WeComPermissionError: The app may not read tags (48002/60011); says what to grant.
        WeComError: As for :meth:`WeComClient.get`.
    """
    try:
        payload = _forbidden_explained(client, "tag/get", {"tagid": tag.tag_id})
    except WeComApiError as error:
        if error.errcode != UNKNOWN_TAG:
            raise
        logger.warning("WeCom tag/get: tag %s was deleted after tag/list; left out", tag.tag_id)
        return None
    return TagDetail.from_api(tag, payload)


def fetch_tags(client: Getter, max_concurrency: int = 1) -> list[TagDetail]:
    """Every tag with its members and departments: ``1 + T`` calls for ``T`` tags.

    The ``tag/get`` calls are latency-bound, so up to ``max_concurrency`` run at once (the
    client's limiter still paces them); the result keeps ``tag/list``'s order.

    Raises:
        WeComPermissionError: The app may not read tags; says what to grant.
        WeComError: The first failure in tag order; tags not yet fetched are cancelled.
    """
    tags = list_tags(client)
    with ThreadPoolExecutor(max(1, max_concurrency), thread_name_prefix="wecom-tags") as pool:
        try:
            details = list(pool.map(lambda tag: get_tag(client, tag), tags))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return [detail for detail in details if detail is not None]


def _forbidden_explained(client: Getter, path: str, params: Params) -> dict[str, Any]:
    try:
        return client.get(path, params)
    except WeComPermissionError as error:
        if error.errcode not in TAGS_FORBIDDEN:
            raise
        raise WeComPermissionError(
            f"WeCom {path} answered errcode {error.errcode}: {TAGS_FORBIDDEN_HINT}. "
            f"WeCom said: {error.errmsg}",
            path=path,
            errcode=error.errcode,
            errmsg=error.errmsg,
        ) from None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_int64(value: Any) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]
    )


def _tag_id(value: Any, path: str) -> int:
    if not _is_int64(value):
        raise WeComResponseError(f"WeCom {path} answered a tag without an integer tagid", path=path)
    return int(value)
