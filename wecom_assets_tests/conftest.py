"""Shared fixtures: a small generated org, sandboxes, DuckDB, PostgreSQL, the Dagster UI stack."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
from clock_support import ManualClock
from e2e_instance import prepare_dagster_home

from wecom_assets.dev.postgres_cluster import PostgresServer, start_postgres
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.warehouse.postgres import PostgresConnection, connect_postgres

if TYPE_CHECKING:
    from ui_support import UiStack

# The modules that use the session's ``ui_stack``: one worker runs them all, so the stack (a
# sandbox and ``dg dev``) starts once.
UI_STACK_MODULES = frozenset({"test_ui_browser.py", "test_ui_graphql.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules with end-to-end or browser tests first, each module's tests in order.

    They are the long ones (minutes of subprocesses for some); started first, they run beside
    each other and the fast layers fill the workers' gaps, instead of one of them starting last
    and running alone.
    """
    long_modules = {
        item.path
        for item in items
        if item.get_closest_marker("e2e") or item.get_closest_marker("browser")
    }
    items.sort(key=lambda item: item.path not in long_modules)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadscope``, one pytest-xdist worker runs each whole test module.

    A module's module-scoped fixtures (a migrated instance, a sync that several tests read) are
    then built once, not once per worker, and the modules sharing the ``ui_stack`` share a worker.
    Modules are handed out in collection order (``--no-loadscope-reorder``), long ones first.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "ui_stack" if module.rsplit("/", 1)[-1] in UI_STACK_MODULES else module

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def sandbox_org_template() -> dict[str, Any]:
    """A small org (200 users, 30 departments), generated once per session; do not mutate."""
    return generate_org(users=200, departments=30, seed=7)


@pytest.fixture
def sandbox_org(sandbox_org_template: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the small org, free to modify in the test."""
    return copy.deepcopy(sandbox_org_template)


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with ``start_sandbox(org, config=None)``; all stop after the test."""
    servers: list[SandboxServer] = []

    def start(org: dict[str, Any], config: SandboxConfig | None = None) -> SandboxServer:
        server = SandboxServer(org, config).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(
    sandbox_org: dict[str, Any], start_sandbox: Callable[..., SandboxServer]
) -> SandboxServer:
    """A well-behaved sandbox serving ``sandbox_org`` on a free port."""
    return start_sandbox(sandbox_org)


@pytest.fixture(params=["duckdb", "postgres"])
def conn(request: pytest.FixtureRequest) -> Iterator[WarehouseConnection]:
    """An empty warehouse of each backend: in-memory DuckDB, or a fresh PostgreSQL schema.

    A schema of its own per test is cheaper than a database and just as isolated: every name the
    warehouse code uses resolves through the connection's search path.
    """
    if request.param == "duckdb":
        with duckdb.connect(":memory:") as connection:
            yield connection
        return
    yield request.getfixturevalue("postgres_conn")


@pytest.fixture
def postgres_conn(postgres: PostgresServer) -> Iterator[PostgresConnection]:
    """An empty PostgreSQL warehouse: a fresh schema on the session's server."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    warehouse = connect_postgres(postgres.url, schema=schema)
    try:
        warehouse.raw.execute(f"CREATE SCHEMA {schema}")
        yield warehouse
    finally:
        warehouse.close()


@pytest.fixture(scope="session")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The sandbox and ``dg dev`` on free ports, started once for every UI test of the session."""
    # Imported here: the stack's modules (dagster, dagster-graphql) take seconds to import, which
    # sessions without a UI test should not pay.
    from ui_support import running_ui_stack

    with running_ui_stack(tmp_path_factory.mktemp("ui_stack")) as stack:
        yield stack


@pytest.fixture(scope="session")
def migrated_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An instance of this repository's ``dagster.yaml``, initialised once; never run in.

    End-to-end tests take a copy each (``e2e_instance.copy_dagster_home``).
    """
    return prepare_dagster_home(tmp_path_factory.mktemp("migrated") / "dagster_home")


@pytest.fixture
def clock() -> ManualClock:
    """A monotonic clock the test moves by hand (``clock.advance(seconds)``)."""
    return ManualClock()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session; tests take a database of their own."""
    server = start_postgres()
    yield server
    server.stop()
