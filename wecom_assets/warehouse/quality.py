"""Data-quality rules evaluated on a snapshot before it replaces the live table.

Each rule is plain SQL/Python over a DuckDB relation, with no Dagster import, so the same rules run
inside the asset's write transaction (a failing blocking rule keeps yesterday's table) and in tests.
Offending rows are reported by id only, never by name or contact data. Rules that look at other
tables take their names as keyword arguments, bound where the tables are declared
(:mod:`wecom_assets.warehouse.tables`), so no table name is spelled out here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from wecom_assets.warehouse.connection import WarehouseConnection, table_exists
from wecom_assets.wecom.models import userid_key

MAX_REPORTED_IDS = 50


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """Result of one rule on one snapshot.

    ``blocking`` failures stop the snapshot from replacing the live table; the others are reported
    as warnings because they can happen in a healthy org (for example a department created between
    the ``department/list`` and ``user/list`` calls).
    """

    name: str
    passed: bool
    blocking: bool
    description: str
    offending_ids: tuple[str, ...] = ()
    offending_count: int = 0
    details: dict[str, int | str] = field(default_factory=dict)


Rule = Callable[[WarehouseConnection, str], CheckOutcome]


def _function(rule: Rule) -> Callable[..., CheckOutcome]:
    return rule.func if isinstance(rule, partial) else rule


def rule_name(rule: Rule) -> str:
    """The rule's name, which is also the name of its asset check."""
    return _function(rule).__name__


def rule_description(rule: Rule) -> str:
    """The first line of the rule's docstring, shown with its asset check."""
    function = _function(rule)
    return (function.__doc__ or function.__name__).strip().splitlines()[0]


def _outcome(
    name: str,
    *,
    blocking: bool,
    ok: str,
    failed: str,
    offending: Sequence[object],
    details: dict[str, int | str] | None = None,
) -> CheckOutcome:
    ids = tuple(str(value) for value in offending)
    return CheckOutcome(
        name=name,
        passed=not ids,
        blocking=blocking,
        description=ok if not ids else failed.format(count=len(ids)),
        offending_ids=ids[:MAX_REPORTED_IDS],
        offending_count=len(ids),
        details=details or {},
    )


def _column(conn: WarehouseConnection, sql: str) -> list[object]:
    return [row[0] for row in conn.execute(sql).fetchall()]


def unique_department_ids(conn: WarehouseConnection, relation: str) -> CheckOutcome:
    """Department ids are unique within the snapshot."""
    duplicates = _column(
        conn, f"SELECT id FROM {relation} GROUP BY id HAVING count(*) > 1 ORDER BY id"
    )
    return _outcome(
        "unique_department_ids",
        blocking=True,
        ok="Every department id is unique.",
        failed="{count} department ids occur more than once.",
        offending=duplicates,
    )


def unique_userids(
    conn: WarehouseConnection, relation: str, *, case_sensitive: bool = False
) -> CheckOutcome:
    """Userids are unique, compared as WeCom compares them (ignoring case for self-built apps)."""
    # Compared with the same function as the directory merge, not SQL lower(): the two disagree
    # outside ASCII, and a check that folds differently from the merge can miss a dropped user.
    keys = Counter(
        userid_key(str(userid), case_sensitive=case_sensitive)
        for userid in _column(conn, f"SELECT userid FROM {relation}")
    )
    duplicates = sorted(key for key, seen in keys.items() if seen > 1)
    compared = "" if case_sensitive else " when compared case-insensitively"
    return _outcome(
        "unique_userids",
        blocking=True,
        ok=f"Every userid is unique{compared}.",
        failed=f"{{count}} userids occur more than once{compared}.",
        offending=duplicates,
    )


