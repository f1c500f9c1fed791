"""The resources hand their settings, defaults resolved in one place, to the plain client and warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_support import resources

from wecom_assets import definitions
from wecom_assets.defs import settings
from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.sandbox.server import SandboxServer
from wecom_assets.wecom.corps import Corp

PROXY = "http://proxy-user:proxy-pass-123@127.0.0.1:9/prefix"


def test_the_rate_limit_window_reaches_the_client_and_defaults_to_wecoms_minute() -> None:
    default = WeComResource(corp_id="ww0123", corp_secret="secret").client_config()
    compressed = WeComResource(
        corp_id="ww0123", corp_secret="secret", rate_limit_window_seconds=1.5
    ).client_config()
    assert default.rate_limit_window == 60.0
    assert compressed.rate_limit_window == 1.5


def test_a_listed_corps_client_names_its_own_secret_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WECOM_SECRET_ACME", "acme-secret")
    corp = Corp("wwacme", "WECOM_SECRET_ACME")
    assert WeComResource().client_config(corp).secret_variable == "WECOM_SECRET_ACME"
    single = WeComResource(corp_id="ww0123", corp_secret="secret").client_config()
    assert single.secret_variable == "WECOM_CORP_SECRET"


def test_empty_fields_fall_back_to_the_environment_then_to_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WECOM_API_BASE_URL", raising=False)
    monkeypatch.delenv("WECOM_DUCKDB_PATH", raising=False)
    monkeypatch.delenv("WECOM_TOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    config = WeComResource(corp_id="ww0123", corp_secret="secret").client_config()
    assert config.base_url == "https://qyapi.weixin.qq.com"
    assert config.token_cache_dir == tmp_path / ".wecom"
    assert WarehouseResource().path == settings.data_anchor() / "data/wecom.duckdb"
    monkeypatch.setenv("WECOM_API_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("WECOM_DUCKDB_PATH", str(tmp_path / "env.duckdb"))
    monkeypatch.setenv("WECOM_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    config = WeComResource(corp_id="ww0123", corp_secret="secret").client_config()
    assert config.base_url == "http://127.0.0.1:8000"
    assert config.token_cache_dir == tmp_path / "tokens"
    assert WarehouseResource().path == tmp_path / "env.duckdb"


def test_warehouse_connections_cap_duckdbs_memory_by_default(tmp_path: Path) -> None:
    with WarehouseResource(database=str(tmp_path / "w.duckdb")).get_connection() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()

    assert limit == ("122.0 MiB",)


def test_a_memory_limit_in_connection_config_overrides_the_default(tmp_path: Path) -> None:
    resource = WarehouseResource(
        database=str(tmp_path / "w.duckdb"), connection_config={"memory_limit": "1GB"}
    )

    with resource.get_connection() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()

    assert limit == ("953.6 MiB",)


def test_effective_settings_show_the_base_url_without_its_credentials() -> None:
    shown = WeComResource(corp_id="ww0123", corp_secret="s3cret", base_url=PROXY)
    values = shown.effective_settings()
    assert values["wecom/base_url"] == "http://127.0.0.1:9/prefix"
    assert "proxy-pass-123" not in repr(values)
    assert "s3cret" not in repr(values)


def test_the_pii_salt_enters_as_an_env_var_only_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WECOM_PII_SALT", "a-long-enough-secret-salt")
    assert settings.optional_secret("WECOM_PII_SALT") == dg.EnvVar("WECOM_PII_SALT")
    monkeypatch.delenv("WECOM_PII_SALT")
    assert settings.optional_secret("WECOM_PII_SALT") == ""


def test_the_code_location_reads_the_credentials_from_env_vars() -> None:
    wecom = (definitions.defs.resources or {})["wecom"]
    assert isinstance(wecom, WeComResource)
    assert wecom.corp_id == dg.EnvVar("WECOM_CORP_ID")
    assert wecom.corp_secret == dg.EnvVar("WECOM_CORP_SECRET")


def test_every_materialization_records_the_effective_settings(
    sandbox_org: dict[str, Any], sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = dg.materialize(
        [build_org_assets()],
        selection=["wecom_departments"],
        resources=resources(sandbox_org, sandbox.url, tmp_path),
    )
    (event,) = result.get_asset_materialization_events()
    metadata = {
        key: value.value
        for key, value in event.step_materialization_data.materialization.metadata.items()
    }
    assert metadata["wecom/base_url"] == sandbox.url
    assert metadata["wecom/token_cache_dir"] == str(tmp_path / "tokens")
    assert metadata["duckdb/path"] == str(tmp_path / "wecom.duckdb")
    assert metadata["wecom/max_concurrency"] == 24
    assert sandbox_org["corp_secret"] not in repr(metadata)
