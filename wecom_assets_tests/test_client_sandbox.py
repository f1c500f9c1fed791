"""The client against the bundled WeCom sandbox: exact results, exact call counts, real faults."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import pytest
from client_helpers import SECRET, FakeClock, config_for, wait_for_file_length

from wecom_assets.sandbox.org import generate_org, visible_view
from wecom_assets.sandbox.server import FaultConfig, SandboxConfig, SandboxServer
from wecom_assets.wecom import (
    Department,
    User,
    WeComAuthError,
    WeComClient,
    WeComPermissionError,
)
from wecom_assets.wecom.tokens import cache_file_name

StartSandbox = Callable[..., SandboxServer]
FAULT_KINDS = ("busy", "http_5xx", "drop", "truncate", "bad_json")


@pytest.fixture(scope="module")
def large_org() -> dict[str, Any]:
    """3,000 users in 300 departments; do not mutate."""
    return generate_org(users=3000, departments=300, seed=11)


def _client(sandbox: SandboxServer, org: dict[str, Any], **overrides: Any) -> WeComClient:
    settings: dict[str, Any] = {"corp_id": org["corp_id"], "corp_secret": org["corp_secret"]}
    settings.update(overrides)
    return WeComClient(config_for(sandbox.url, **settings))


def _fetch_org(client: WeComClient) -> tuple[list[Department], list[User]]:
    """The org as the assets fetch it: department/list once, then user/list per department."""
    departments = client.list_departments()
    return departments, list(client.iter_users(d.id for d in departments))


def _assert_org_is_view(org: tuple[list[Department], list[User]], view: dict[str, Any]) -> None:
    departments, users = org
    assert departments == [Department.from_api(item) for item in view["departments"]]
    expected_users = {user["userid"]: User.from_api(user) for user in view["users"]}
    got_users = {user.userid: user for user in users}
    assert len(users) == len(got_users)
    assert got_users == expected_users


def test_full_fetch_equals_the_org_with_one_token_and_one_call_per_department(
    large_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(large_org)
    with _client(sandbox, large_org) as client:
        org = _fetch_org(client)
        stats = client.stats
    _assert_org_is_view(org, visible_view(large_org, None))
    seen = sandbox.stats()
    assert seen["gettoken"] == 1
    assert seen["calls"] == {"department/list": 1, "user/list": 300}
    assert dict(stats.calls) == {"gettoken": 1, "department/list": 1, "user/list": 300}
    assert stats.retries == 0


def test_full_fetch_survives_every_fault_kind_and_early_token_invalidation(
    large_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    faults = FaultConfig(
        busy_rate=0.03, http_5xx_rate=0.03, drop_rate=0.03, truncate_rate=0.03, bad_json_rate=0.03
    )
    sandbox = start_sandbox(large_org, SandboxConfig(faults=faults, invalidate_every=120, seed=5))
    with _client(sandbox, large_org, max_retries=6) as client:
        org = _fetch_org(client)
        stats = client.stats
    _assert_org_is_view(org, visible_view(large_org, None))
    seen = sandbox.stats()
    injected = {kind: seen["faults"][kind] for kind in FAULT_KINDS}
    assert all(count > 0 for count in injected.values()), injected
    assert seen["tokens_invalidated"] >= 2
    # One fresh token per early invalidation: rejected calls never stampede gettoken.
    assert seen["gettoken"] == 1 + seen["tokens_invalidated"]
    assert stats.token_fetches == seen["gettoken"]
    assert stats.retries > 0


def test_logs_of_a_faulty_sync_hold_no_token_or_secret(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = FaultConfig(busy_rate=0.05, http_5xx_rate=0.05, drop_rate=0.05, truncate_rate=0.05)
    sandbox = start_sandbox(sandbox_org, SandboxConfig(faults=faults, invalidate_every=10))
    with _client(sandbox, sandbox_org, max_retries=8) as client:
        _fetch_org(client)
    client_lines = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("wecom_assets.wecom", "urllib3"))
    )
    assert "retry" in client_lines
    tokens = sandbox.stats()["issued_tokens"]
    assert len(tokens) >= 2
    for secret in [sandbox_org["corp_secret"], *tokens]:
        assert secret not in client_lines


def test_partial_visible_range_fetches_exactly_what_the_app_sees(
    large_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    roots = [d["id"] for d in large_org["departments"] if d["parentid"] == 1][:2]
    sandbox = start_sandbox(large_org, SandboxConfig(visible_department_ids=roots))
    view = visible_view(large_org, roots)
    with _client(sandbox, large_org) as client:
        org = _fetch_org(client)
    _assert_org_is_view(org, view)
    assert 0 < len(org[0]) < 300
    assert sandbox.stats()["calls"] == {
        "department/list": 1,
        "user/list": len(view["departments"]),
    }


def test_department_leaving_the_visible_range_mid_sync_names_it(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(sandbox_org)
    with _client(sandbox, sandbox_org, max_concurrency=2) as client:
        departments = client.list_departments()
        kept = next(d.id for d in departments if d.parent_id == 1)
        sandbox.update_config(visible_department_ids=[kept])
        visible = {d["id"] for d in visible_view(sandbox_org, [kept])["departments"]}
        hidden = {d.id for d in departments if d.id not in visible}
        with pytest.raises(WeComPermissionError) as caught:
            list(client.iter_users(d.id for d in departments))
    # Two calls are in flight, so whichever hidden department fails first is the one named.
    named = re.search(r"department (\d+) answered 60011", str(caught.value))
    assert named is not None and int(named.group(1)) in hidden
    assert "visible range" in str(caught.value)


def test_wrong_secret_fails_fast_with_at_most_two_gettoken_tries(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(sandbox_org)
    clock = FakeClock()
    config = config_for(sandbox.url, corp_id=sandbox_org["corp_id"], corp_secret=SECRET)
    with WeComClient(config, sleep=clock.sleep, clock=clock) as client:
        for _ in range(3):
            with pytest.raises(WeComAuthError) as caught:
                _fetch_org(client)
    assert clock.sleeps == []
    assert sandbox.stats()["gettoken"] == 2
    assert sandbox.stats()["calls"] == {}
    assert "WECOM_CORP_SECRET" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert sandbox_org["corp_secret"] not in str(caught.value)


def test_rate_limit_answers_are_absorbed_by_backoff_and_slow_down(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(
        sandbox_org, SandboxConfig(rate_limit_per_minute=12, rate_limit_window=0.3)
    )
    with _client(
        sandbox,
        sandbox_org,
        max_concurrency=8,
        max_retries=8,
        retry_base_delay=0.02,
        retry_max_delay=0.2,
        rate_limit_window=0.3,
    ) as client:
        org = _fetch_org(client)
        stats = client.stats
    _assert_org_is_view(org, visible_view(sandbox_org, None))
    assert stats.errcodes.get(45009, 0) > 0
    assert sandbox.stats()["errcodes"].get(45009, 0) == stats.errcodes[45009]


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import filelock
    from wecom_assets.wecom import ClientConfig, WeComClient

    url, corp_id, secret, cache_dir, waiting = sys.argv[1:6]
    acquire = filelock.FileLock.acquire

    def announce_then_acquire(self, *args, **kwargs):
        with open(waiting, "a") as handle:
            handle.write("w")
        return acquire(self, *args, **kwargs)

    filelock.FileLock.acquire = announce_then_acquire
    config = ClientConfig(corp_id, secret, base_url=url, token_cache_dir=Path(cache_dir))
    with WeComClient(config) as client:
        departments = client.list_departments()
        client.list_users(departments[0].id)
        print(len(departments), client.stats.token_fetches)
    """
)


