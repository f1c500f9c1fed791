"""``wecom_assets.WeComSync``: the WeCom org chart as a Dagster component for any project.

``dg scaffold defs wecom_assets.WeComSync wecom`` writes a ``defs.yaml``; its attributes are the
fields below. Every secret is named by its environment variable, never written in the file. The
component with no attributes is exactly this repository's code location
(:mod:`wecom_assets.definitions`): one corp from ``WECOM_CORP_ID``/``WECOM_CORP_SECRET``, or the
corps of ``$WECOM_CORPS_FILE``, and every other setting from its ``WECOM_*`` variable.
"""

from __future__ import annotations

import re
import textwrap
from copy import copy
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from wecom_assets.defs.alerts import WeComRobotResource
from wecom_assets.defs.definitions import (
    CORP_ID_ENV,
    CORP_SECRET_ENV,
    ResourceSettings,
    SecretEnv,
    build_defs,
)
from wecom_assets.defs.layout import NIGHTLY_CRON, PREFIX_PART, TIMEZONE, Layout
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.settings import (
    ALERT_WEBHOOK_KEY_ENV,
    CORPS_FILE_ENV,
    GROUP,
    PII_SALT_ENV,
    configured_corps,
)
from wecom_assets.wecom.corps import Corp, load_corps

# Upper case, as environment variables are named by convention: a pasted secret is not.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def _same_as(resource: type[BaseModel], name: str) -> Any:
    """The resource field's default and description, so both say the same thing.

    Its bounds are checked by :class:`_ResourceFields`: ``dg.Resolvable`` accepts only plain
    annotations in nested models, and bounds are annotations.
    """
    source = resource.model_fields[name]
    return Field(default=copy(source.default), description=source.description)


class _ResourceFields(dg.Model):
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


def _described(text: str | None) -> dg.Resolver:
    return dg.Resolver.default(description=text)


def _env_name(value: str, what: str) -> str:
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
        return _env_name(value, "secret_env")

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


class ApiSettings(_ResourceFields):
    """The WeCom API resource: where the API is, the token cache, and the client's tuning."""

    _resource = WeComResource

    base_url: str = _same_as(WeComResource, "base_url")
    token_cache_dir: str = _same_as(WeComResource, "token_cache_dir")
    max_concurrency: int = _same_as(WeComResource, "max_concurrency")
    request_timeout_seconds: float = _same_as(WeComResource, "request_timeout_seconds")
    max_retries: int = _same_as(WeComResource, "max_retries")
    retry_max_seconds: float = _same_as(WeComResource, "retry_max_seconds")
    rate_limit_per_minute: int = _same_as(WeComResource, "rate_limit_per_minute")
    rate_limit_window_seconds: float = _same_as(WeComResource, "rate_limit_window_seconds")


class WarehouseSettings(_ResourceFields):
    """The DuckDB file the tables are published to, and what may be written about people."""

    _resource = WarehouseResource

    path: str = Field(
        default="",
        description=(
            "Path of the DuckDB file. Empty means $WECOM_DUCKDB_PATH, else data/wecom.duckdb. "
            "A relative path starts at the project root (the folder of pyproject.toml); the "
            "parent directory is created."
        ),
    )
    lock_timeout_seconds: float = _same_as(WarehouseResource, "lock_timeout_seconds")
    pii_policy: dict[str, str] = _same_as(WarehouseResource, "pii_policy")
    pii_salt_env: str = Field(
        default=PII_SALT_ENV,
        description="Name of the env var holding the salt of hashed fields; never the salt.",
    )

    @field_validator("pii_salt_env")
    @classmethod
    def _salt_env_is_a_name(cls, value: str) -> str:
        return _env_name(value, "pii_salt_env")


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


class AlertSettings(_ResourceFields):
    """The WeCom group robot (群机器人) that posts failed syncs and failing checks."""

    _resource = WeComRobotResource

    webhook_key_env: str = Field(
        default=ALERT_WEBHOOK_KEY_ENV,
        description="Name of the env var holding the robot's key; alerts are off while it is unset.",
    )
    ui_base_url: str = _same_as(WeComRobotResource, "ui_base_url")
    attempts: int = _same_as(WeComRobotResource, "attempts")
    timeout_seconds: float = _same_as(WeComRobotResource, "timeout_seconds")

    @field_validator("webhook_key_env")
    @classmethod
    def _key_env_is_a_name(cls, value: str) -> str:
        return _env_name(value, "webhook_key_env")


