"""The environment an end-to-end test gives the Dagster CLI, and where that CLI lives.

The code location is configured only through environment variables, as a deployment configures
it; a developer's shell must not leak its own values into a test, so every environment built here
starts from the current one minus the product's variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# The code location reads these.
_PRODUCT_ENV_PREFIXES = ("WECOM_", "DAGSTER_")


def cli_tool(name: str = "dagster") -> str:
    """Path of a console script (``dagster``, ``dg``) of the interpreter running the tests."""
    return str(Path(sys.executable).with_name(name))


def clean_environ() -> dict[str, str]:
    """The current environment minus every ``WECOM_*`` and ``DAGSTER_*`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_PRODUCT_ENV_PREFIXES)}


def cli_env(
    *,
    dagster_home: Path,
    duckdb_path: Path,
    corp_id: str,
    corp_secret: str,
    base_url: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a deployment sets for the code location (see the README's table)."""
    return {
        **clean_environ(),
        "DAGSTER_HOME": str(dagster_home),
        "WECOM_CORP_ID": corp_id,
        "WECOM_CORP_SECRET": corp_secret,
        "WECOM_API_BASE_URL": base_url,
        "WECOM_DUCKDB_PATH": str(duckdb_path),
        **(extra or {}),
    }
