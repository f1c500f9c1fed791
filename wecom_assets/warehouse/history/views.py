"""SQL of the history's two views: department paths, and change events between syncs.

Both are views rather than tables so that they always agree with the tables they read; the
history engine (re)creates them in its transaction. Table names come from the registry.

The SQL is DuckDB's and runs in PostgreSQL through :mod:`wecom_assets.warehouse.dialect`, so it
keeps to what both share: sorted and filtered lists are correlated ``unnest`` subqueries rather
than lambdas, lists are rendered as text with ``array_to_string`` (the same ``[1, 2]`` in both),
and the path as of a change is a ``LATERAL`` lookup rather than an ``ASOF`` join.
"""

from wecom_assets.warehouse.tables import (
    DEPARTMENT_PATHS,
    DEPARTMENTS,
    ORG_CHANGES,
    RUNS,
    TAG_DEPARTMENTS,
    TAG_MEMBERSHIP,
    TAG_RUNS,
    TAGS,
    USERS,
    history_table,
)

DEPARTMENT_PATHS_SQL = f"""
CREATE OR REPLACE VIEW {DEPARTMENT_PATHS.name} AS
WITH RECURSIVE tree(corp_id, id, name, parent_id, depth, id_path, path_names, name_path) AS (
    SELECT d.corp_id, d.id, d.name, d.parent_id, 1, [d.id], [d.name], coalesce(d.name, '')
    FROM {DEPARTMENTS.name} AS d
    WHERE NOT EXISTS (
        SELECT 1 FROM {DEPARTMENTS.name} AS p WHERE p.corp_id = d.corp_id AND p.id = d.parent_id
    )
    UNION ALL
    SELECT
        c.corp_id,
        c.id,
        c.name,
        c.parent_id,
        t.depth + 1,
        list_append(t.id_path, c.id),
        list_append(t.path_names, c.name),
        t.name_path || '/' || coalesce(c.name, '')
    FROM tree AS t
    JOIN {DEPARTMENTS.name} AS c ON c.corp_id = t.corp_id AND c.parent_id = t.id
)
SELECT corp_id, id, name, parent_id, depth::INTEGER AS depth, id_path, path_names, name_path
FROM tree
"""


def _sorted(elements: str, where: str = "true") -> str:
    """SQL of the list of ``v`` of ``elements`` (unnested), sorted, where ``where``; NULL if empty."""
    return f"(SELECT list(v ORDER BY v) FROM (SELECT {elements}) AS elements WHERE {where})"


def _text(values: str) -> str:
    """SQL of a list as text, ``[1, 2]``, the same in DuckDB and PostgreSQL."""
    return f"'[' || coalesce(array_to_string({values}, ', '), '') || ']'"


def _path_as_of(alias: str, department: str, after: str) -> str:
    """The department's path version current at the event: the latest one starting ``after`` it."""
    return f"""LEFT JOIN LATERAL (
    SELECT p.valid_to, p.name_path FROM {_PATHS_HISTORY} AS p
    WHERE p.corp_id = e.corp_id AND p.id = e.{department} AND e.changed_at {after} p.valid_from
    ORDER BY p.valid_from DESC
    LIMIT 1
) AS {alias} ON true"""


# Consecutive versions of one key are contiguous (previous valid_to = this valid_from); a gap
# means the row was gone for a while. Events compare each version with the one just before it.
_USERS_HISTORY = history_table(USERS).name
_DEPARTMENTS_HISTORY = history_table(DEPARTMENTS).name
_PATHS_HISTORY = history_table(DEPARTMENT_PATHS).name
_TAGS_HISTORY = history_table(TAGS).name
_TAG_MEMBERSHIP_HISTORY = history_table(TAG_MEMBERSHIP).name
_TAG_DEPARTMENTS_HISTORY = history_table(TAG_DEPARTMENTS).name

