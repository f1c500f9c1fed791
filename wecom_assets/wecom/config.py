"""Settings of the WeCom client, validated on creation so a bad value fails before any call."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from wecom_assets.wecom.errors import WeComConfigError
from wecom_assets.wecom.limits import (
    HOUR,
    MINUTE,
    PER_API_PER_HOUR,
    PER_API_PER_MINUTE,
    PER_IP_PER_HOUR,
    PER_IP_PER_MINUTE,
)
from wecom_assets.wecom.redact import redact_url_params

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
DEFAULT_SECRET_VARIABLE = "WECOM_CORP_SECRET"
# A user/list answer of 1,000 members is about 2 MB; 64 MiB leaves room for any real org.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """Settings of a :class:`~wecom_assets.wecom.client.WeComClient`.

    Attributes:
        corp_id: Corp id (``ww...``), from ``WECOM_CORP_ID``.
        corp_secret: Secret of the app whose visible range is synced, from
            ``WECOM_CORP_SECRET``. Never shown in ``repr``.
        base_url: API root (``WECOM_API_BASE_URL``): private deployments, proxies, the sandbox.
            A ``user:password@`` in it is sent as basic auth and masked in ``repr``, logs and
            errors.
        token_cache_dir: Directory of the cross-process token cache, and of the count of the
            machine's calls against WeCom's per-IP limits; None keeps both in memory only, for
            this process.
        max_concurrency: ``user/list`` calls in flight during a directory fetch. The fetch is
            latency-bound below about 24 at 20 ms round trips and CPU-bound above.
        request_timeout: Longest time one HTTP request may take in all (connect, wait, body),
            in seconds.
        max_retries: Extra attempts per call after transient failures.
        retry_max_seconds: Longest time one call may take in all, every attempt and wait
            included, in seconds.
        rate_limit_per_minute: Calls per API path in any rate-limit window (WeCom: 10,000
            per corp and API a minute).
        token_refresh_margin: Seconds before expiry at which a token is refreshed.
        retry_base_delay: First backoff ceiling in seconds; doubles per retry (full jitter).
        retry_max_delay: Largest backoff between two attempts, in seconds.
        rate_limit_window: Length of the rate-limit window in seconds; WeCom counts per minute
            (60), a simulator may use a shorter one.
        max_response_bytes: Largest answer accepted, compressed and decompressed alike.
        rate_limit_per_hour: Calls per API path in any hour window (WeCom: 150,000 per corp
            and API). Beyond it WeCom blocks the API for an hour, so a call that would wait
            longer than its budget for it fails at once, saying when a run can call again.
        rate_limit_hour_window: Length of the hour window in seconds (3600).
        ip_rate_limit_per_minute: Calls of every corp and run on this machine together in any
            rate-limit window (WeCom: 20,000 per IP a minute); shared through
            ``token_cache_dir`` by the machine's processes.
        ip_rate_limit_per_hour: The same in any hour window (WeCom: 600,000 per IP an hour).
        userids_case_sensitive: Merge users by their exact userid: service-provider apps
            (代开发) receive encrypted userids, which are case-sensitive. Self-built apps'
            userids are not, the default.
        secret_variable: The environment variable ``corp_secret`` came from, which errors
            about a rejected secret tell the user to check.
    """

    corp_id: str
    corp_secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    token_cache_dir: Path | None = None
    max_concurrency: int = 24
    request_timeout: float = 10.0
    max_retries: int = 5
    retry_max_seconds: float = 60.0
    rate_limit_per_minute: int = PER_API_PER_MINUTE
    token_refresh_margin: float = 300.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 10.0
    rate_limit_window: float = MINUTE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    rate_limit_per_hour: int = PER_API_PER_HOUR
    rate_limit_hour_window: float = HOUR
    ip_rate_limit_per_minute: int = PER_IP_PER_MINUTE
    ip_rate_limit_per_hour: int = PER_IP_PER_HOUR
    userids_case_sensitive: bool = False
    secret_variable: str = DEFAULT_SECRET_VARIABLE

    def __repr__(self) -> str:
        # The generated repr would show the base URL's user-info (a proxy password).
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        values["base_url"] = redact_url_params(self.base_url)
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        return f"ClientConfig({shown})"

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
            "rate_limit_per_hour": self.rate_limit_per_hour,
            "rate_limit_hour_window": self.rate_limit_hour_window,
            "ip_rate_limit_per_minute": self.ip_rate_limit_per_minute,
            "ip_rate_limit_per_hour": self.ip_rate_limit_per_hour,
            "retry_max_seconds": self.retry_max_seconds,
            "max_response_bytes": self.max_response_bytes,
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
