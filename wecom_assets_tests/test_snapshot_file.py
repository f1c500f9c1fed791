"""Publishing by file replacement: private copies, one sync at a time, nothing left behind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import snapshots, sync
from wecom_assets.warehouse.connection import WarehouseLockedError
from wecom_assets.warehouse.snapshot_file import snapshot_session
from wecom_assets.wecom.models import Department, User


def _tables(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {
            str(row[0]) for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }


def test_the_published_file_changes_only_when_the_session_publishes(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with snapshot_session(path, lock_timeout=0) as session:
        session.conn.execute("CREATE TABLE first AS SELECT 1 AS x")
        session.publish()
    with (
        pytest.raises(RuntimeError, match="boom"),
        snapshot_session(path, lock_timeout=0) as session,
    ):
        session.conn.execute("CREATE TABLE second AS SELECT 2 AS x")
        raise RuntimeError("boom")
    assert _tables(path) == {"first"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wecom.duckdb", "wecom.duckdb.sync.lock"]


def test_a_second_sync_of_the_same_file_waits_and_then_gives_up_clearly(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with snapshot_session(path, lock_timeout=0):
        with pytest.raises(WarehouseLockedError, match="Another sync"):
            with snapshot_session(path, lock_timeout=0.2):
                pass


def test_copies_left_by_a_killed_sync_are_removed_by_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    stale = tmp_path / ".wecom.duckdb.sync-99999"
    stale.write_bytes(b"half a file")
    with snapshot_session(path, lock_timeout=0) as session:
        session.publish()
    assert not stale.exists()


def test_a_wal_left_from_before_an_earlier_replacement_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "wecom.duckdb"
    with snapshot_session(path, lock_timeout=0) as session:
        session.conn.execute("CREATE TABLE first AS SELECT 1 AS x")
        session.publish()
    older = tmp_path / "older.duckdb"
    with duckdb.connect(str(older)) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
        conn.execute("CHECKPOINT")
        conn.execute("SET checkpoint_threshold = '1GB'")
        conn.execute("INSERT INTO t SELECT range FROM range(1000)")
        (tmp_path / "older.duckdb.wal").rename(tmp_path / "wecom.duckdb.wal")
    with snapshot_session(path, lock_timeout=0) as session:
        session.publish()
    assert not (tmp_path / "wecom.duckdb.wal").exists()
    assert list(tmp_path.glob("wecom.duckdb.wal.orphaned-*"))
    assert _tables(path) == {"first"}


def test_a_sync_lets_go_of_the_fetched_tables_once_they_are_loaded(tmp_path: Path) -> None:
    org = generate_org(users=20, departments=4, seed=3)
    synced_at = datetime.now(UTC)
    snapshot = sync.Snapshot(
        corp_id=org["corp_id"],
        departments=snapshots.departments_table(
            [Department.from_api(d) for d in org["departments"]], org["corp_id"], synced_at
        ),
        users=snapshots.users_table(
            [User.from_api(u) for u in org["users"]], org["corp_id"], synced_at
        ),
        membership=True,
        history=True,
    )

    report = sync.write_and_publish(tmp_path / "w.duckdb", snapshot, lock_timeout=1)

    assert report.tables["wecom_users"].row_count == 20
    assert (snapshot.departments, snapshot.users) == (None, None)
