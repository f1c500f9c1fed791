"""One tag sync written into the warehouse: the three tag tables and their history, published whole.

The sibling of :mod:`wecom_assets.warehouse.sync` for the tags, which a step of their own syncs:
a failure here never holds back the org tables, and the org tables are never written here. The
guarantees are the same: each table is checked and guarded against shrinking before the next is
written, everything happens in a private copy of the file that replaces the published one only
when all of it passed, so after any failure the tag tables equal the last good tag sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from wecom_assets.warehouse import history, publish
from wecom_assets.warehouse.connection import ConnectionConfig, WarehouseConnection
from wecom_assets.warehouse.snapshot_file import snapshot_session
from wecom_assets.warehouse.sync import HistoryReport, SyncReport, history_report, refusals_rejected
from wecom_assets.warehouse.tables import TAG_DEPARTMENTS, TAG_MEMBERSHIP, TAGS
from wecom_assets.wecom.tags import TagDetail

# Tag events of the change view, as they are counted in a report.
_TAG_EVENTS = ("tag_added", "tag_removed", "tag_renamed", "tagged", "untagged")


@dataclass(frozen=True, slots=True)
class TagSnapshot:
    """What one tag sync of one corp fetched; only that corp's rows are replaced.

    ``tag_departments`` is not held to the shrink guard: a handful of rows, where losing most of
    them is an ordinary edit in the admin console rather than a sign of a narrowed range.
    """

    corp_id: str
    tags: pa.Table
    membership: pa.Table
    departments: pa.Table
    max_shrink_fraction: float | None = publish.DEFAULT_MAX_SHRINK_FRACTION
    run_id: str | None = None


def tag_snapshot(
    details: Sequence[TagDetail],
    corp_id: str,
    synced_at: datetime,
    *,
    max_shrink_fraction: float | None = publish.DEFAULT_MAX_SHRINK_FRACTION,
    run_id: str | None = None,
) -> TagSnapshot:
    """The Arrow snapshots of the three tag tables from the fetched tags."""
    tags = pa.table(
        {
            "corp_id": [corp_id] * len(details),
            "tag_id": [d.tag_id for d in details],
            "tag_name": [d.tag_name for d in details],
            "synced_at": [synced_at] * len(details),
        },
        schema=TAGS.arrow_schema,
    )
    members = [(d.tag_id, userid) for d in details for userid in d.userids]
    parties = [(d.tag_id, department) for d in details for department in d.department_ids]
    membership = pa.table(
        {
            "corp_id": [corp_id] * len(members),
            "tag_id": [tag_id for tag_id, _ in members],
            "userid": [userid for _, userid in members],
        },
        schema=TAG_MEMBERSHIP.arrow_schema,
    )
    departments = pa.table(
        {
            "corp_id": [corp_id] * len(parties),
            "tag_id": [tag_id for tag_id, _ in parties],
            "department_id": [department for _, department in parties],
        },
        schema=TAG_DEPARTMENTS.arrow_schema,
    )
    return TagSnapshot(corp_id, tags, membership, departments, max_shrink_fraction, run_id)


def write_and_publish_tags(
    path: Path,
    snapshot: TagSnapshot,
    *,
    lock_timeout: float,
    config: ConnectionConfig | None = None,
) -> SyncReport:
    """Write ``snapshot`` and its history into a copy of the warehouse; publish if all passes.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history consistency check
            failed; nothing was published.
        WarehouseError: the file is locked by another sync or damaged.
    """
    with snapshot_session(path, lock_timeout=lock_timeout, config=config) as session:
        tables, report = write(session.conn, snapshot)
        return SyncReport(tables=tables, history=report, published=session.publish())


def write(
    conn: WarehouseConnection, snapshot: TagSnapshot
) -> tuple[dict[str, publish.ReplaceResult], HistoryReport]:
    """Write the three tag tables and their history; the caller makes it visible.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history refused it.
    """
    tables: dict[str, publish.ReplaceResult] = {}
    loads = (
        (TAGS, snapshot.tags, snapshot.max_shrink_fraction),
        (TAG_MEMBERSHIP, snapshot.membership, snapshot.max_shrink_fraction),
        (TAG_DEPARTMENTS, snapshot.departments, None),
    )
    with refusals_rejected(tables):
        for spec, fetched, max_shrink in loads:
            tables[spec.name] = publish.replace_table(
                conn, spec, fetched, corp_id=snapshot.corp_id, max_shrink_fraction=max_shrink
            )
        result = history.apply_snapshot(
            conn, snapshot.corp_id, run_id=snapshot.run_id, scope=history.TAG
        )
    return tables, history_report(conn, snapshot.corp_id, result, _TAG_EVENTS)
