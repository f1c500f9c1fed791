"""WeCom (企业微信) org chart as Dagster assets in DuckDB.

``wecom_assets.WeComSync`` is the Dagster component (``dg list components`` finds it through the
``dagster_dg_cli.registry_modules`` entry point). It is imported on first use, so that the plain
WeCom client (``wecom_assets.wecom``) and the warehouse stay importable without Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wecom_assets.defs.component import WeComSync

__all__ = ["WeComSync"]


def __getattr__(name: str) -> Any:
    if name == "WeComSync":
        from wecom_assets.defs.component import WeComSync

        return WeComSync
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # `dg list components` finds components by listing the module's names.
    return sorted({*globals(), *__all__})