# Tag events, in plain SQL. A tag's members and departments have no columns besides their key,
# so their versions only appear (tagged) and end (untagged). The tag's name is the one it had
# at the event: for untagged, the version that ended no earlier than it.
_TAG_EVENTS = f"""
tag_history_start AS (
    SELECT corp_id, min(snapshot_at) AS first_snapshot FROM {TAG_RUNS.name} GROUP BY corp_id
),
tag_versions AS (
    SELECT
        corp_id, tag_id, tag_name, valid_from, valid_to,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from,
        lag(tag_name) OVER w AS prev_name
    FROM {_TAGS_HISTORY}
    WINDOW w AS (PARTITION BY corp_id, tag_id ORDER BY valid_from)
),
tag_events AS (
    SELECT v.corp_id, v.valid_from AS changed_at, 'tag_added' AS event, v.tag_id, v.tag_name,
           CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value
    FROM tag_versions AS v JOIN tag_history_start AS h ON h.corp_id = v.corp_id
    WHERE (v.prev_valid_to IS NULL OR v.prev_valid_to < v.valid_from)
      AND v.valid_from > h.first_snapshot
    UNION ALL
    SELECT corp_id, valid_to, 'tag_removed', tag_id, tag_name, NULL, NULL
    FROM tag_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
    UNION ALL
    SELECT corp_id, valid_from, 'tag_renamed', tag_id, tag_name, prev_name, tag_name
    FROM tag_versions
    WHERE prev_valid_to = valid_from AND tag_name IS DISTINCT FROM prev_name
),
tag_member_versions AS (
    SELECT
        corp_id, entity, entity_id, department_id, tag_id, valid_from, valid_to,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from
    FROM (
        SELECT corp_id, 'user' AS entity, userid AS entity_id,
               CAST(NULL AS BIGINT) AS department_id, tag_id, valid_from, valid_to
        FROM {_TAG_MEMBERSHIP_HISTORY}
        UNION ALL
        SELECT corp_id, 'department', CAST(department_id AS VARCHAR), department_id, tag_id,
               valid_from, valid_to
        FROM {_TAG_DEPARTMENTS_HISTORY}
    ) AS m
    WINDOW w AS (PARTITION BY corp_id, entity, entity_id, tag_id ORDER BY valid_from)
),
tag_member_changes AS (
    SELECT v.corp_id, v.valid_from AS changed_at, v.entity, 'tagged' AS event, v.entity_id,
           v.tag_id, CAST(NULL AS VARCHAR) AS old_value,
           CAST(v.tag_id AS VARCHAR) AS new_value,
           CAST(NULL AS BIGINT) AS old_department_id, v.department_id AS new_department_id
    FROM tag_member_versions AS v JOIN tag_history_start AS h ON h.corp_id = v.corp_id
    WHERE (v.prev_valid_to IS NULL OR v.prev_valid_to < v.valid_from)
      AND v.valid_from > h.first_snapshot
    UNION ALL
    SELECT corp_id, valid_to, entity, 'untagged', entity_id, tag_id, CAST(tag_id AS VARCHAR),
           NULL, department_id, NULL
    FROM tag_member_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
),
tag_member_events AS (
    SELECT c.*, t.tag_name
    FROM tag_member_changes AS c
    LEFT JOIN {_TAGS_HISTORY} AS t
        ON t.corp_id = c.corp_id
        AND t.tag_id = c.tag_id
        AND ((c.event = 'tagged' AND t.valid_from <= c.changed_at
              AND (t.valid_to IS NULL OR t.valid_to > c.changed_at))
          OR (c.event = 'untagged' AND t.valid_from < c.changed_at
              AND (t.valid_to IS NULL OR t.valid_to >= c.changed_at)))
),"""

