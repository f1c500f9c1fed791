"""Org history: type-2 history tables, change events and department paths."""

from wecom_assets.warehouse.history.engine import *  # noqa: F403
