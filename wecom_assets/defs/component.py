"""``wecom_assets.WeComSync``: the WeCom org chart as a Dagster component for any project.

``dg scaffold defs wecom_assets.WeComSync wecom`` writes a ``defs.yaml``; its attributes are the
fields below. Every secret is named by its environment variable, never written in the file. The
component with no attributes is exactly this repository's code location
(:mod:`wecom_assets.definitions`): one corp from ``WECOM_CORP_ID``/``WECOM_CORP_SECRET``, or the
corps of ``$WECOM_CORPS_FILE``, and every other setting from its ``WECOM_*`` variable.
"""

from __future__ import annotations

import textwrap
from copy import copy
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from wecom_assets.defs.component_fields import (
    AlertSettings,
    ApiSettings,
    CorpEntry,
    ScheduleSettings,
    WarehouseSettings,
    env_name,
)
from wecom_assets.defs.definitions import (
    CORP_ID_ENV,
    CORP_SECRET_ENV,
    ResourceSettings,
    SecretEnv,
    build_defs,
)
from wecom_assets.defs.layout import NIGHTLY_CRON, PREFIX_PART, TIMEZONE, Layout
from wecom_assets.defs.settings import CORPS_FILE_ENV, GROUP, configured_corps
from wecom_assets.wecom.corps import Corp, load_corps


def _described(text: str | None) -> dg.Resolver:
    return dg.Resolver.default(description=text)


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
    """Sync a WeCom (企业微信) org chart into DuckDB: departments, users, memberships, tags, history.

    One step fetches the org through the contact API and publishes every table at once, a second
    step does the same for the tags (标签) so that a failure there never holds the org back, with
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
        return env_name(value, "corp_id_env and corp_secret_env")

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
            ValueError: the warehouse URL holds a password.
        """
        corps = self._corps(defs_folder)
        url = self.warehouse.warehouse_url()
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
                    **({"url": url} if url else {}),
                    "schema_name": self.warehouse.schema_name,
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
