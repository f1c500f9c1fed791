"""The evolving org the README's history examples are checked against, and what changed in it.

Five syncs of a generated org are folded into the history: 70, 40 and 10 days before the current
month began, five minutes ago and now. Every kind of change the examples ask about happens both
inside and outside their time windows ("last month", "the last 30 days", "a week ago"), and the
last two syncs share a day, so examples that keep one point per day have a sync to leave out.
Every edit is written down as the event ``wecom_org_changes`` should show for it, so the tests can
work out each answer from the payloads and this record, without the history tables' SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
from history_support import load_snapshot, plain_users

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.wecom.models import Department, User

RESEARCH, PRODUCT, OPERATIONS = 990_001, 990_002, 990_003
SYNCS = range(5)
A_WEEK_AGO, TODAY = 2, 4


@dataclass(frozen=True)
class History:
    """Syncs folded into the history: when each ran, the org it saw and what changed.

    Each change is recorded as ``(sync, event, userid or department id)``, ``sync`` being the
    index of the first sync that saw it and ``event`` as ``wecom_org_changes`` names it.
    """

    database: str
    times: list[datetime]
    orgs: list[dict[str, Any]] = field(default_factory=list)
    user_changes: list[tuple[int, str, str]] = field(default_factory=list)
    department_changes: list[tuple[int, str, int]] = field(default_factory=list)

    def changes(self, event: str) -> list[tuple[int, str]]:
        """``(sync, userid)`` of every user change of this kind."""
        return [(sync, userid) for sync, kind, userid in self.user_changes if kind == event]

    def users(self, sync: int) -> dict[str, User]:
        """The members the sync loaded, by userid."""
        return {u["userid"]: User.from_api(u) for u in self.orgs[sync]["users"]}

    def departments(self, sync: int) -> dict[int, Department]:
        """The departments the sync loaded, by id."""
        return {d.id: d for d in map(Department.from_api, self.orgs[sync]["departments"])}

    def paths(self, sync: int) -> dict[int, list[str]]:
        """Department names from the root down to each department, as of that sync."""
        departments = self.departments(sync)
        paths: dict[int, list[str]] = {}
        for department in departments.values():
            chain = [department]
            while chain[0].parent_id in departments:
                chain.insert(0, departments[chain[0].parent_id])
            paths[department.id] = [d.name or "" for d in chain]
        return paths

    def path(self, sync: int, department: int | None) -> str:
        """``name_path`` of a department as of that sync."""
        assert department is not None
        return "/".join(self.paths(sync)[department])

    def day(self, sync: int) -> date:
        """The sync's date in DuckDB's session time zone, as the examples cast it."""
        with duckdb.connect() as conn:
            row = conn.execute("SELECT $t::DATE", {"t": self.times[sync]}).fetchone()
        assert row is not None
        return row[0]


@dataclass
class _Recorder:
    """Edits the org and records each edit in the history as the event it must produce."""

    org: OrgEditor
    history: History
    sync: int = 0

    def join(self, userid: str, name: str, department: int) -> None:
        self.org.join(userid, name, department)
        self._user("joined", userid)

    def leave(self, userid: str) -> None:
        self.org.leave(userid)
        self._user("left", userid)

    def move(self, userid: str, department: int) -> None:
        self.org.move(userid, department)
        self._user("moved", userid)

    def lead(self, userid: str, department: int) -> None:
        self.org.make_sole_leader(department, userid)
        self._user("leader_changed", userid)
        self._department("leader_changed", department)

    def rename(self, department: int, name: str) -> None:
        self.org.rename_department(department, name)
        self._department("renamed", department)

    def reparent(self, department: int, parent: int) -> None:
        self.org.reparent(department, parent)
        self._department("moved", department)

    def _user(self, event: str, userid: str) -> None:
        self.history.user_changes.append((self.sync, event, userid))

    def _department(self, event: str, department: int) -> None:
        self.history.department_changes.append((self.sync, event, department))


def five_syncs(conn: WarehouseConnection, database: str) -> History:
    """Fold the five syncs into the empty warehouse of ``conn``, found at ``database``.

    ``database`` is the DuckDB file's path or the PostgreSQL URL, for the examples to query.
    """
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    times = [month_start - timedelta(days=days) for days in (70, 40, 10)]
    times += [now - timedelta(minutes=5), now]
    org = OrgEditor(generate_org(users=300, departments=40, seed=12))
    for department, name in (
        (RESEARCH, "研发中心"),
        (PRODUCT, "产品中心"),
        (OPERATIONS, "运营中心"),
    ):
        org.add_department(department, name, 1)
    plain = plain_users(org, 8)
    movers, leavers, switcher = plain[:4], plain[4:7], plain[7]
    renamed = [d["id"] for d in org.data["departments"][3:6]]
    nested = next(d["id"] for d in org.data["departments"] if d["parentid"] not in (0, 1))
    for userid in movers:
        org.move(userid, RESEARCH)
    synced = History(database, times)
    edit = _Recorder(org, synced)
    for sync, at in enumerate(times):
        edit.sync = sync
        if sync == 1:
            edit.join("early.hire", "老同事", RESEARCH)
            edit.leave(leavers[0])
            edit.rename(renamed[0], "早更名部")
        elif sync == 2:
            edit.move(movers[0], PRODUCT)
            edit.move(movers[1], PRODUCT)
            edit.leave(leavers[1])
            edit.join("new.hire.1", "新同事甲", PRODUCT)
            edit.join("new.hire.2", "新同事乙", RESEARCH)
            edit.rename(renamed[1], "更名部")
        elif sync == 3:
            edit.move(movers[2], PRODUCT)
            edit.leave(leavers[2])
            edit.join("new.hire.3", "新同事丙", PRODUCT)
            edit.rename(renamed[2], "又更名部")
        elif sync == 4:
            edit.move(movers[3], OPERATIONS)
            edit.move(switcher, PRODUCT)
            # A member of the top department itself belongs to no top-level department.
            edit.join("chief.of.staff", "总裁助理", 1)
            edit.lead("new.hire.1", PRODUCT)
            edit.reparent(nested, 1)
        synced.orgs.append(org.snapshot())
        load_snapshot(conn, synced.orgs[-1], at)
        history.apply_snapshot(conn, org.data["corp_id"])
    return synced