class WeComSyncScaffolder(dg.Scaffolder):
    """Writes a ``defs.yaml`` that syncs one corp from ``WECOM_CORP_ID``/``WECOM_CORP_SECRET``."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """A commented ``defs.yaml``: the working defaults, and the other choices to uncomment."""
        if request.scaffold_format != "yaml":
            dg.scaffold_component(request)
            return
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            _SCAFFOLD.format(type_name=request.type_name), encoding="utf-8"
        )


_SCAFFOLD = textwrap.dedent(
    f"""\
    type: {{type_name}}

    attributes:
      # One corp: the NAMES of the env vars holding its id and app secret, never the values.
      corp_id_env: {CORP_ID_ENV}
      corp_secret_env: {CORP_SECRET_ENV}
      # Or many corps, one partition each (or corps_file: corps.yaml, next to this file):
      # corps:
      #   - corp_id: ww0123456789abcdef
      #     secret_env: WECOM_SECRET_ACME
      #     name: 示例集团

      warehouse:
        path: data/wecom.duckdb   # relative to the project root

      # key_prefix: [acme]   # asset keys acme/wecom_users; names acme_wecom_sync, acme_duckdb
      group_name: {GROUP}

      schedule:
        cron: "{NIGHTLY_CRON}"
        timezone: {TIMEZONE}

      # api:
      #   max_concurrency: 24
      #   rate_limit_per_minute: 10000
    """
)


@cache
def _without_template_strings(derived: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, declared in derived.model_fields.items():
        field = copy(declared)
        kinds = [_bare(kind) for kind in get_args(field.annotation) if kind is not str]
        if len(kinds) == 1 and _holds_settings(kinds[0]):
            field.annotation = kinds[0]
        fields[name] = (field.annotation, field)
    model = create_model(
        derived.__name__,
        __base__=_AttributesModel,
        __validators__={"unique_corp_ids": field_validator("corps")(_unique_corp_ids)},
        **fields,
    )
    model.model_config["json_schema_extra"] = derived.model_config.get("json_schema_extra")
    return model


class _AttributesModel(dg.Model):
    # An error shows what is wrong and where, not the value: it may be a secret pasted inline.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _unique_corp_ids(corps: Any) -> Any:
    """Refuse a corp listed twice: two partitions cannot share a key."""
    seen: set[str] = set()
    for entry in corps if isinstance(corps, list) else ():
        if entry.corp_id in seen:
            raise ValueError(f"corp_id {entry.corp_id} is listed twice")
        seen.add(entry.corp_id)
    return corps


def _bare(kind: Any) -> Any:
    """``kind`` without ``Annotated`` (where Dagster keeps a field's resolver)."""
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def _holds_settings(kind: Any) -> bool:
    """Whether ``kind`` is a settings model or a list of them."""
    if get_origin(kind) is list:
        (kind,) = get_args(kind)
    return isinstance(kind, type) and issubclass(kind, BaseModel)


@dg.scaffold_with(WeComSyncScaffolder)
class WeComSync(dg.Component, dg.Resolvable, dg.Model):
    """Sync a WeCom (企业微信) org chart into DuckDB: departments, users, memberships and history.

    One step fetches the org through the contact API and publishes every table at once, with
    data-quality checks, a freshness check per table, a nightly schedule (one run per corp when
    corps are listed, each corp a partition) and an optional alert sensor that posts to a WeCom
    group. Secrets are given by the names of their environment variables. With no attributes it
    syncs the corp of WECOM_CORP_ID/WECOM_CORP_SECRET, or the corps of $WECOM_CORPS_FILE.
    """

    # Top-level descriptions go through `dg.Resolver`: the schema Dagster derives for defs.yaml
    # (what `dg utils inspect-component` and editors show) takes them from there.
    corps: Annotated[
        list[CorpEntry],
        _described(
            "Corps to sync, one partition each (like the corps file: corp_id, secret_env, "
            "name, base_url). Empty means `corps_file`, else one corp from `corp_id_env`."
        ),
    ] = Field(default_factory=list)
    corps_file: Annotated[
        str,
        _described(
            "YAML corps file, relative to this defs.yaml's folder. Empty means "
            f"${CORPS_FILE_ENV} when set."
        ),
    ] = ""
    corp_id_env: Annotated[
        str, _described("Name of the env var holding the corp id when no corps are listed.")
    ] = CORP_ID_ENV
    corp_secret_env: Annotated[
        str, _described("Name of the env var holding that corp's app secret; never the secret.")
    ] = CORP_SECRET_ENV
    key_prefix: Annotated[
        list[str],
        _described(
            "Put before every asset key (`[acme]` gives acme/wecom_users; `a/b` is read as "
            "[a, b]); the DuckDB tables keep their names. Also joined with `_` before the "
            "names of the jobs, schedules, sensor, op and resources (`acme_wecom_sync`, "
            "`acme_duckdb`), so they never collide with another sync or the project's own."
        ),
    ] = Field(default_factory=list)
    group_name: Annotated[str, _described("Asset group shown in the UI.")] = GROUP
    schedule: Annotated[ScheduleSettings, _described(ScheduleSettings.__doc__)] = Field(
        default_factory=ScheduleSettings
    )
    warehouse: Annotated[WarehouseSettings, _described(WarehouseSettings.__doc__)] = Field(
        default_factory=WarehouseSettings
    )
    api: Annotated[ApiSettings, _described(ApiSettings.__doc__)] = Field(
        default_factory=ApiSettings
    )
    alerts: Annotated[AlertSettings, _described(AlertSettings.__doc__)] = Field(
        default_factory=AlertSettings
    )

    @field_validator("key_prefix", mode="before")
    @classmethod
    def _split_prefix(cls, value: Any) -> Any:
        return [part for part in value.split("/") if part] if isinstance(value, str) else value

    @field_validator("key_prefix")
    @classmethod
    def _prefix_parts_are_names(cls, value: list[str]) -> list[str]:
        for part in value:
            if not PREFIX_PART.fullmatch(part):
                raise ValueError(
                    f"key_prefix part {part!r} may hold only letters, digits and underscores"
                )
        return value

    @field_validator("corp_id_env", "corp_secret_env")
    @classmethod
    def _credential_env_is_a_name(cls, value: str) -> str:
        return _env_name(value, "corp_id_env and corp_secret_env")

    @field_validator("corps")
    @classmethod
    def _corp_ids_are_unique(cls, value: list[CorpEntry]) -> list[CorpEntry]:
        return _unique_corp_ids(value)

    @model_validator(mode="after")
    def _one_source_of_corps(self) -> WeComSync:
        if self.corps and self.corps_file:
            raise ValueError("give either corps or corps_file, not both")
        return self

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The ``defs.yaml`` schema: Dagster's, less the template string of the nested settings.

        Dagster lets any attribute be a template string (``{{ env.X }}``). For ``api``,
        ``warehouse``, ``schedule``, ``alerts`` and ``corps`` that alternative turns a misspelled
        field into "not valid under any of the given schemas"; without it, ``dg check`` names
        the field and its line.
        """
        return _without_template_strings(cls.model())

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        """What ``dg list components`` and the UI's component catalog show."""
        return dg.ComponentTypeSpec(
            description=cls.__doc__,
            tags=["wecom", "duckdb", "org_chart"],
            produces=["asset", "asset_check", "job", "schedule", "sensor", "resource"],
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The definitions of the ``defs.yaml`` at ``context.path``."""
        folder = context.path if context.path.is_dir() else context.path.parent
        return self.definitions(project_root=context.project_root, defs_folder=folder)

    def definitions(
        self, project_root: Path | None = None, defs_folder: Path | None = None
    ) -> dg.Definitions:
        """The definitions, outside a ``dg`` project too (this repository's code location).

        Args:
            project_root: Where a relative warehouse path starts; None leaves it to the
                resource (the package's project root, else $DAGSTER_HOME).
            defs_folder: Where a relative ``corps_file`` starts; None means the working
                directory.

        Raises:
            CorpsFileError: the corps file is wrong; nothing is loaded.
        """
        corps = self._corps(defs_folder)
        return build_defs(
            corps,
            Layout(
                key_prefix=tuple(self.key_prefix),
                group_name=self.group_name,
                cron=self.schedule.cron,
                timezone=self.schedule.timezone,
            ),
            SecretEnv(
                corp_id=self.corp_id_env,
                corp_secret=self.corp_secret_env,
                pii_salt=self.warehouse.pii_salt_env,
                alert_webhook_key=self.alerts.webhook_key_env,
            ),
            ResourceSettings(
                wecom=self.api.model_dump(),
                warehouse={
                    "database": self._warehouse_path(project_root),
                    "lock_timeout_seconds": self.warehouse.lock_timeout_seconds,
                    "pii_policy": self.warehouse.pii_policy,
                },
                robot=self.alerts.model_dump(exclude={"webhook_key_env"}),
            ),
        )

    def _corps(self, defs_folder: Path | None) -> tuple[Corp, ...]:
        if self.corps:
            return tuple(entry.corp() for entry in self.corps)
        if self.corps_file:
            path = Path(self.corps_file).expanduser()
            if defs_folder is not None and not path.is_absolute():
                path = defs_folder / path
            return load_corps(path)
        return configured_corps()

    def _warehouse_path(self, project_root: Path | None) -> str:
        path = Path(self.warehouse.path).expanduser()
        if not self.warehouse.path or path.is_absolute() or project_root is None:
            return self.warehouse.path
        return str(project_root / path)
