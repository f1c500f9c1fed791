"""Plain-Python client of the WeCom (企业微信) contact API; no Dagster import."""

from wecom_assets.wecom.client import ClientConfig, WeComClient
from wecom_assets.wecom.errors import (
    WeComApiError,
    WeComAuthError,
    WeComBlockedError,
    WeComConfigError,
    WeComError,
    WeComPermissionError,
    WeComResponseError,
    WeComTransientError,
)
from wecom_assets.wecom.models import Department, User
from wecom_assets.wecom.stats import ClientStats

__all__ = [
    "ClientConfig",
    "ClientStats",
    "Department",
    "User",
    "WeComApiError",
    "WeComAuthError",
    "WeComBlockedError",
    "WeComClient",
    "WeComConfigError",
    "WeComError",
    "WeComPermissionError",
    "WeComResponseError",
    "WeComTransientError",
]
