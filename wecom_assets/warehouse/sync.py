"""One sync written into the warehouse: the selected tables and the history, then published whole.

The order is fixed by the lineage (departments, users, membership, history) and every table is
checked before the next one is written; all of it happens in a private copy of the file that is
published only when everything passed (:mod:`wecom_assets.warehouse.snapshot_file`). So after any
failure every table and the history equal the last successful sync, never a mix of two days.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from wecom_assets.warehouse import history, publish
from wecom_assets.warehouse.connection import (
    ConnectionConfig,
    WarehouseConnection,
    WarehouseError,
    quote,
)
from wecom_assets.warehouse.quality import CheckOutcome
from wecom_assets.warehouse.schema import TableSpec
from wecom_assets.warehouse.snapshot_file import Published, snapshot_session
from wecom_assets.warehouse.tables import (
    DEPARTMENTS,
    MEMBERSHIP,
    ORG_CHANGES,
    USERS,
    USERS_CASE_SENSITIVE,
)


@dataclass(slots=True)
class Snapshot:
    """What one sync of one corp fetched and which tables it writes.

    Only that corp's rows are replaced; other corps' rows and history are left as they are. A table that is written without a fetched snapshot is derived from the tables already in the
    file: ``dept_membership`` from ``wecom_users``.

    Writing takes the fetched tables: each is set to None once DuckDB holds its rows, so the
    Arrow data (55 MB for 100k users) is freed before the history and the publish, which need
    the most memory. Callers keep no other reference to them.
    """

    corp_id: str
    departments: pa.Table | None = None
    users: pa.Table | None = None
    membership: bool = False
    history: bool = False
    max_shrink_fraction: float | None = publish.DEFAULT_MAX_SHRINK_FRACTION
    userids_case_sensitive: bool = False
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryReport:
    """What folding the snapshot into the history did, with row counts after it."""

    result: history.HistoryResult
    row_counts: dict[str, int]
    events: dict[str, int]


@dataclass(frozen=True, slots=True)
class SyncReport:
    """A published sync: the replaced tables, the history, and the file replacement (DuckDB)."""

    tables: dict[str, publish.ReplaceResult]
    history: HistoryReport | None
    published: Published | None


class SyncRejectedError(WarehouseError):
    """A check, the shrink guard or the history refused the sync; nothing was published.

    ``outcomes`` holds the rule outcomes per table evaluated so far, including the failing ones,
    so they can be reported although nothing became visible.
    """

    def __init__(self, cause: Exception, outcomes: dict[str, tuple[CheckOutcome, ...]]) -> None:
        super().__init__(f"{cause} Nothing was published; every table is as the last sync left it.")
        self.outcomes = outcomes


def department_ids(
    path: Path, corp_id: str, *, lock_timeout: float, config: ConnectionConfig | None
) -> list[int]:
    """Ids of a corp's departments in the published file, for a users-only sync.

    Read from a private copy, so an analyst's session on the file does not block it.
    """
    with snapshot_session(path, lock_timeout=lock_timeout, config=config) as session:
        return publish.department_ids(session.conn, corp_id)


def write_and_publish(
    path: Path,
    snapshot: Snapshot,
    *,
    lock_timeout: float,
    config: ConnectionConfig | None = None,
) -> SyncReport:
    """Write ``snapshot`` into a copy of the warehouse and publish it if everything passes.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history consistency check
            failed.
        WarehouseError: the file is locked by another sync, damaged, or a table is missing.
    """
    with snapshot_session(path, lock_timeout=lock_timeout, config=config) as session:
        tables, history_report = write(session.conn, snapshot)
        return SyncReport(tables=tables, history=history_report, published=session.publish())


@contextmanager
def refusals_rejected(tables: Mapping[str, publish.ReplaceResult]) -> Iterator[None]:
    """Turn a blocking check's, the shrink guard's or the history's refusal into one error.

    The :class:`SyncRejectedError` carries the rule outcomes of every table written so far and
    those of the refusal, so a step can report them although nothing was published.
    """
    try:
        yield
    except publish.SnapshotRejectedError as rejected:
        outcomes = {name: result.outcomes for name, result in tables.items()}
        outcomes[rejected.table] = rejected.outcomes
        raise SyncRejectedError(rejected, outcomes) from None
    except history.HistoryRejectedError as rejected:
        outcomes = {name: result.outcomes for name, result in tables.items()}
        for outcome in rejected.outcomes:
            table = str(outcome.details["table"])
            outcomes[table] = (*outcomes.get(table, ()), outcome)
        raise SyncRejectedError(rejected, outcomes) from None
    except (publish.ShrinkGuardError, history.HistoryError) as error:
        outcomes = {name: result.outcomes for name, result in tables.items()}
        raise SyncRejectedError(error, outcomes) from None


def write(
    conn: WarehouseConnection, snapshot: Snapshot
) -> tuple[dict[str, publish.ReplaceResult], HistoryReport | None]:
    """Write the snapshot's tables and history in lineage order; the caller makes it visible.

    Raises:
        SyncRejectedError: a blocking check, the shrink guard or the history refused it.
    """
    tables: dict[str, publish.ReplaceResult] = {}
    with refusals_rejected(tables):
        users = USERS_CASE_SENSITIVE if snapshot.userids_case_sensitive else USERS
        if snapshot.departments is not None:
            tables[DEPARTMENTS.name] = _load(conn, DEPARTMENTS, snapshot.departments, snapshot)
            snapshot.departments = None
        if snapshot.users is not None:
            tables[users.name] = _load(conn, users, snapshot.users, snapshot)
            snapshot.users = None
        if snapshot.membership:
            tables[MEMBERSHIP.name] = publish.replace_membership(conn, snapshot.corp_id)
        if not snapshot.history:
            return tables, None
        result = history.apply_snapshot(conn, snapshot.corp_id, run_id=snapshot.run_id)
    return tables, history_report(conn, snapshot.corp_id, result)


def _load(
    conn: WarehouseConnection, spec: TableSpec, fetched: pa.Table, snapshot: Snapshot
) -> publish.ReplaceResult:
    return publish.replace_table(
        conn,
        spec,
        fetched,
        corp_id=snapshot.corp_id,
        max_shrink_fraction=snapshot.max_shrink_fraction,
    )


def history_report(
    conn: WarehouseConnection,
    corp_id: str,
    result: history.HistoryResult,
    events: tuple[str, ...] | None = None,
) -> HistoryReport:
    """The history's row counts and the change events seen at this snapshot, after ``result``.

    ``events`` limits the events reported to those named (a tag sync's own).
    """
    seen, all_events = _events_at(conn, corp_id, result, events)
    return HistoryReport(
        result, history.row_counts(conn, corp_id, counted={ORG_CHANGES.name: all_events}), seen
    )


def _events_at(
    conn: WarehouseConnection,
    corp_id: str,
    result: history.HistoryResult,
    events: tuple[str, ...] | None,
) -> tuple[dict[str, int], int]:
    """A corp's change events seen at this snapshot, as ``entity/event -> count``, and all of them.

    Both come from one read of the change-events view, which derives every event from the
    history tables each time it is read: 0.3 s for 20,000 members in PostgreSQL.
    """
    named = ", ".join(f"'{event}'" for event in events) if events else ""
    at = f"changed_at = $at AND event IN ({named})" if named else "changed_at = $at"
    rows = conn.execute(
        f"SELECT entity || '/' || event, count(*) FILTER (WHERE {at}), count(*) "
        f"FROM {quote(ORG_CHANGES.name)} WHERE corp_id = $corp_id "
        "GROUP BY entity, event ORDER BY entity, event",
        {"corp_id": corp_id, "at": result.snapshot_at},
    ).fetchall()
    seen = {str(name): int(count) for name, count, _ in rows if count}
    return seen, sum(int(total) for _, _, total in rows)
