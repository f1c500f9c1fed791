"""The code location: assets, checks, jobs, schedules and resources, wired together."""

import dagster as dg

from wecom_assets.defs.assets import dept_membership, wecom_departments, wecom_users
from wecom_assets.defs.checks import wecom_freshness_checks
from wecom_assets.defs.history_assets import wecom_history
from wecom_assets.defs.resources import WarehouseResource, WeComResource
from wecom_assets.defs.schedules import (
    wecom_freshness,
    wecom_freshness_hourly,
    wecom_nightly,
    wecom_sync,
)
from wecom_assets.defs.settings import PII_SALT_ENV, optional_secret

# forkserver halves each step's start-up against the default spawn; steps stay separate
# processes, which is why the token cache is shared through a file. The preload is explicit:
# when the CLI loads the location with -m, Dagster only preloads its executor module, and every
# step then imports the code location (Dagster, DuckDB, Arrow) again after the fork.
executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["wecom_assets.definitions"]}}}
)

defs = dg.Definitions(
    assets=[wecom_departments, wecom_users, dept_membership, wecom_history],
    asset_checks=[wecom_freshness_checks],
    jobs=[wecom_sync, wecom_freshness],
    schedules=[wecom_nightly, wecom_freshness_hourly],
    resources={
        "wecom": WeComResource(
            corp_id=dg.EnvVar("WECOM_CORP_ID"),
            corp_secret=dg.EnvVar("WECOM_CORP_SECRET"),
        ),
        "duckdb": WarehouseResource(pii_salt=optional_secret(PII_SALT_ENV)),
    },
    executor=executor,
)
