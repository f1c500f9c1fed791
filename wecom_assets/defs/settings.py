"""Settings in one place: what every WeCom asset shares, and the defaults taken from the environment.

Required values and secrets enter in :mod:`wecom_assets.defs.definitions` as ``dg.EnvVar``, so the
UI shows the variable's name and never its value. Optional settings whose default comes from an
environment variable (``WECOM_API_BASE_URL``, ``WECOM_DUCKDB_PATH``, ``WECOM_TOKEN_CACHE_DIR``,
``WECOM_PII_POLICY``, ``WECOM_ALERT_UI_BASE_URL``) are resolved here and nowhere else, when a step
builds its client or opens the warehouse, so a resource field left empty means the same thing in
every module.

A relative DuckDB path is resolved against one anchor, :func:`project_root`, never against the
working directory: ``dagster dev``, the daemon, a run worker and a container each start in a
directory of their own, and the file must land in the same place for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import dagster as dg

from wecom_assets.wecom.client import DEFAULT_BASE_URL
from wecom_assets.wecom.corps import Corp, load_corps

GROUP = "wecom"
# Runs that write the DuckDB file share this pool (its limit of 1 is set in dagster.yaml), so two
# runs queue instead of failing on DuckDB's one-writer lock. PostgreSQL needs no pool: corps'
# syncs write concurrently, and syncs of one corp take turns in the database.
POOL = "wecom_duckdb"
FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)
)
TAGS = {"domain": "org_chart", "source": "wecom"}
# Who answers for these tables: the catalog shows owners on every asset and filters by them.
# Replace with your team (`team:<name>`) or a person's email.
OWNERS = ["team:data-platform"]

BASE_URL_ENV = "WECOM_API_BASE_URL"
DUCKDB_PATH_ENV = "WECOM_DUCKDB_PATH"
WAREHOUSE_URL_ENV = "WECOM_WAREHOUSE_URL"
TOKEN_CACHE_DIR_ENV = "WECOM_TOKEN_CACHE_DIR"
PII_POLICY_ENV = "WECOM_PII_POLICY"
PII_SALT_ENV = "WECOM_PII_SALT"
CORPS_FILE_ENV = "WECOM_CORPS_FILE"
ALERT_WEBHOOK_KEY_ENV = "WECOM_ALERT_WEBHOOK_KEY"
ALERT_UI_BASE_URL_ENV = "WECOM_ALERT_UI_BASE_URL"
DEFAULT_DUCKDB_PATH = "data/wecom.duckdb"
# DuckDB's own memory cap for the sync (its default is 80% of the machine). Writing the private
# copy of a 100k-user org took 420 MB above the step's baseline without it and 125 MB with it, at
# the same speed; what does not fit spills to a temporary file next to the database.
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
DEFAULT_ALERT_UI_BASE_URL = "http://localhost:3000"
# The file that marks a project: this repository's, or the one the package is installed into.
PROJECT_MARKER = "pyproject.toml"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _env(name: str, environ: Mapping[str, str] | None) -> str:
    return (os.environ if environ is None else environ).get(name, "")


def base_url(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The API root: the resource's setting, else ``$WECOM_API_BASE_URL``, else WeCom's."""
    return configured or _env(BASE_URL_ENV, environ) or DEFAULT_BASE_URL


def project_root(package_dir: Path = _PACKAGE_DIR) -> Path | None:
    """The project the package belongs to: the nearest directory above it with a pyproject.toml.

    In a checkout that is the repository (``wecom_assets/`` sits next to its pyproject.toml).
    Installed from a wheel into a project's virtualenv (``<project>/.venv/lib/.../site-packages``)
    it is that project. A virtualenv outside any project, or a system-wide install, has none.
    """
    for directory in package_dir.parents:
        if (directory / PROJECT_MARKER).is_file():
            return directory
    return None


