"""Access tokens as WeCom hands them out: one live token per app, reissued only when it dies.

WeCom answers a repeated ``gettoken`` within a token's life with the same token, lets tokens
expire after ``expires_in`` seconds (42001) and sometimes invalidates one early (40014), which is
what clients must survive. The sandbox serves a single app, so there is one current token.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

OK = 0
INVALID_TOKEN = 40014
EXPIRED_TOKEN = 42001


@dataclass
class _Token:
    expires_at: float
    invalidated: bool = False
    uses: int = 0


class TokenRegistry:
    """Issues and checks tokens. Not thread-safe: the caller serialises access."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._current: str | None = None

    def issue(self, ttl: int) -> tuple[str, int, bool]:
        """Return ``(token, expires_in, is_new)``; the live token again if there is one.

        A repeated call reports the remaining life, so a client that trusts ``expires_in``
        never holds the token past its expiry.
        """
        now = self._clock()
        if self._current is not None:
            token = self._tokens[self._current]
            if not token.invalidated and now < token.expires_at:
                return self._current, max(1, math.ceil(token.expires_at - now)), False
        value = secrets.token_urlsafe(72)
        self._tokens[value] = _Token(expires_at=now + ttl)
        self._current = value
        return value, ttl, True

    def check(self, value: str) -> int:
        """Errcode for a call made with ``value``: 0, 40014 (unknown/invalidated) or 42001."""
        token = self._tokens.get(value)
        if token is None or token.invalidated:
            return INVALID_TOKEN
        if self._clock() >= token.expires_at:
            return EXPIRED_TOKEN
        return OK

    def record_use(self, value: str, invalidate_every: int | None) -> bool:
        """Count a served call made with ``value``; invalidate it after ``invalidate_every``.

        Returns:
            True when this call used up the token.
        """
        token = self._tokens.get(value)
        if token is None:
            return False
        token.uses += 1
        if invalidate_every is not None and token.uses >= invalidate_every:
            token.invalidated = True
            return True
        return False

    def reset_uses(self) -> None:
        """Restart use counting (when ``invalidate_every`` changes)."""
        for token in self._tokens.values():
            token.uses = 0

    def invalidate_all(self) -> None:
        """Invalidate every token (the app's credentials changed)."""
        for token in self._tokens.values():
            token.invalidated = True
        self._current = None
