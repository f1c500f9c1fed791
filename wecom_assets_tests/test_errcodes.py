"""The errcode policy is a pure table: each errcode maps to exactly one action."""

from __future__ import annotations

import pytest

from wecom_assets.wecom.errcodes import Action, classify


@pytest.mark.parametrize(
    ("errcode", "action"),
    [
        (0, Action.SUCCEED),
        (-1, Action.RETRY_BUSY),
        (45009, Action.BACK_OFF),
        (45033, Action.BACK_OFF),
        (40014, Action.REFRESH_TOKEN),
        (41001, Action.REFRESH_TOKEN),
        (42001, Action.REFRESH_TOKEN),
        (40001, Action.FAIL),
        (40013, Action.FAIL),
        (48002, Action.FAIL),
        (48009, Action.FAIL),
        (60011, Action.FAIL),
        (60020, Action.FAIL),
        (60003, Action.FAIL),
        (-2, Action.FAIL),
        (99999999, Action.FAIL),
    ],
)
def test_each_errcode_maps_to_its_documented_action(errcode: int, action: Action) -> None:
    assert classify(errcode) is action
