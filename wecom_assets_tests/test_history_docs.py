"""Every SQL example of the README runs as written and answers its question.

The database holds three syncs of an evolving generated org: two months ago, in the previous
calendar month and a minute ago, so "last month" and "last 30 days" examples have rows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from history_support import load_snapshot, plain_users

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import history

DOC = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
RESEARCH, PRODUCT = 990_001, 990_002


def _block(containing: str) -> str:
    (block,) = [b for b in BLOCKS if containing in b]
    return block


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    times = [month_start - timedelta(days=40), month_start - timedelta(days=10), now]
    org = OrgEditor(generate_org(users=300, departments=40, seed=12))
    org.add_department(RESEARCH, "研发中心", 1)
    org.add_department(PRODUCT, "产品中心", 1)
    movers = plain_users(org, 4)
    leavers = plain_users(org, 7)[4:]
    for userid in movers:
        org.move(userid, RESEARCH)
    database = tmp_path_factory.mktemp("docs") / "wecom.duckdb"
    with duckdb.connect(str(database)) as conn:
        load_snapshot(conn, org.snapshot(), times[0])
        history.apply_snapshot(conn)
        org.move(movers[0], PRODUCT)
        org.move(movers[1], PRODUCT)
        org.leave(leavers[0])
        org.join("new.hire.1", "新同事甲", PRODUCT)
        org.join("new.hire.2", "新同事乙", RESEARCH)
        org.rename_department(org.data["departments"][3]["id"], "更名部")
        load_snapshot(conn, org.snapshot(), times[1])
        history.apply_snapshot(conn)
        org.move(movers[2], PRODUCT)
        org.leave(leavers[1])
        org.join("new.hire.3", "新同事丙", PRODUCT)
        org.rename_department(org.data["departments"][4]["id"], "又更名部")
        load_snapshot(conn, org.snapshot(), times[2])
        history.apply_snapshot(conn)
    return {"database": database, "times": times, "movers": movers, "leavers": leavers}


def _run(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_the_docs_answer_the_questions_of_the_issue() -> None:
    text = DOC.read_text(encoding="utf-8")
    for question in (
        "Who joined last month",
        "Who moved from 研发 to 产品",
        "Headcount per top-level department over time",
        "The org as of a date",
    ):
        assert question in text
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("sql", BLOCKS, ids=[f"example_{i + 1}" for i in range(len(BLOCKS))])
def test_every_sql_example_runs_as_written_and_returns_rows(
    example: dict[str, Any], sql: str
) -> None:
    assert _run(example["database"], sql)


def test_who_joined_last_month_lists_the_joiners_of_the_previous_month(
    example: dict[str, Any],
) -> None:
    rows = _run(example["database"], _block("event = 'joined'"))
    assert [(row[0], row[1], row[3].split("/")[-1]) for row in rows] == [
        (example["times"][1], "new.hire.1", "产品中心"),
        (example["times"][1], "new.hire.2", "研发中心"),
    ]


def test_who_moved_from_research_to_product_lists_exactly_those_moves(
    example: dict[str, Any],
) -> None:
    rows = _run(example["database"], _block("LIKE '%研发%'"))
    movers, times = example["movers"], example["times"]
    assert {(row[0], row[1]) for row in rows} == {
        (times[1], movers[0]),
        (times[1], movers[1]),
        (times[2], movers[2]),
    }


def test_headcount_over_time_follows_the_joins_and_moves(example: dict[str, Any]) -> None:
    rows = _run(example["database"], _block("FROM days AS d"))
    by_day = {(row[0], row[1]): row[2] for row in rows}
    with duckdb.connect() as conn:
        days = [conn.execute("SELECT $t::DATE", {"t": t}).fetchone()[0] for t in example["times"]]
    assert [by_day.get((day, "研发中心")) for day in days] == [4, 3, 2]
    assert [by_day.get((day, "产品中心")) for day in days] == [None, 3, 5]


def test_the_org_as_of_a_week_ago_is_the_previous_sync(example: dict[str, Any]) -> None:
    rows = _run(example["database"], _block("SET VARIABLE as_of"))
    userids = {row[0] for row in rows}
    assert "new.hire.2" in userids
    assert "new.hire.3" not in userids
    assert example["leavers"][1] in userids
    assert example["leavers"][0] not in userids
