"""Client of a WeCom group robot (群机器人): markdown messages into a group chat.

A group robot is addressed by a key alone, ``{base}/cgi-bin/webhook/send?key=KEY``: whoever has
the key can post into the group, so the key is a secret. It travels only in the request URL and
never in a message, a log line or an exception; requests go through ``urllib`` rather than the
pooled ``requests`` session, whose ``urllib3`` logs each URL, query string included, at DEBUG.

WeCom allows 20 messages a minute per robot and 4,096 bytes of markdown per message; answers
``{"errcode": 0, "errmsg": "ok"}``, 93000 for a key it does not know and 45009 over the limit.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from wecom_assets.wecom.redact import Redactor

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "webhook/send"
MAX_MARKDOWN_BYTES = 4096
INVALID_KEY = 93000
RATE_LIMITED = 45009
SYSTEM_BUSY = -1
_TRANSIENT_ERRCODES = frozenset({SYSTEM_BUSY, RATE_LIMITED})
ROBOT_HINTS: dict[int, str] = {
    INVALID_KEY: (
        "WeCom does not know this robot key (errcode 93000): the robot was removed or the key "
        "is wrong. Copy the key from the robot's webhook address into WECOM_ALERT_WEBHOOK_KEY"
    ),
    RATE_LIMITED: (
        "the robot is over WeCom's 20 messages a minute (errcode 45009): something else posts "
        "through the same robot"
    ),
    SYSTEM_BUSY: "WeCom is busy (errcode -1)",
}


class RobotError(Exception):
    """A message could not be delivered; the text names the cause, never the key.

    Attributes:
        errcode: WeCom's errcode, or None when no answer came (network, HTTP status, bad body).
        transient: Whether a later attempt may succeed (busy, over the limit, network).
    """

    def __init__(self, message: str, *, errcode: int | None = None, transient: bool) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.transient = transient


def cut_to_bytes(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` shortened to at most ``max_bytes`` of UTF-8, ending in ``marker`` when cut.

    Cuts between characters, never inside one, so CJK text stays valid UTF-8.
    """
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    if room <= 0:
        return ""
    return encoded[:room].decode("utf-8", errors="ignore") + marker


@dataclass(frozen=True)
class _Endpoint:
    """Where to post, and how to show it: the URL without credentials."""

    url: str
    shown: str
    authorization: str | None


def _endpoint(base_url: str, key: str) -> _Endpoint:
    """The send URL, and a basic-auth header for a ``user:password@`` in the base URL."""
    parts = urlsplit(base_url.rstrip("/"))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = f"{parts.path}/cgi-bin/{WEBHOOK_PATH}"
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    url = urlunsplit((parts.scheme, netloc, path, f"key={quote(key, safe='')}", ""))
    return _Endpoint(url, urlunsplit((parts.scheme, netloc, path, "", "")), authorization)


class GroupRobot:
    """Posts markdown messages through one WeCom group robot.

    A failed post is retried a little (busy, over the limit, network, HTTP 5xx), then reported as
    :class:`RobotError`; a key WeCom does not know is never retried.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Prepare a robot; nothing is sent until :meth:`send_markdown`.

        Args:
            base_url: API root, the same as the contact API's (``WECOM_API_BASE_URL``).
            key: The robot's key, the ``key=`` of its webhook address.
            timeout: Seconds one HTTP request may take.
            attempts: Tries per message, the first included.
            backoff: Seconds before the second try; doubled before each further one.
            sleep: Sleep between tries (injectable for tests).

        Raises:
            ValueError: The key is empty or ``attempts`` is below 1.
        """
        if not key.strip():
            raise ValueError("the robot key is empty: set WECOM_ALERT_WEBHOOK_KEY")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self._endpoint = _endpoint(base_url, key.strip())
        parts = urlsplit(base_url)
        self._redact = Redactor((key.strip(), quote(key.strip(), safe=""), parts.password or ""))
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"GroupRobot({self._endpoint.shown!r})"

    @property
    def address(self) -> str:
        """The send URL as it may be shown: no key, no credentials."""
        return self._endpoint.shown

    def send_markdown(self, content: str) -> None:
        """Post one markdown message.

        Args:
            content: Markdown of at most 4,096 UTF-8 bytes (see :func:`cut_to_bytes`).

        Raises:
            ValueError: The content is empty or longer than WeCom accepts.
            RobotError: WeCom refused the message, or no try got through.
        """
        size = len(content.encode())
        if not content.strip() or size > MAX_MARKDOWN_BYTES:
            raise ValueError(f"markdown must be 1 to {MAX_MARKDOWN_BYTES} bytes, got {size}")
        body = json.dumps(
            {"msgtype": "markdown", "markdown": {"content": content}}, ensure_ascii=False
        ).encode()
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                self._post(body)
                return
            except RobotError as error:
                if not error.transient or attempt == self._attempts:
                    raise
                logger.warning(
                    "posting to the WeCom group robot failed (try %d of %d): %s; retrying in %gs",
                    attempt,
                    self._attempts,
                    error,
                    delay,
                )
            self._sleep(delay)
            delay *= 2

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._endpoint.authorization is not None:
            headers["Authorization"] = self._endpoint.authorization
        request = urllib.request.Request(self._endpoint.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raise RobotError(
                f"{self.address} answered HTTP {error.code}",
                transient=error.code >= 500 or error.code == 429,
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RobotError(
                self._redact(f"{self.address} could not be reached: {reason}"), transient=True
            ) from None
        try:
            payload = json.loads(raw)
            errcode = int(payload.get("errcode", 0))
            errmsg = str(payload.get("errmsg", ""))
        except (ValueError, TypeError, AttributeError):
            raise RobotError(
                f"{self.address} answered something else than JSON", transient=True
            ) from None
        if errcode == 0:
            return
        hint = ROBOT_HINTS.get(errcode, f"WeCom refused the message (errcode {errcode})")
        raise RobotError(
            self._redact(f"{hint}. WeCom said: {errmsg}"),
            errcode=errcode,
            transient=errcode in _TRANSIENT_ERRCODES,
        )
