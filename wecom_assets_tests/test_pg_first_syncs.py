"""Corps syncing into a new PostgreSQL warehouse at once: no first sync waits for another's.

A table created inside one corp's open transaction would hold every other corp's first sync until
that transaction ends, then fail it on the duplicate name; the tables are created beforehand, in a
short transaction of their own (``pg_sync.prepare``). The tag sync has tables of its own, so its
preparation must create those too.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.warehouse import history, pg_sync, tag_sync
from wecom_assets.warehouse.postgres import connect_postgres
from wecom_assets.warehouse.sync import SyncReport
from wecom_assets.wecom.tags import TagDetail

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DETAILS = [TagDetail(2, "值班", ("alice", "bob"), (7,)), TagDetail(40, "项目组", ("bob",), ())]


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    """A database of the test's own, with no warehouse tables yet."""
    return postgres.create_database(f"first_{uuid.uuid4().hex[:12]}")


def test_a_corps_first_tag_sync_commits_while_another_corps_first_tag_sync_is_open(
    url: str,
) -> None:
    writer = connect_postgres(url)
    finished: list[SyncReport] = []
    try:
        pg_sync.prepare(writer, "wwfirsta", history.TAG)
        with writer.corp_transaction("wwfirsta"):
            tag_sync.write(writer, tag_sync.tag_snapshot(DETAILS, "wwfirsta", T0))
            other = threading.Thread(
                target=lambda: finished.append(
                    pg_sync.write_tags_and_commit(
                        url, tag_sync.tag_snapshot(DETAILS, "wwfirstb", T0)
                    )
                )
            )
            other.start()
            # A hang guard, not a timing bound: the other corp never waits for this transaction.
            other.join(timeout=120)
            assert finished, "the other corp's first tag sync waited for this corp's transaction"
    finally:
        writer.close()
    with psycopg.connect(url) as reader:
        row = reader.execute(
            "SELECT count(*) FROM wecom.wecom_tags WHERE corp_id = 'wwfirstb'"
        ).fetchone()
    assert row == (len(DETAILS),)
