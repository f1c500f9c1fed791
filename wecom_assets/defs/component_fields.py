"""The nested settings of a ``WeComSync`` defs.yaml: corps, API, warehouse, schedule, alerts.

Fields that are also a resource's take its default and description (:func:`same_as`) and are held
to its bounds (:class:`ResourceFields`), so the component and the resource never disagree.
"""

from __future__ import annotations

import re
from copy import copy
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wecom_assets.defs.alerts import WeComRobotResource
from wecom_assets.defs.layout import NIGHTLY_CRON, TIMEZONE
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.settings import ALERT_WEBHOOK_KEY_ENV, PII_SALT_ENV
from wecom_assets.wecom.corps import Corp

# Upper case, as environment variables are named by convention: a pasted secret is not.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def same_as(resource: type[BaseModel], name: str) -> Any:
    """The resource field's default and description, so both say the same thing.

    Its bounds are checked by :class:`ResourceFields`: ``dg.Resolvable`` accepts only plain
    annotations in nested models, and bounds are annotations.
    """
    source = resource.model_fields[name]
    return Field(default=copy(source.default), description=source.description)


class ResourceFields(dg.Model):
    """Settings that are a resource's fields: each value is held to that field's bounds."""

    _resource: ClassVar[type[BaseModel]]

    @field_validator("*")
    @classmethod
    def _within_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls._resource.model_fields.get(info.field_name or "")
        if field is None or not field.metadata:
            return value
        try:
            return TypeAdapter(field.rebuild_annotation()).validate_python(value)
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"]) from None


def env_name(value: str, what: str) -> str:
    """``value`` as an environment variable's name; a value that looks like a secret is refused.

    Raises:
        ValueError: ``value`` is not an upper-case variable name; the message names ``what``.
    """
    name = value.strip()
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"{what} must be the name of an environment variable (such as WECOM_SECRET_ACME), "
            "not a value: put the secret in that variable and name it here"
        )
    return name


class CorpEntry(dg.Model):
    """One corp, as in the corps file; its id is the partition key."""

    corp_id: str = Field(description="Corp id (企业ID, `ww...`); the partition key.")
    secret_env: str = Field(
        description="Name of the env var that holds this corp's app secret; never the secret."
    )
    name: str = Field(default="", description="Label shown in the UI; the corp id when empty.")
    base_url: str = Field(
        default="", description="API root for this corp; empty means the `api.base_url`."
    )
    userids_case_sensitive: bool = Field(
        default=False,
        description=(
            "Service-provider apps (代开发) receive encrypted userids that are case-sensitive; "
            "self-built apps' userids are not (the default)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"secret", "corp_secret"} & data.keys():
            raise ValueError(
                "a secret is written in defs.yaml; put it in an environment variable and name "
                "that variable with secret_env"
            )
        return data

    @field_validator("corp_id")
    @classmethod
    def _corp_id_is_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("corp_id is empty")
        return value.strip()

    @field_validator("secret_env")
    @classmethod
    def _secret_env_is_a_name(cls, value: str) -> str:
        return env_name(value, "secret_env")

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    def corp(self) -> Corp:
        """The plain corp the client and the assets use."""
        return Corp(
            corp_id=self.corp_id,
            secret_env=self.secret_env,
            name=self.name,
            base_url=self.base_url,
            userids_case_sensitive=self.userids_case_sensitive,
        )


class ApiSettings(ResourceFields):
    """The WeCom API resource: where the API is, the token cache, and the client's tuning."""

    _resource = WeComResource

    base_url: str = same_as(WeComResource, "base_url")
    token_cache_dir: str = same_as(WeComResource, "token_cache_dir")
    max_concurrency: int = same_as(WeComResource, "max_concurrency")
    request_timeout_seconds: float = same_as(WeComResource, "request_timeout_seconds")
    max_retries: int = same_as(WeComResource, "max_retries")
    retry_max_seconds: float = same_as(WeComResource, "retry_max_seconds")
    rate_limit_per_minute: int = same_as(WeComResource, "rate_limit_per_minute")
    rate_limit_window_seconds: float = same_as(WeComResource, "rate_limit_window_seconds")
    rate_limit_per_hour: int = same_as(WeComResource, "rate_limit_per_hour")
    ip_rate_limit_per_minute: int = same_as(WeComResource, "ip_rate_limit_per_minute")
    ip_rate_limit_per_hour: int = same_as(WeComResource, "ip_rate_limit_per_hour")
    max_response_bytes: int = same_as(WeComResource, "max_response_bytes")


class WarehouseSettings(ResourceFields):
    """Where the tables are published (DuckDB file or PostgreSQL), and what about people."""

    _resource = WarehouseResource

    path: str = Field(
        default="",
        description=(
            "Path of the DuckDB file. Empty means $WECOM_DUCKDB_PATH, else data/wecom.duckdb. "
            "A relative path starts at the project root (the folder of pyproject.toml); the "
            "parent directory is created."
        ),
    )
    url: str = Field(
        default="",
        description=(
            "postgresql://user@host:port/dbname puts the tables in PostgreSQL; empty means "
            "$WECOM_WAREHOUSE_URL, else the DuckDB file. No password here: defs.yaml is not a "
            "secret; put it in PGPASSWORD, or the whole URL in $WECOM_WAREHOUSE_URL."
        ),
    )
    schema_name: str = same_as(WarehouseResource, "schema_name")

    def warehouse_url(self) -> str:
        """``url`` without surrounding blanks.

        Checked here rather than by a validator, whose error would quote the value.

        Raises:
            ValueError: the URL holds a password (defs.yaml is not a secret).
        """
        url = self.url.strip()
        if urlsplit(url).password:
            raise ValueError(
                "warehouse url must not hold a password (defs.yaml is not a secret): put it in "
                "PGPASSWORD, or the whole URL in WECOM_WAREHOUSE_URL and leave url empty"
            )
        return url

    lock_timeout_seconds: float = same_as(WarehouseResource, "lock_timeout_seconds")
    pii_policy: dict[str, str] = same_as(WarehouseResource, "pii_policy")
    pii_salt_env: str = Field(
        default=PII_SALT_ENV,
        description="Name of the env var holding the salt of hashed fields; never the salt.",
    )

    @field_validator("pii_salt_env")
    @classmethod
    def _salt_env_is_a_name(cls, value: str) -> str:
        return env_name(value, "pii_salt_env")


class ScheduleSettings(dg.Model):
    """When the nightly sync runs (one run per corp when corps are listed)."""

    cron: str = Field(default=NIGHTLY_CRON, description="Cron string of the nightly sync.")
    timezone: str = Field(
        default=TIMEZONE,
        description="IANA timezone the cron is read in; alert messages show times in it too.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Asia/Shanghai"
            ) from None
        return value


class AlertSettings(ResourceFields):
    """The WeCom group robot (群机器人) that posts failed syncs and failing checks."""

    _resource = WeComRobotResource

    webhook_key_env: str = Field(
        default=ALERT_WEBHOOK_KEY_ENV,
        description="Name of the env var holding the robot's key; alerts are off while it is unset.",
    )
    ui_base_url: str = same_as(WeComRobotResource, "ui_base_url")
    attempts: int = same_as(WeComRobotResource, "attempts")
    timeout_seconds: float = same_as(WeComRobotResource, "timeout_seconds")

    @field_validator("webhook_key_env")
    @classmethod
    def _key_env_is_a_name(cls, value: str) -> str:
        return env_name(value, "webhook_key_env")