ORG_CHANGES_SQL = f"""
CREATE OR REPLACE VIEW {ORG_CHANGES.name} AS
WITH
history_start AS (
    SELECT corp_id, min(snapshot_at) AS first_snapshot FROM {RUNS.name} GROUP BY corp_id
),
user_versions AS (
    SELECT
        *,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from,
        lag(name) OVER w AS prev_name,
        lag(status) OVER w AS prev_status,
        lag(main_department) OVER w AS prev_main,
        lag(dept_ids) OVER w AS prev_dept_ids,
        lag(led_ids) OVER w AS prev_led_ids
    FROM (
        SELECT
            corp_id, userid, name, status, main_department, valid_from, valid_to,
            {_sorted("unnest(departments) AS v")} AS dept_ids,
            {_sorted("unnest(departments) AS v, unnest(is_leader_in_dept) AS leads", "leads")}
                AS led_ids
        FROM {_USERS_HISTORY}
    ) AS versions
    WINDOW w AS (PARTITION BY corp_id, userid ORDER BY valid_from)
),
user_events AS (
    SELECT corp_id, valid_from AS changed_at, 'joined' AS event, userid, name,
           NULL::VARCHAR AS old_value, NULL::VARCHAR AS new_value,
           NULL::BIGINT AS old_department_id, main_department AS new_department_id
    FROM user_versions JOIN history_start USING (corp_id)
    WHERE (prev_valid_to IS NULL OR prev_valid_to < valid_from) AND valid_from > first_snapshot
    UNION ALL
    SELECT corp_id, valid_to, 'left', userid, name, NULL, NULL, main_department, NULL
    FROM user_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
    UNION ALL
    SELECT corp_id, valid_from, 'status_changed', userid, name, prev_status::VARCHAR, status::VARCHAR,
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND status IS DISTINCT FROM prev_status
    UNION ALL
    SELECT corp_id, valid_from, 'moved', userid, name, {_text("prev_dept_ids")}, {_text("dept_ids")},
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from
      AND (main_department IS DISTINCT FROM prev_main OR dept_ids IS DISTINCT FROM prev_dept_ids)
    UNION ALL
    SELECT corp_id, valid_from, 'renamed', userid, name, prev_name, name, prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND name IS DISTINCT FROM prev_name
    UNION ALL
    SELECT corp_id, valid_from, 'leader_changed', userid, name, {_text("prev_led_ids")}, {_text("led_ids")},
           prev_main, main_department
    FROM user_versions
    WHERE prev_valid_to = valid_from AND led_ids IS DISTINCT FROM prev_led_ids
),
department_versions AS (
    SELECT
        *,
        lag(valid_to) OVER w AS prev_valid_to,
        lead(valid_from) OVER w AS next_valid_from,
        lag(name) OVER w AS prev_name,
        lag(parent_id) OVER w AS prev_parent,
        lag(leader_ids) OVER w AS prev_leader_ids
    FROM (
        SELECT corp_id, id, name, parent_id, valid_from, valid_to,
               {_sorted("unnest(leaders) AS v")} AS leader_ids
        FROM {_DEPARTMENTS_HISTORY}
    ) AS versions
    WINDOW w AS (PARTITION BY corp_id, id ORDER BY valid_from)
),
{_TAG_EVENTS}
department_events AS (
    SELECT corp_id, valid_from AS changed_at, 'added' AS event, id, name,
           NULL::VARCHAR AS old_value, NULL::VARCHAR AS new_value,
           NULL::BIGINT AS old_department_id, parent_id AS new_department_id
    FROM department_versions JOIN history_start USING (corp_id)
    WHERE (prev_valid_to IS NULL OR prev_valid_to < valid_from) AND valid_from > first_snapshot
    UNION ALL
    SELECT corp_id, valid_to, 'removed', id, name, NULL, NULL, parent_id, NULL
    FROM department_versions
    WHERE valid_to IS NOT NULL AND (next_valid_from IS NULL OR next_valid_from > valid_to)
    UNION ALL
    SELECT corp_id, valid_from, 'moved', id, name, prev_parent::VARCHAR, parent_id::VARCHAR,
           prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND parent_id IS DISTINCT FROM prev_parent
    UNION ALL
    SELECT corp_id, valid_from, 'renamed', id, name, prev_name, name, prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND name IS DISTINCT FROM prev_name
    UNION ALL
    SELECT corp_id, valid_from, 'leader_changed', id, name, {_text("prev_leader_ids")},
           {_text("leader_ids")}, prev_parent, parent_id
    FROM department_versions
    WHERE prev_valid_to = valid_from AND leader_ids IS DISTINCT FROM prev_leader_ids
),
events AS (
    SELECT corp_id, changed_at, 'user' AS entity, event, userid AS entity_id, name, old_value,
           new_value, old_department_id, new_department_id, CAST(NULL AS BIGINT) AS tag_id
    FROM user_events
    UNION ALL
    SELECT corp_id, changed_at, 'department', event, id::VARCHAR, name, old_value, new_value,
           old_department_id, new_department_id, NULL
    FROM department_events
    UNION ALL
    SELECT corp_id, changed_at, 'tag', event, CAST(tag_id AS VARCHAR), tag_name, old_value,
           new_value, NULL, NULL, tag_id
    FROM tag_events
    UNION ALL
    SELECT corp_id, changed_at, entity, event, entity_id, tag_name, old_value, new_value,
           old_department_id, new_department_id, tag_id
    FROM tag_member_events
)
SELECT
    e.corp_id,
    e.changed_at::TIMESTAMPTZ AS changed_at,
    e.entity,
    e.event,
    e.entity_id,
    e.name,
    e.old_value,
    e.new_value,
    e.old_department_id,
    e.new_department_id,
    CASE WHEN old_path.valid_to IS NULL OR old_path.valid_to >= e.changed_at
         THEN old_path.name_path END AS old_department_path,
    CASE WHEN new_path.valid_to IS NULL OR new_path.valid_to > e.changed_at
         THEN new_path.name_path END AS new_department_path,
    e.tag_id
FROM events AS e
{_path_as_of("old_path", "old_department_id", ">")}
{_path_as_of("new_path", "new_department_id", ">=")}
"""
