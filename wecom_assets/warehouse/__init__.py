"""The warehouse side of a sync: table registry, snapshots, checked publishing, history, PII.

No Dagster import: the Dagster definitions in :mod:`wecom_assets.defs` are thin wiring over it.
"""
