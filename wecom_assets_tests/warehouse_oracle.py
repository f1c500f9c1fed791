"""The oracle of every sync test: the three tables a warehouse file must hold for an org.

Built on the ``expected_*`` functions of ``dagster_support``, which derive the rows from the org's
payloads through the client's own parsing, independently of the SQL that loads them. Tests that
sync through any layer (in process, the CLI, the UI) compare with one call to
:func:`assert_warehouse_holds`; tests whose expected state is not one org (a run that failed half
way, a duplicate dropped) build an :class:`OrgTables` and compare with :func:`assert_same_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dagster_support import (
    DEPARTMENT_COLUMNS,
    expected_departments,
    expected_membership,
    expected_users,
    table_rows,
    users_sql,
)

MEMBERSHIP_SQL = "SELECT userid, department_id, sort_order, is_leader, is_main FROM dept_membership"
# Enough differing rows to see the pattern without burying the message.
_SHOWN_ROWS = 5

Rows = set[tuple[Any, ...]]


@dataclass(frozen=True)
class OrgTables:
    """The rows of ``wecom_departments``, ``wecom_users`` and ``dept_membership`` (no ``synced_at``).

    Users and membership rows start with the userid.
    """

    wecom_departments: Rows
    wecom_users: Rows
    dept_membership: Rows

    def without_users(self, *userids: str) -> OrgTables:
        """The same tables with these users and their memberships removed."""
        return OrgTables(
            self.wecom_departments,
            {row for row in self.wecom_users if row[0] not in userids},
            {row for row in self.dept_membership if row[0] not in userids},
        )


def expected_tables(org: dict[str, Any], visible: list[int] | None = None) -> OrgTables:
    """The tables a sync of ``org`` by an app with ``visible`` range must leave."""
    return OrgTables(
        expected_departments(org, visible),
        expected_users(org, visible),
        expected_membership(org, visible),
    )


def warehouse_tables(database: Path, corp_id: str | None = None) -> OrgTables:
    """The three tables of a DuckDB file (one corp's rows, or all), JSON columns as text."""
    where = "" if corp_id is None else " WHERE corp_id = '" + corp_id.replace("'", "''") + "'"
    return OrgTables(
        table_rows(database, f"SELECT {DEPARTMENT_COLUMNS} FROM wecom_departments{where}"),
        table_rows(database, users_sql() + where),
        table_rows(database, MEMBERSHIP_SQL + where),
    )


def assert_same_tables(actual: OrgTables, expected: OrgTables) -> None:
    """Fail naming every table that differs, with a few missing and unexpected rows of each."""
    problems = []
    for table in fields(OrgTables):
        got, want = getattr(actual, table.name), getattr(expected, table.name)
        if got != want:
            missing, extra = sorted(want - got, key=repr), sorted(got - want, key=repr)
            problems.append(
                f"{table.name}: {len(missing)} rows missing {missing[:_SHOWN_ROWS]}, "
                f"{len(extra)} unexpected {extra[:_SHOWN_ROWS]}"
            )
    assert not problems, "tables differ from the org:\n" + "\n".join(problems)


def assert_warehouse_holds(
    database: Path, org: dict[str, Any], visible: list[int] | None = None
) -> None:
    """The org's rows (its corp id) of the three tables equal ``org`` as its app sees it."""
    assert_same_tables(warehouse_tables(database, org["corp_id"]), expected_tables(org, visible))
