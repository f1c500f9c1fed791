"""Run config for ``dagster asset materialize -c``, written as an operator writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def run_config(
    *,
    wecom: Mapping[str, Any] | None = None,
    duckdb: Mapping[str, Any] | None = None,
    assets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run config overriding resource fields and asset config.

    Overriding any field of the WeCom resource means giving the whole resource config, so the
    credentials are passed as ``{"env": ...}`` references: run config is stored with the run and
    shown in the UI, and it must never hold the values.
    """
    config: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    if wecom is not None:
        resources["wecom"] = {
            "config": {
                "corp_id": {"env": "WECOM_CORP_ID"},
                "corp_secret": {"env": "WECOM_CORP_SECRET"},
                **wecom,
            }
        }
    if duckdb is not None:
        resources["duckdb"] = {"config": dict(duckdb)}
    if resources:
        config["resources"] = resources
    if assets:
        config["ops"] = {name: {"config": dict(values)} for name, values in assets.items()}
    return config
