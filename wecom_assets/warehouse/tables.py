"""Every table and view the package writes, declared once.

A declaration holds a table's name (also its asset's), columns with their DuckDB and Arrow types
and descriptions, primary key, data-quality rules, the tables it is computed from and whether its
versions are kept in a history table. DDL, Arrow schemas, history tables and the Dagster column
schemas, check specs and metadata are derived from it: adding a column is one edit here.
"""

from __future__ import annotations

from dataclasses import replace
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
    Tracked,
    Tracking,
)
from wecom_assets.warehouse.tag_tables import tag_runs, tag_tables

_TEXT = pa.string()
_BIGINT = pa.int64()
_SYNCED_AT = SYNCED_AT_COLUMN
_CORP_ID = CORP_ID_COLUMN


def _text(name: str, description: str) -> Column:
    return Column(name, "VARCHAR", _TEXT, description)


DEPARTMENTS = TableSpec(
    name="wecom_departments",
    description="One row per department in the app's visible range, as `department/list` returns it.",
    primary_key=(CORP_ID, "id"),
    rules=(quality.unique_department_ids, quality.department_tree_is_sound),
    tracking=Tracking(
        "wecom_departments_history",
        "One row per version of a department: its `wecom_departments` columns while they held.",
    ),
    columns=(
        _CORP_ID,
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
            attribute="order",
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
    primary_key=(CORP_ID, "userid"),
    rules=(
        quality.unique_userids,
        partial(quality.user_departments_exist, departments=DEPARTMENTS.name),
    ),
    # The users fetch lists the members of the departments wecom_departments holds.
    upstream=(DEPARTMENTS.name,),
    tracking=Tracking(
        "wecom_users_history",
        "One row per version of a member: their `wecom_users` columns while they held.",
    ),
    columns=(
        _CORP_ID,
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
            attribute="orders",
        ),
        Column(
            "is_leader_in_dept",
            "BOOLEAN[]",
            pa.list_(pa.bool_()),
            "Whether the member leads each department, parallel to `departments`.",
            attribute="leader_flags",
        ),
        Column(
            "direct_leaders",
            "VARCHAR[]",
            pa.list_(_TEXT),
            "Userids of direct leaders (API `direct_leader`).",
        ),
        _text("mobile", "Mobile number; NULL for apps created after 2022-06-20 (not returned)."),
        _text("email", "Email; NULL for apps created after 2022-06-20 (not returned)."),
        _text("biz_mail", "Business email; NULL for apps created after 2022-06-20 (not returned)."),
        _text(
            "gender",
            "'1' male, '2' female, '0' not defined; always '0' for apps created after "
            "2022-06-20 (WeCom answers '0', not nothing).",
        ),
        _text("telephone", "Landline; returned to apps created after 2022-06-20 too."),
        _text("open_userid", "Cross-app id (open_userid)."),
        _text("avatar", "Avatar URL; NULL for apps created after 2022-06-20 (not returned)."),
        _text(
            "thumb_avatar",
            "Thumbnail avatar URL; NULL for apps created after 2022-06-20 (not returned).",
        ),
        _text("address", "Address; NULL for apps created after 2022-06-20 (not returned)."),
        _text("external_position", "Title shown to external contacts."),
        _text("english_name", "Legacy English name field, when WeCom still sends it."),
        _text(
            "qr_code",
            "Personal QR code URL; NULL for apps created after 2022-06-20 (not returned).",
        ),
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

# A service-provider app's (代开发) userids are encrypted and case-sensitive: its users are
# checked for uniqueness as they are, the rest of the declaration is the same.
USERS_CASE_SENSITIVE = replace(
    USERS,
    rules=tuple(
        partial(quality.unique_userids, case_sensitive=True)
        if rule is quality.unique_userids
        else rule
        for rule in USERS.rules
    ),
)

MEMBERSHIP = TableSpec(
    name="dept_membership",
    description="One row per (member, visible department) pair, derived from `wecom_users`.",
    primary_key=(CORP_ID, "userid", "department_id"),
    rules=(
        partial(
            quality.membership_references_exist, users=USERS.name, departments=DEPARTMENTS.name
        ),
        partial(
            quality.one_main_department_per_user, users=USERS.name, departments=DEPARTMENTS.name
        ),
    ),
    upstream=(USERS.name,),
    tracking=Tracking(
        "dept_membership_history",
        "One row per version of a (member, department) pair of `dept_membership`.",
    ),
    columns=(
        _CORP_ID,
        _text("userid", "Member id, as in `wecom_users.userid`."),
        Column("department_id", "BIGINT", _BIGINT, "Department id, as in `wecom_departments.id`."),
        Column("sort_order", "BIGINT", _BIGINT, "Member's order inside the department."),
        Column("is_leader", "BOOLEAN", pa.bool_(), "Member leads this department."),
        Column("is_main", "BOOLEAN", pa.bool_(), "This is the member's main department."),
    ),
)


DEPARTMENT_PATHS = TableSpec(
    name="wecom_department_paths",
    description=(
        "One row per department of `wecom_departments` with its place in the tree. Roots are "
        "departments whose parent is not visible: the top department (parent 0) for a whole-org "
        "range, the visible sub-tree roots for a partial range."
    ),
    primary_key=(CORP_ID, "id"),
    upstream=(DEPARTMENTS.name,),
    view=True,
    tracking=Tracking(
        "wecom_department_paths_history",
        "One row per version of a department's path; a rename or move of an ancestor starts a "
        "new version for every department below it.",
    ),
    columns=(
        _CORP_ID,
        Column("id", "BIGINT", _BIGINT, "Department id."),
        Column("name", "VARCHAR", _TEXT, "Department name."),
        Column("parent_id", "BIGINT", _BIGINT, "Parent id as WeCom gives it (0 for the top)."),
        Column("depth", "INTEGER", pa.int32(), "Levels from the visible root, which has depth 1."),
        Column("id_path", "BIGINT[]", pa.list_(_BIGINT), "Ids from the visible root to this one."),
        Column(
            "path_names",
            "VARCHAR[]",
            pa.list_(_TEXT),
            "Names parallel to `id_path`; use it when a name itself contains '/'.",
        ),
        Column(
            "name_path",
            "VARCHAR",
            _TEXT,
            "Names from the visible root joined with '/', e.g. 示例集团/研发中心/后端部.",
        ),
    ),
)


TAGS, TAG_MEMBERSHIP, TAG_DEPARTMENTS = tag_tables(users=USERS.name, departments=DEPARTMENTS.name)
TAG_RUNS = tag_runs(TAGS.name, TAG_MEMBERSHIP.name, TAG_DEPARTMENTS.name)


RUNS = TableSpec(
    name="wecom_history_runs",
    description=(
        "One row per snapshot folded into the history, also when nothing changed: the times at "
        "which the org was observed. Applying the same snapshot twice adds no row."
    ),
    primary_key=(CORP_ID, "snapshot_at"),
    upstream=(DEPARTMENTS.name, USERS.name, MEMBERSHIP.name),
    columns=(
        _CORP_ID,
        Column(
            "snapshot_at",
            "TIMESTAMPTZ",
            UTC_TIMESTAMP,
            "The snapshot's time: the latest `synced_at` of wecom_departments and wecom_users.",
        ),
        Column("applied_at", "TIMESTAMPTZ", UTC_TIMESTAMP, "When the history was updated."),
        Column("run_id", "VARCHAR", _TEXT, "Dagster run that applied it; NULL outside Dagster."),
        Column("departments", "BIGINT", _BIGINT, "Rows of wecom_departments in the snapshot."),
        Column("users", "BIGINT", _BIGINT, "Rows of wecom_users in the snapshot."),
        Column("memberships", "BIGINT", _BIGINT, "Rows of dept_membership in the snapshot."),
        Column("versions_opened", "BIGINT", _BIGINT, "New versions over all history tables."),
        Column("versions_closed", "BIGINT", _BIGINT, "Versions closed over all history tables."),
        Column(
            "changes",
            "JSON",
            _TEXT,
            'Per history table: {"table": {"opened": n, "closed": m}}.',
        ),
    ),
)


def history_table(spec: TableSpec) -> TableSpec:
    """The history table of a table declared with ``tracking``."""
    history = spec.history
    if history is None:
        raise ValueError(f"{spec.name} keeps no history")
    return history


ORG_CHANGES = TableSpec(
    name="wecom_org_changes",
    upstream=(
        history_table(USERS).name,
        history_table(DEPARTMENTS).name,
        history_table(DEPARTMENT_PATHS).name,
        RUNS.name,
    ),
    view=True,
    description=(
        "One row per change event seen between two consecutive syncs, derived from the history "
        "tables. Users: joined, left, status_changed, moved, renamed, leader_changed. "
        "Departments: added, removed, moved, renamed, leader_changed. Tags: tag_added, "
        "tag_removed, tag_renamed; a user or department tagged or untagged. Rows present in the "
        "first snapshot of the history (of the tag history, for tag events) produce no "
        "joined/added/tag_added/tagged event. Tag events come from the tag history tables, "
        "which the tag step writes: they are not upstream here, so that a failed tag sync never "
        "holds back the org's."
    ),
    primary_key=(CORP_ID, "changed_at", "entity", "entity_id", "event", "tag_id"),
    nullable_key=("tag_id",),
    columns=(
        _CORP_ID,
        Column(
            "changed_at",
            "TIMESTAMPTZ",
            UTC_TIMESTAMP,
            "Snapshot time of the first sync that saw the change (`valid_from` of the new version, "
            "`valid_to` of the last one for left/removed).",
        ),
        Column(
            "entity",
            "VARCHAR",
            _TEXT,
            "'user', 'department' or 'tag' (tagged/untagged name the user or department).",
        ),
        Column(
            "event",
            "VARCHAR",
            _TEXT,
            "joined/added: appeared (again) in the app's view; left/removed: no longer in it; "
            "status_changed: `status` differs; moved: user's main department or set of "
            "departments differs, department's parent differs; renamed: `name` differs; "
            "leader_changed: departments a user leads, or a department's leaders, differ; "
            "tag_added/tag_removed/tag_renamed: a tag appeared, went or changed its name; "
            "tagged/untagged: a user or department started or stopped carrying a tag.",
        ),
        Column("entity_id", "VARCHAR", _TEXT, "Userid, or the department or tag id as text."),
        Column(
            "name",
            "VARCHAR",
            _TEXT,
            "Name after the change (the last name for left/removed); the tag's name for "
            "tagged/untagged.",
        ),
        Column(
            "old_value",
            "VARCHAR",
            _TEXT,
            "Value before: status, name, sorted department ids, led department ids, sorted "
            "leaders, parent id, tag name, or the tag id for untagged; NULL for "
            "joined/added/left/removed/tag_added/tag_removed/tagged.",
        ),
        Column("new_value", "VARCHAR", _TEXT, "Value after, in the same form as `old_value`."),
        Column(
            "old_department_id",
            "BIGINT",
            _BIGINT,
            "Users: main department before the change; departments: parent before, or the "
            "department itself for untagged.",
        ),
        Column(
            "new_department_id",
            "BIGINT",
            _BIGINT,
            "Users: main department after the change; departments: parent after, or the "
            "department itself for tagged.",
        ),
        Column(
            "old_department_path",
            "VARCHAR",
            _TEXT,
            "`name_path` of `old_department_id` as it was just before the change.",
        ),
        Column(
            "new_department_path",
            "VARCHAR",
            _TEXT,
            "`name_path` of `new_department_id` as it was at the change.",
        ),
        Column("tag_id", "BIGINT", _BIGINT, "The tag of tag events; NULL for the other events."),
    ),
)

# The current tables a sync replaces, in load order.
ORG_TABLES: tuple[TableSpec, ...] = (DEPARTMENTS, USERS, MEMBERSHIP)
VIEWS: tuple[TableSpec, ...] = (DEPARTMENT_PATHS, ORG_CHANGES)
TRACKED: tuple[Tracked, ...] = tuple(
    Tracked.of(spec) for spec in (*ORG_TABLES, DEPARTMENT_PATHS) if spec.tracking is not None
)
HISTORY_TABLES: tuple[TableSpec, ...] = (*(t.history for t in TRACKED), RUNS)
# The tag tables a tag sync replaces, in load order, and their history (a step of its own).
TAG_TABLES: tuple[TableSpec, ...] = (TAGS, TAG_MEMBERSHIP, TAG_DEPARTMENTS)
TAG_TRACKED: tuple[Tracked, ...] = tuple(Tracked.of(spec) for spec in TAG_TABLES)
TAG_HISTORY_TABLES: tuple[TableSpec, ...] = (*(t.history for t in TAG_TRACKED), TAG_RUNS)