def test_processes_needing_a_token_together_share_one(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    sandbox = start_sandbox(sandbox_org, SandboxConfig(latency_ms=50))
    cache_dir, waiting = tmp_path / "tokens", tmp_path / "waiting"
    cache_dir.mkdir(mode=0o700)
    waiting.write_text("")
    name = cache_file_name(sandbox_org["corp_id"], sandbox_org["corp_secret"])
    argv = [sandbox.url, sandbox_org["corp_id"], sandbox_org["corp_secret"], str(cache_dir)]
    # Hold the cache lock until every child has found no token and queued for the lock, so all
    # five contend for the one gettoken, however slowly they start.
    with filelock.FileLock(str(cache_dir / name) + ".lock"):
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, *argv, str(waiting)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(5)
        ]
        assert wait_for_file_length(waiting, 5), "not every child reached the lock"
    results = [child.communicate(timeout=60) for child in children]
    assert all(child.returncode == 0 for child in children), results
    counts = [out.split() for out, _ in results]
    assert all(departments == str(len(sandbox_org["departments"])) for departments, _ in counts)
    assert sorted(fetches for _, fetches in counts) == ["0", "0", "0", "0", "1"]
    assert sandbox.stats()["gettoken"] == 1
    assert sandbox.stats()["calls"]["department/list"] == 5
