"""Every SQL example of the README runs as written and gives the answer its question asks for.

The answers are worked out from the org payloads of the syncs in ``readme_history`` and the record
of what changed between them. An example is identified by the question the README asks just before
it (or by its ``--`` comment when one block holds several queries), so rewording a question, or
adding an example whose answer nobody checks, fails here too.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from history_support import expected_intervals
from readme_history import A_WEEK_AGO, SYNCS, TODAY, History, five_syncs

from wecom_assets.dev.postgres_cluster import PostgresServer
from wecom_assets.warehouse.postgres import connect_postgres, is_postgres_url
from wecom_assets.wecom.models import Department, User

DOC = Path(__file__).resolve().parent.parent / "README.md"
# A ```sql block and the paragraph right above it.
FENCED_SQL = re.compile(r"([^\n]+(?:\n[^\n]+)*)\n\n```sql\n(.*?)```", flags=re.DOTALL)

Rows = list[tuple[Any, ...]]


def _question(text: str) -> str:
    """The question a caption asks: its words up to the first parenthesis or colon."""
    return re.split(r"\s\(|:", " ".join(text.split()), maxsplit=1)[0].removeprefix("-- ")


def _examples(markdown: str) -> list[tuple[str, str]]:
    """``(question, sql)`` for every example of the README."""
    examples = []
    for caption, block in FENCED_SQL.findall(markdown):
        statements = [s.strip() + ";" for s in block.split(";\n") if s.strip()]
        if all(s.startswith("--") for s in statements):
            examples += [(_question(s.splitlines()[0]), s) for s in statements]
        else:
            examples.append((_question(caption), block))
    return examples


EXAMPLES = _examples(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> History:
    """The five syncs in a DuckDB file, or in PostgreSQL's schema ``wecom``."""
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("docs") / "wecom.duckdb"
        with duckdb.connect(str(path)) as conn:
            return five_syncs(conn, str(path))
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database(f"readme_{uuid.uuid4().hex[:12]}")
    warehouse = connect_postgres(url)
    try:
        warehouse.raw.execute("CREATE SCHEMA wecom")
        return five_syncs(warehouse, url)
    finally:
        warehouse.close()


def _run(synced: History, sql: str) -> Rows:
    """``sql`` as an analyst runs it: DuckDB's CLI on the file, or psql with schema ``wecom``."""
    if not is_postgres_url(synced.database):
        with duckdb.connect(synced.database, read_only=True) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(synced.database, options="-c search_path=wecom") as conn:
        return conn.execute(sql.encode()).fetchall()


def _within_30_days(at: datetime) -> bool:
    return at >= datetime.now(UTC) - timedelta(days=30)


def _last_month(at: datetime) -> bool:
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    return last_month <= at < this_month


def _active_members_per_department(h: History, rows: Rows) -> None:
    names = {i: path[-1] for i, path in h.paths(TODAY).items()}
    active = [u for u in h.users(TODAY).values() if u.status == 1]
    expected = Counter(names[d] for u in active for d in u.departments)
    assert sorted(rows) == sorted(expected.items())
    assert [row[1] for row in rows] == sorted(expected.values(), reverse=True)


def _who_leads_what(h: History, rows: Rows) -> None:
    names = {i: path[-1] for i, path in h.paths(TODAY).items()}
    expected = [
        (names[d], u.name)
        for u in h.users(TODAY).values()
        for d, leads in zip(u.departments, u.leader_flags, strict=True)
        if leads
    ]
    assert expected
    assert sorted(rows) == sorted(expected)


def _people_in_several_departments(h: History, rows: Rows) -> None:
    users = sorted(h.users(TODAY).items())
    expected = [(i, u.name, list(u.departments)) for i, u in users if len(u.departments) > 1]
    assert expected
    assert rows == expected


