"""Schemas of the tables the assets write, declared once.

The DuckDB DDL, the Arrow schemas used for bulk loads and the column schema shown in the Dagster UI
all derive from these declarations, so a column cannot drift between the three.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its DuckDB type, the matching Arrow type and what it means to an analyst."""

    name: str
    sql_type: str
    arrow_type: pa.DataType
    description: str


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table the assets own, named as its asset."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    description: str

    @property
    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of a snapshot, in column order."""
        return pa.schema([pa.field(column.name, column.arrow_type) for column in self.columns])

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(column.name for column in self.columns)

    def create_sql(self, table_name: str) -> str:
        """``CREATE TABLE`` statement for this schema under ``table_name``."""
        columns = [f'"{column.name}" {column.sql_type}' for column in self.columns]
        key = ", ".join(f'"{name}"' for name in self.primary_key)
        return f'CREATE TABLE "{table_name}" ({", ".join(columns)}, PRIMARY KEY ({key}))'


_TEXT = pa.string()
_BIGINT = pa.int64()
_SYNCED_AT = Column(
    "synced_at",
    "TIMESTAMPTZ",
    pa.timestamp("us", tz="UTC"),
    "When this snapshot was fetched from WeCom (start of the fetch, UTC).",
)


def _text(name: str, description: str) -> Column:
    return Column(name, "VARCHAR", _TEXT, description)


DEPARTMENTS = TableSpec(
    name="wecom_departments",
    description="One row per department in the app's visible range, as `department/list` returns it.",
    primary_key=("id",),
    columns=(
        Column("id", "BIGINT", _BIGINT, "Department id (API `id`)."),
        _text("name", "Department name as WeCom returns it."),
        _text("name_en", "English name; NULL when not set or not returned."),
        Column(
            "parent_id",
            "BIGINT",
            _BIGINT,
            "Parent department id (API `parentid`); 0 for the top department.",
        ),
        Column(
            "sort_order",
            "BIGINT",
            _BIGINT,
            "Order among siblings (API `order`); larger sorts first.",
        ),
        Column(
            "leaders",
            "VARCHAR[]",
            pa.list_(_TEXT),
            "Userids of the department's leaders (API `department_leader`), visible users only.",
        ),
        _SYNCED_AT,
    ),
)

USERS = TableSpec(
    name="wecom_users",
    description=(
        "One row per member visible to the app, merged across every department that lists them "
        "(userids compared case-insensitively, case kept as returned)."
    ),
    primary_key=("userid",),
    columns=(
        _text("userid", "Member id, case as the API returns it; unique case-insensitively."),
        _text("name", "Display name, stored exactly as received."),
        _text("alias", "Alias (别名)."),
        _text("position", "Job title."),
        Column(
            "status",
            "INTEGER",
            pa.int32(),
            "1 active, 2 disabled, 4 not activated, 5 left.",
        ),
        Column(
            "main_department",
            "BIGINT",
            _BIGINT,
            "Main department id; NULL when it lies outside the visible range.",
        ),
        Column(
            "departments",
            "BIGINT[]",
            pa.list_(_BIGINT),
            "Visible departments the member belongs to (API `department`).",
        ),
        Column(
            "department_orders",
            "BIGINT[]",
            pa.list_(_BIGINT),
            "Sort order inside each department, parallel to `departments` (API `order`).",
        ),
        Column(
            "is_leader_in_dept",
            "BOOLEAN[]",
            pa.list_(pa.bool_()),
            "Whether the member leads each department, parallel to `departments`.",
        ),
        Column(
            "direct_leaders",
            "VARCHAR[]",
            pa.list_(_TEXT),
            "Userids of direct leaders (API `direct_leader`).",
        ),
        _text("mobile", "Mobile number; NULL for apps created after 2022-06-20 (needs consent)."),
        _text("email", "Email; NULL for apps created after 2022-06-20 (needs consent)."),
        _text("biz_mail", "Business email; NULL for apps created after 2022-06-20."),
        _text("gender", "'0' unknown, '1' male, '2' female, as the API sends it."),
        _text("telephone", "Landline."),
        _text("open_userid", "Cross-app id (open_userid)."),
        _text("avatar", "Avatar URL; NULL for apps created after 2022-06-20."),
        _text("thumb_avatar", "Thumbnail avatar URL."),
        _text("address", "Address; NULL for apps created after 2022-06-20."),
        _text("external_position", "Title shown to external contacts."),
        _text("english_name", "Legacy English name field, when WeCom still sends it."),
        _text("qr_code", "Personal QR code URL."),
        Column("extattr", "JSON", _TEXT, "Custom attributes (API `extattr`) as JSON."),
        Column(
            "external_profile",
            "JSON",
            _TEXT,
            "External profile (API `external_profile`) as JSON.",
        ),
        _SYNCED_AT,
    ),
)

MEMBERSHIP = TableSpec(
    name="dept_membership",
    description="One row per (member, visible department) pair, derived from `wecom_users`.",
    primary_key=("userid", "department_id"),
    columns=(
        _text("userid", "Member id, as in `wecom_users.userid`."),
        Column("department_id", "BIGINT", _BIGINT, "Department id, as in `wecom_departments.id`."),
        Column("sort_order", "BIGINT", _BIGINT, "Member's order inside the department."),
        Column("is_leader", "BOOLEAN", pa.bool_(), "Member leads this department."),
        Column("is_main", "BOOLEAN", pa.bool_(), "This is the member's main department."),
    ),
)


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` exists as a permanent table in the main schema."""
    row = conn.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'main' AND table_name = ? AND NOT temporary",
        [table],
    ).fetchone()
    return bool(row and row[0])
