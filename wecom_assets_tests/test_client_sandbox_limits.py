"""The client against a sandbox playing WeCom's hour and per-IP limits, and a new app's fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_helpers import config_for

from wecom_assets.sandbox.org import visible_view
from wecom_assets.sandbox.server import SandboxConfig, SandboxServer
from wecom_assets.wecom import Department, User, WeComBlockedError, WeComClient

StartSandbox = Callable[..., SandboxServer]


def _client(sandbox: SandboxServer, **overrides: Any) -> WeComClient:
    org = sandbox.org
    settings: dict[str, Any] = {"corp_id": org["corp_id"], "corp_secret": org["corp_secret"]}
    settings.update(overrides)
    return WeComClient(config_for(sandbox.url, **settings))


def _fetch(client: WeComClient) -> tuple[list[Department], list[User]]:
    departments = client.list_departments()
    return departments, list(client.iter_users(d.id for d in departments))


def test_a_corp_past_the_hour_limit_per_api_fails_before_wecom_blocks_it(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(
        sandbox_org, SandboxConfig(rate_limit_per_hour=10, rate_limit_blocks=True)
    )
    with _client(sandbox, rate_limit_per_hour=10) as client:
        with pytest.raises(WeComBlockedError, match="It can run again after") as caught:
            _fetch(client)
    assert caught.value.path == "user/list"
    stats = sandbox.stats()
    assert stats["calls"]["user/list"] == 10
    assert stats["errcodes"] == {}


def test_a_per_ip_hour_block_ends_the_fetch_at_once_naming_the_per_ip_limit(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(
        sandbox_org, SandboxConfig(ip_rate_limit_per_hour=20, rate_limit_blocks=True)
    )
    # The client counts one call more than WeCom lets through, as when another tool used one.
    with _client(sandbox, ip_rate_limit_per_hour=21, max_concurrency=1) as client:
        with pytest.raises(WeComBlockedError) as caught:
            _fetch(client)
        assert client.stats.retries == 0
    assert "per IP (every corp and run on this machine together)" in str(caught.value)
    assert "per-IP hour limit" in str(caught.value)
    assert sandbox.stats()["errcodes"] == {45009: 1}


def test_runs_sharing_a_token_cache_keep_the_per_ip_limit_together(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    sandbox = start_sandbox(
        sandbox_org, SandboxConfig(ip_rate_limit_per_hour=40, rate_limit_blocks=True)
    )
    shared = {"token_cache_dir": tmp_path, "ip_rate_limit_per_hour": 40}
    with _client(sandbox, **shared) as first_corp:
        _fetch(first_corp)
    with _client(sandbox, **shared) as second_corp, pytest.raises(WeComBlockedError):
        _fetch(second_corp)
    stats = sandbox.stats()
    assert stats["gettoken"] + sum(stats["calls"].values()) == 40
    assert stats["errcodes"] == {}


def test_a_new_apps_fetch_has_no_contact_details_and_gender_0(
    sandbox_org: dict[str, Any], start_sandbox: StartSandbox
) -> None:
    sandbox = start_sandbox(sandbox_org, SandboxConfig(new_app=True))
    with _client(sandbox) as client:
        _, users = _fetch(client)
    expected = {
        u["userid"]: User.from_api(u)
        for u in visible_view(sandbox_org, None, new_app=True)["users"]
    }
    assert {user.userid: user for user in users} == expected
    assert {(user.mobile, user.email, user.avatar, user.gender) for user in users} == {
        (None, None, None, "0")
    }
    assert any(user.telephone for user in users)
