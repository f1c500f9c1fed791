"""Exceptions raised by the WeCom client.

Every message is built from redacted text: no access token or corp secret ever appears in
``str()``, ``repr()`` or a traceback of these exceptions. As a last line of defence the
constructor also masks URL user-info and escapes control characters in the message and errmsg,
so text from the server can neither leak a proxy password nor forge log lines.
"""

from __future__ import annotations

from wecom_assets.wecom.redact import escape_controls, redact_url_params


class WeComError(Exception):
    """Base class of every error the WeCom client raises.

    Attributes:
        path: API path the error belongs to (``"user/list"``), or None when not tied to a call.
        errcode: WeCom ``errcode`` of the answer, or None for HTTP/transport errors.
        errmsg: WeCom ``errmsg`` (redacted), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
    ) -> None:
        super().__init__(_safe(message))
        self.path = path
        self.errcode = errcode
        self.errmsg = None if errmsg is None else _safe(errmsg)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.args[0]!r}, path={self.path!r}, errcode={self.errcode!r})"
        )


def _safe(text: str) -> str:
    return escape_controls(redact_url_params(text))


class WeComConfigError(WeComError):
    """A setting is missing or invalid; the message names the environment variable or setting."""


class WeComAuthError(WeComError):
    """WeCom rejected the corp id or secret (40001 / 40013); the message names the setting only."""


class WeComPermissionError(WeComError):
    """The app may not do this (48002, 48009, 60011, 60020); the message says what to change."""


class WeComApiError(WeComError):
    """WeCom answered another non-zero errcode, or an HTTP status that retrying cannot fix."""


class WeComTransientError(WeComError):
    """Retries ran out on a transient failure (busy, rate limit, HTTP 5xx, timeout, bad JSON)."""


class WeComBlockedError(WeComTransientError):
    """WeCom blocks the API or this IP for longer than retrying makes sense (an hour limit).

    Attributes:
        retry_at: When a run can call again, in epoch seconds (the message says it in local
            time), or None when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_at: float | None = None,
        path: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
    ) -> None:
        super().__init__(message, path=path, errcode=errcode, errmsg=errmsg)
        self.retry_at = retry_at


class WeComResponseError(WeComError):
    """The answer is well-formed JSON but not shaped as documented (missing or invalid fields)."""


class TransientFailure(Exception):
    """One request failed in a way a retry may fix: HTTP 5xx/429, timeout, reset, cut-off body.

    Internal to the client: the retry loop turns the last one into a
    :class:`WeComTransientError` once its budget is spent. The description is already redacted.
    """
