"""``dagster asset materialize`` as a child process, its output kept in files.

Each run's stdout and stderr go to files in a log directory rather than pipes, so a long run can
never block on a full pipe, and a test can later scan everything a run left behind for secrets.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from e2e_env import cli_tool

CODE_LOCATION = "wecom_assets.definitions"
CORE_ASSETS = ("wecom_departments", "wecom_users", "dept_membership")
_RUN_ID = re.compile(r" - ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) - ")


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
    partition: str | None = None,
) -> RunningCli:
    """Start ``dagster asset materialize`` for ``selection`` in the background.

    Args:
        selection: Asset keys to materialize (their in-step checks run with them).
        env: Environment of the process (see ``e2e_env.cli_env``).
        cwd: Working directory.
        log_dir: Where the run config file and the stdout/stderr logs are written.
        name: Base name of those files; unique per run.
        config: Run config (see ``e2e_run_config.run_config``), written to a YAML file passed
            with ``-c``.
        partition: The partition (corp id) to materialize, when the assets are partitioned.
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
    if partition is not None:
        command += ["--partition", partition]
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
