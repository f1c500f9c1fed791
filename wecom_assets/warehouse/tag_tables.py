"""Declarations of the tag tables (标签): the tags, their members and their departments.

Registered with the other tables in :mod:`wecom_assets.warehouse.tables`; kept in a module of
their own because a tag sync is a step of its own, published apart from the org tables.
"""

from __future__ import annotations

from functools import partial

import pyarrow as pa

from wecom_assets.warehouse import quality
from wecom_assets.warehouse.schema import (
    CORP_ID,
    CORP_ID_COLUMN,
    SYNCED_AT_COLUMN,
    UTC_TIMESTAMP,
    Column,
    TableSpec,
    Tracking,
)

_TAG_ID = Column("tag_id", "BIGINT", pa.int64(), "Tag id (API `tagid`), as in `wecom_tags.tag_id`.")


def tag_tables(*, users: str, departments: str) -> tuple[TableSpec, TableSpec, TableSpec]:
    """The three tag tables; ``users`` and ``departments`` name the org tables tags point at."""
    tags = TableSpec(
        name="wecom_tags",
        description=(
            "One row per tag of the corp, as `tag/list` returns it (a self-built app lists every "
            "tag of the corp)."
        ),
        primary_key=(CORP_ID, "tag_id"),
        rules=(quality.unique_tag_ids,),
        tracking=Tracking(
            "wecom_tags_history", "One row per version of a tag: its id and name while they held."
        ),
        columns=(
            CORP_ID_COLUMN,
            Column("tag_id", "BIGINT", pa.int64(), "Tag id (API `tagid`)."),
            Column("tag_name", "VARCHAR", pa.string(), "Tag name, stored exactly as received."),
            SYNCED_AT_COLUMN,
        ),
    )
    members = TableSpec(
        name="tag_membership",
        description=(
            "One row per (tag, member) pair, as `tag/get` returns the tag's `userlist`: members "
            "outside the app's visible range are left out by WeCom."
        ),
        primary_key=(CORP_ID, "tag_id", "userid"),
        rules=(
            partial(quality.references_existing_tags, tags=tags.name),
            partial(quality.tagged_users_exist, users=users),
        ),
        upstream=(tags.name,),
        tracking=Tracking(
            "tag_membership_history", "One row per period in which a member carried a tag."
        ),
        columns=(
            CORP_ID_COLUMN,
            _TAG_ID,
            Column(
                "userid",
                "VARCHAR",
                pa.string(),
                "Member id, as `tag/get` answers it (see `wecom_users.userid`).",
            ),
        ),
    )
    tagged_departments = TableSpec(
        name="tag_departments",
        description=(
            "One row per (tag, department) pair, as `tag/get` returns the tag's `partylist`: "
            "departments outside the app's visible range are left out by WeCom."
        ),
        primary_key=(CORP_ID, "tag_id", "department_id"),
        rules=(
            partial(quality.references_existing_tags, tags=tags.name),
            partial(quality.tagged_departments_exist, departments=departments),
        ),
        upstream=(tags.name,),
        tracking=Tracking(
            "tag_departments_history", "One row per period in which a department carried a tag."
        ),
        columns=(
            CORP_ID_COLUMN,
            _TAG_ID,
            Column(
                "department_id",
                "BIGINT",
                pa.int64(),
                "Department id, as in `wecom_departments.id`.",
            ),
        ),
    )
    return tags, members, tagged_departments


def tag_runs(*upstream: str) -> TableSpec:
    """The log of tag snapshots folded into the tag history tables."""
    return TableSpec(
        name="wecom_tag_history_runs",
        description=(
            "One row per tag snapshot folded into the tag history, also when nothing changed: the "
            "times at which the tags were observed. Applying the same snapshot twice adds no row."
        ),
        primary_key=(CORP_ID, "snapshot_at"),
        upstream=upstream,
        columns=(
            CORP_ID_COLUMN,
            Column(
                "snapshot_at",
                "TIMESTAMPTZ",
                UTC_TIMESTAMP,
                "The tag snapshot's time: the latest `synced_at` of wecom_tags.",
            ),
            Column("applied_at", "TIMESTAMPTZ", UTC_TIMESTAMP, "When the history was updated."),
            Column(
                "run_id",
                "VARCHAR",
                pa.string(),
                "Dagster run that applied it; NULL outside Dagster.",
            ),
            Column("tags", "BIGINT", pa.int64(), "Rows of wecom_tags in the snapshot."),
            Column("memberships", "BIGINT", pa.int64(), "Rows of tag_membership in the snapshot."),
            Column("departments", "BIGINT", pa.int64(), "Rows of tag_departments in the snapshot."),
            Column(
                "versions_opened", "BIGINT", pa.int64(), "New versions over the tag history tables."
            ),
            Column(
                "versions_closed",
                "BIGINT",
                pa.int64(),
                "Versions closed over the tag history tables.",
            ),
            Column(
                "changes",
                "JSON",
                pa.string(),
                'Per history table: {"table": {"opened": n, "closed": m}}.',
            ),
        ),
    )
