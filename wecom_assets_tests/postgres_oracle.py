"""The suite's row oracle (:mod:`warehouse_oracle`) applied to the PostgreSQL warehouse.

Only reading the rows differs from DuckDB: the tables live in schema ``wecom`` and the JSON columns
are ``jsonb``, whose text form orders keys by length. So the JSON values are read as Python values
and rendered the way the client stores them (sorted keys), and arrays become tuples, as
``table_rows`` makes them for DuckDB.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from dagster_support import DEPARTMENT_COLUMNS, USER_COLUMNS
from warehouse_oracle import MEMBERSHIP_SQL, OrgTables, Rows, assert_same_tables, expected_tables

from wecom_assets.warehouse.postgres import DEFAULT_SCHEMA

_JSON_COLUMNS = ("extattr", "external_profile")


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value


def _rows(
    conn: psycopg.Connection[Any], sql: str, corp_id: str, json_at: tuple[int, ...] = ()
) -> Rows:
    """The corp's rows of ``sql``, the columns at ``json_at`` as canonical JSON text."""
    return {
        _hashable(tuple(_json_text(v) if n in json_at else v for n, v in enumerate(row)))
        for row in conn.execute(sql + " WHERE corp_id = %s", [corp_id])
    }


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def postgres_tables(url: str, corp_id: str) -> OrgTables:
    """One corp's rows of the three tables in the PostgreSQL warehouse at ``url``."""
    json_at = tuple(USER_COLUMNS.split(", ").index(column) for column in _JSON_COLUMNS)
    with psycopg.connect(url) as conn:
        conn.execute(f"SET search_path TO {DEFAULT_SCHEMA}")
        return OrgTables(
            _rows(conn, f"SELECT {DEPARTMENT_COLUMNS} FROM wecom_departments", corp_id),
            _rows(conn, f"SELECT {USER_COLUMNS} FROM wecom_users", corp_id, json_at),
            _rows(conn, MEMBERSHIP_SQL, corp_id),
        )


def assert_postgres_holds(url: str, org: dict[str, Any]) -> None:
    """The org's rows (its corp id) in the PostgreSQL warehouse equal ``org`` as its app sees it."""
    assert_same_tables(postgres_tables(url, org["corp_id"]), expected_tables(org))
