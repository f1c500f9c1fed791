"""The HTTP layer: builds WeCom URLs, performs requests, and redacts everything it reports.

This is the only module that sees URLs with credentials in them, so it is where redaction
happens: exceptions from ``requests`` embed the full URL and are replaced, never chained.
Every request is bounded in total time (:mod:`~wecom_assets.wecom.deadline`) and body size
(:mod:`~wecom_assets.wecom.body`), and redirects are never followed: the credentials ride in
the query string, which a redirect would carry to wherever it points.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

from wecom_assets.wecom.body import ACCEPT_ENCODING, decode_json, read_body
from wecom_assets.wecom.deadline import Deadline, DeadlineAdapter, deadline_of
from wecom_assets.wecom.errors import TransientFailure, WeComApiError
from wecom_assets.wecom.redact import Redactor
from wecom_assets.wecom.stats import StatsRecorder

logger = logging.getLogger(__name__)

Params = Mapping[str, str | int]

# 429 is not in WeCom's docs, but proxies and gateways in front of it answer it.
_RETRYABLE_STATUS = frozenset({429})


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
    # Only what body.read_body can decompress within its size bound.
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    # Retries are ours (errcode-aware, with backoff); urllib3 must not retry on its own.
    adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
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
        max_body_bytes: int,
        redactor: Redactor,
        stats: StatsRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a transport.

        Args:
            session: A session from :func:`make_session`.
            base_url: The API root.
            timeout: Longest time one request may take in all, body included.
            max_body_bytes: Largest body accepted, compressed and decompressed alike.
            redactor: Masks credentials in everything reported.
            stats: Counts requests.
            clock: Clock of the logged timings.
        """
        self._session = session
        self._api_root = base_url.rstrip("/") + "/cgi-bin/"
        self._timeout = timeout
        self._max_body_bytes = max_body_bytes
        self._redact = redactor
        self._stats = stats
        self._clock = clock
        self._prepared_root: str | None = None
        self._headers = {name: str(value) for name, value in session.headers.items()}

    def send(
        self,
        method: str,
        path: str,
        params: Params,
        body: Mapping[str, Any] | None = None,
        *,
        time_limit: float | None = None,
    ) -> dict[str, Any]:
        """Perform one request (no retries) and decode the answer.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: API path below ``/cgi-bin/``, such as ``"user/list"``.
            params: Query parameters, credentials included (they are never reported).
            body: JSON body for POST.
            time_limit: Time left for this request if shorter than the timeout (what is
                left of the call's retry budget).

        Returns:
            The decoded JSON object (errcode not yet inspected).

        Raises:
            TransientFailure: HTTP 5xx/429, timeout or deadline, connection failure, or a body
                that is not complete JSON.
            WeComApiError: Another HTTP error status (wrong base URL, proxy refusing, ...) or
                a redirect.
            WeComResponseError: The body is too large, not UTF-8, or JSON but not an object.
        """
        seconds = self._timeout if time_limit is None else min(self._timeout, time_limit)
        if seconds <= 0:
            raise TransientFailure("no time left for another request")
        self._stats.record_call(path)
        started = self._clock()
        with deadline_of(seconds) as deadline:
            response = self._open(method, path, params, body, deadline)
            try:
                self._check_status(path, response)
                content = read_body(response.raw, path, self._max_body_bytes, deadline)
            except BaseException:
                # Drops the connection rather than returning a half-read one to the pool.
                response.close()
                raise
        logger.debug(
            "%s %s -> HTTP %d, %d bytes in %.1f ms",
            method,
            path,
            response.status_code,
            len(content),
            (self._clock() - started) * 1000,
        )
        return decode_json(content, path, response.headers.get("Content-Type", ""))

    def _open(
        self,
        method: str,
        path: str,
        params: Params,
        body: Mapping[str, Any] | None,
        deadline: Deadline,
    ) -> requests.Response:
        """Send the request and wait for the status and headers, not the body."""
        failure: str | None = None
        try:
            request = self._prepare(method, path, params, body)
            # The adapter, not Session.send: no redirect is followed, and the session's cookie
            # jar and hooks (empty) would cost a third of the request's bookkeeping.
            response = self._session.get_adapter(request.url or "").send(
                request,
                stream=True,
                timeout=deadline.seconds,
                verify=True if self._session.verify is None else self._session.verify,
                cert=self._session.cert,
                proxies=self._session.proxies,
            )
        except requests.RequestException as exc:
            # The exception text holds the URL with its credentials; keep only a redacted copy
            # and raise outside this block so the original is not even the implicit context.
            failure = f"{type(exc).__name__}: {self._redact(str(exc))}"
        if failure is not None:
            if deadline.expired:
                failure = f"no complete answer within {deadline.seconds:.3g} s"
            logger.debug("%s %s failed: %s", method, path, failure)
            raise TransientFailure(failure)
        return response

    def _prepare(
        self, method: str, path: str, params: Params, body: Mapping[str, Any] | None
    ) -> requests.PreparedRequest:
        """The request as ``Session.request`` would prepare it, in a fifth of the time.

        The session holds no cookies, auth or hooks and ignores the environment, so the merging
        ``Session.request`` does per call changes nothing; only the query and the body differ
        between calls, and the root URL is validated and normalised once.
        """
        root = self._prepared_root
        if root is None:
            prepared = requests.PreparedRequest()
            prepared.prepare_url(self._api_root, None)
            root = self._prepared_root = str(prepared.url)
        request = requests.PreparedRequest()
        request.method = method
        query = urlencode(params)
        request.url = f"{root}{path}?{query}" if query else root + path
        request.headers = CaseInsensitiveDict(self._headers)
        request.prepare_body(None, None, json=body)
        return request

    def _check_status(self, path: str, response: requests.Response) -> None:
        """Raise for any status but 2xx: retry 5xx/429, never follow a redirect."""
        status = response.status_code
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise TransientFailure(f"HTTP {status}")
        if 300 <= status < 400:
            target = self._redirect_target(response)
            raise WeComApiError(
                f"WeCom {path} answered HTTP {status}, a redirect to {target}. Redirects are "
                "not followed, since they would carry the credentials in the query string "
                "along; set WECOM_API_BASE_URL to the address that answers directly "
                f"(now {self._redact(self._api_root)})",
                path=path,
            )
        if status >= 400:
            raise WeComApiError(
                f"WeCom {path} answered HTTP {status}; check WECOM_API_BASE_URL "
                f"({self._redact(self._api_root)}) and any proxy in between",
                path=path,
            )

    def _redirect_target(self, response: requests.Response) -> str:
        """The redirect's target without query, fragment or user-info, safe to print."""
        location = response.headers.get("Location")
        if not location:
            return "nowhere (no Location header)"
        try:
            parts = urlsplit(urljoin(self._api_root, location))
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "an unparsable Location"
        target = urlunsplit((parts.scheme, host + port, parts.path, "", ""))
        return self._redact(target[:200])
