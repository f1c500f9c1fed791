"""The code location's entry point: ``-m wecom_assets.definitions``, ``workspace.yaml``, ``dg``.

The wiring lives in :mod:`wecom_assets.defs.definitions`; this module keeps the path that users,
``workspace.yaml`` and the executor's preload name stable whatever the layout inside.
"""

from wecom_assets.defs.definitions import defs

__all__ = ["defs"]
