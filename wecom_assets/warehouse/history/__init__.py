"""Org history: type-2 history tables, change events and department paths.

The tables themselves are declared in :mod:`wecom_assets.warehouse.tables`; this package holds the
engine that folds a snapshot into them (:mod:`.engine`), the SQL of the two views
(:mod:`.views`) and the consistency check run before every commit (:mod:`.consistency`).
"""

from wecom_assets.warehouse.history.consistency import HISTORY_CHECK, check_tracked, row_hash_sql
from wecom_assets.warehouse.history.engine import (
    ORG,
    TAG,
    HistoryError,
    HistoryRejectedError,
    HistoryResult,
    Scope,
    TableChanges,
    apply_snapshot,
    ensure_schema,
    row_counts,
    snapshot_time,
)

__all__ = [
    "HISTORY_CHECK",
    "ORG",
    "TAG",
    "HistoryError",
    "HistoryRejectedError",
    "HistoryResult",
    "Scope",
    "TableChanges",
    "apply_snapshot",
    "check_tracked",
    "ensure_schema",
    "row_counts",
    "row_hash_sql",
    "snapshot_time",
]
