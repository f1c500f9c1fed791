"""Helpers shared by the Dagster-level tests: resources wired to a sandbox, expected table rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import yaml

from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.sandbox.org import visible_view
from wecom_assets.wecom.models import Department, User

DEPARTMENT_COLUMNS = "id, name, name_en, parent_id, sort_order, leaders"
USER_COLUMNS = (
    "userid, name, alias, position, status, main_department, departments, department_orders, "
    "is_leader_in_dept, direct_leaders, mobile, email, biz_mail, gender, telephone, open_userid, "
    "avatar, thumb_avatar, address, external_position, english_name, qr_code, "
    "extattr, external_profile"
)


def resources(
    org: dict[str, Any],
    url: str,
    tmp_path: Path,
    *,
    pii_policy: dict[str, str] | None = None,
    pii_salt: str = "",
    **wecom_overrides: Any,
) -> dict[str, Any]:
    """The two resources of the code location, pointed at a sandbox and a tmp DuckDB file."""
    settings: dict[str, Any] = {
        "corp_id": org["corp_id"],
        "corp_secret": org["corp_secret"],
        "base_url": url,
        "token_cache_dir": str(tmp_path / "tokens"),
        **wecom_overrides,
    }
    return {
        "wecom": WeComResource(**settings),
        "duckdb": WarehouseResource(
            database=str(tmp_path / "wecom.duckdb"),
            lock_timeout_seconds=5,
            pii_policy=pii_policy or {},
            pii_salt=pii_salt,
        ),
    }


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return None if values is None else list(values)


def expected_departments(
    org: dict[str, Any], visible: list[int] | None = None
) -> set[tuple[Any, ...]]:
    """Rows ``wecom_departments`` must hold for this org and visible range."""
    view = visible_view(org, visible)
    rows = set()
    for payload in view["departments"]:
        d = Department.from_api(payload)
        rows.add((d.id, d.name, d.name_en, d.parent_id, d.order, _hashable(_list(d.leaders))))
    return rows


def expected_users(org: dict[str, Any], visible: list[int] | None = None) -> set[tuple[Any, ...]]:
    """Rows ``wecom_users`` must hold for this org and visible range (JSON compared as text)."""
    view = visible_view(org, visible)
    rows = set()
    for payload in view["users"]:
        u = User.from_api(payload)
        rows.add(
            _hashable(
                (
                    u.userid,
                    u.name,
                    u.alias,
                    u.position,
                    u.status,
                    u.main_department,
                    list(u.departments),
                    list(u.orders),
                    list(u.leader_flags),
                    _list(u.direct_leaders),
                    u.mobile,
                    u.email,
                    u.biz_mail,
                    u.gender,
                    u.telephone,
                    u.open_userid,
                    u.avatar,
                    u.thumb_avatar,
                    u.address,
                    u.external_position,
                    u.english_name,
                    u.qr_code,
                    u.extattr,
                    u.external_profile,
                )
            )
        )
    return rows


def expected_membership(
    org: dict[str, Any], visible: list[int] | None = None
) -> set[tuple[Any, ...]]:
    """Rows ``dept_membership`` must hold: one per (user, visible department)."""
    rows = set()
    for payload in visible_view(org, visible)["users"]:
        u = User.from_api(payload)
        for department, order, leader in zip(u.departments, u.orders, u.leader_flags, strict=True):
            rows.add((u.userid, department, order, leader, department == u.main_department))
    return rows


def table_rows(database: Path, sql: str) -> set[tuple[Any, ...]]:
    """Rows of a query, as hashable tuples, JSON columns as canonical text."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return {_hashable(row) for row in conn.execute(sql).fetchall()}


def users_sql() -> str:
    """Select ``wecom_users`` with JSON columns rendered as canonical text for comparison."""
    columns = USER_COLUMNS.replace(
        "extattr, external_profile", "extattr::VARCHAR, external_profile::VARCHAR"
    )
    return f"SELECT {columns} FROM wecom_users"


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value


def write_corps_file(path: Path, orgs: Sequence[dict[str, Any]], urls: Sequence[str]) -> Path:
    """A corps file for ``orgs`` served at ``urls``; corp n's secret is in ``WECOM_SECRET_{n}``."""
    entries = [
        {
            "corp_id": org["corp_id"],
            "secret_env": f"WECOM_SECRET_{n}",
            "name": f"子公司{n}",
            "base_url": url,
        }
        for n, (org, url) in enumerate(zip(orgs, urls, strict=True))
    ]
    path.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    return path
