"""The users table says, per column, what an app created after 2022-06-20 gets from WeCom."""

from __future__ import annotations

import pytest

from wecom_assets.sandbox.org import WITHHELD_FROM_NEW_APPS
from wecom_assets.warehouse.tables import USERS

DESCRIPTIONS = {column.name: column.description for column in USERS.columns}
NEW_APPS = "apps created after 2022-06-20"


@pytest.mark.parametrize("name", WITHHELD_FROM_NEW_APPS)
def test_each_withheld_column_says_it_is_null_for_new_apps(name: str) -> None:
    assert f"NULL for {NEW_APPS}" in DESCRIPTIONS[name]


def test_gender_says_new_apps_get_0_rather_than_null() -> None:
    assert f"always '0' for {NEW_APPS}" in DESCRIPTIONS["gender"]
    assert "NULL" not in DESCRIPTIONS["gender"]


def test_telephone_says_new_apps_get_it_too() -> None:
    assert f"returned to {NEW_APPS} too" in DESCRIPTIONS["telephone"]
    assert "NULL" not in DESCRIPTIONS["telephone"]
