"""Helpers for the history tests: load an org straight into the tables, and evolve an org.

``load_snapshot`` writes exactly what a sync of that org would (the same parsing, Arrow snapshots,
rules and atomic replacement as the assets), without HTTP or Dagster, so scenario tests over many
syncs stay fast.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import visible_view
from wecom_assets.warehouse import history, publish, snapshots, tag_sync
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.warehouse.tables import (
    DEPARTMENTS,
    TAG_DEPARTMENTS,
    TAG_MEMBERSHIP,
    TAGS,
    USERS,
)
from wecom_assets.wecom.models import Department, User
from wecom_assets.wecom.tags import TagDetail


def load_snapshot(
    conn: WarehouseConnection,
    org: dict[str, Any],
    synced_at: datetime,
    visible: Collection[int] | None = None,
) -> None:
    """Replace the three current tables with ``org`` as an app with ``visible`` range sees it."""
    view = visible_view(org, visible)
    departments = [Department.from_api(d) for d in view["departments"]]
    users = [User.from_api(u) for u in view["users"]]
    corp_id = org["corp_id"]
    publish.replace_table(
        conn,
        DEPARTMENTS,
        snapshots.departments_table(departments, corp_id, synced_at),
        corp_id=corp_id,
        max_shrink_fraction=None,
    )
    publish.replace_table(
        conn,
        USERS,
        snapshots.users_table(users, corp_id, synced_at),
        corp_id=corp_id,
        max_shrink_fraction=None,
    )
    publish.replace_membership(conn, corp_id)


def plain_users(org: OrgEditor, count: int) -> list[str]:
    """``count`` active members of exactly one department who lead nothing, in org order."""
    leaders = {uid for d in org.data["departments"] for uid in d.get("department_leader") or []}
    found = [
        u["userid"]
        for u in org.data["users"]
        if u.get("status") == 1
        and len(u["department"]) == 1
        and u.get("main_department") == u["department"][0]
        and u["userid"] not in leaders
    ]
    assert len(found) >= count, "the generated org has too few plain members"
    return found[:count]


def expected_intervals(
    snapshots: Sequence[set[tuple[Any, ...]]], key_length: int
) -> set[tuple[tuple[Any, ...], int, int | None]]:
    """The versions a type-2 history of these snapshots must hold, by snapshot index.

    A key's version runs from the snapshot where its row first appears (or changes) to the
    snapshot where the row changes or is gone (None while it still holds at the last one).
    """
    result: set[tuple[tuple[Any, ...], int, int | None]] = set()
    open_versions: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for index, rows in enumerate(snapshots):
        current = {row[:key_length]: row for row in rows}
        for key, (row, start) in list(open_versions.items()):
            if current.get(key) != row:
                result.add((key, start, index))
                del open_versions[key]
        for key, row in current.items():
            open_versions.setdefault(key, (row, index))
    result.update((key, start, None) for key, (_, start) in open_versions.items())
    return result


def load_tags(
    conn: WarehouseConnection, corp_id: str, details: Sequence[TagDetail], at: datetime
) -> None:
    """Replace a corp's three tag tables with ``details`` and fold them into the tag history."""
    snapshot = tag_sync.tag_snapshot(details, corp_id, at)
    for spec, table in (
        (TAGS, snapshot.tags),
        (TAG_MEMBERSHIP, snapshot.membership),
        (TAG_DEPARTMENTS, snapshot.departments),
    ):
        publish.replace_table(conn, spec, table, corp_id=corp_id, max_shrink_fraction=None)
    history.apply_snapshot(conn, corp_id, scope=history.TAG)
