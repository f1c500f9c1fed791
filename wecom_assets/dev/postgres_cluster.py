"""A throwaway PostgreSQL server: its own cluster in a temp dir, on a free port.

The tests and ``make bench-postgres`` never use a server that happens to be running: they create a
cluster with Debian's ``postgresql`` binaries (``make postgres-deps`` installs them), start it, and
remove it afterwards.
PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` system user and every server command runs through ``runuser``. Password
authentication is on for TCP connections, so the tests exercise a password the way a deployment
has one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "wecom_test"
DATABASE = "wecom_test"


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are missing or the cluster did not start."""


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A running throwaway cluster; ``url`` connects as its superuser with a password."""

    root: Path
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the test database, password included (it is a test secret)."""
        return self.url_for(self.database)

    @property
    def log_path(self) -> Path:
        """The server's log file (``pg_ctl -l``), which a benchmark reads statement times from."""
        return self.root / "server.log"

    def url_for(self, database: str) -> str:
        """URL of another database on the same server (see :meth:`create_database`)."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database on the server and return its URL."""
        self._psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def _psql(self, sql: str) -> None:
        _run(
            [
                _binary("psql"),
                "-h",
                str(self.root / "socket"),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            as_server_user=True,
        )

    def stop(self) -> None:
        """Stop the server immediately and remove its files."""
        _run(
            [_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            as_server_user=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(settings: Mapping[str, str] | None = None) -> PostgresServer:
    """Create a cluster in a new temp dir and start it on a free local port.

    The dir is made directly under the system temp dir: pytest's own temp dirs are private to
    root, which the ``postgres`` user could not enter. ``fsync`` is off, which the tests do not
    need and which makes them faster; ``settings`` are server settings that override it and the
    other defaults (a benchmark turns ``fsync`` back on, as a production server has it).

    Raises:
        PostgresUnavailableError: the binaries are missing (run ``make postgres-deps``) or the
            server did not start; the message carries the server's own log.
    """
    root = Path(tempfile.mkdtemp(prefix="wecom-pg-"))
    password = secrets.token_urlsafe(16)
    data, socket_dir, log = root / "data", root / "socket", root / "server.log"
    socket_dir.mkdir()
    password_file = root / "password"
    password_file.write_text(password + "\n", encoding="utf-8")
    if _server_user() is not None:
        shutil.chown(root, user="postgres")
        for path in (socket_dir, password_file):
            shutil.chown(path, user="postgres")
    port = _free_port()
    _run(
        [
            _binary("initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        as_server_user=True,
    )
    password_file.unlink()
    server_settings = {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "max_connections": "200",
        **(settings or {}),
    }
    options = f"-p {port} -k {socket_dir} " + " ".join(
        f"-c {name}={value}" for name, value in server_settings.items()
    )
    try:
        _run(
            [
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            as_server_user=True,
        )
    except PostgresUnavailableError as error:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailableError(f"{error}\nServer log:\n{text}") from None
    server = PostgresServer(root, port, SUPERUSER, password, DATABASE)
    server._psql(f'CREATE DATABASE "{DATABASE}"')
    return server


def _binary(name: str) -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    found = str(candidates[0]) if candidates else shutil.which(name)
    if found is None:
        raise PostgresUnavailableError(
            f"PostgreSQL's `{name}` was not found. Run `make postgres-deps` (installs Debian's "
            "postgresql package) or put the PostgreSQL server binaries on PATH."
        )
    return found


def _server_user() -> str | None:
    """``postgres`` when running as root (the server refuses root), else None (run as ourselves)."""
    return "postgres" if os.geteuid() == 0 else None


def _run(command: list[str], *, as_server_user: bool, check: bool = True) -> None:
    user = _server_user() if as_server_user else None
    full = ["runuser", "-u", user, "--", *command] if user else command
    result = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise PostgresUnavailableError(
            f"`{Path(command[0]).name}` failed ({result.returncode}): {result.stderr.strip()}"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
