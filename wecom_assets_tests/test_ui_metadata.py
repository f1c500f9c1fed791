"""What the UI shows about the code location: config field descriptions, owners, columns, lineage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._config import ConfigType
from dagster_support import resources

from wecom_assets.definitions import defs
from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.settings import OWNERS, TAGS
from wecom_assets.sandbox.server import SandboxServer
from wecom_assets.warehouse.tables import DEPARTMENTS, MEMBERSHIP, TAG_TABLES, USERS

WECOM_TABLES = {spec.name: spec for spec in (DEPARTMENTS, USERS, MEMBERSHIP, *TAG_TABLES)}


def _fields(config_type: ConfigType, path: str) -> Iterator[tuple[str, str | None]]:
    """Every field of a config type, nested ones included, as (dotted path, description)."""
    for name, field in (getattr(config_type, "fields", None) or {}).items():
        yield f"{path}.{name}", field.description
        yield from _fields(field.config_type, f"{path}.{name}")
    inner = getattr(config_type, "inner_type", None)
    if inner is not None:
        yield from _fields(inner, path)


def _resource_fields() -> Iterator[tuple[str, str | None]]:
    for name, resource in (defs.resources or {}).items():
        definition = resource.get_resource_definition()
        yield from _fields(definition.config_schema.config_type, f"resources.{name}")


def _op_fields() -> Iterator[tuple[str, str | None]]:
    # Asset checks are in the graph's assets definitions too.
    for node in defs.resolve_asset_graph().assets_defs:
        schema = node.node_def.config_schema
        if schema is not None and schema.config_type is not None:
            yield from _fields(schema.config_type, f"ops.{node.node_def.name}")


def test_every_resource_config_field_has_a_description() -> None:
    fields = dict(_resource_fields())
    assert {"resources.wecom.corp_secret", "resources.duckdb.database"} <= fields.keys()
    assert [path for path, description in fields.items() if not (description or "").strip()] == []


def test_every_run_config_field_of_assets_and_checks_has_a_description() -> None:
    fields = dict(_op_fields())
    assert "ops.wecom_org.max_shrink_fraction" in fields
    assert "ops.wecom_tag_sync.max_shrink_fraction" in fields
    assert "ops.wecom_freshness_checks.max_age_hours" in fields
    assert [path for path, description in fields.items() if not (description or "").strip()] == []


@pytest.mark.parametrize("name", sorted(WECOM_TABLES))
def test_wecom_asset_has_owners_tags_a_description_and_its_table_name(name: str) -> None:
    spec = defs.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)]
    assert spec.owners == OWNERS
    assert TAGS.items() <= spec.tags.items()
    assert (spec.description or "").strip()
    assert spec.metadata["dagster/table_name"] == f"main.{name}"


@pytest.mark.parametrize("name", sorted(WECOM_TABLES))
def test_column_schema_lists_every_column_with_its_type_and_a_description(name: str) -> None:
    spec = defs.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)]
    schema = spec.metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in schema.columns] == [
        (c.name, c.sql_type) for c in WECOM_TABLES[name].columns
    ]
    assert all(column.description for column in schema.columns)


@pytest.mark.parametrize("name", [spec.name for spec in TAG_TABLES])
def test_tag_tables_are_marked_as_fetched_from_wecom(name: str) -> None:
    spec = defs.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)]
    assert set(spec.kinds) == {"wecom", "duckdb"}


def test_membership_column_lineage_points_at_columns_of_wecom_users() -> None:
    spec = defs.resolve_assets_def("dept_membership").specs_by_key[dg.AssetKey("dept_membership")]
    lineage = spec.metadata["dagster/column_lineage"]
    assert set(lineage.deps_by_column) == set(MEMBERSHIP.column_names) - {"synced_at"}
    for deps in lineage.deps_by_column.values():
        for dep in deps:
            assert dep.asset_key == dg.AssetKey("wecom_users")
            assert dep.column_name in USERS.column_names


def test_previous_row_count_is_reported_only_when_there_was_a_previous_table(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    def materialize() -> dict[str, Any]:
        result = dg.materialize(
            [build_org_assets()],
            selection=["wecom_departments"],
            resources=resources(sandbox_org, sandbox.url, tmp_path),
        )
        (event,) = result.get_asset_materialization_events()
        return dict(event.materialization.metadata)

    assert "previous_row_count" not in materialize()
    assert materialize()["previous_row_count"].value == len(sandbox_org["departments"])
