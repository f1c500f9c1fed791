"""The PostgreSQL warehouse: one transaction per corp's sync, concurrent corps, readers unblocked.

The SQL itself is proven on both backends by the parametrized history, path and quality suites;
these are the guarantees only PostgreSQL has to keep on its own.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest
from dagster_support import expected_membership, resources

from wecom_assets.defs.assets import build_org_assets
from wecom_assets.defs.definitions import ResourceSettings, build_defs
from wecom_assets.defs.resources import WarehouseResource
from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.sandbox.org import generate_org, visible_view
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer
from wecom_assets.warehouse import pg_sync, snapshots, sync
from wecom_assets.warehouse.connection import WarehouseError
from wecom_assets.warehouse.postgres import PostgresConnectError, connect_postgres, display_url
from wecom_assets.wecom.models import Department, User

T1 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    """A database of the test's own; the warehouse creates its schema there."""
    return postgres.create_database(f"wh_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    return generate_org(users=80, departments=10, seed=5, corp_id="wwcorpa")


@pytest.fixture(scope="module")
def other_org() -> dict[str, Any]:
    return generate_org(users=60, departments=8, seed=6, corp_id="wwcorpb")


def _snapshot(org: dict[str, Any], at: datetime, users: int | None = None) -> sync.Snapshot:
    view = visible_view(org, None)
    corp_id = org["corp_id"]
    return sync.Snapshot(
        corp_id=corp_id,
        departments=snapshots.departments_table(
            [Department.from_api(d) for d in view["departments"]], corp_id, at
        ),
        users=snapshots.users_table([User.from_api(u) for u in view["users"][:users]], corp_id, at),
        membership=True,
        history=True,
    )


def _reader(url: str) -> psycopg.Connection[Any]:
    """An analyst's session that fails instead of waiting for any lock."""
    reader = psycopg.connect(url, autocommit=True)
    reader.execute("SET lock_timeout = '500ms'")
    return reader


def _count(reader: psycopg.Connection[Any], relation: str, corp_id: str) -> int:
    row = reader.execute(
        f"SELECT count(*) FROM wecom.{relation} WHERE corp_id = %s", [corp_id]
    ).fetchone()
    return int(row[0]) if row else -1


def test_a_sync_lands_in_schema_wecom_in_postgres_types(url: str, org: dict[str, Any]) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url) as reader:
        types: dict[str, str] = dict(
            reader.execute(
                "SELECT table_name || '.' || column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = 'wecom'"
            ).fetchall()
        )
    assert {
        name: types[name]
        for name in (
            "wecom_users.corp_id",
            "wecom_users.status",
            "wecom_users.departments",
            "wecom_users.direct_leaders",
            "wecom_users.is_leader_in_dept",
            "wecom_users.extattr",
            "wecom_users.synced_at",
            "wecom_departments.id",
            "wecom_history_runs.changes",
            "wecom_department_paths.id_path",
            "wecom_org_changes.changed_at",
        )
    } == {
        "wecom_users.corp_id": "text",
        "wecom_users.status": "int4",
        "wecom_users.departments": "_int8",
        "wecom_users.direct_leaders": "_text",
        "wecom_users.is_leader_in_dept": "_bool",
        "wecom_users.extattr": "jsonb",
        "wecom_users.synced_at": "timestamptz",
        "wecom_departments.id": "int8",
        "wecom_history_runs.changes": "jsonb",
        "wecom_department_paths.id_path": "_int8",
        "wecom_org_changes.changed_at": "timestamptz",
    }


def test_a_corp_sync_is_committed_whole(url: str, org: dict[str, Any]) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url) as reader:
        assert _count(reader, "wecom_users", "wwcorpa") == len(visible_view(org, None)["users"])
        assert _count(reader, "dept_membership", "wwcorpa") == len(expected_membership(org))
        assert _count(reader, "wecom_users_history", "wwcorpa") == _count(
            reader, "wecom_users", "wwcorpa"
        )
        assert _count(reader, "wecom_history_runs", "wwcorpa") == 1


