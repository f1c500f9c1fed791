"""The code location's entry point: ``-m wecom_assets.definitions``, ``workspace.yaml``, ``dg``.

It is the component (:class:`~wecom_assets.defs.component.WeComSync`) with its defaults: one corp
from ``WECOM_CORP_ID``/``WECOM_CORP_SECRET`` or the corps of ``$WECOM_CORPS_FILE``, every other
setting from its ``WECOM_*`` variable, no key prefix. This module keeps the path that users,
``workspace.yaml`` and the executor's preload name stable whatever the layout inside.
"""

import dagster as dg

from wecom_assets.defs.component import WeComSync

# A sync is one step (one multi-asset), so a step process of its own would only add start-up
# time: about 1 s with a forkserver, more than the whole fetch of a small org. Runs still take
# their own process when the daemon launches them, and share tokens through the file cache. The
# component sets this on its own jobs only; here it also covers `dagster asset materialize`.
defs = dg.Definitions.merge(
    WeComSync().definitions(), dg.Definitions(executor=dg.in_process_executor)
)

__all__ = ["defs"]
