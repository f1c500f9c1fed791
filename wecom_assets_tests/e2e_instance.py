"""A real ``DAGSTER_HOME`` for end-to-end tests: this repository's ``dagster.yaml``, initialised."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from e2e_env import clean_environ, cli_tool

DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def new_dagster_home(path: Path) -> Path:
    """Create an instance directory holding this repository's ``dagster.yaml``, uninitialised.

    For a single process that initialises the instance itself (``dg dev``); anything that starts
    several processes at once needs :func:`prepare_dagster_home`.
    """
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML, path / "dagster.yaml")
    return path


def prepare_dagster_home(path: Path) -> Path:
    """Create an instance directory with this repository's ``dagster.yaml`` and initialise it.

    ``dagster instance migrate`` runs once here: two processes creating a brand-new SQLite
    instance at the same moment can corrupt its schema stamp.
    """
    new_dagster_home(path)
    subprocess.run(
        [cli_tool(), "instance", "migrate"],
        env={**clean_environ(), "DAGSTER_HOME": str(path)},
        cwd=path,
        check=True,
        capture_output=True,
        timeout=180,
    )
    return path


def copy_dagster_home(migrated: Path, path: Path) -> Path:
    """A new instance directory at ``path``: a copy of ``migrated``, initialised and still unused.

    The copy is the instance :func:`prepare_dagster_home` would make, without the seconds of a
    ``dagster instance migrate`` process (see the ``migrated_dagster_home`` fixture).
    """
    shutil.copytree(migrated, path)
    return path
