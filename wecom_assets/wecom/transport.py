"""The HTTP layer: builds WeCom URLs, performs requests, and redacts everything it reports.

This is the only module that sees URLs with credentials in them, so it is where redaction
happens: exceptions from ``requests`` embed the full URL and are replaced, never chained.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from wecom_assets.wecom.errors import WeComApiError, WeComResponseError
from wecom_assets.wecom.redact import Redactor
from wecom_assets.wecom.stats import StatsRecorder

logger = logging.getLogger(__name__)

Params = Mapping[str, str | int]

# 429 is not in WeCom's docs, but proxies and gateways in front of it answer it.
_RETRYABLE_STATUS = frozenset({429})


class TransientFailure(Exception):
    """A failure worth retrying: HTTP 5xx/429, timeout, connection error, unreadable body.

    The description is already redacted.
    """


def make_session(pool_size: int, base_url: str) -> requests.Session:
    """Return a session whose connection pool holds ``pool_size`` connections per host.

    The proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) and CA bundle
    (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) variables are read once, for ``base_url``:
    with ``trust_env`` requests would re-read them on every request by walking the whole
    environment, about 0.4 ms of CPU per call, a third of the client's work per ``user/list``.

    Args:
        pool_size: Connections kept per host; at least the number of concurrent calls, so
            every worker thread reuses a warm connection.
        base_url: The API root all requests go to.

    Returns:
        A new session.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    # Also keeps credentials from ~/.netrc out of requests to WeCom.
    session.trust_env = False
    # Retries are ours (errcode-aware, with backoff); urllib3 must not retry on its own.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """Performs one HTTP request to a WeCom API path and returns the decoded JSON object."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        timeout: float,
        redactor: Redactor,
        stats: StatsRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._api_root = base_url.rstrip("/") + "/cgi-bin/"
        self._timeout = timeout
        self._redact = redactor
        self._stats = stats
        self._clock = clock

    def send(
        self,
        method: str,
        path: str,
        params: Params,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Perform one request (no retries) and decode the answer.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: API path below ``/cgi-bin/``, such as ``"user/list"``.
            params: Query parameters, credentials included (they are never reported).
            body: JSON body for POST.

        Returns:
            The decoded JSON object (errcode not yet inspected).

        Raises:
            TransientFailure: HTTP 5xx/429, timeout, connection failure, or a body that is not
                complete JSON.
            WeComApiError: Another HTTP error status (wrong base URL, proxy refusing, ...).
            WeComResponseError: The body is JSON but not an object.
        """
        self._stats.record_call(path)
        started = self._clock()
        failure: str | None = None
        try:
            response = self._session.request(
                method,
                self._api_root + path,
                params=dict(params),
                json=body,
                timeout=self._timeout,
            )
            content = response.content
        except requests.RequestException as exc:
            # The exception text holds the URL with its credentials; keep only a redacted copy
            # and raise outside this block so the original is not even the implicit context.
            failure = f"{type(exc).__name__}: {self._redact(str(exc))}"
        elapsed_ms = (self._clock() - started) * 1000
        if failure is not None:
            logger.debug("%s %s failed after %.1f ms: %s", method, path, elapsed_ms, failure)
            raise TransientFailure(failure)
        status = response.status_code
        logger.debug("%s %s -> HTTP %d in %.1f ms", method, path, status, elapsed_ms)
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise TransientFailure(f"HTTP {status}")
        if status >= 400:
            raise WeComApiError(
                f"WeCom {path} answered HTTP {status}; check WECOM_API_BASE_URL "
                f"({self._redact(self._api_root)}) and any proxy in between",
                path=path,
            )
        try:
            payload = json.loads(content)
        except ValueError:
            kind = "truncated JSON" if content[:1] in (b"{", b"[") else "a non-JSON body"
            raise TransientFailure(
                f"{kind} (HTTP {status}, {len(content)} bytes, "
                f"content-type {response.headers.get('Content-Type', 'unknown')})"
            ) from None
        if not isinstance(payload, dict):
            raise WeComResponseError(
                f"WeCom {path} answered JSON {type(payload).__name__}, not an object", path=path
            )
        return payload