def test_a_view_made_by_another_version_is_replaced_once(url: str, org: dict[str, Any]) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP VIEW wecom.wecom_org_changes")
        admin.execute("CREATE VIEW wecom.wecom_org_changes AS SELECT 1 AS stale")
    pg_sync.write_and_commit(url, _snapshot(org, T2))
    with psycopg.connect(url) as reader:
        columns = reader.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'wecom' AND table_name = 'wecom_org_changes'"
        ).fetchall()
        created = reader.execute(
            "SELECT xmin FROM pg_class WHERE oid = 'wecom.wecom_org_changes'::regclass"
        ).fetchone()
    assert ("tag_id",) in columns and ("stale",) not in columns
    pg_sync.write_and_commit(url, _snapshot(org, T2 + timedelta(hours=1)))
    with psycopg.connect(url) as reader:
        again = reader.execute(
            "SELECT xmin FROM pg_class WHERE oid = 'wecom.wecom_org_changes'::regclass"
        ).fetchone()
    assert again == created


def test_each_sync_refreshes_the_statistics_its_joins_are_planned_with(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    pg_sync.write_and_commit(url, _snapshot(org, T2))
    with psycopg.connect(url) as reader:
        planned = reader.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'wecom.wecom_users_history'::regclass"
        ).fetchone()
    assert planned is not None
    # The second sync was planned with the first sync's rows, not with an empty table.
    assert planned[0] == len(visible_view(org, None)["users"])


def test_each_sync_analyzes_only_the_columns_its_statements_are_planned_with(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url, autocommit=True) as admin:
        # Autovacuum would analyze every column of them some time after the first sync.
        for table in ("wecom_users", "wecom_users_history"):
            admin.execute(f"ALTER TABLE wecom.{table} SET (autovacuum_enabled = false)")
    pg_sync.write_and_commit(url, _snapshot(org, T2))
    with psycopg.connect(url) as reader:
        analyzed = {
            (str(table), str(column))
            for table, column in reader.execute(
                "SELECT tablename, attname FROM pg_stats WHERE schemaname = 'wecom' "
                "AND tablename IN ('wecom_users', 'wecom_users_history')"
            ).fetchall()
        }
    assert analyzed == {
        ("wecom_users", "corp_id"),
        ("wecom_users", "userid"),
        *(
            ("wecom_users_history", column)
            for column in ("corp_id", "userid", "valid_from", "valid_to", "row_hash")
        ),
    }


def test_stale_row_hashes_are_refreshed_in_the_sync_not_turned_into_versions(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url, autocommit=True) as admin:
        # As after an upgrade that hashes the business columns differently.
        admin.execute("UPDATE wecom.wecom_users_history SET row_hash = md5(row_hash)")
    report = pg_sync.write_and_commit(url, _snapshot(org, T2))
    assert report.history is not None
    assert (report.history.result.opened, report.history.result.closed) == (0, 0)


