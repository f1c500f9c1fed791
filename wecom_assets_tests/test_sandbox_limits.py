"""The sandbox plays WeCom's limits: per API and per IP, a minute and an hour, and the blocks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from clock_support import ManualClock

from wecom_assets.sandbox.__main__ import build_parser, serve_config
from wecom_assets.sandbox.config import SandboxConfig
from wecom_assets.sandbox.engine import SandboxEngine


class Caller:
    """Calls a sandbox engine directly, from any client IP, with a valid token."""

    def __init__(self, org: dict[str, Any], config: SandboxConfig, clock: ManualClock) -> None:
        self.engine = SandboxEngine(org, config, clock)
        self._org = org
        self._token = ""

    def gettoken(self, ip: str = "10.0.0.1") -> dict[str, Any]:
        query = {"corpid": self._org["corp_id"], "corpsecret": self._org["corp_secret"]}
        return json.loads(self.engine.handle("GET", "gettoken", query, b"", ip).body)

    def call(self, path: str, ip: str = "10.0.0.1") -> dict[str, Any]:
        if not self._token:
            # From an address no per-IP limit under test counts.
            self._token = str(self.gettoken(ip="192.0.2.250")["access_token"])
        query = {"access_token": self._token, "department_id": "1", "id": "1"}
        return json.loads(self.engine.handle("GET", path, query, b"", ip).body)

    def codes(self, path: str, times: int, ip: str = "10.0.0.1") -> list[int]:
        return [self.call(path, ip)["errcode"] for _ in range(times)]


def caller(org: dict[str, Any], clock: ManualClock, **settings: Any) -> Caller:
    return Caller(org, SandboxConfig(**settings), clock)


def test_the_hour_limit_per_api_answers_45009_after_its_calls(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, rate_limit_per_hour=3)
    assert sandbox.codes("department/list", 3) == [0, 0, 0]
    clock.advance(3000)
    assert sandbox.codes("department/list", 1) == [45009]
    assert sandbox.codes("user/list", 1) == [0]


def test_the_hour_window_frees_a_call_an_hour_after_the_oldest(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, rate_limit_per_hour=2)
    sandbox.codes("department/list", 1)
    clock.advance(600)
    sandbox.codes("department/list", 1)
    clock.advance(2999)
    assert sandbox.codes("department/list", 1) == [45009]
    clock.advance(1)
    assert sandbox.codes("department/list", 1) == [0]


def test_the_per_ip_minute_limit_counts_every_api_and_gettoken_together(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_minute=3)
    assert sandbox.codes("department/list", 1) == [0]
    assert sandbox.gettoken()["errcode"] == 0
    assert sandbox.codes("user/list", 2) == [0, 45009]


def test_each_client_ip_has_its_own_budget(sandbox_org: dict[str, Any], clock: ManualClock) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_minute=2)
    assert sandbox.codes("department/list", 3, ip="10.0.0.1") == [0, 0, 45009]
    assert sandbox.codes("department/list", 2, ip="10.0.0.2") == [0, 0]


def test_the_per_ip_hour_limit_holds_after_the_minute_window_moves_on(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_minute=2, ip_rate_limit_per_hour=3)
    assert sandbox.codes("user/list", 3) == [0, 0, 45009]
    clock.advance(60)
    assert sandbox.codes("department/list", 2) == [0, 45009]


def test_a_refused_call_counts_against_no_limit(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_minute=3, rate_limit_per_minute=1)
    assert sandbox.codes("department/list", 3) == [0, 45009, 45009]
    assert sandbox.codes("user/list", 1) == [0]
    assert sandbox.codes("department/get", 1) == [0]
    assert sandbox.codes("user/simplelist", 1) == [45009]


def test_without_blocks_a_call_goes_through_once_the_oldest_leaves_the_window(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, rate_limit_per_minute=2)
    sandbox.codes("department/list", 1)
    clock.advance(30)
    assert sandbox.codes("department/list", 2) == [0, 45009]
    clock.advance(30)
    assert sandbox.codes("department/list", 1) == [0]


def test_going_over_the_minute_limit_blocks_the_api_for_a_whole_minute(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, rate_limit_per_minute=2, rate_limit_blocks=True)
    sandbox.codes("department/list", 1)
    clock.advance(30)
    assert sandbox.codes("department/list", 2) == [0, 45009]
    clock.advance(59)
    assert sandbox.codes("department/list", 1) == [45009]
    assert sandbox.codes("user/list", 1) == [0]
    clock.advance(1)
    assert sandbox.codes("department/list", 2) == [0, 0]


def test_going_over_the_per_ip_hour_limit_blocks_the_ip_for_a_whole_hour(
    sandbox_org: dict[str, Any], clock: ManualClock
) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_hour=2, rate_limit_blocks=True)
    sandbox.codes("department/list", 1)
    clock.advance(3000)
    assert sandbox.codes("user/list", 2) == [0, 45009]
    clock.advance(3599)
    assert sandbox.codes("department/list", 1, ip="10.0.0.1") == [45009]
    assert sandbox.codes("department/list", 1, ip="10.0.0.2") == [0]
    clock.advance(1)
    assert sandbox.codes("department/list", 1) == [0]


def test_gettoken_is_blocked_with_the_ip(sandbox_org: dict[str, Any], clock: ManualClock) -> None:
    sandbox = caller(sandbox_org, clock, ip_rate_limit_per_minute=1, rate_limit_blocks=True)
    assert sandbox.codes("department/list", 2) == [0, 45009]
    assert sandbox.gettoken()["errcode"] == 45009


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({"rate_limit_per_minute": 1}, "per-API minute limit"),
        ({"rate_limit_per_hour": 1}, "per-API hour limit"),
        ({"ip_rate_limit_per_minute": 1}, "per-IP minute limit"),
        ({"ip_rate_limit_per_hour": 1}, "per-IP hour limit"),
    ],
)
def test_the_errmsg_and_the_stats_name_the_limit_that_refused(
    sandbox_org: dict[str, Any], clock: ManualClock, settings: dict[str, int], limit: str
) -> None:
    sandbox = caller(sandbox_org, clock, **settings)
    sandbox.call("department/list")
    answer = sandbox.call("department/list")
    assert answer["errcode"] == 45009
    assert answer["errmsg"].startswith(f"api freq out of limit ({limit}: 1 calls per ")
    assert sandbox.engine.stats()["rate_limited"][limit] == 1
    assert sum(sandbox.engine.stats()["rate_limited"].values()) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"rate_limit_per_hour": 0},
        {"ip_rate_limit_per_minute": -1},
        {"ip_rate_limit_per_hour": 1.5},
        {"rate_limit_hour_window": 0},
        {"rate_limit_blocks": "yes"},
    ],
)
def test_invalid_limit_settings_are_refused(
    sandbox_org: dict[str, Any], clock: ManualClock, change: dict[str, Any]
) -> None:
    sandbox = caller(sandbox_org, clock)
    with pytest.raises(ValueError, match=next(iter(change))):
        sandbox.engine.update_config(change)


def test_the_cli_sets_every_limit_and_the_blocks() -> None:
    args = build_parser().parse_args(
        [
            *("serve", "--org", "org.json", "--rate-limit-per-minute", "10000"),
            *("--rate-limit-per-hour", "150000", "--rate-limit-hour-window", "36"),
            *("--ip-rate-limit-per-minute", "20000", "--ip-rate-limit-per-hour", "600000"),
            "--rate-limit-blocks",
        ]
    )
    config = serve_config(args)
    assert (config.rate_limit_per_minute, config.rate_limit_per_hour) == (10_000, 150_000)
    assert (config.ip_rate_limit_per_minute, config.ip_rate_limit_per_hour) == (20_000, 600_000)
    assert (config.rate_limit_hour_window, config.rate_limit_blocks) == (36.0, True)


def test_the_cli_leaves_the_limits_off_by_default() -> None:
    config = serve_config(build_parser().parse_args(["serve", "--org", "org.json"]))
    assert config.rate_limit_per_hour is None
    assert (config.ip_rate_limit_per_minute, config.ip_rate_limit_per_hour) == (None, None)
    assert config.rate_limit_blocks is False
