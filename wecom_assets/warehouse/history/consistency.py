"""The history's consistency check, and the SQL that identifies rows and versions.

A history table is consistent when the versions of each key never overlap and its current versions
equal the current table row for row (compared by ``row_hash``). The engine runs this check before
``COMMIT``, so an inconsistent history is never made visible.
"""

from __future__ import annotations

from wecom_assets.warehouse.connection import WarehouseConnection, quote
from wecom_assets.warehouse.quality import MAX_REPORTED_IDS, CheckOutcome
from wecom_assets.warehouse.schema import CORP_ID, Tracked

HISTORY_CHECK = "history_is_consistent"


def row_hash_sql(columns: tuple[str, ...], alias: str) -> str:
    """SQL of ``row_hash``: md5 of the named columns of ``alias`` as one JSON object's text."""
    fields = ", ".join(f"'{name}': {alias}.{quote(name)}" for name in columns)
    return f"md5(CAST(to_json({{{fields}}}) AS VARCHAR))"


def _key_text_sql(key: tuple[str, ...], alias: str) -> str:
    return " || '@' || ".join(f"{alias}.{quote(name)}::VARCHAR" for name in key)


def key_match(key: tuple[str, ...], left: str, right: str) -> str:
    """SQL condition that rows ``left`` and ``right`` have the same ``key``."""
    return " AND ".join(f"{left}.{quote(n)} = {right}.{quote(n)}" for n in key)


def check_tracked(
    conn: WarehouseConnection, tracked: Tracked, corp_id: str, current: str | None = None
) -> CheckOutcome:
    """Versions of each key never overlap and the current versions equal the current table.

    Offending keys are listed (as ``userid@department`` for the membership): keys with two
    current versions, an empty or overlapping interval, or a current version that differs from
    (or is missing for, or has no row in) the current table.

    Args:
        conn: An open connection.
        tracked: The history table to check.
        corp_id: The corp whose versions are checked.
        current: A relation holding the corp's current rows' keys and ``row_hash``; by default
            they are computed from the current table.
    """
    history = f"(SELECT * FROM {quote(tracked.history.name)} WHERE corp_id = $corp_id)"
    key = ", ".join(quote(k) for k in tracked.key)
    # Offending keys are reported without the corp id, which every one of them shares.
    shown = tuple(k for k in tracked.key if k != CORP_ID)
    match = key_match(tracked.key, "c", "h")
    if current is None:
        current = (
            f"(SELECT {key}, {row_hash_sql(tracked.business_columns, 's')} AS row_hash "
            f"FROM {quote(tracked.source.name)} AS s WHERE s.corp_id = $corp_id)"
        )
    offending = [
        row[0]
        for row in conn.execute(
            f"""
            WITH versions AS (
                SELECT {key}, valid_from, valid_to,
                       lead(valid_from) OVER (PARTITION BY {key} ORDER BY valid_from) AS next_from
                FROM {history} AS corp_versions
            ),
            current_rows AS (SELECT {key}, row_hash FROM {current} AS corp_rows),
            current_versions AS (
                SELECT {key}, row_hash FROM {history} AS corp_versions WHERE valid_to IS NULL
            )
            SELECT DISTINCT key_text FROM (
                SELECT {_key_text_sql(shown, "v")} AS key_text FROM versions AS v
                WHERE (v.valid_to IS NULL AND v.next_from IS NOT NULL)
                   OR v.valid_to <= v.valid_from
                   OR v.next_from < v.valid_to
                UNION ALL
                SELECT coalesce({_key_text_sql(shown, "c")}, {_key_text_sql(shown, "h")})
                FROM current_rows AS c FULL JOIN current_versions AS h ON {match}
                WHERE c.row_hash IS DISTINCT FROM h.row_hash
            ) AS offending
            ORDER BY key_text
            """,
            {"corp_id": corp_id},
        ).fetchall()
    ]
    ids = tuple(str(value) for value in offending)
    return CheckOutcome(
        name=HISTORY_CHECK,
        passed=not ids,
        blocking=True,
        description=(
            f"Versions never overlap and the current versions equal {tracked.source.name}."
            if not ids
            else f"{len(ids)} keys have overlapping versions or current versions that differ "
            f"from {tracked.source.name}."
        ),
        offending_ids=ids[:MAX_REPORTED_IDS],
        offending_count=len(ids),
        details={"table": tracked.history.name},
    )
