"""Group robots (群机器人): ``POST webhook/send?key=KEY`` as WeCom answers it, and what they received.

A robot is known by its key alone (no access token). WeCom accepts 20 messages a minute per robot
(45009 beyond) and markdown of up to 4,096 bytes; an unknown key gets 93000. Delivered messages
are kept, in order, so tests can read exactly what a group chat would show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from wecom_assets.sandbox.call_quota import SlidingWindowLimiter

WEBHOOK_PATH = "webhook/send"
INVALID_KEY = 93000
RATE_LIMITED = 45009
INVALID_MESSAGE_TYPE = 40008
INVALID_PARAMETER = 40058
EMPTY_CONTENT = 44004
BAD_BODY = 47001
REQUIRE_POST = 43002
MAX_CONTENT_BYTES = {"markdown": 4096, "text": 2048}


@dataclass(frozen=True)
class WebhookMessage:
    """A message a robot delivered: its type, its text, and the request body as sent."""

    msgtype: str
    content: str
    body: str

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON-able data (as ``GET /sandbox/webhook`` lists it)."""
        return asdict(self)


class WebhookInbox:
    """Checks robot posts and keeps the delivered ones. Not thread-safe: the caller serialises."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._limiter = SlidingWindowLimiter(clock)
        self._messages: list[WebhookMessage] = []

    def receive(
        self,
        method: str,
        key: str,
        body: bytes,
        *,
        keys: list[str],
        limit_per_minute: int,
        window: float,
    ) -> int:
        """Deliver one post, or say why WeCom would not; returns the errcode (0: delivered).

        Args:
            method: HTTP method (WeCom requires POST).
            key: The ``key`` query parameter.
            body: The request body: ``{"msgtype": "markdown", "markdown": {"content": ...}}``.
            keys: Keys of the robots that exist.
            limit_per_minute: Messages one robot delivers per window.
            window: Length of that window in seconds.
        """
        if key not in keys:
            return INVALID_KEY
        if method != "POST":
            return REQUIRE_POST
        try:
            request = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return BAD_BODY
        if not isinstance(request, dict):
            return BAD_BODY
        msgtype = request.get("msgtype")
        if msgtype not in MAX_CONTENT_BYTES:
            return INVALID_MESSAGE_TYPE
        part = request.get(msgtype)
        content = part.get("content") if isinstance(part, dict) else None
        if not isinstance(content, str) or not content.strip():
            return EMPTY_CONTENT
        if len(content.encode()) > MAX_CONTENT_BYTES[msgtype]:
            return INVALID_PARAMETER
        if not self._limiter.allow(key, limit_per_minute, window):
            return RATE_LIMITED
        self._messages.append(WebhookMessage(msgtype, content, body.decode()))
        return 0

    def messages(self) -> list[dict[str, Any]]:
        """Every delivered message since start or the last :meth:`clear`, oldest first."""
        return [message.to_dict() for message in self._messages]

    def clear(self) -> None:
        """Forget the delivered messages (the robots' limits keep counting)."""
        self._messages = []
