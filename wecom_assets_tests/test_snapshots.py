"""Arrow snapshots of the fetched records, the bulk-load format of the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from wecom_assets.warehouse import snapshots
from wecom_assets.warehouse.tables import USERS
from wecom_assets.wecom.models import User

SYNCED_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def _users(count: int) -> list[User]:
    return [
        User.from_api(
            {
                "userid": f"user{i}",
                "name": "张三" if i % 2 else None,
                "department": [1, i % 7 + 2],
                "order": [i, 0],
                "is_leader_in_dept": [0, 1],
                "direct_leader": ["boss"] if i % 3 else None,
                "extattr": {"attrs": [{"type": 0, "name": "工号", "text": {"value": str(i)}}]},
            }
        )
        for i in range(count)
    ]


def test_users_streamed_in_batches_give_the_same_table_as_a_list() -> None:
    users = _users(2 * snapshots.USER_BATCH_ROWS + 5)
    streamed = snapshots.users_table(iter(users), "ww_test", SYNCED_AT)
    assert streamed.num_rows == len(users)
    assert streamed.equals(snapshots.users_table(users, "ww_test", SYNCED_AT))
    assert streamed.column("userid").to_pylist() == [u.userid for u in users]


def test_list_columns_keep_the_parallel_arrays_and_missing_values() -> None:
    (row,) = snapshots.users_table(_users(2)[1:], "ww_test", SYNCED_AT).to_pylist()
    assert row["departments"] == [1, 3]
    assert row["department_orders"] == [1, 0]
    assert row["is_leader_in_dept"] == [False, True]
    assert row["direct_leaders"] == ["boss"]
    assert row["mobile"] is None
    assert row["synced_at"] == SYNCED_AT


def test_no_users_give_an_empty_table_with_the_full_schema() -> None:
    table = snapshots.users_table(iter(()), "ww_test", SYNCED_AT)
    assert table.num_rows == 0
    assert table.schema == USERS.arrow_schema
    assert isinstance(table, pa.Table)
