"""WeCom contact-API client: configuration, errcode-aware retries, and the public calls."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from wecom_assets.wecom import directory
from wecom_assets.wecom.errcodes import (
    RATE_LIMITED,
    TOKEN_REJECTED,
    TRANSIENT,
    errcode_of,
    error_for,
)
from wecom_assets.wecom.errors import (
    WeComApiError,
    WeComConfigError,
    WeComResponseError,
    WeComTransientError,
)
from wecom_assets.wecom.models import Department, Directory, User
from wecom_assets.wecom.ratelimit import RateLimiter
from wecom_assets.wecom.redact import Redactor, install_log_filters
from wecom_assets.wecom.stats import ClientStats, StatsRecorder
from wecom_assets.wecom.tokens import TokenGrant, TokenProvider
from wecom_assets.wecom.transport import Params, TransientFailure, Transport, make_session

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
# WeCom documents 7200 s; used only if an answer omits expires_in.
DEFAULT_TOKEN_LIFETIME = 7200
# A fresh token rejected this many times in one call means something other than expiry
# (clock skew, a proxy rewriting the query); more refreshes would only hammer gettoken.
MAX_TOKEN_REFRESHES_PER_CALL = 3
# Rate-limit answers (45009/45033) block the API for the rest of WeCom's window: wait longer.
_RATE_LIMIT_BACKOFF_FACTOR = 4.0


@dataclass(frozen=True)
class ClientConfig:
    """Settings of a :class:`WeComClient`.

    Attributes:
        corp_id: Corp id (``ww...``), from ``WECOM_CORP_ID``.
        corp_secret: Secret of the app whose visible range is synced, from
            ``WECOM_CORP_SECRET``. Never shown in ``repr``.
        base_url: API root (``WECOM_API_BASE_URL``): private deployments, proxies, the sandbox.
        token_cache_dir: Directory of the cross-process token cache; None keeps tokens in
            memory only.
        max_concurrency: ``user/list`` calls in flight during a directory fetch. The fetch is
            latency-bound below about 24 at 20 ms round trips and CPU-bound above.
        request_timeout: Connect and read timeout of each HTTP request, in seconds.
        max_retries: Extra attempts per call after transient failures.
        retry_max_seconds: Time budget of one call's retries, in seconds.
        rate_limit_per_minute: Calls per API path in any rate-limit window.
        token_refresh_margin: Seconds before expiry at which a token is refreshed.
        retry_base_delay: First backoff ceiling in seconds; doubles per retry (full jitter).
        retry_max_delay: Largest backoff between two attempts, in seconds.
        rate_limit_window: Length of the rate-limit window in seconds; WeCom counts per minute
            (60), a simulator may use a shorter one.
    """

    corp_id: str
    corp_secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    token_cache_dir: Path | None = None
    max_concurrency: int = 24
    request_timeout: float = 10.0
    max_retries: int = 5
    retry_max_seconds: float = 60.0
    rate_limit_per_minute: int = 10_000
    token_refresh_margin: float = 300.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 10.0
    rate_limit_window: float = 60.0

    def __post_init__(self) -> None:
        if not self.corp_id or not self.corp_id.strip():
            raise WeComConfigError("WECOM_CORP_ID is not set: give the corp id (ww...)")
        if not self.corp_secret or not self.corp_secret.strip():
            raise WeComConfigError(
                "WECOM_CORP_SECRET is not set: give the secret of the app whose visible range "
                "is synced"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise WeComConfigError(
                "WECOM_API_BASE_URL must start with http:// or https:// "
                f"(default {DEFAULT_BASE_URL})"
            )
        positive = {
            "max_concurrency": self.max_concurrency,
            "request_timeout": self.request_timeout,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "rate_limit_window": self.rate_limit_window,
            "retry_max_seconds": self.retry_max_seconds,
        }
        for name, value in positive.items():
            if value <= 0:
                raise WeComConfigError(f"{name} must be positive, got {value}")
        non_negative = {
            "max_retries": self.max_retries,
            "token_refresh_margin": self.token_refresh_margin,
            "retry_base_delay": self.retry_base_delay,
            "retry_max_delay": self.retry_max_delay,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise WeComConfigError(f"{name} must not be negative, got {value}")


class WeComClient:
    """Client of the WeCom contact API.

    Thread-safe: one client serves all threads of a process. It fetches the access token once
    per lifetime (shared with other processes through ``token_cache_dir``), applies the errcode
    policy (retry busy/rate-limit/transient failures with backoff, refresh rejected tokens, fail
    fast on a wrong secret) and keeps each API path under its rate limit.
    """

    def __init__(
        self,
        config: ClientConfig,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """Create a client.

        Args:
            config: Settings.
            session: HTTP session to use (the caller keeps ownership); by default the client
                creates one with a connection pool of ``max_concurrency`` connections.
            sleep: Sleep function for backoff and rate limiting (injectable for tests).
            clock: Monotonic clock for backoff budgets, rate limiting and timings.
            wall_clock: Epoch clock for token expiry (shared across processes).
            rng: Source of backoff jitter.
        """
        self._config = config
        self._sleep = sleep
        self._clock = clock
        self._random = rng if rng is not None else random.Random()
        self._redact = Redactor((config.corp_secret,))
        install_log_filters()
        self._owns_session = session is None
        self._session = (
            session
            if session is not None
            else make_session(config.max_concurrency, config.base_url)
        )
        self._stats = StatsRecorder(clock)
        self._transport = Transport(
            self._session, config.base_url, config.request_timeout, self._redact, self._stats, clock
        )
        self._limiter = RateLimiter(
            config.rate_limit_per_minute, window=config.rate_limit_window, clock=clock, sleep=sleep
        )
        self._tokens = TokenProvider(
            self._fetch_token,
            corp_id=config.corp_id,
            corp_secret=config.corp_secret,
            cache_dir=config.token_cache_dir,
            refresh_margin=config.token_refresh_margin,
            clock=wall_clock,
        )

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self._config.corp_id!r}, base_url={self._config.base_url!r})"

    @property
    def config(self) -> ClientConfig:
        """The client's settings."""
        return self._config

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the calls, retries and errcodes so far."""
        return self._stats.snapshot()

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """Call a GET endpoint with the errcode policy applied.

        Args:
            path: API path below ``/cgi-bin/``, such as ``"department/list"``.
            params: Query parameters; the access token is added.

        Returns:
            The decoded answer (errcode 0 or absent).

        Raises:
            WeComAuthError: The corp id or secret was rejected.
            WeComPermissionError: The app may not make this call (48002, 48009, 60011, 60020).
            WeComTransientError: Retries ran out on busy/rate-limit/HTTP/timeout failures.
            WeComApiError: Any other errcode, or an HTTP status retrying cannot fix.
            WeComResponseError: The answer is not a JSON object.
        """
        return self._request("GET", path, params, None)

    def post(
        self, path: str, body: Mapping[str, Any], params: Params | None = None
    ) -> dict[str, Any]:
        """Call a POST endpoint with the errcode policy applied.

        The contact API's POST reads (``user/list_id``) are safe to repeat, so transient
        failures are retried as for GET.

        Args:
            path: API path below ``/cgi-bin/``, such as ``"user/list_id"``.
            body: JSON body.
            params: Extra query parameters; the access token is added.

        Returns:
            The decoded answer (errcode 0 or absent).

        Raises:
            WeComError: As for :meth:`get`.
        """
        return self._request("POST", path, params, body)

    def list_departments(self, root_id: int | None = None) -> list[Department]:
        """List visible departments (``department/list``): ``root_id`` and everything below it.

        Args:
            root_id: Top of the subtree; None lists the whole visible org.

        Returns:
            Departments in API order.

        Raises:
            WeComResponseError: The answer has no ``department`` array or a bad entry.
            WeComError: As for :meth:`get`.
        """
        params: dict[str, str | int] = {} if root_id is None else {"id": root_id}
        subject = "" if root_id is None else f"department {root_id}"
        payload = self._request("GET", "department/list", params, None, subject=subject)
        return [
            Department.from_api(item) for item in _array(payload, "department/list", "department")
        ]

    def list_users(self, department_id: int) -> list[User]:
        """List the direct members of one department (``user/list``).

        Args:
            department_id: The department.

        Returns:
            Members in API order.

        Raises:
            WeComPermissionError: The department is outside the app's visible range (60011).
            WeComResponseError: The answer has no ``userlist`` array or a bad entry.
            WeComError: As for :meth:`get`.
        """
        return self._list_users(department_id, None)

    def fetch_directory(self) -> Directory:
        """Fetch the whole visible org: ``department/list`` once, ``user/list`` per department.

        Runs up to ``max_concurrency`` ``user/list`` calls at once and merges users found in
        several departments (userid compared case-insensitively, first-seen case kept).

        Returns:
            Departments in API order and each visible user once.

        Raises:
            WeComPermissionError: A department answered 60011 (visible range changed mid-run),
                or another permission errcode.
            WeComError: The first failure; outstanding department fetches are cancelled.
        """
        self._stats.enter()
        try:
            departments = self.list_departments()
            return directory.fetch_directory(
                departments, self._list_users, self._config.max_concurrency
            )
        finally:
            self._stats.leave()

    def fetch_users(self, department_ids: Iterable[int]) -> tuple[User, ...]:
        """Fetch the members of the given departments (``user/list`` each), merged.

        For callers that listed the departments earlier (another process or step).

        Args:
            department_ids: Departments to list; their order decides the result order.

        Returns:
            Each user once (userid compared case-insensitively, first-seen case kept), in
            first-seen order walking the departments in the given order.

        Raises:
            WeComPermissionError: A department answered 60011 (the visible range changed since
                the departments were listed), or another permission errcode.
            WeComError: The first failure; outstanding department fetches are cancelled.
        """
        self._stats.enter()
        try:
            return tuple(self.iter_users(department_ids))
        finally:
            self._stats.leave()

    def iter_users(self, department_ids: Iterable[int]) -> Iterator[User]:
        """Like :meth:`fetch_users`, but yield each user as soon as its department is merged.

        For callers that convert users as they come (into Arrow batches, say): at 100k users
        the records take about 180 MB as Python objects. Fetching goes on in the background
        while the caller handles a user; closing the iterator early cancels the rest.

        Args:
            department_ids: As for :meth:`fetch_users`.

        Yields:
            Each user once, in the order :meth:`fetch_users` returns them.

        Raises:
            WeComPermissionError: As for :meth:`fetch_users`.
            WeComError: As for :meth:`fetch_users`.
        """
        ids = list(department_ids)
        if not ids:
            return
        # Get the token before fanning out, so that a gettoken failure (untrusted IP,
        # wrong secret) surfaces once instead of once per worker thread.
        self._tokens.get()
        yield from directory.iter_users(ids, self._list_users, self._config.max_concurrency)

    def close(self) -> None:
        """Release the HTTP connections (only of a session the client created)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _list_users(self, department_id: int, cancel: threading.Event | None) -> list[User]:
        payload = self._request(
            "GET",
            "user/list",
            {"department_id": department_id},
            None,
            subject=f"department {department_id}",
            cancel=cancel,
        )
        return [User.from_api(item) for item in _array(payload, "user/list", "userlist")]

    def _fetch_token(self) -> TokenGrant:
        payload = self._request(
            "GET",
            "gettoken",
            {"corpid": self._config.corp_id, "corpsecret": self._config.corp_secret},
            None,
            authenticated=False,
        )
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComResponseError(
                "WeCom gettoken answered without access_token", path="gettoken"
            )
        self._redact.add(token)
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            expires_in = DEFAULT_TOKEN_LIFETIME
        return TokenGrant(token, float(expires_in))

    def _request(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Mapping[str, Any] | None,
        *,
        subject: str = "",
        cancel: threading.Event | None = None,
        authenticated: bool = True,
    ) -> dict[str, Any]:
        self._stats.enter()
        try:
            return self._attempt(method, path, params, body, subject, cancel, authenticated)
        finally:
            self._stats.leave()

    def _attempt(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Mapping[str, Any] | None,
        subject: str,
        cancel: threading.Event | None,
        authenticated: bool,
    ) -> dict[str, Any]:
        config = self._config
        deadline = self._clock() + config.retry_max_seconds
        retries = 0
        refreshes = 0
        about = f" for {subject}" if subject else ""
        while True:
            if cancel is not None and cancel.is_set():
                raise directory.FetchCancelled(path)
            query: dict[str, str | int] = dict(params or {})
            token: str | None = None
            if authenticated:
                token = self._tokens.get()
                # Tokens read from the file cache were fetched by another process.
                self._redact.add(token)
                query["access_token"] = token
            self._limiter.acquire(path)
            errcode: int | None = None
            errmsg: str | None = None
            try:
                payload = self._transport.send(method, path, query, body)
            except TransientFailure as failure:
                last_error = str(failure)
            else:
                errcode = errcode_of(path, payload)
                if errcode == 0:
                    return payload
                self._stats.record_errcode(errcode)
                errmsg = self._redact(str(payload.get("errmsg", "")))
                if token is not None and errcode in TOKEN_REJECTED:
                    # Drop exactly the token that failed: another thread or process may
                    # already have cached a newer one, which must survive.
                    self._tokens.invalidate(token)
                    refreshes += 1
                    if refreshes > MAX_TOKEN_REFRESHES_PER_CALL:
                        raise WeComApiError(
                            f"WeCom {path}{about} rejected {refreshes} access tokens in a row "
                            f"(last errcode {errcode}: {errmsg}); check the host clock and that "
                            "no proxy rewrites the query string",
                            path=path,
                            errcode=errcode,
                            errmsg=errmsg,
                        )
                    self._stats.record_retry()
                    logger.warning(
                        "WeCom %s%s: access token rejected (errcode %d); fetching a new one",
                        path,
                        about,
                        errcode,
                    )
                    continue
                if errcode not in TRANSIENT:
                    raise error_for(path, errcode, errmsg, subject)
                if errcode in RATE_LIMITED:
                    self._limiter.slow_down(path)
                last_error = f"errcode {errcode}: {errmsg}"
            remaining = deadline - self._clock()
            if retries >= config.max_retries or remaining <= 0:
                raise WeComTransientError(
                    f"WeCom {path}{about} failed after {retries + 1} attempts "
                    f"({config.max_retries} retries, {config.retry_max_seconds:g} s budget); "
                    f"last error: {last_error}",
                    path=path,
                    errcode=errcode,
                    errmsg=errmsg,
                )
            delay = min(self._backoff(retries, errcode in RATE_LIMITED), remaining)
            retries += 1
            self._stats.record_retry()
            logger.warning(
                "WeCom %s%s: %s; retry %d/%d in %.2f s",
                path,
                about,
                last_error,
                retries,
                config.max_retries,
                delay,
            )
            self._sleep(delay)

    def _backoff(self, retry: int, rate_limited: bool) -> float:
        """Exponential backoff with full jitter; longer (and never near zero) for rate limits."""
        factor = _RATE_LIMIT_BACKOFF_FACTOR if rate_limited else 1.0
        ceiling = min(
            self._config.retry_max_delay * factor,
            self._config.retry_base_delay * factor * 2**retry,
        )
        floor = ceiling / 2 if rate_limited else 0.0
        return self._random.uniform(floor, ceiling)


def _array(payload: Mapping[str, Any], path: str, key: str) -> list[Any]:
    value = payload.get(key)
    if not isinstance(value, list):
        raise WeComResponseError(f"WeCom {path} answered without a {key!r} array", path=path)
    return value
