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
from history_support import load_snapshot, load_tags, plain_users

from wecom_assets.sandbox.evolve import OrgEditor
from wecom_assets.sandbox.org import generate_org
from wecom_assets.warehouse import history
from wecom_assets.warehouse.connection import WarehouseConnection
from wecom_assets.wecom.models import Department, User
from wecom_assets.wecom.tags import TagDetail

RESEARCH, PRODUCT, OPERATIONS = 990_001, 990_002, 990_003
ON_DUTY, INTERVIEWERS, TEMPORARY, NEW_TAG = 2, 40, 7, 99
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
    tags: list[list[TagDetail]] = field(default_factory=list)
    tag_changes: list[tuple[int, str, str, str, str]] = field(default_factory=list)

    def tag_events(self, sync: int) -> list[tuple[str, str, str, str]]:
        """``(event, entity, entity_id, tag name)`` of every tag change the sync first saw."""
        return [change[1:] for change in self.tag_changes if change[0] == sync]

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
class _Tags:
    """The corp's tags, edited between syncs, each edit recorded as the event it must produce."""

    history: History
    names: dict[int, str] = field(default_factory=dict)
    members: dict[int, list[str]] = field(default_factory=dict)
    departments: dict[int, list[int]] = field(default_factory=dict)
    sync: int = 0

    def add(self, tag_id: int, name: str, members: list[str], departments: list[int]) -> None:
        self.names[tag_id], self.members[tag_id] = name, list(members)
        self.departments[tag_id] = list(departments)
        if self.sync:
            self._record("tag_added", "tag", str(tag_id), name)
            for userid in members:
                self._record("tagged", "user", userid, name)
            for department in departments:
                self._record("tagged", "department", str(department), name)

    def tag(self, tag_id: int, userid: str) -> None:
        self.members[tag_id].append(userid)
        self._record("tagged", "user", userid, self.names[tag_id])

    def untag(self, tag_id: int, userid: str) -> None:
        self.members[tag_id].remove(userid)
        self._record("untagged", "user", userid, self.names[tag_id])

    def tag_department(self, tag_id: int, department: int) -> None:
        self.departments[tag_id].append(department)
        self._record("tagged", "department", str(department), self.names[tag_id])

    def rename(self, tag_id: int, name: str) -> None:
        self._record("tag_renamed", "tag", str(tag_id), name)
        self.names[tag_id] = name

    def remove(self, tag_id: int) -> None:
        name = self.names.pop(tag_id)
        self._record("tag_removed", "tag", str(tag_id), name)
        for userid in self.members.pop(tag_id):
            self._record("untagged", "user", userid, name)
        for department in self.departments.pop(tag_id):
            self._record("untagged", "department", str(department), name)

    def details(self) -> list[TagDetail]:
        return [
            TagDetail(tag_id, name, tuple(self.members[tag_id]), tuple(self.departments[tag_id]))
            for tag_id, name in self.names.items()
        ]

    def _record(self, event: str, entity: str, entity_id: str, name: str) -> None:
        self.history.tag_changes.append((self.sync, event, entity, entity_id, name))


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
    tags = _Tags(synced)
    for sync, at in enumerate(times):
        edit.sync = tags.sync = sync
        _edit_tags(tags, sync, movers, plain)
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
        synced.tags.append(tags.details())
        load_tags(conn, org.data["corp_id"], synced.tags[-1], at)
    return synced


def _edit_tags(tags: _Tags, sync: int, movers: list[str], plain: list[str]) -> None:
    """Tag edits inside and outside the examples' windows; members are in 研发 or have left it."""
    if sync == 0:
        tags.add(ON_DUTY, "值班", [movers[0]], [])
        tags.add(INTERVIEWERS, "面试官", [movers[1], plain[7]], [])
        tags.add(TEMPORARY, "临时", [], [])
    elif sync == 1:
        tags.tag(ON_DUTY, "early.hire")
    elif sync == 2:
        tags.tag(ON_DUTY, movers[2])
    elif sync == 3:
        tags.tag(ON_DUTY, "new.hire.2")
        tags.untag(ON_DUTY, movers[2])
        tags.rename(TEMPORARY, "临时 🚧")
    elif sync == 4:
        tags.tag(ON_DUTY, movers[3])
        tags.tag_department(ON_DUTY, RESEARCH)
        tags.remove(INTERVIEWERS)
        tags.add(NEW_TAG, "新标签", [plain[7]], [])
