"""WeCom errcode policy: which codes are retried, refreshed, or fatal, and what to tell the user.

:func:`classify` is the policy itself, a pure function of the errcode; the client only carries
out the :class:`Action` it returns, and :func:`error_for` words the failures.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from wecom_assets.wecom.errors import (
    WeComApiError,
    WeComAuthError,
    WeComError,
    WeComPermissionError,
    WeComResponseError,
)

SYSTEM_BUSY = -1
RATE_LIMITED = frozenset({45009, 45033})
TOKEN_REJECTED = frozenset({40014, 41001, 42001})
AUTH_FAILED = frozenset({40001, 40013})
OUT_OF_RANGE = 60011


class Action(enum.Enum):
    """What the client does with an answer, decided by its errcode alone."""

    SUCCEED = "succeed"
    RETRY_BUSY = "retry busy"
    BACK_OFF = "back off on rate limit"
    REFRESH_TOKEN = "refresh token"
    FAIL = "fail"


def classify(errcode: int) -> Action:
    """Return the errcode policy's action for ``errcode``.

    Busy (-1) is worth another try after a short backoff; a rate or concurrency limit
    (45009, 45033) blocks the API for the rest of WeCom's window, so it gets a longer one; a
    rejected token (40014, 41001, 42001) is replaced; everything else, a wrong secret
    included, fails at once because repeating the call cannot change the answer.

    Args:
        errcode: The answer's errcode (0 for success).

    Returns:
        The action to take.
    """
    if errcode == 0:
        return Action.SUCCEED
    if errcode == SYSTEM_BUSY:
        return Action.RETRY_BUSY
    if errcode in RATE_LIMITED:
        return Action.BACK_OFF
    if errcode in TOKEN_REJECTED:
        return Action.REFRESH_TOKEN
    return Action.FAIL


_AUTH_HINTS = {
    40001: (
        "WeCom rejected the corp secret (errcode 40001: wrong, reset, or the app is disabled). "
        "Check {secret}: it must be the secret of the app whose visible range is synced."
    ),
    40013: (
        "WeCom rejected the corp id (errcode 40013). Check WECOM_CORP_ID: it is the 'ww...' id "
        "shown under My Company in the WeCom admin console."
    ),
}

_PERMISSION_HINTS = {
    48002: (
        "the app has no permission for this API (errcode 48002). Grant the app access to the "
        "contact API in the WeCom admin console, or set {secret} to the secret of an "
        "app that has it"
    ),
    48009: (
        "WeCom blocks the contact-sync secret from this IP (errcode 48009, policy of 2022-08-15: "
        "from a newly added IP only user/list_id and department/simplelist answer). Set "
        "{secret} to a self-built app's secret whose visible range covers the org"
    ),
    60011: (
        "outside the app's visible range (errcode 60011). Add it to the app's visible range "
        "(可见范围) in the WeCom admin console, or set {secret} to the secret of an app "
        "that sees it"
    ),
    60020: (
        "the call came from an IP that is not in the app's trusted IPs (errcode 60020). Add this "
        "host's public egress IP to the app's trusted IP list (企业可信IP) in the WeCom admin "
        "console, or route through a proxy with a trusted IP via WECOM_API_BASE_URL"
    ),
}


def error_for(
    path: str,
    errcode: int,
    errmsg: str,
    subject: str = "",
    *,
    secret_variable: str = "WECOM_CORP_SECRET",
) -> WeComError:
    """Return the exception for a non-retryable errcode.

    Args:
        path: API path that answered.
        errcode: The non-zero errcode.
        errmsg: WeCom's errmsg, already redacted.
        subject: What the call was about (``"department 7"``), named in the message.
        secret_variable: The environment variable the secret came from (a corp's own in the
            corps file), named where the fix is another secret.

    Returns:
        The exception to raise; its type follows the errcode policy.
    """
    about = f" for {subject}" if subject else ""
    if errcode in AUTH_FAILED:
        return WeComAuthError(
            _AUTH_HINTS[errcode].format(secret=secret_variable),
            path=path,
            errcode=errcode,
            errmsg=errmsg,
        )
    hint = _PERMISSION_HINTS.get(errcode)
    if hint is not None:
        return WeComPermissionError(
            f"WeCom {path}{about}: {hint.format(secret=secret_variable)}. WeCom said: {errmsg}",
            path=path,
            errcode=errcode,
            errmsg=errmsg,
        )
    return WeComApiError(
        f"WeCom {path}{about} failed with errcode {errcode}: {errmsg}",
        path=path,
        errcode=errcode,
        errmsg=errmsg,
    )


def errcode_of(path: str, payload: Mapping[str, Any]) -> int:
    """Return the payload's errcode; a body without one is a success (some endpoints omit it).

    Args:
        path: API path, for the error message.
        payload: Decoded JSON answer.

    Returns:
        The errcode, 0 when absent.

    Raises:
        WeComResponseError: ``errcode`` is present but not an integer.
    """
    raw = payload.get("errcode", 0)
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise WeComResponseError(f"WeCom {path} answered a non-integer errcode", path=path)
    try:
        return int(raw)
    except ValueError:
        raise WeComResponseError(
            f"WeCom {path} answered a non-integer errcode", path=path
        ) from None
