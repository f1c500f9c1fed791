"""An analyst querying the warehouse while corps publish: never blocked, never half a corp.

The check is independent of the warehouse backend: it takes a function that reads, in one
snapshot, how many departments, users and memberships each corp has, and that raises instead of
waiting when the warehouse would block it (the PostgreSQL reader, :func:`postgres_counts`, sets
``lock_timeout`` so a blocked query fails rather than waits). "Never blocked" is then "no read
ever failed", with no wall-clock bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from warehouse_oracle import expected_tables

from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA

# Departments, users and memberships of one corp.
Counts = tuple[int, int, int]
CountReader = Callable[[], Mapping[str, Counts]]

# The tables whose rows per corp the reader counts, in the order of ``Counts``.
_TABLES = ("wecom_departments", "wecom_users", "dept_membership")


def expected_counts(org: dict[str, Any]) -> Counts:
    """What a reader must see for a corp once its sync has published."""
    tables = expected_tables(org)
    return len(tables.wecom_departments), len(tables.wecom_users), len(tables.dept_membership)


def postgres_counts(url: str) -> CountReader:
    """Read the counts from the PostgreSQL warehouse in one snapshot, failing on any lock wait.

    The three counts run in one ``REPEATABLE READ`` transaction, so they see the same commits;
    ``lock_timeout`` turns a wait for a writer's lock into an error, which the reader records.
    Before the first sync has created the schema there is no table and no corp.
    """

    def read() -> Mapping[str, Counts]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '1s'")
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                departments, users, members = (
                    _postgres_table_counts(conn, table) for table in _TABLES
                )
        return {
            corp: (departments.get(corp, 0), users.get(corp, 0), members.get(corp, 0))
            for corp in departments.keys() | users.keys() | members.keys()
        }

    return read


def _postgres_table_counts(conn: psycopg.Connection[Any], table: str) -> dict[str, int]:
    """Rows per corp of one warehouse table; none while the table does not exist yet."""
    qualified = f"{DEFAULT_SCHEMA}.{table}"
    if conn.execute("SELECT to_regclass(%s)", [qualified]).fetchone() == (None,):
        return {}
    sql = f"SELECT corp_id, count(*) FROM {qualified} GROUP BY corp_id"
    return dict(conn.execute(sql).fetchall())


@dataclass
class ReaderLog:
    """What the reader saw: how many reads, which failed, and any corp seen incomplete."""

    reads: int = 0
    failures: list[str] = field(default_factory=list)
    half_corps: list[tuple[str, Counts]] = field(default_factory=list)
    lost_corps: list[str] = field(default_factory=list)
    complete_corps: set[str] = field(default_factory=set)


class WarehouseReader:
    """A thread reading the counts in a loop until stopped, checking each read against ``expected``.

    A corp must either be absent or have exactly its expected counts; anything else is a corp
    seen half-published. A corp once seen complete must stay (nothing lost).
    """

    def __init__(self, read: CountReader, expected: Mapping[str, Counts]) -> None:
        """Prepare the reader; it starts with the ``with`` block."""
        self.log = ReaderLog()
        self._read = read
        self._expected = dict(expected)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="warehouse-reader", daemon=True)

    def __enter__(self) -> ReaderLog:
        self._thread.start()
        return self.log

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        # One last read once every run has ended, so the final state is checked too.
        self._check_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._check_once()
            self._stop.wait(0.05)

    def _check_once(self) -> None:
        self.log.reads += 1
        try:
            seen = self._read()
        except Exception as error:
            self.log.failures.append(f"{type(error).__name__}: {error}")
            return
        self.log.lost_corps.extend(sorted(self.log.complete_corps - set(seen)))
        for corp, counts in seen.items():
            if counts == self._expected.get(corp):
                self.log.complete_corps.add(corp)
            else:
                self.log.half_corps.append((corp, counts))
