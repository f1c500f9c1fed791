"""Tag tables in the warehouse: publish, checks, shrink guard, and the tag change events.

Every behaviour that both warehouses share runs on the DuckDB file and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster_support import table_rows
from history_support import load_snapshot

from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import history, pg_sync, quality
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.warehouse.postgres import connect_postgres
from wecom_assets.warehouse.sync import SyncRejectedError, SyncReport
from wecom_assets.warehouse.tag_sync import TagSnapshot, tag_snapshot, write_and_publish_tags
from wecom_assets.wecom.tags import TagDetail

CORP = "wwtags"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BASE = [
    TagDetail(2, "值班", ("alice", "bob"), (7,)),
    TagDetail(40, "🚀 项目组", ("bob",), ()),
    TagDetail(4_294_967_295, '"安全" 联络人', (), ()),
]


@dataclass
class Warehouse:
    """A DuckDB file (``url`` empty) or a PostgreSQL schema that tag syncs are written to."""

    path: Path
    url: str = ""
    schema: str = ""

    def publish(self, snapshot: TagSnapshot) -> SyncReport:
        if self.url:
            return pg_sync.write_tags_and_commit(self.url, snapshot, schema=self.schema)
        return write_and_publish_tags(self.path, snapshot, lock_timeout=5.0)

    def rows(self, sql: str) -> set[tuple[Any, ...]]:
        if not self.url:
            return table_rows(self.path, sql)
        conn = connect_postgres(self.url, schema=self.schema)
        try:
            return {tuple(row) for row in conn.execute(sql).fetchall()}
        finally:
            conn.close()


def _sync(warehouse: Warehouse, details: list[TagDetail], at: datetime, **options: Any) -> Any:
    return warehouse.publish(tag_snapshot(details, CORP, at, **options))


def _events(warehouse: Warehouse) -> set[tuple[Any, ...]]:
    return warehouse.rows(
        "SELECT entity, event, entity_id, name, old_value, new_value, tag_id "
        "FROM wecom_org_changes WHERE tag_id IS NOT NULL",
    )


def _tag_tables(warehouse: Warehouse) -> dict[str, set[tuple[Any, ...]]]:
    return {
        name: warehouse.rows(f"SELECT * FROM {name}")
        for name in ("wecom_tags", "tag_membership", "tag_departments", "wecom_tags_history")
    }


@pytest.fixture(params=["duckdb", "postgres"])
def empty_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    if request.param == "duckdb":
        return Warehouse(tmp_path / "wecom.duckdb")
    server: PostgresServer = request.getfixturevalue("postgres")
    return Warehouse(tmp_path, server.url, f"tags_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def warehouse(empty_warehouse: Warehouse) -> Warehouse:
    _sync(empty_warehouse, BASE, T0)
    return empty_warehouse


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    path = tmp_path / "wecom.duckdb"
    _sync(Warehouse(path), BASE, T0)
    return path


def test_the_tag_tables_hold_exactly_what_the_api_returned(warehouse: Warehouse) -> None:
    assert warehouse.rows("SELECT corp_id, tag_id, tag_name FROM wecom_tags") == {
        (CORP, 2, "值班"),
        (CORP, 40, "🚀 项目组"),
        (CORP, 4_294_967_295, '"安全" 联络人'),
    }
    assert warehouse.rows("SELECT * FROM tag_membership") == {
        (CORP, 2, "alice"),
        (CORP, 2, "bob"),
        (CORP, 40, "bob"),
    }
    assert warehouse.rows("SELECT * FROM tag_departments") == {(CORP, 2, 7)}


def test_the_first_tag_sync_produces_no_events(warehouse: Warehouse) -> None:
    assert _events(warehouse) == set()


def test_tagging_and_untagging_a_member_are_events_named_for_the_tag(warehouse: Warehouse) -> None:
    _sync(warehouse, [TagDetail(2, "值班", ("alice", "carol"), (7,)), *BASE[1:]], T0 + DAY)
    assert _events(warehouse) == {
        ("user", "tagged", "carol", "值班", None, "2", 2),
        ("user", "untagged", "bob", "值班", "2", None, 2),
    }


def test_tagging_and_untagging_a_department_are_events(warehouse: Warehouse) -> None:
    _sync(warehouse, [TagDetail(2, "值班", ("alice", "bob"), (9,)), *BASE[1:]], T0 + DAY)
    assert _events(warehouse) == {
        ("department", "tagged", "9", "值班", None, "2", 2),
        ("department", "untagged", "7", "值班", "2", None, 2),
    }


def test_a_new_a_removed_and_a_renamed_tag_are_events(warehouse: Warehouse) -> None:
    tags = [
        TagDetail(2, "值班组", ("alice", "bob"), (7,)),
        BASE[1],
        TagDetail(12, "面试官", (), ()),
    ]
    _sync(warehouse, tags, T0 + DAY)
    assert _events(warehouse) == {
        ("tag", "tag_renamed", "2", "值班组", "值班", "值班组", 2),
        ("tag", "tag_removed", "4294967295", '"安全" 联络人', None, None, 4_294_967_295),
        ("tag", "tag_added", "12", "面试官", None, None, 12),
    }


def test_the_same_tags_synced_again_add_no_versions_and_no_events(warehouse: Warehouse) -> None:
    before = warehouse.rows("SELECT * FROM wecom_tags_history")
    report = _sync(warehouse, BASE, T0 + DAY)
    assert report.history.result.opened == report.history.result.closed == 0
    assert warehouse.rows("SELECT * FROM wecom_tags_history") == before
    assert _events(warehouse) == set()


def test_a_shrink_beyond_the_guard_publishes_nothing(warehouse: Warehouse) -> None:
    before = _tag_tables(warehouse)
    with pytest.raises(SyncRejectedError, match="wecom_tags would shrink"):
        _sync(warehouse, BASE[:1], T0 + DAY)
    assert _tag_tables(warehouse) == before


def test_the_shrink_guard_can_be_lifted_for_one_sync(warehouse: Warehouse) -> None:
    _sync(warehouse, BASE[:1], T0 + DAY, max_shrink_fraction=None)
    assert warehouse.rows("SELECT tag_id FROM wecom_tags") == {(2,)}


def test_duplicate_tag_ids_are_rejected_and_nothing_is_published(warehouse: Warehouse) -> None:
    before = _tag_tables(warehouse)
    with pytest.raises(SyncRejectedError, match="unique_tag_ids") as raised:
        _sync(warehouse, [*BASE, TagDetail(2, "again", (), ())], T0 + DAY)
    assert not next(o for o in raised.value.outcomes["wecom_tags"]).passed
    assert _tag_tables(warehouse) == before


def test_members_missing_from_wecom_users_are_a_warning_that_does_not_block(
    warehouse: Warehouse,
) -> None:
    report = _sync(warehouse, BASE, T0 + DAY)
    outcome = next(
        o for o in report.tables["tag_membership"].outcomes if o.name == "tagged_users_exist"
    )
    assert (outcome.passed, outcome.blocking) == (False, False)
    assert outcome.offending_ids == ("alice", "bob")


def test_tagged_members_present_in_wecom_users_pass(conn: WarehouseConnection) -> None:
    conn.execute("CREATE TABLE wecom_users (corp_id VARCHAR, userid VARCHAR)")
    conn.execute("INSERT INTO wecom_users VALUES ('c', 'alice'), ('c', 'bob')")
    conn.execute("CREATE TABLE m AS SELECT 'c' AS corp_id, 2 AS tag_id, 'alice' AS userid")
    assert quality.tagged_users_exist(conn, "m", users="wecom_users").passed


def test_rows_of_a_tag_that_is_not_in_wecom_tags_block(conn: WarehouseConnection) -> None:
    conn.execute("CREATE TABLE wecom_tags (corp_id VARCHAR, tag_id BIGINT)")
    conn.execute("INSERT INTO wecom_tags VALUES ('c', 2)")
    conn.execute("CREATE TABLE m AS SELECT 'c' AS corp_id, 3 AS tag_id, 'alice' AS userid")
    outcome = quality.references_existing_tags(conn, "m", tags="wecom_tags")
    assert (outcome.passed, outcome.blocking, outcome.offending_ids) == (False, True, ("3",))


def test_another_corps_tags_are_left_alone(warehouse: Warehouse) -> None:
    other = tag_snapshot([TagDetail(2, "other", ("zed",), ())], "wwother", T0 + DAY)
    warehouse.publish(other)
    assert warehouse.rows("SELECT corp_id, count(*) FROM wecom_tags GROUP BY corp_id") == {
        (CORP, 3),
        ("wwother", 1),
    }


def test_an_open_reader_keeps_its_snapshot_and_does_not_block(duckdb_file: Path) -> None:
    reader = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        _sync(Warehouse(duckdb_file), [*BASE, TagDetail(12, "面试官", (), ())], T0 + DAY)
        assert reader.execute("SELECT count(*) FROM wecom_tags").fetchone() == (3,)
    finally:
        reader.close()
    assert table_rows(duckdb_file, "SELECT count(*) FROM wecom_tags") == {(4,)}


def test_an_empty_tag_list_makes_empty_tables(empty_warehouse: Warehouse) -> None:
    empty_warehouse.publish(tag_snapshot([], CORP, T0))
    assert empty_warehouse.rows("SELECT count(*) FROM wecom_tags") == {(0,)}


def test_the_org_history_folds_in_after_a_tag_sync_made_the_file(duckdb_file: Path) -> None:
    org = generate_org(users=20, departments=4, seed=1)
    with duckdb.connect(str(duckdb_file)) as conn:
        load_snapshot(conn, org, T0 + DAY)
        result = history.apply_snapshot(conn, org["corp_id"])
    assert result.applied
    assert table_rows(duckdb_file, "SELECT count(*) FROM wecom_department_paths") == {(4,)}
    assert _events(Warehouse(duckdb_file)) == set()
