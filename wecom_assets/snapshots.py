"""Typed WeCom records to Arrow tables, the bulk-load format of the warehouse.

Columns are built whole and one at a time, straight from the records' attributes: Arrow converts
the tuples the records already hold (departments, orders, leader flags) into list columns, so no
per-row Python list is created. A 100k-user snapshot takes well under a second, its only
transient memory is one column's Python list at a time, and DuckDB ingests it in one vectorised
insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import pyarrow as pa

from wecom_assets.tables import DEPARTMENTS, USERS, TableSpec
from wecom_assets.wecom.models import Department, User

# Table column -> record attribute, where the names differ.
_DEPARTMENT_ATTRIBUTES = {"sort_order": "order"}
_USER_ATTRIBUTES = {"department_orders": "orders", "is_leader_in_dept": "leader_flags"}


def _table(
    spec: TableSpec, records: Sequence[Any], attributes: dict[str, str], synced_at: datetime
) -> pa.Table:
    schema = spec.arrow_schema
    arrays = []
    for arrow_field in schema:
        if arrow_field.name == "synced_at":
            arrays.append(pa.repeat(pa.scalar(synced_at, arrow_field.type), len(records)))
            continue
        get = attrgetter(attributes.get(arrow_field.name, arrow_field.name))
        arrays.append(pa.array([get(record) for record in records], type=arrow_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def departments_table(departments: Sequence[Department], synced_at: datetime) -> pa.Table:
    """Arrow snapshot of ``wecom_departments``."""
    return _table(DEPARTMENTS, departments, _DEPARTMENT_ATTRIBUTES, synced_at)


def users_table(users: Sequence[User], synced_at: datetime) -> pa.Table:
    """Arrow snapshot of ``wecom_users``; fields the API did not return stay NULL."""
    return _table(USERS, users, _USER_ATTRIBUTES, synced_at)
