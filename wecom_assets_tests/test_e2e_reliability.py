"""Reliability end to end: the real CLI and instance against a misbehaving WeCom and open readers.

Every scenario runs ``dagster asset materialize`` in a subprocess with this repository's
``dagster.yaml`` in a real ``DAGSTER_HOME``, against the sandbox, and then compares each DuckDB
table with the org the sandbox served (or with yesterday's org when the run must not have replaced
it). One module-scoped instance is shared, as one deployment's instance is shared by its runs; every
scenario is its own WeCom app (its own secret), so none reuses another's cached token. The last test
scans everything the others left behind for the secrets and every token the sandbox issued.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from e2e_env import cli_env
from e2e_events import check_outcomes, step_windows
from e2e_instance import copy_dagster_home
from e2e_processes import CORE_ASSETS, CliResult, RunningCli, launch_materialize
from e2e_run_config import run_config
from leak_scan import find_leaks
from warehouse_oracle import (
    assert_same_tables,
    assert_warehouse_holds,
    expected_tables,
    warehouse_tables,
)

from wecom_assets.sandbox.org import generate_org, subtree_ids, visible_view
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer

pytestmark = pytest.mark.e2e

logger = logging.getLogger(__name__)

DEFAULT_SANDBOX = dataclasses.asdict(SandboxConfig())
SYNC_STEP = "wecom_org"
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "Another sync has been writing")


@dataclass
class World:
    """The shared instance, the sandbox and a ledger of everything a leak scan must cover."""

    root: Path
    home: Path
    logs: Path
    sandbox: SandboxServer
    known_secrets: dict[str, str] = field(default_factory=dict)
    databases: list[Path] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def serve(self, org: dict[str, Any], app: str, **config: Any) -> dict[str, Any]:
        """Serve ``org`` as a new app (fresh secret, so no cached token) with ``config``."""
        served = {**org, "corp_secret": secrets.token_urlsafe(32)}
        self.known_secrets[f"secret of app {app}"] = served["corp_secret"]
        self.sandbox.replace_org(served)
        self.sandbox.update_config(**{**DEFAULT_SANDBOX, **config})
        self.sandbox.reset_stats()
        return served

    def database(self, directory: Path, copy_of: Path | None = None) -> Path:
        """A DuckDB path for one scenario: empty, or a copy of an earlier night's file."""
        path = directory / "wecom.duckdb"
        if copy_of is not None:
            shutil.copyfile(copy_of, path)
        self.databases.append(path)
        return path

    def launch(
        self,
        name: str,
        app: dict[str, Any],
        database: Path,
        *,
        config: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> RunningCli:
        """Start the nightly sync of the three tables through the CLI."""
        env = cli_env(
            dagster_home=self.home,
            duckdb_path=database,
            corp_id=app["corp_id"],
            corp_secret=app["corp_secret"] if secret is None else secret,
            base_url=self.sandbox.url,
        )
        return launch_materialize(
            CORE_ASSETS,
            env=env,
            cwd=self.root,
            log_dir=self.logs,
            name=f"{next(self._names):02d}-{name}",
            config=config,
        )

    def sync(
        self,
        name: str,
        app: dict[str, Any],
        database: Path,
        *,
        config: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> CliResult:
        """Run the nightly sync of the three tables through the CLI to its end."""
        result = self.launch(name, app, database, config=config, secret=secret).wait()
        logger.info("%s: exit %d after %.1fs", name, result.returncode, result.seconds)
        return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_dagster_home: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e_reliability")
    home = copy_dagster_home(migrated_dagster_home, root / "dagster_home")
    with SandboxServer(generate_org(users=1, departments=1, seed=0)) as sandbox:
        yield World(root=root, home=home, logs=root / "cli_logs", sandbox=sandbox)


@pytest.fixture(scope="module")
def org() -> dict[str, Any]:
    """Yesterday's org: 300 users in 40 departments."""
    return generate_org(users=300, departments=40, seed=11)


@pytest.fixture(scope="module")
def baseline(world: World, org: dict[str, Any]) -> Path:
    """Yesterday's DuckDB file: a successful CLI sync of ``org``; scenarios copy it."""
    app = world.serve(org, "baseline")
    database = world.database(_scenario_dir(world, "baseline"))
    result = world.sync("baseline", app, database)
    assert result.returncode == 0, result.explain()
    assert_warehouse_holds(database, org)
    assert not database.with_name(database.name + ".wal").exists()
    return database


def _scenario_dir(world: World, name: str) -> Path:
    path = world.root / name
    path.mkdir()
    return path


def reorganised(org: dict[str, Any]) -> dict[str, Any]:
    """Today's org: renamed and new departments, changed, moved and departed people."""
    departments = [dict(d) for d in org["departments"]]
    for dept in departments[1:4]:
        dept["name"] = f"新{dept['name']}"
    new_id = max(d["id"] for d in departments) + 1
    departments.append(
        {"id": new_id, "name": "数据平台部", "parentid": 1, "order": 7, "department_leader": []}
    )
    leaders = {uid for d in departments for uid in d.get("department_leader") or ()}
    leaders |= {uid for u in org["users"] for uid in u.get("direct_leader") or ()}
    users = [dict(u) for u in org["users"]]
    movable = [u for u in users if u["userid"] not in leaders]
    for user in movable[:5]:
        user["position"] = "数据工程师"
    mover = movable[5]
    mover.update(department=[new_id], order=[1], is_leader_in_dept=[0], main_department=new_id)
    departed = {u["userid"] for u in movable[6:9]}
    users = [u for u in users if u["userid"] not in departed]
    return {**org, "departments": departments, "users": users}


def test_mixed_transient_faults_and_token_churn_still_give_exact_tables(
    world: World, tmp_path: Path
) -> None:
    org = generate_org(users=500, departments=250, seed=21)
    # 3% each of system busy, gateway errors and dropped connections, and 3% of truncated JSON
    # (half cut mid-body, half complete answers with cut-off JSON), gettoken included. The fault
    # sequence is seeded: seed 5 yields every kind within the first 85 of the run's 250+ calls.
    app = world.serve(
        org,
        "faults",
        busy_rate=0.03,
        http_5xx_rate=0.03,
        drop_rate=0.03,
        truncate_rate=0.015,
        bad_json_rate=0.015,
        gettoken_faults=True,
        invalidate_every=100,
        token_ttl=20,
        seed=5,
    )
    database = world.database(tmp_path)

    result = world.sync("faults", app, database)

    assert result.returncode == 0, result.explain()
    assert_warehouse_holds(database, org)
    stats = world.sandbox.stats()
    logger.info("faults: %.1fs, sandbox stats %s", result.seconds, _counts(stats))
    assert {k: v for k, v in stats["faults"].items() if v == 0} == {"outage": 0}
    assert stats["tokens_invalidated"] >= 2


def test_a_tight_rate_limit_completes_exactly_with_few_rate_limit_answers(
    world: World, tmp_path: Path
) -> None:
    org = generate_org(users=400, departments=160, seed=22)
    app = world.serve(org, "rate_limit", rate_limit_per_minute=40, rate_limit_window=1.0)
    database = world.database(tmp_path)
    config = run_config(wecom={"rate_limit_per_minute": 40, "rate_limit_window_seconds": 1.0})

    result = world.sync("rate_limit", app, database, config=config)

    assert result.returncode == 0, result.explain()
    assert_warehouse_holds(database, org)
    stats = world.sandbox.stats()
    rejected = stats["errcodes"].get(45009, 0)
    logger.info("rate limit: %d x 45009 in %.1fs, %s", rejected, result.seconds, _counts(stats))
    assert stats["calls"]["user/list"] >= len(org["departments"])
    assert rejected <= len(org["departments"]) // 10


def test_an_outage_mid_run_fails_in_bounded_time_and_keeps_yesterdays_whole_org(
    world: World, org: dict[str, Any], baseline: Path, tmp_path: Path
) -> None:
    today = reorganised(org)
    # department/list and five user/list calls succeed, then every call answers HTTP 503.
    app = world.serve(today, "outage", fail_after=6)
    database = world.database(tmp_path, copy_of=baseline)
    before = database.read_bytes()
    retry_budget = 5.0
    config = run_config(wecom={"max_retries": 3, "retry_max_seconds": retry_budget})

    result = world.sync("outage", app, database, config=config)

    assert result.returncode != 0
    assert "Fetching from WeCom failed: WeCom user/list" in result.output, result.explain()
    assert "HTTP 503" in result.output
    steps = step_windows(world.home, result.run_id)
    logger.info("outage: sync failed after %.1fs", steps[SYNC_STEP].seconds)
    assert not steps[SYNC_STEP].succeeded
    assert steps[SYNC_STEP].seconds < retry_budget + 5
    # Today's departments were fetched, but not one table shows them: the org is one snapshot.
    assert_warehouse_holds(database, org)
    assert database.read_bytes() == before


def test_a_wrong_secret_fails_fast_without_retrying_gettoken(
    world: World, org: dict[str, Any], baseline: Path, tmp_path: Path
) -> None:
    app = world.serve(org, "wrong_secret")
    wrong = secrets.token_urlsafe(32)
    world.known_secrets["a wrong secret"] = wrong
    database = world.database(tmp_path, copy_of=baseline)

    result = world.sync("wrong_secret", app, database, secret=wrong)

    assert result.returncode != 0
    assert "WeCom rejected the corp secret (errcode 40001" in result.output, result.explain()
    assert "Check WECOM_CORP_SECRET" in result.output
    assert wrong not in result.output
    stats = world.sandbox.stats()
    steps = step_windows(world.home, result.run_id)
    logger.info(
        "wrong secret: %d gettoken, sync step %.2fs, CLI %.1fs",
        stats["gettoken"],
        steps[SYNC_STEP].seconds,
        result.seconds,
    )
    assert 1 <= stats["gettoken"] <= 2
    assert stats["gettoken_failed"] == stats["gettoken"]
    assert stats["calls"] == {}
    assert steps[SYNC_STEP].seconds < 5
    assert_warehouse_holds(database, org)


def two_subtrees(org: dict[str, Any]) -> list[int]:
    """Two top-level branches, smallest first, whose people also work outside them."""
    top = [d["id"] for d in org["departments"] if d.get("parentid") == 1]
    by_size = sorted(top, key=lambda d: len(subtree_ids(org["departments"], [d])))
    chosen = [
        root
        for root in by_size
        if any("main_department" not in u for u in visible_view(org, [root])["users"])
    ][:2]
    assert len(chosen) == 2, "the generated org has no two branches with outside members"
    return chosen


def test_a_partial_visible_range_loads_exactly_the_visible_subtrees(
    world: World, org: dict[str, Any], tmp_path: Path
) -> None:
    visible = two_subtrees(org)
    view = visible_view(org, visible)
    outside = [u for u in view["users"] if "main_department" not in u]
    assert outside and len(view["users"]) < len(org["users"])
    app = world.serve(org, "visible_range", visible_department_ids=visible)
    database = world.database(tmp_path)

    result = world.sync("visible_range", app, database)

    assert result.returncode == 0, result.explain()
    assert_warehouse_holds(database, org, visible)
    in_range = subtree_ids(org["departments"], visible)
    with duckdb.connect(str(database), read_only=True) as conn:
        invented_leaders = conn.execute(
            "SELECT DISTINCT leader FROM (SELECT unnest(leaders) AS leader FROM wecom_departments)"
            " WHERE leader NOT IN (SELECT userid FROM wecom_users)"
        ).fetchall()
        membership_departments = {
            r[0]
            for r in conn.execute("SELECT DISTINCT department_id FROM dept_membership").fetchall()
        }
        mains = conn.execute(
            "SELECT count(*) FROM wecom_users WHERE main_department IS NULL"
        ).fetchone()
    assert invented_leaders == []
    assert membership_departments <= in_range
    assert mains == (len(outside),)
    outcomes = check_outcomes(world.home, result.run_id)
    assert outcomes and all(outcomes.values()), outcomes


def test_two_runs_at_once_both_succeed_and_never_hit_the_file_lock(
    world: World, org: dict[str, Any], baseline: Path, tmp_path: Path
) -> None:
    today = reorganised(org)
    app = world.serve(today, "two_runs")
    database = world.database(tmp_path, copy_of=baseline)

    first = world.launch("two_runs_a", app, database)
    second = world.launch("two_runs_b", app, database)
    results = [first.wait(), second.wait()]

    for result in results:
        assert result.returncode == 0, result.explain()
        assert not any(error in result.output for error in LOCK_ERRORS), result.explain()
    # Usually the pool holds the second step back ("Step blocked by limit for pool"), but not
    # always: Dagster's SQLite storage claims a pool slot with a select-then-update that two
    # processes can both win, and on a busy machine the second step may only start after the
    # first ended. Either way the sync lock file holds a later publish back, so neither run may
    # fail on DuckDB's lock, and the warehouse must hold the org exactly.
    windows = [step_windows(world.home, result.run_id)[SYNC_STEP] for result in results]
    assert all(window.succeeded for window in windows)
    assert_warehouse_holds(database, today)


SESSION = textwrap.dedent(
    """
    import sys, duckdb
    connection = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
    print("open", flush=True)
    for query in sys.stdin:
        print(connection.execute(query).fetchall(), flush=True)
    """
)
RENAMED = "SELECT count(*) FROM wecom_departments WHERE starts_with(name, '新')"


@pytest.mark.parametrize("mode", ["read_only", "read_write"])
def test_an_open_session_neither_blocks_the_run_nor_sees_half_of_it(
    world: World, org: dict[str, Any], baseline: Path, tmp_path: Path, mode: str
) -> None:
    today = reorganised(org)
    app = world.serve(today, f"session_{mode}")
    database = world.database(tmp_path, copy_of=baseline)
    # A sync that waited for the session would run into this and fail.
    config = run_config(duckdb={"lock_timeout_seconds": 2})
    session = subprocess.Popen(
        [sys.executable, "-c", SESSION, str(database), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert session.stdin is not None and session.stdout is not None
    try:
        assert session.stdout.readline() == "open\n"
        result = world.sync(f"session_{mode}", app, database, config=config)
        session.stdin.write(RENAMED + "\n")
        session.stdin.flush()
        seen_by_session = session.stdout.readline().strip()
    finally:
        session.communicate(timeout=30)

    assert result.returncode == 0, result.explain()
    assert not any(error in result.output for error in LOCK_ERRORS), result.explain()
    assert seen_by_session == "[(0,)]"
    assert_warehouse_holds(database, today)
    with duckdb.connect(str(database)) as after:
        assert after.execute(RENAMED).fetchone() == (3,)


def test_a_killed_run_leaves_the_published_file_and_the_next_run_publishes(
    org: dict[str, Any], baseline: Path, tmp_path: Path, migrated_dagster_home: Path
) -> None:
    # Its own instance: the killed run's pool slot stays claimed until run monitoring (a daemon
    # feature) frees it, and must not hold up the other scenarios.
    home = copy_dagster_home(migrated_dagster_home, tmp_path / "dagster_home")
    database = tmp_path / "wecom.duckdb"
    shutil.copyfile(baseline, database)
    before = database.read_bytes()
    with SandboxServer(reorganised(org), SandboxConfig(latency_ms=400)) as sandbox:
        env = cli_env(
            dagster_home=home,
            duckdb_path=database,
            corp_id=org["corp_id"],
            corp_secret=org["corp_secret"],
            base_url=sandbox.url,
        )
        run = launch_materialize(
            CORE_ASSETS, env=env, cwd=tmp_path, log_dir=tmp_path / "logs", name="killed"
        )
        while sandbox.stats()["calls"].get("user/list", 0) == 0:
            assert run.process.poll() is None, "the run ended before it listed any users"
            time.sleep(0.05)
        run.process.send_signal(signal.SIGKILL)
        run.wait()
        assert database.read_bytes() == before
        assert_warehouse_holds(database, org)
        sandbox.update_config(latency_ms=0)
        fresh_home = copy_dagster_home(migrated_dagster_home, tmp_path / "dagster_home_2")
        env["DAGSTER_HOME"] = str(fresh_home)
        rerun = launch_materialize(
            CORE_ASSETS, env=env, cwd=tmp_path, log_dir=tmp_path / "logs", name="rerun"
        ).wait()
    assert rerun.returncode == 0, rerun.explain()
    assert_warehouse_holds(database, reorganised(org))
    assert [p.name for p in tmp_path.glob(".wecom.duckdb.sync-*")] == []


LONG_USERID = "Contractor.External.Account." + "x" * 36


def malformed_org(corp_id: str) -> dict[str, Any]:
    """An org whose payloads bend every rule a tolerant loader has to survive."""
    quoted = 'O\'Neil "小明" 😀 \\ ; DROP TABLE wecom_users; --'
    return {
        "corp_id": corp_id,
        "corp_secret": "replaced-per-app",
        "departments": [
            {"id": 1, "name": "总部 “HQ” 🏢", "parentid": 0, "order": 100000000},
            {
                "id": 2,
                "name": quoted,
                "parentid": 1,
                "order": "10",
                "department_leader": ["ZhangSan"],
            },
            {"id": 3, "name": "研发部", "parentid": "1", "order": None, "department_leader": None},
            {"id": 4294967000, "name": "", "parentid": 2},
        ],
        "users": [
            {
                "userid": "Quote.Emoji",
                "name": quoted,
                "alias": "🐼",
                "department": [1],
                "status": 1,
            },
            *(
                {
                    "userid": userid,
                    "name": "张三 😀",
                    "department": [2, 3],
                    "order": ["5", 7],
                    "is_leader_in_dept": ["1", 0],
                    "main_department": "2",
                    "status": "1",
                    "gender": 1,
                    "direct_leader": "Quote.Emoji",
                    "extattr": '{"attrs": []}',
                }
                for userid in ("ZhangSan", "zhangsan")
            ),
            {
                "userid": "nulls.user",
                "name": None,
                "alias": None,
                "position": None,
                "status": None,
                "department": [2],
                "order": None,
                "is_leader_in_dept": None,
                "main_department": None,
                "direct_leader": None,
                "extattr": None,
                "mobile": None,
            },
            {
                "userid": "Wrong.Types",
                "name": 12345,
                "status": "active",
                "department": [2, 3],
                "order": ["1", 2.5],
                "is_leader_in_dept": [2, "0"],
                "main_department": "3",
                "gender": 2,
                "direct_leader": ["ZhangSan", 7, None],
                "external_profile": "not json",
            },
            {"userid": "minimal", "department": [3]},
            {
                "userid": LONG_USERID,
                "name": "Long",
                "department": [4294967000],
                "main_department": 4294967000,
                "status": 4,
            },
        ],
    }


def test_malformed_api_data_is_loaded_faithfully_or_rejected_by_a_clear_check(
    world: World, org: dict[str, Any], tmp_path: Path
) -> None:
    weird = malformed_org(org["corp_id"])
    app = world.serve(weird, "malformed")
    database = world.database(tmp_path)

    loaded = world.sync("malformed", app, database)

    assert loaded.returncode == 0, loaded.explain()
    # WeCom userids are case-insensitive: both spellings are one member, kept as first listed.
    duplicate = "zhangsan"
    loaded_tables = warehouse_tables(database)
    assert_same_tables(loaded_tables, expected_tables(weird).without_users(duplicate))
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT userid, name, status, main_department, department_orders,"
                " is_leader_in_dept, gender, direct_leaders, extattr::VARCHAR,"
                " external_profile::VARCHAR FROM wecom_users"
            ).fetchall()
        }
        orders = dict(conn.execute("SELECT id, sort_order FROM wecom_departments").fetchall())
    assert rows["ZhangSan"] == (
        "张三 😀",
        1,
        2,
        [5, 7],
        [True, False],
        "1",
        None,
        '{"attrs": []}',
        None,
    )
    assert duplicate not in rows
    assert rows["Quote.Emoji"][0] == weird["users"][0]["name"]
    assert rows["nulls.user"] == (None, None, None, [None], [None], None, None, None, None)
    assert rows["Wrong.Types"] == (
        "12345",
        None,
        3,
        [1, None],
        [None, False],
        "2",
        ["ZhangSan", "7"],
        None,
        None,
    )
    assert rows["minimal"] == (None, None, None, [None], [None], None, None, None, None)
    assert len(LONG_USERID.encode()) == 64 and rows[LONG_USERID][1] == 4
    assert orders == {1: 100000000, 2: 10, 3: None, 4294967000: None}

    orphan = {"id": 5, "name": "孤儿部门", "parentid": 999}
    world.sandbox.replace_org({**app, "departments": [*weird["departments"], orphan]})
    rejected = world.sync("malformed_orphan", app, database)

    assert rejected.returncode != 0
    assert (
        "Sync not published: Snapshot of wecom_departments rejected. department_tree_is_sound"
    ) in rejected.output, rejected.explain()
    assert "Nothing was published" in rejected.output
    assert "Ids: 5" in rejected.output
    outcomes = check_outcomes(world.home, rejected.run_id)
    assert outcomes[("wecom_departments", "department_tree_is_sound")] is False
    assert_same_tables(warehouse_tables(database), loaded_tables)


def test_the_shrink_guard_keeps_yesterday_until_the_run_allows_the_drop(
    world: World, org: dict[str, Any], baseline: Path, tmp_path: Path
) -> None:
    top = [d["id"] for d in org["departments"] if d.get("parentid") == 1]
    branch = min(top, key=lambda d: len(visible_view(org, [d])["users"]) or len(org["users"]))
    visible = [branch]
    assert len(visible_view(org, visible)["users"]) < len(org["users"]) / 2
    app = world.serve(org, "shrink", visible_department_ids=visible)
    database = world.database(tmp_path, copy_of=baseline)

    refused = world.sync("shrink", app, database)

    assert refused.returncode != 0
    assert (
        f"wecom_departments would shrink from {len(org['departments'])} to "
        f"{len(visible_view(org, visible)['departments'])} rows"
    ) in refused.output, refused.explain()
    assert "rerun with the run config `max_shrink_fraction: 1.0`" in refused.output
    assert_warehouse_holds(database, org)

    allow = {"max_shrink_fraction": 1.0}
    allowed = world.sync(
        "shrink_allowed",
        app,
        database,
        config=run_config(assets={SYNC_STEP: allow}),
    )

    assert allowed.returncode == 0, allowed.explain()
    assert_warehouse_holds(database, org, visible)


def test_no_secret_or_token_is_left_in_the_instance_the_database_or_the_output(
    world: World, baseline: Path
) -> None:
    issued = world.sandbox.stats()["issued_tokens"]
    assert issued and world.known_secrets
    needles = {
        **world.known_secrets,
        **{f"access token #{n}": token for n, token in enumerate(issued, 1)},
    }
    token_cache = world.home / ".wecom"
    compute_logs = [p for p in (world.home / "storage").rglob("*") if p.is_file()]
    assert compute_logs, "the instance kept no compute logs to scan"

    leaks = find_leaks(
        [world.home, world.logs, *(p for p in world.databases if p.exists())],
        needles,
        exclude=[token_cache],
    )

    assert leaks == []
    # The scanner does find a token where one is stored by design: the token cache.
    assert find_leaks([token_cache], needles)
    assert stat.S_IMODE(token_cache.stat().st_mode) == 0o700
    cached = sorted(token_cache.iterdir())
    assert any(p.suffix == ".json" for p in cached)
    for path in cached:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert find_leaks([token_cache], world.known_secrets) == []


def _counts(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "issued_tokens"}
