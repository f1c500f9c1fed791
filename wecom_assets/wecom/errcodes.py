"""WeCom errcode policy: which codes are retried, refreshed, or fatal, and what to tell the user."""

from __future__ import annotations

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
TRANSIENT = frozenset({SYSTEM_BUSY}) | RATE_LIMITED
TOKEN_REJECTED = frozenset({40014, 41001, 42001})
AUTH_FAILED = frozenset({40001, 40013})
OUT_OF_RANGE = 60011

_AUTH_HINTS = {
    40001: (
        "WeCom rejected the corp secret (errcode 40001: wrong, reset, or the app is disabled). "
        "Check WECOM_CORP_SECRET: it must be the secret of the app whose visible range is synced."
    ),
    40013: (
        "WeCom rejected the corp id (errcode 40013). Check WECOM_CORP_ID: it is the 'ww...' id "
        "shown under My Company in the WeCom admin console."
    ),
}

_PERMISSION_HINTS = {
    48002: (
        "the app has no permission for this API (errcode 48002). Grant the app access to the "
        "contact API in the WeCom admin console, or set WECOM_CORP_SECRET to the secret of an "
        "app that has it"
    ),
    48009: (
        "WeCom blocks the contact-sync secret from this IP (errcode 48009, policy of 2022-08-15: "
        "from a newly added IP only user/list_id and department/simplelist answer). Set "
        "WECOM_CORP_SECRET to a self-built app's secret whose visible range covers the org"
    ),
    60011: (
        "outside the app's visible range (errcode 60011). Add it to the app's visible range "
        "(可见范围) in the WeCom admin console, or set WECOM_CORP_SECRET to the secret of an app "
        "that sees it"
    ),
    60020: (
        "the call came from an IP that is not in the app's trusted IPs (errcode 60020). Add this "
        "host's public egress IP to the app's trusted IP list (企业可信IP) in the WeCom admin "
        "console, or route through a proxy with a trusted IP via WECOM_API_BASE_URL"
    ),
}


def error_for(path: str, errcode: int, errmsg: str, subject: str = "") -> WeComError:
    """Return the exception for a non-retryable errcode.

    Args:
        path: API path that answered.
        errcode: The non-zero errcode.
        errmsg: WeCom's errmsg, already redacted.
        subject: What the call was about (``"department 7"``), named in the message.

    Returns:
        The exception to raise; its type follows the errcode policy.
    """
    about = f" for {subject}" if subject else ""
    if errcode in AUTH_FAILED:
        return WeComAuthError(_AUTH_HINTS[errcode], path=path, errcode=errcode, errmsg=errmsg)
    hint = _PERMISSION_HINTS.get(errcode)
    if hint is not None:
        return WeComPermissionError(
            f"WeCom {path}{about}: {hint}. WeCom said: {errmsg}",
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
