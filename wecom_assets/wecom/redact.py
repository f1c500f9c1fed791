"""Making text safe to emit: credentials masked, control characters escaped.

WeCom puts both credentials in query strings (``gettoken?corpsecret=...``, ``...?access_token=...``),
and ``WECOM_API_BASE_URL`` may carry a proxy's user and password (``http://user:pass@host``), so
every URL, and every ``requests``/``urllib3`` error or log line that embeds one, would leak them.
Text from the server (errmsg, headers, userids) may hold newlines or terminal escapes that forge
log lines; those are escaped before the text reaches a message or a log.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# Query parameters WeCom reads credentials from; matched in raw and percent-encoded URLs.
_SECRET_PARAMS = re.compile(r"(?i)\b(access_token|corpsecret)(=|%3D)[^&\s'\"<>)\]}]*")
# The user-info of any URL: everything between "scheme://" and the last "@" of the authority.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")
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


def redact_url_params(text: str) -> str:
    """Mask credential query parameters and URL user-info in ``text``.

    Args:
        text: Text that may contain URLs.

    Returns:
        The text with ``access_token``/``corpsecret`` values and any ``user:password@`` of a
        URL replaced by ``***``.
    """
    text = _SECRET_PARAMS.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}", text)
    return _USERINFO.sub(lambda match: f"{match.group(1)}{MASK}@", text)


def url_password(url: str) -> tuple[str, ...]:
    """Return the password of ``url``'s user-info, as written and percent-decoded.

    Only the password: a user name is not a secret, and masking a short one (``u``) wherever
    it appears would garble every message. In URLs the whole user-info is masked anyway.

    Args:
        url: A configured URL such as ``WECOM_API_BASE_URL``.

    Returns:
        The values to mask wherever they appear bare; empty without a password.
    """
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    if not password:
        return ()
    return tuple({password, unquote(password)})


class Redactor:
    """Masks credentials in text and escapes its control characters.

    Masked are credential query parameters, URL user-info, and every known credential value
    (the corp secret, the base URL's user and password, each access token the client has used)
    wherever it appears, not only in a URL: some error texts quote them bare. Thread-safe.
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
        """Return ``text`` with credentials masked and control characters escaped.

        Args:
            text: Any text: a URL, an exception message, a log line, an errmsg.

        Returns:
            The redacted text.
        """
        text = redact_url_params(text)
        # Longest first, so a value containing another is masked whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return escape_controls(text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"


class _UrlParamFilter(logging.Filter):
    """Rewrites a log record so that credential query parameters and user-info are masked."""

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


def shown_url(url: str, *, keep_user: bool = False) -> str:
    """``url`` as it may be shown: no password, no query, no fragment (either may carry one).

    ``keep_user`` keeps the user name, which names a database role and is no secret; a proxy's
    user-info is left out whole.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if keep_user and parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
