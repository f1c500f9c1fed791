"""Where the DuckDB file lands: one anchor for a relative path, never the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from wecom_assets.defs import settings
from wecom_assets.defs.resources import WarehouseResource

ROOT = Path(__file__).resolve().parent.parent
SITE_PACKAGES = Path("lib/python3.11/site-packages/wecom_assets")


def installed_in(directory: Path) -> Path:
    """Where pip puts the package inside a virtualenv at ``directory``."""
    package = directory / SITE_PACKAGES
    package.mkdir(parents=True)
    return package


def test_the_default_file_is_in_the_repository_whatever_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WECOM_DUCKDB_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert WarehouseResource().path == ROOT / "data" / "wecom.duckdb"


def test_a_relative_setting_starts_at_the_repository_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WECOM_DUCKDB_PATH", "warehouse/org.duckdb")
    monkeypatch.chdir(tmp_path)
    assert WarehouseResource().path == ROOT / "warehouse" / "org.duckdb"


def test_installed_into_a_projects_virtualenv_the_file_is_in_that_project(
    tmp_path: Path,
) -> None:
    project = tmp_path / "analytics"
    package = installed_in(project / ".venv")
    (project / "pyproject.toml").write_text("[project]\nname = 'analytics'\n")
    path = settings.duckdb_path("", environ={}, package_dir=package)
    assert path == project / "data" / "wecom.duckdb"


def test_installed_outside_any_project_the_file_is_under_dagster_home(tmp_path: Path) -> None:
    package = installed_in(tmp_path / "usr")
    assert settings.project_root(package) is None
    path = settings.duckdb_path(
        "", environ={"DAGSTER_HOME": str(tmp_path / "home")}, package_dir=package
    )
    assert path == tmp_path / "home" / "data" / "wecom.duckdb"


def test_without_a_project_or_dagster_home_a_relative_path_is_refused_saying_what_to_set(
    tmp_path: Path,
) -> None:
    package = installed_in(tmp_path / "usr")
    with pytest.raises(ValueError, match="relative path") as refused:
        settings.duckdb_path("", environ={}, package_dir=package)
    assert "Set WECOM_DUCKDB_PATH to an absolute path, or set DAGSTER_HOME" in str(refused.value)


def test_an_absolute_path_is_used_as_given(tmp_path: Path) -> None:
    package = installed_in(tmp_path / "usr")
    given = tmp_path / "volume" / "org.duckdb"
    assert settings.duckdb_path(str(given), environ={}, package_dir=package) == given


def test_the_settings_every_materialization_records_name_the_absolute_file_and_its_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WECOM_DUCKDB_PATH", "data/wecom.duckdb")
    shown = WarehouseResource().effective_settings()
    assert shown["duckdb/path"] == str(ROOT / "data" / "wecom.duckdb")
    assert shown["dagster/uri"] == (ROOT / "data" / "wecom.duckdb").as_uri()