def data_anchor(environ: Mapping[str, str] | None = None, package_dir: Path = _PACKAGE_DIR) -> Path:
    """Where a relative ``WECOM_DUCKDB_PATH`` starts: the project root, else ``$DAGSTER_HOME``.

    Both are the same for every process of a deployment, whatever its working directory.

    Raises:
        ValueError: Neither exists; the message says which settings fix it.
    """
    root = project_root(package_dir)
    if root is not None:
        return root
    dagster_home = _env("DAGSTER_HOME", environ)
    if dagster_home:
        return Path(dagster_home).expanduser().resolve()
    raise ValueError(
        f"{DUCKDB_PATH_ENV} is a relative path, and there is nothing to resolve it against: "
        f"wecom_assets is installed outside any project (no {PROJECT_MARKER} above "
        f"{package_dir}) and DAGSTER_HOME is not set. Set {DUCKDB_PATH_ENV} to an absolute path, "
        "or set DAGSTER_HOME."
    )


def duckdb_path(
    configured: str, environ: Mapping[str, str] | None = None, package_dir: Path = _PACKAGE_DIR
) -> Path:
    """The DuckDB file as an absolute path.

    The resource's setting, else ``$WECOM_DUCKDB_PATH``, else ``data/wecom.duckdb``; a relative
    one is resolved against :func:`data_anchor`.

    Raises:
        ValueError: The path is relative and has no anchor (see :func:`data_anchor`).
    """
    path = Path(configured or _env(DUCKDB_PATH_ENV, environ) or DEFAULT_DUCKDB_PATH).expanduser()
    if path.is_absolute():
        return path
    return data_anchor(environ, package_dir) / path


def warehouse_url(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The warehouse URL: the resource's setting, else ``$WECOM_WAREHOUSE_URL``; empty = DuckDB."""
    return (configured or _env(WAREHOUSE_URL_ENV, environ)).strip()


def token_cache_dir(configured: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$WECOM_TOKEN_CACHE_DIR``, else ``$DAGSTER_HOME/.wecom``, else ``~/.cache/wecom_assets``.

    Steps of one run are separate processes; a directory they all see lets them share one token.
    """
    if configured:
        return Path(configured)
    explicit = _env(TOKEN_CACHE_DIR_ENV, environ)
    if explicit:
        return Path(explicit)
    dagster_home = _env("DAGSTER_HOME", environ)
    if dagster_home:
        return Path(dagster_home) / ".wecom"
    return Path.home() / ".cache" / "wecom_assets"


def alert_ui_base_url(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The UI that alert links point to, without a trailing slash.

    The setting, else ``$WECOM_ALERT_UI_BASE_URL``, else ``http://localhost:3000``.
    """
    url = configured or _env(ALERT_UI_BASE_URL_ENV, environ) or DEFAULT_ALERT_UI_BASE_URL
    return url.rstrip("/")


def alerts_default_status(key_env: str = ALERT_WEBHOOK_KEY_ENV) -> dg.DefaultSensorStatus:
    """The alert sensor runs by default exactly when a robot key is set: off without one."""
    if os.environ.get(key_env, "").strip():
        return dg.DefaultSensorStatus.RUNNING
    return dg.DefaultSensorStatus.STOPPED


def pii_policy_text(environ: Mapping[str, str] | None = None) -> str:
    """``$WECOM_PII_POLICY``, used when the resource's ``pii_policy`` is empty."""
    return _env(PII_POLICY_ENV, environ)


def optional_secret(name: str) -> dg.EnvVar | str:
    """A secret that may be unset: ``dg.EnvVar(name)`` when it is set, else empty.

    ``dg.EnvVar`` fails every run when its variable is unset, but the PII salt is needed only
    when a field is hashed; the policy then reports the missing salt by name.
    """
    return dg.EnvVar(name) if os.environ.get(name) else ""


def configured_corps(environ: Mapping[str, str] | None = None) -> tuple[Corp, ...]:
    """The corps of ``$WECOM_CORPS_FILE``; none (one corp from the env vars) when it is unset.

    Read when the code location loads, so adding a corp needs a reload and no code change; a
    wrong file stops the load with the line and the problem rather than syncing some corps.

    Raises:
        CorpsFileError: the file is wrong; nothing is loaded.
    """
    path = _env(CORPS_FILE_ENV, environ)
    return load_corps(Path(path).expanduser()) if path else ()
