"""The WeCom resource hands its settings to the plain client."""

from __future__ import annotations

from wecom_assets.defs.resources import WeComResource


def test_the_rate_limit_window_reaches_the_client_and_defaults_to_wecoms_minute() -> None:
    default = WeComResource(corp_id="ww0123", corp_secret="secret").client_config()
    compressed = WeComResource(
        corp_id="ww0123", corp_secret="secret", rate_limit_window_seconds=1.5
    ).client_config()
    assert default.rate_limit_window == 60.0
    assert compressed.rate_limit_window == 1.5
