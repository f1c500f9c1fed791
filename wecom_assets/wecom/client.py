"""WeCom contact-API client: the public calls, built on the errcode-aware :class:`Caller`."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from wecom_assets.wecom import directory
from wecom_assets.wecom.caller import Call, Caller
from wecom_assets.wecom.config import DEFAULT_BASE_URL, ClientConfig
from wecom_assets.wecom.errors import WeComResponseError
from wecom_assets.wecom.ip_quota import SharedQuota, quota_file_name
from wecom_assets.wecom.limits import Limit
from wecom_assets.wecom.models import Department, User
from wecom_assets.wecom.ratelimit import RateLimiter
from wecom_assets.wecom.redact import Redactor, install_log_filters, redact_url_params, url_password
from wecom_assets.wecom.retry import Backoff
from wecom_assets.wecom.stats import ClientStats, StatsRecorder
from wecom_assets.wecom.tokens import TokenGrant, TokenProvider
from wecom_assets.wecom.transport import Params, Transport, make_session

__all__ = ["DEFAULT_BASE_URL", "ClientConfig", "WeComClient"]

logger = logging.getLogger(__name__)

# WeCom documents 7200 s; used only if an answer omits expires_in.
DEFAULT_TOKEN_LIFETIME = 7200


class WeComClient:
    """Client of the WeCom contact API.

    Thread-safe: one client serves all threads of a process. It fetches the access token once
    per lifetime (shared with other processes through ``token_cache_dir``), applies the errcode
    policy (retry busy/rate-limit/transient failures with backoff, refresh rejected tokens, fail
    fast on a wrong secret) and keeps each API path under WeCom's minute and hour limits and the
    machine's calls under the per-IP limits (counted with other processes through
    ``token_cache_dir``).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """Create a client.

        Args:
            config: Settings.
            sleep: Sleep function for backoff and rate limiting (injectable for tests).
            clock: Monotonic clock for backoff budgets, rate limiting and timings.
            wall_clock: Epoch clock for token expiry and the per-IP call count (both shared
                across processes).
            rng: Source of backoff jitter.
        """
        self._config = config
        self._redact = Redactor((config.corp_secret, *url_password(config.base_url)))
        install_log_filters()
        # A pool of max_concurrency connections, with the total deadline and no redirects.
        self._session = make_session(config.max_concurrency, config.base_url)
        self._stats = StatsRecorder(clock)
        self._limiter = RateLimiter(
            config.rate_limit_per_minute,
            window=config.rate_limit_window,
            hour_limit=config.rate_limit_per_hour,
            hour_window=config.rate_limit_hour_window,
            shared=_ip_quota(config, wall_clock),
            clock=clock,
            sleep=sleep,
        )
        self._tokens = TokenProvider(
            self._fetch_token,
            corp_id=config.corp_id,
            corp_secret=config.corp_secret,
            cache_dir=config.token_cache_dir,
            refresh_margin=config.token_refresh_margin,
            clock=wall_clock,
        )
        self._caller = Caller(
            Transport(
                self._session,
                config.base_url,
                config.request_timeout,
                config.max_response_bytes,
                self._redact,
                self._stats,
                clock,
            ),
            self._tokens,
            self._limiter,
            self._stats,
            self._redact,
            max_retries=config.max_retries,
            retry_max_seconds=config.retry_max_seconds,
            backoff=Backoff(
                config.retry_base_delay,
                config.retry_max_delay,
                rng if rng is not None else random.Random(),
            ),
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
            secret_variable=config.secret_variable,
        )

    def __repr__(self) -> str:
        base_url = redact_url_params(self._config.base_url)
        return f"WeComClient(corp_id={self._config.corp_id!r}, base_url={base_url!r})"

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
        return self._request(Call("GET", path, params or {}))

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
        return self._request(Call("POST", path, params or {}, body))

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
        payload = self._request(Call("GET", "department/list", params, subject=subject))
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

    def iter_users(self, department_ids: Iterable[int]) -> Iterator[User]:
        """Fetch the members of the given departments (``user/list`` each), merged.

        For callers that listed the departments earlier (another process or step) and convert
        users as they come (into Arrow batches, say): at 100k users the records take about
        180 MB as Python objects. Up to ``max_concurrency`` departments are fetched at once, in
        the background while the caller handles a user; closing the iterator early cancels the
        rest.

        Args:
            department_ids: Departments to list; their order decides the result order.

        Yields:
            Each user once (userid compared case-insensitively unless
            ``userids_case_sensitive``, first-seen case kept), in first-seen order walking the
            departments in the given order.

        Raises:
            WeComPermissionError: A department answered 60011 (the visible range changed since
                the departments were listed), or another permission errcode.
            WeComError: The first failure; outstanding department fetches are cancelled.
        """
        ids = list(department_ids)
        if not ids:
            return
        # Get the token before fanning out, so that a gettoken failure (untrusted IP,
        # wrong secret) surfaces once instead of once per worker thread.
        self._tokens.get()
        yield from directory.iter_users(
            ids,
            self._list_users,
            self._config.max_concurrency,
            userids_case_sensitive=self._config.userids_case_sensitive,
        )

    def close(self) -> None:
        """Release the HTTP connections and the unused part of the per-IP call budget."""
        self._limiter.close()
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
        call = Call(
            "GET",
            "user/list",
            {"department_id": department_id},
            subject=f"department {department_id}",
        )
        payload = self._request(call, cancel)
        return [
            User.from_api(item, department_id=department_id)
            for item in _array(payload, "user/list", "userlist")
        ]

    def _fetch_token(self) -> TokenGrant:
        params = {"corpid": self._config.corp_id, "corpsecret": self._config.corp_secret}
        payload = self._request(Call("GET", "gettoken", params, authenticated=False))
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

    def _request(self, call: Call, cancel: threading.Event | None = None) -> dict[str, Any]:
        self._stats.enter()
        try:
            return self._caller.run(call, cancel)
        finally:
            self._stats.leave()


def _ip_quota(config: ClientConfig, wall_clock: Callable[[], float]) -> SharedQuota:
    """The machine's per-IP budget, counted in the token cache directory when there is one."""
    limits = (
        Limit(config.ip_rate_limit_per_minute, config.rate_limit_window, False, per_ip=True),
        Limit(config.ip_rate_limit_per_hour, config.rate_limit_hour_window, True, per_ip=True),
    )
    path = None
    if config.token_cache_dir is not None:
        path = Path(config.token_cache_dir) / quota_file_name(config.base_url)
    return SharedQuota(limits, path=path, clock=wall_clock)


def _array(payload: Mapping[str, Any], path: str, key: str) -> list[Any]:
    value = payload.get(key)
    if not isinstance(value, list):
        raise WeComResponseError(f"WeCom {path} answered without a {key!r} array", path=path)
    return value