def _joined_last_month(h: History, rows: Rows) -> None:
    expected = []
    for sync, userid in h.changes("joined"):
        user = h.users(sync)[userid]
        if _last_month(h.times[sync]):
            expected.append((h.times[sync], userid, user.name, h.path(sync, user.main_department)))
    assert expected
    assert rows == sorted(expected)


def _left_in_the_last_30_days(h: History, rows: Rows) -> None:
    expected = []
    for sync, userid in h.changes("left"):
        before = h.users(sync - 1)[userid]
        if _within_30_days(h.times[sync]):
            path = h.path(sync - 1, before.main_department)
            expected.append((h.times[sync], userid, before.name, path))
    assert expected
    assert rows == sorted(expected)


def _moved_from_research_to_product(h: History, rows: Rows) -> None:
    expected = []
    moves = h.changes("moved")
    for sync, userid in moves:
        before = h.path(sync - 1, h.users(sync - 1)[userid].main_department)
        after = h.path(sync, h.users(sync)[userid].main_department)
        if "研发" in before and "产品" in after:
            expected.append((h.times[sync], userid, h.users(sync)[userid].name, before, after))
    assert 0 < len(expected) < len(moves)
    assert rows == sorted(expected)


def _top_level_headcount(h: History, sync: int) -> Counter[str]:
    paths = h.paths(sync)
    return Counter(
        paths[u.main_department][1]
        for u in h.users(sync).values()
        if u.status == 1 and u.main_department in paths and len(paths[u.main_department]) >= 2
    )


def _headcount_over_time(h: History, rows: Rows) -> None:
    last_sync_of_day = {h.day(sync): sync for sync in SYNCS}
    expected = [
        (day, department, count)
        for day, sync in last_sync_of_day.items()
        for department, count in _top_level_headcount(h, sync).items()
    ]
    assert sorted(rows) == sorted(expected)
    by_day = {(row[0], row[1]): row[2] for row in rows}
    days = [h.day(sync) for sync in (0, 1, 2, TODAY)]
    assert [by_day.get((day, "研发中心")) for day in days] == [4, 5, 4, 2]
    assert [by_day.get((day, "产品中心")) for day in days] == [None, None, 3, 6]
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)


def _org_as_of_a_date(h: History, rows: Rows) -> None:
    # A week ago falls between the sync 10 days before this month began and the one now.
    paths = h.paths(A_WEEK_AGO)
    expected = {
        (i, u.name, u.status, "/".join(paths[u.main_department]) if u.main_department else None)
        for i, u in h.users(A_WEEK_AGO).items()
    }
    assert set(rows) == expected


def _changes_per_sync(h: History, rows: Rows) -> None:
    events = Counter(
        [(h.times[sync], "user", event) for sync, event, _ in h.user_changes]
        + [(h.times[sync], "department", event) for sync, event, _ in h.department_changes]
        + [(h.times[sync], entity, event) for sync, event, entity, _, _ in h.tag_changes]
    )
    assert rows == sorted((*event, count) for event, count in events.items())


def _tagged_on_duty_in_research(h: History, rows: Rows) -> None:
    on_duty = next(tag for tag in h.tags[TODAY] if tag.tag_name == "值班")
    paths, users = h.paths(TODAY), h.users(TODAY)
    expected = [
        (userid, users[userid].name)
        for userid in sorted(on_duty.userids)
        if userid in users and any(paths[d][1:2] == ["研发中心"] for d in users[userid].departments)
    ]
    assert len(expected) == 2
    assert rows == expected


def _tagged_on_duty_in_the_last_7_days(h: History, rows: Rows) -> None:
    a_week_ago = datetime.now(UTC) - timedelta(days=7)
    expected = [
        (h.times[sync], entity_id)
        for sync, event, entity, entity_id, name in h.tag_changes
        if (event, entity, name) == ("tagged", "user", "值班") and h.times[sync] >= a_week_ago
    ]
    assert len(expected) == 2
    assert rows == sorted(expected)


