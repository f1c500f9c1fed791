"""An analyst querying the warehouse while corps publish: never blocked, never half a corp.

The check is independent of the warehouse backend: it takes a function that reads, in one
snapshot, how many departments, users and memberships each corp has, and that raises instead of
waiting when the warehouse would block it (a DuckDB file lock fails at once; a PostgreSQL reader
sets ``lock_timeout`` so a blocked query fails rather than waits). "Never blocked" is then "no
read ever failed", with no wall-clock bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from warehouse_oracle import expected_tables

# Departments, users and memberships of one corp.
Counts = tuple[int, int, int]
CountReader = Callable[[], Mapping[str, Counts]]

_COUNT_SQL = {
    table: f"SELECT corp_id, count(*) FROM {table} GROUP BY corp_id"
    for table in ("wecom_departments", "wecom_users", "dept_membership")
}


def expected_counts(org: dict[str, Any]) -> Counts:
    """What a reader must see for a corp once its sync has published."""
    tables = expected_tables(org)
    return len(tables.wecom_departments), len(tables.wecom_users), len(tables.dept_membership)


def duckdb_counts(database: Path) -> CountReader:
    """Read the counts from the published DuckDB file, read-only, as an analyst opens it.

    Before the first publish there is no file and no corp.
    """

    def read() -> Mapping[str, Counts]:
        if not database.exists():
            return {}
        with duckdb.connect(str(database), read_only=True) as conn:
            per_table = [dict(conn.execute(sql).fetchall()) for sql in _COUNT_SQL.values()]
        corps = set().union(*per_table)
        return {corp: tuple(table.get(corp, 0) for table in per_table) for corp in corps}

    return read


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