def department_tree_is_sound(conn: WarehouseConnection, relation: str) -> CheckOutcome:
    """The departments form a forest: no cycles, and no orphans when the whole org is visible.

    With a partial visible range, WeCom returns sub-trees whose roots have parents outside the
    range; those are reported as visible-range roots, not as orphans. When the top department
    (parent 0) is visible, every other department must reach it.
    """
    parents: dict[int, int | None] = {
        int(row[0]): (None if row[1] is None else int(row[1]))
        for row in conn.execute(f"SELECT id, parent_id FROM {relation}").fetchall()
    }
    whole_org = any(parent == 0 for parent in parents.values())
    cycles: set[int] = set()
    orphans: list[int] = []
    range_roots: list[int] = []
    for start in parents:
        seen: set[int] = set()
        node = start
        while True:
            parent = parents[node]
            if parent == 0:
                break
            if parent is None or parent not in parents:
                (orphans if whole_org or parent is None else range_roots).append(node)
                break
            if node in seen:
                cycles.add(start)
                break
            seen.add(node)
            node = parent
    bad = sorted(cycles) + sorted(set(orphans) - cycles)
    return _outcome(
        "department_tree_is_sound",
        blocking=True,
        ok="Departments form a tree without cycles or orphans.",
        failed="{count} departments sit in a parent cycle or hang off a missing parent.",
        offending=bad,
        details={
            "cycle_members": len(cycles),
            "orphans": len(set(orphans) - cycles),
            "visible_range_roots": len(set(range_roots)),
        },
    )


def user_departments_exist(
    conn: WarehouseConnection, relation: str, *, departments: str
) -> CheckOutcome:
    """Every department a user belongs to is a row of the departments table."""
    if not table_exists(conn, departments):
        missing = _column(conn, f"SELECT userid FROM {relation} WHERE cardinality(departments) > 0")
    else:
        missing = _column(
            conn,
            f"""
            SELECT DISTINCT u.userid
            FROM (
                SELECT corp_id, userid, unnest(departments) AS department_id FROM {relation}
            ) AS u
            ANTI JOIN "{departments}" AS d
                ON d.corp_id = u.corp_id AND d.id = u.department_id
            ORDER BY u.userid
            """,
        )
    return _outcome(
        "user_departments_exist",
        blocking=False,
        ok=f"Every department a user belongs to exists in {departments}.",
        failed=(
            f"{{count}} users belong to departments missing from {departments} "
            f"(changed between calls, or {departments} is stale)."
        ),
        offending=missing,
    )


def membership_references_exist(
    conn: WarehouseConnection, relation: str, *, users: str, departments: str
) -> CheckOutcome:
    """Every membership row points at an existing user and an existing department."""
    dangling = _column(
        conn,
        f"""
        SELECT DISTINCT m.userid || '@' || m.department_id AS pair
        FROM {relation} AS m
        LEFT JOIN "{users}" AS u ON u.corp_id = m.corp_id AND u.userid = m.userid
        LEFT JOIN "{departments}" AS d ON d.corp_id = m.corp_id AND d.id = m.department_id
        WHERE u.userid IS NULL OR d.id IS NULL
        ORDER BY pair
        """,
    )
    return _outcome(
        "membership_references_exist",
        blocking=True,
        ok="Every membership row references an existing user and department.",
        failed="{count} membership rows reference a missing user or department (userid@dept).",
        offending=dangling,
    )


def one_main_department_per_user(
    conn: WarehouseConnection, relation: str, *, users: str, departments: str
) -> CheckOutcome:
    """At most one ``is_main`` per user, and exactly one when the main department is visible."""
    wrong = _column(
        conn,
        f"""
        SELECT u.userid
        FROM "{users}" AS u
        LEFT JOIN (
            SELECT corp_id, userid, count(*) FILTER (WHERE is_main) AS mains
            FROM {relation} GROUP BY corp_id, userid
        ) AS m ON m.corp_id = u.corp_id AND m.userid = u.userid
        WHERE u.corp_id IN (SELECT corp_id FROM {relation})
          AND (coalesce(m.mains, 0) > 1
               OR (coalesce(m.mains, 0) = 0
                   AND list_contains(u.departments, u.main_department)
                   AND EXISTS (
                       SELECT 1 FROM "{departments}" AS d
                       WHERE d.corp_id = u.corp_id AND d.id = u.main_department
                   )))
        ORDER BY u.userid
        """,
    )
    return _outcome(
        "one_main_department_per_user",
        blocking=True,
        ok="Each user has exactly one main department where it is visible, never more.",
        failed="{count} users have no main membership despite a visible main department, or several.",
        offending=wrong,
    )