def test_a_users_only_sync_reads_the_committed_department_ids(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    expected = sorted(d["id"] for d in visible_view(org, None)["departments"])
    assert pg_sync.current_department_ids(url, "wwcorpa") == expected


def test_a_table_of_an_older_release_is_rebuilt_with_the_views_over_it(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("ALTER TABLE wecom.wecom_departments DROP COLUMN name_en")
    pg_sync.write_and_commit(url, _snapshot(org, T2))
    with psycopg.connect(url) as reader:
        assert _count(reader, "wecom_departments", "wwcorpa") == len(org["departments"])
        assert _count(reader, "wecom_department_paths", "wwcorpa") == len(org["departments"])


def test_an_analysts_view_over_a_table_to_rebuild_stops_the_sync_and_is_kept(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("ALTER TABLE wecom.wecom_departments DROP COLUMN name_en")
        admin.execute("CREATE VIEW public.mine AS SELECT id FROM wecom.wecom_departments")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        pg_sync.write_and_commit(url, _snapshot(org, T2))
    with psycopg.connect(url) as reader:
        assert reader.execute("SELECT count(*) FROM public.mine").fetchone() == (
            len(org["departments"]),
        )


def test_a_rejected_table_rolls_back_the_tables_written_before_it(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    shrunk = _snapshot(org, T2, users=10)
    with pytest.raises(sync.SyncRejectedError, match="shrink"):
        pg_sync.write_and_commit(url, shrunk)
    with psycopg.connect(url) as reader:
        synced = reader.execute(
            "SELECT DISTINCT synced_at FROM wecom.wecom_departments WHERE corp_id = 'wwcorpa'"
        ).fetchall()
        assert synced == [(T1,)]
        assert _count(reader, "wecom_history_runs", "wwcorpa") == 1


def test_another_corps_sync_commits_while_a_corps_transaction_is_open(
    url: str, org: dict[str, Any], other_org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    writer = connect_postgres(url)
    finished: list[sync.SyncReport] = []
    try:
        with writer.corp_transaction("wwcorpa"):
            sync.write(writer, _snapshot(org, T2))
            other = threading.Thread(
                target=lambda: finished.append(
                    pg_sync.write_and_commit(url, _snapshot(other_org, T2))
                )
            )
            other.start()
            # A hang guard, not a timing bound: the other corp never waits for this transaction.
            other.join(timeout=120)
            assert finished, "the other corp's sync waited for this corp's open transaction"
    finally:
        writer.close()
    with psycopg.connect(url) as reader:
        assert _count(reader, "wecom_users", "wwcorpb") == len(
            visible_view(other_org, None)["users"]
        )
        assert _count(reader, "wecom_history_runs", "wwcorpa") == 2


def _waiting_for_an_advisory_lock(url: str) -> bool:
    with psycopg.connect(url) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
        ).fetchone()
    return bool(row and row[0])


def test_a_second_sync_of_the_same_corp_waits_for_the_first_then_applies(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    writer = connect_postgres(url)
    second = threading.Thread(
        target=pg_sync.write_and_commit, args=(url, _snapshot(org, T2 + timedelta(hours=1)))
    )
    try:
        with writer.corp_transaction("wwcorpa"):
            sync.write(writer, _snapshot(org, T2))
            second.start()
            while not _waiting_for_an_advisory_lock(url):
                assert second.is_alive(), "the second sync did not wait for the first"
    finally:
        writer.close()
    second.join(timeout=120)
    with psycopg.connect(url) as reader:
        runs = reader.execute(
            "SELECT snapshot_at FROM wecom.wecom_history_runs ORDER BY snapshot_at"
        ).fetchall()
    assert runs == [(T1,), (T2,), (T2 + timedelta(hours=1),)]


def test_two_corps_syncing_at_once_both_land(
    url: str, org: dict[str, Any], other_org: dict[str, Any]
) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(corp: dict[str, Any]) -> None:
        start.wait()
        try:
            pg_sync.write_and_commit(url, _snapshot(corp, T1))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(corp,)) for corp in (org, other_org)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with psycopg.connect(url) as reader:
        for corp in (org, other_org):
            expected = len(visible_view(corp, None)["users"])
            assert _count(reader, "wecom_users", corp["corp_id"]) == expected
            assert _count(reader, "wecom_users_history", corp["corp_id"]) == expected


def test_a_reader_sees_the_last_sync_and_is_not_blocked_while_a_sync_is_open(
    url: str, org: dict[str, Any]
) -> None:
    pg_sync.write_and_commit(url, _snapshot(org, T1))
    reader = _reader(url)
    before = {
        relation: _count(reader, relation, "wwcorpa")
        for relation in (
            "wecom_users",
            "dept_membership",
            "wecom_users_history",
            "wecom_org_changes",
        )
    }
    writer = connect_postgres(url)
    try:
        with writer.corp_transaction("wwcorpa"):
            sync.write(writer, _snapshot(org, T2, users=50))
            during = {relation: _count(reader, relation, "wwcorpa") for relation in before}
            paths = _count(reader, "wecom_department_paths", "wwcorpa")
    finally:
        writer.close()
    assert during == before
    assert paths == len(visible_view(org, None)["departments"])
    assert _count(reader, "wecom_users", "wwcorpa") == 50
    reader.close()


def test_a_wrong_password_is_never_in_the_error(postgres: PostgresServer) -> None:
    wrong = "Wrong-Secret-4711"
    url = postgres.url.replace(postgres.password, wrong)
    with pytest.raises(PostgresConnectError) as raised:
        connect_postgres(url)
    assert wrong not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert display_url(url) in str(raised.value)


def test_a_wrong_pgpassword_is_never_in_the_error(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wrong-Secret-0815"
    monkeypatch.setenv("PGPASSWORD", wrong)
    with pytest.raises(PostgresConnectError) as raised:
        connect_postgres(display_url(postgres.url))
    assert wrong not in str(raised.value)


def test_the_metadata_names_the_url_without_its_password(postgres: PostgresServer) -> None:
    shown = WarehouseResource(url=postgres.url).effective_settings()
    assert postgres.password not in repr(shown)
    assert shown["warehouse/backend"] == "postgres"
    assert shown["postgres/url"] == (
        f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.database}"
    )


def test_a_duckdb_connection_is_refused_when_the_warehouse_is_postgres() -> None:
    warehouse = WarehouseResource(url="postgresql://analyst@db/org")
    with pytest.raises(WarehouseError, match="query schema wecom"), warehouse.get_connection():
        pass


def test_a_warehouse_url_of_another_database_is_refused_naming_the_variable() -> None:
    with pytest.raises(WarehouseError, match="WECOM_WAREHOUSE_URL") as raised:
        WarehouseResource(url="mysql://analyst:Secret-77@db/org").effective_settings()
    assert "Secret-77" not in str(raised.value)


@pytest.mark.parametrize("missing", ["psycopg", "sqlglot"])
def test_a_missing_postgres_extra_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.delitem(sys.modules, "wecom_assets.warehouse.dialect", raising=False)
    with pytest.raises(WarehouseError, match=rf"{missing} is not installed: pip install "):
        connect_postgres("postgresql://someone@localhost/db")


def test_postgres_definitions_leave_the_duckdb_pool_out() -> None:
    def pools(settings: ResourceSettings) -> set[str | None]:
        assets = build_defs(settings=settings).assets or []
        return {a.op.pool for a in assets if isinstance(a, dg.AssetsDefinition)}

    assert pools(ResourceSettings(warehouse={"url": "postgresql://u@db/wh"})) == {None}
    assert pools(ResourceSettings()) == {"wecom_duckdb"}


def test_postgres_definitions_show_postgres_as_the_kind_of_every_table() -> None:
    def kinds(settings: ResourceSettings) -> set[str]:
        assets = build_defs(settings=settings).assets or []
        return {
            kind
            for a in assets
            if isinstance(a, dg.AssetsDefinition)
            for spec in a.specs
            for kind in spec.kinds
        }

    assert {"postgres", "wecom"} <= kinds(
        ResourceSettings(warehouse={"url": "postgresql://u@db/wh"})
    )
    assert "duckdb" not in kinds(ResourceSettings(warehouse={"url": "postgresql://u@db/wh"}))
    assert "duckdb" in kinds(ResourceSettings())


@pytest.fixture
def sandbox(org: dict[str, Any]) -> Iterator[SandboxServer]:
    with SandboxServer(org, SandboxConfig()) as server:
        yield server


def test_a_dagster_materialization_writes_postgres(
    url: str, org: dict[str, Any], sandbox: SandboxServer, tmp_path: Any
) -> None:
    settings = resources(org, sandbox.url, tmp_path)
    settings["duckdb"] = WarehouseResource(url=url)
    result = dg.materialize(
        [build_org_assets(pool=None)],
        selection=["wecom_departments", "wecom_users", "dept_membership", "wecom_users_history"],
        resources=settings,
    )
    assert result.success
    metadata = [
        {k: v.value for k, v in event.metadata.items()}
        for event in result.asset_materializations_for_node("wecom_org")
    ]
    assert {m["warehouse/backend"] for m in metadata} == {"postgres"}
    assert {m["dagster/table_name"] for m in metadata} == {
        "wecom.wecom_departments",
        "wecom.wecom_users",
        "wecom.dept_membership",
        "wecom.wecom_users_history",
    }
    assert not any(org["corp_secret"] in repr(m) or url.split("@")[0] in repr(m) for m in metadata)
    with psycopg.connect(url) as reader:
        assert _count(reader, "dept_membership", org["corp_id"]) == len(expected_membership(org))
        assert _count(reader, "wecom_users_history", org["corp_id"]) > 0
