"""End-to-end support: a real ``DAGSTER_HOME``, the Dagster CLI in subprocesses, leak scanning.

Generic on purpose, so every end-to-end test drives the product the way an operator does: an
instance directory holding this repository's ``dagster.yaml`` (initialised once, before any
parallel use), the code location configured only through environment variables and run config
files, and ``dagster asset materialize`` run as a child process. Each run's stdout and stderr go to
files, so a test can later scan everything a run left behind with :func:`find_leaks`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from dagster import AssetCheckEvaluation, DagsterEventType, DagsterInstance

ROOT = Path(__file__).resolve().parent.parent
DAGSTER_YAML = ROOT / "dagster.yaml"
CODE_LOCATION = "wecom_assets.definitions"
CORE_ASSETS = ("wecom_departments", "wecom_users", "dept_membership")
# The code location reads these; a developer's shell must not leak its own values into a test.
_PRODUCT_ENV_PREFIXES = ("WECOM_", "DAGSTER_")
_RUN_ID = re.compile(r" - ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - ")


def cli_tool(name: str = "dagster") -> str:
    """Path of a console script (``dagster``, ``dg``) of the interpreter running the tests."""
    return str(Path(sys.executable).with_name(name))


def clean_environ() -> dict[str, str]:
    """The current environment minus every ``WECOM_*`` and ``DAGSTER_*`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_PRODUCT_ENV_PREFIXES)}


def prepare_dagster_home(path: Path) -> Path:
    """Create an instance directory with this repository's ``dagster.yaml`` and initialise it.

    ``dagster instance migrate`` runs once here: two processes creating a brand-new SQLite
    instance at the same moment can corrupt its schema stamp.
    """
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML, path / "dagster.yaml")
    subprocess.run(
        [cli_tool(), "instance", "migrate"],
        env={**clean_environ(), "DAGSTER_HOME": str(path)},
        cwd=path,
        check=True,
        capture_output=True,
        timeout=180,
    )
    return path


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


def run_config(
    *,
    wecom: Mapping[str, Any] | None = None,
    duckdb: Mapping[str, Any] | None = None,
    assets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run config overriding resource fields and asset config, as an operator writes it.

    Overriding any field of the WeCom resource means giving the whole resource config, so the
    credentials are passed as ``{"env": ...}`` references: run config is stored with the run and
    shown in the UI, and it must never hold the values.
    """
    config: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    if wecom is not None:
        resources["wecom"] = {
            "config": {
                "corp_id": {"env": "WECOM_CORP_ID"},
                "corp_secret": {"env": "WECOM_CORP_SECRET"},
                **wecom,
            }
        }
    if duckdb is not None:
        resources["duckdb"] = {"config": dict(duckdb)}
    if resources:
        config["resources"] = resources
    if assets:
        config["ops"] = {name: {"config": dict(values)} for name, values in assets.items()}
    return config


@dataclass(frozen=True)
class CliResult:
    """A finished CLI process: exit code, captured output and wall time."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """Stdout and stderr together (Dagster logs events to stderr)."""
        return self.stdout + self.stderr

    @property
    def run_ids(self) -> list[str]:
        """Ids of the runs the process logged, in order of first appearance."""
        return list(dict.fromkeys(_RUN_ID.findall(self.output)))

    @property
    def run_id(self) -> str:
        """The id of the (single) run the process executed."""
        ids = self.run_ids
        assert len(ids) == 1, f"expected one run, found {ids}:\n{self.output[-3000:]}"
        return ids[0]

    def explain(self, tail: int = 4000) -> str:
        """The end of the output, for assertion messages."""
        return f"$ {' '.join(self.command)}\nexit {self.returncode}\n{self.output[-tail:]}"


class RunningCli:
    """A CLI process started in the background; its output goes to files in ``log_dir``."""

    def __init__(
        self, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path, name: str
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.command = tuple(command)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._files: list[IO[bytes]] = [self.stdout_path.open("wb"), self.stderr_path.open("wb")]
        self._started = time.monotonic()
        self.process = subprocess.Popen(
            self.command, env=dict(env), cwd=cwd, stdout=self._files[0], stderr=self._files[1]
        )

    def wait(self, timeout: float = 240.0) -> CliResult:
        """Wait for the process to end (killing it after ``timeout`` seconds) and collect it."""
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            for handle in self._files:
                handle.close()
        return CliResult(
            command=self.command,
            returncode=returncode,
            stdout=self.stdout_path.read_text(encoding="utf-8", errors="replace"),
            stderr=self.stderr_path.read_text(encoding="utf-8", errors="replace"),
            seconds=time.monotonic() - self._started,
        )


def launch_materialize(
    selection: Iterable[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    name: str,
    config: Mapping[str, Any] | None = None,
) -> RunningCli:
    """Start ``dagster asset materialize`` for ``selection`` in the background.

    Args:
        selection: Asset keys to materialize (their in-step checks run with them).
        env: Environment of the process (see :func:`cli_env`).
        cwd: Working directory.
        log_dir: Where the run config file and the stdout/stderr logs are written.
        name: Base name of those files; unique per run.
        config: Run config (see :func:`run_config`), written to a YAML file passed with ``-c``.
    """
    command = [
        cli_tool(),
        *("asset", "materialize", "-m", CODE_LOCATION, "--select", ",".join(selection)),
    ]
    if config:
        log_dir.mkdir(parents=True, exist_ok=True)
        config_file = log_dir / f"{name}.run_config.yaml"
        config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        command += ["-c", str(config_file)]
    return RunningCli(command, env=env, cwd=cwd, log_dir=log_dir, name=name)


def materialize(
    selection: Iterable[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    name: str,
    config: Mapping[str, Any] | None = None,
    timeout: float = 240.0,
) -> CliResult:
    """Run ``dagster asset materialize`` to completion (see :func:`launch_materialize`)."""
    running = launch_materialize(
        selection, env=env, cwd=cwd, log_dir=log_dir, name=name, config=config
    )
    return running.wait(timeout)


@dataclass(frozen=True)
class StepWindow:
    """When a step ran, from the instance's event log (epoch seconds)."""

    step_key: str
    started: float
    ended: float
    succeeded: bool

    @property
    def seconds(self) -> float:
        """The step's duration."""
        return self.ended - self.started


def step_windows(dagster_home: Path, run_id: str) -> dict[str, StepWindow]:
    """Start and end of every step of a run that started, read from the instance storage."""
    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
    }
    starts: dict[str, float] = {}
    windows: dict[str, StepWindow] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            else:
                windows[entry.step_key] = StepWindow(
                    step_key=entry.step_key,
                    started=starts[entry.step_key],
                    ended=entry.timestamp,
                    succeeded=event.event_type == DagsterEventType.STEP_SUCCESS,
                )
    return windows


def check_outcomes(dagster_home: Path, run_id: str) -> dict[tuple[str, str], bool]:
    """``(asset, check) -> passed`` for every asset check a run evaluated."""
    outcomes: dict[tuple[str, str], bool] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            event = entry.dagster_event
            if event is None:
                continue
            evaluation = event.event_specific_data
            assert isinstance(evaluation, AssetCheckEvaluation)
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            outcomes[key] = evaluation.passed
    return outcomes


def find_leaks(
    roots: Iterable[Path], needles: Mapping[str, str], *, exclude: Iterable[Path] = ()
) -> list[str]:
    """Every file under ``roots`` that contains one of ``needles``, as ``"path: label"`` lines.

    Files are read as bytes, so SQLite databases, DuckDB files and logs are all searched, for the
    raw text and its percent-encoded form (as it would appear in a URL).

    Args:
        roots: Files or directories to search (recursively).
        needles: ``label -> secret text``; labels, not values, appear in the result.
        exclude: Files or directories to skip (a token cache holds a token by design).
    """
    skipped = [path.resolve() for path in exclude]
    patterns: list[tuple[str, bytes]] = []
    for label, value in needles.items():
        if not value:
            continue
        raw = value.encode()
        encoded = "".join(
            ch if ch.isalnum() or ch in "-_.~" else f"%{ord(ch):02X}" for ch in value
        ).encode()
        patterns += [(label, raw)] + ([(label, encoded)] if encoded != raw else [])
    hits: list[str] = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            resolved = path.resolve()
            if any(resolved == s or s in resolved.parents for s in skipped):
                continue
            try:
                content = path.read_bytes()
            except OSError:
                continue
            hits += [f"{path}: {label}" for label, pattern in patterns if pattern in content]
    return sorted(set(hits))
