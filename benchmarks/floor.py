"""Dagster's own floor on this machine, the part of a sync no change to the sync can remove.

A code location with one asset that does nothing is materialized exactly as the sync is (the CLI,
``--select '*'``, ``in_process_executor``, a fresh migrated ``DAGSTER_HOME`` with this
repository's ``dagster.yaml``); what it takes is the CLI's start, one run's events and its exit.
Beside it: how long Python takes to import Dagster alone, and to import this code location.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import dagster_run

NOOP_DEFINITIONS = '''"""One asset that does nothing: what a run of it takes is Dagster's own cost."""

import dagster as dg


@dg.asset
def noop() -> None:
    """Does nothing."""


defs = dg.Definitions(assets=[noop], executor=dg.in_process_executor)
'''
REPEATS = 3


def _seconds(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    return time.monotonic() - started


def measure(work_dir: Path) -> dict[str, Any]:
    """Median wall seconds of a no-op materialization and of the two imports, of a few runs."""
    floor_dir = work_dir / "floor"
    floor_dir.mkdir(parents=True, exist_ok=True)
    (floor_dir / "noop_defs.py").write_text(NOOP_DEFINITIONS, encoding="utf-8")
    instance = dagster_run.prepare_instance(floor_dir)
    env = {**os.environ, "DAGSTER_HOME": str(instance.home)}
    materialize = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-f", "noop_defs.py", "--select", "*"),
    ]
    commands = {
        "noop_materialize_seconds": materialize,
        "import_dagster_seconds": [sys.executable, "-c", "import dagster"],
        "import_code_location_seconds": [sys.executable, "-c", "import wecom_assets.definitions"],
    }
    samples = {
        name: [_seconds(command, env, floor_dir) for _ in range(REPEATS)]
        for name, command in commands.items()
    }
    return {
        **{name: statistics.median(values) for name, values in samples.items()},
        "samples": samples,
        "load_average_after": os.getloadavg(),
    }
