"""Removal of credentials from any text the client emits.

WeCom puts both credentials in query strings (``gettoken?corpsecret=...``, ``...?access_token=...``),
so every URL, and every ``requests``/``urllib3`` error or log line that embeds one, would leak them.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

# Query parameters WeCom reads credentials from; matched in raw and percent-encoded URLs.
_SECRET_PARAMS = re.compile(r"(?i)\b(access_token|corpsecret)(=|%3D)[^&\s'\"<>)\]}]*")
# C0/C1 controls, DEL, line/paragraph separators and bidi overrides: what can start a new log
# line, move the cursor or reorder what a reader sees.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    r"""Return ``text`` with control characters as visible escapes (``\n``, ``\x1b``, ``\u202e``).

    Args:
        text: Text from outside (an errmsg, a header, a userid).

    Returns:
        The text on one line, every other character kept.
    """
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Redactor:
    """Masks credential query parameters and any known credential value in text.

    Known values (the corp secret and every access token the client has used) are masked
    wherever they appear, not only after ``access_token=``: some error texts quote them bare.
    Thread-safe.
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset(value for value in secrets if value)

    def add(self, value: str) -> None:
        """Remember another value to mask (a freshly fetched access token).

        Args:
            value: The secret text; empty strings are ignored.
        """
        if value and value not in self._values:
            with self._lock:
                self._values = self._values | {value}

    def __call__(self, text: str) -> str:
        """Return ``text`` with credential parameters and known values masked.

        Args:
            text: Any text: a URL, an exception message, a log line.

        Returns:
            The redacted text.
        """
        text = redact_url_params(text)
        # Longest first, so a value containing another is masked whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"


def redact_url_params(text: str) -> str:
    """Mask ``access_token`` and ``corpsecret`` query parameters in ``text``.

    Args:
        text: Text that may contain URLs.

    Returns:
        The text with those parameter values replaced by ``***``.
    """
    return _SECRET_PARAMS.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}", text)


class _UrlParamFilter(logging.Filter):
    """Rewrites a log record so that credential query parameters are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact_url_params(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = _UrlParamFilter()

# urllib3 logs request URLs, query string included: every request line at DEBUG
# ('"GET /cgi-bin/user/list?access_token=... HTTP/1.1" 200'), retries, redirects and header
# warnings. A filter on a logger applies only to records created by that very logger.
_THIRD_PARTY_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)


def install_log_filters() -> None:
    """Attach the URL-masking filter to third-party loggers that print request URLs (idempotent)."""
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
