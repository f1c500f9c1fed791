"""Client settings: documented defaults, and invalid values named by their setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_helpers import CORP_ID, SECRET

from wecom_assets.wecom import ClientConfig, WeComConfigError


def test_defaults_suit_the_public_api() -> None:
    config = ClientConfig(CORP_ID, SECRET)
    assert config.base_url == "https://qyapi.weixin.qq.com"
    assert config.token_cache_dir is None
    assert config.max_concurrency == 24
    assert config.request_timeout == 10.0
    assert config.max_retries == 5
    assert config.retry_max_seconds == 60.0
    assert config.rate_limit_per_minute == 10_000
    assert config.rate_limit_window == 60.0
    assert config.token_refresh_margin == 300.0


def test_the_limits_default_to_wecoms_documented_ones() -> None:
    config = ClientConfig(CORP_ID, SECRET)
    assert (config.rate_limit_per_minute, config.rate_limit_per_hour) == (10_000, 150_000)
    assert (config.ip_rate_limit_per_minute, config.ip_rate_limit_per_hour) == (20_000, 600_000)
    assert (config.rate_limit_window, config.rate_limit_hour_window) == (60.0, 3600.0)


@pytest.mark.parametrize("corp_id", ["", "   "])
def test_missing_corp_id_names_its_variable(corp_id: str) -> None:
    with pytest.raises(WeComConfigError, match="WECOM_CORP_ID"):
        ClientConfig(corp_id, SECRET)


def test_missing_secret_names_its_variable() -> None:
    with pytest.raises(WeComConfigError, match="WECOM_CORP_SECRET"):
        ClientConfig(CORP_ID, "")


def test_base_url_without_scheme_names_its_variable() -> None:
    with pytest.raises(WeComConfigError, match="WECOM_API_BASE_URL") as caught:
        ClientConfig(CORP_ID, SECRET, base_url="qyapi.weixin.qq.com")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_concurrency", 0),
        ("request_timeout", 0),
        ("rate_limit_per_minute", 0),
        ("rate_limit_window", -1),
        ("rate_limit_per_hour", 0),
        ("rate_limit_hour_window", 0),
        ("ip_rate_limit_per_minute", 0),
        ("ip_rate_limit_per_hour", -5),
        ("retry_max_seconds", 0),
        ("max_retries", -1),
        ("token_refresh_margin", -1),
    ],
)
def test_out_of_range_tuning_values_are_named(setting: str, value: float) -> None:
    with pytest.raises(WeComConfigError, match=setting):
        ClientConfig(CORP_ID, SECRET, **{setting: value})  # type: ignore[arg-type]


def test_config_is_immutable(tmp_path: Path) -> None:
    config = ClientConfig(CORP_ID, SECRET, token_cache_dir=tmp_path)
    with pytest.raises(AttributeError):
        config.max_concurrency = 2  # type: ignore[misc]