def unique_tag_ids(conn: WarehouseConnection, relation: str) -> CheckOutcome:
    """Tag ids are unique within the snapshot."""
    duplicates = _column(
        conn, f"SELECT tag_id FROM {relation} GROUP BY tag_id HAVING count(*) > 1 ORDER BY tag_id"
    )
    return _outcome(
        "unique_tag_ids",
        blocking=True,
        ok="Every tag id is unique.",
        failed="{count} tag ids occur more than once.",
        offending=duplicates,
    )


def references_existing_tags(
    conn: WarehouseConnection, relation: str, *, tags: str
) -> CheckOutcome:
    """Every row references a tag of the tags table (written in the same publish)."""
    dangling = _column(
        conn,
        f"""
        SELECT DISTINCT r.tag_id
        FROM {relation} AS r
        LEFT JOIN "{tags}" AS t ON t.corp_id = r.corp_id AND t.tag_id = r.tag_id
        WHERE t.tag_id IS NULL
        ORDER BY r.tag_id
        """,
    )
    return _outcome(
        "references_existing_tags",
        blocking=True,
        ok=f"Every row references a tag of {tags}.",
        failed=f"{{count}} tag ids are missing from {tags}.",
        offending=dangling,
    )


def tagged_users_exist(conn: WarehouseConnection, relation: str, *, users: str) -> CheckOutcome:
    """Tagged members are rows of the users table; a warning, as the two can see different ranges.

    Userids are compared as they are: ``tag/get`` answers them in the case ``user/list`` does.
    """
    if table_exists(conn, users):
        missing = _column(
            conn,
            f"""
            SELECT DISTINCT r.userid
            FROM {relation} AS r
            LEFT JOIN "{users}" AS u ON u.corp_id = r.corp_id AND u.userid = r.userid
            WHERE u.userid IS NULL
            ORDER BY r.userid
            """,
        )
    else:
        missing = _column(conn, f"SELECT DISTINCT userid FROM {relation} ORDER BY userid")
    return _outcome(
        "tagged_users_exist",
        blocking=False,
        ok=f"Every tagged member is a row of {users}.",
        failed=(
            f"{{count}} tagged members are missing from {users} (outside the range the users "
            f"were synced with, changed since, or {users} not synced yet)."
        ),
        offending=missing,
    )


def tagged_departments_exist(
    conn: WarehouseConnection, relation: str, *, departments: str
) -> CheckOutcome:
    """Tagged departments are rows of the departments table; a warning, as for members."""
    if table_exists(conn, departments):
        missing = _column(
            conn,
            f"""
            SELECT DISTINCT r.department_id
            FROM {relation} AS r
            LEFT JOIN "{departments}" AS d ON d.corp_id = r.corp_id AND d.id = r.department_id
            WHERE d.id IS NULL
            ORDER BY r.department_id
            """,
        )
    else:
        missing = _column(
            conn, f"SELECT DISTINCT department_id FROM {relation} ORDER BY department_id"
        )
    return _outcome(
        "tagged_departments_exist",
        blocking=False,
        ok=f"Every tagged department is a row of {departments}.",
        failed=(
            f"{{count}} tagged departments are missing from {departments} (changed since, or "
            f"{departments} not synced yet)."
        ),
        offending=missing,
    )