def _tag_changes_in_the_last_30_days(h: History, rows: Rows) -> None:
    expected = [
        (h.times[sync], event, entity, entity_id, name)
        for sync, event, entity, entity_id, name in h.tag_changes
        if _within_30_days(h.times[sync])
    ]
    kinds = {"tag_added", "tag_removed", "tag_renamed", "tagged", "untagged"}
    assert {row[1] for row in expected} == kinds
    assert rows == sorted(expected)


def _departments_changed_in_the_last_30_days(h: History, rows: Rows) -> None:
    def shown(d: Department, event: str) -> str:
        if event == "moved":
            return str(d.parent_id)
        if event == "leader_changed":
            return f"[{', '.join(sorted(d.leaders or ()))}]"
        return d.name or ""

    expected = []
    for sync, event, department in h.department_changes:
        before, after = h.departments(sync - 1)[department], h.departments(sync)[department]
        if _within_30_days(h.times[sync]):
            values = shown(before, event), shown(after, event)
            expected.append((h.times[sync], event, str(department), after.name, *values))
    assert {row[1] for row in expected} == {"renamed", "moved", "leader_changed"}
    assert rows == sorted(expected, key=lambda row: (row[0], row[2]))


def _versions_of_the_movers(h: History, rows: Rows) -> None:
    def shown(u: User) -> tuple[Any, ...]:
        return (u.userid, u.name, u.main_department, list(u.departments), u.position, u.status)

    moved = {userid for _, userid in h.changes("moved")}
    snapshots = [{(i, repr(u)) for i, u in h.users(s).items() if i in moved} for s in SYNCS]
    expected = sorted(
        (*shown(h.users(start)[userid]), h.times[start], None if end is None else h.times[end])
        for (userid,), start, end in expected_intervals(snapshots, key_length=1)
    )
    assert rows == expected


def _department_tree_today(h: History, rows: Rows) -> None:
    expected = {
        ("    " * (len(path) - 1) + path[-1], i, "/".join(path))
        for i, path in h.paths(TODAY).items()
    }
    assert set(rows) == expected
    assert [row[2] for row in rows] == sorted(row[2] for row in rows)


def _top_level_headcount_today(h: History, rows: Rows) -> None:
    assert set(rows) == set(_top_level_headcount(h, TODAY).items())
    assert [row[1] for row in rows] == sorted((row[1] for row in rows), reverse=True)


ANSWERS: dict[str, Callable[[History, Rows], None]] = {
    "Active members per department": _active_members_per_department,
    "Who leads what": _who_leads_what,
    "People in more than one department": _people_in_several_departments,
    "Who joined last month": _joined_last_month,
    "Who left in the last 30 days": _left_in_the_last_30_days,
    "Who moved from 研发 to 产品": _moved_from_research_to_product,
    "Headcount per top-level department over time": _headcount_over_time,
    "The org as of a date": _org_as_of_a_date,
    "What changed at each sync": _changes_per_sync,
    "Who is tagged 值班 in 研发": _tagged_on_duty_in_research,
    "Who was tagged 值班 in the last 7 days": _tagged_on_duty_in_the_last_7_days,
    "What happened to the tags in the last 30 days": _tag_changes_in_the_last_30_days,
    "Departments renamed, moved or given new leaders in the last 30 days": (
        _departments_changed_in_the_last_30_days
    ),
    "Every version of the people who moved, oldest first": _versions_of_the_movers,
    "The department tree today, indented": _department_tree_today,
    "Headcount per top-level department today, from the current tables": (
        _top_level_headcount_today
    ),
}


@pytest.mark.parametrize(("question", "sql"), EXAMPLES, ids=[q for q, _ in EXAMPLES])
def test_readme_example_answers_its_question(synced: History, question: str, sql: str) -> None:
    assert question in ANSWERS, f"the README asks {question!r}; no answer for it is checked here"
    ANSWERS[question](synced, _run(synced, sql))


def test_every_question_answered_here_is_asked_in_the_readme() -> None:
    assert sorted(set(ANSWERS) - {question for question, _ in EXAMPLES}) == []
