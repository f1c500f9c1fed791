"""Many corps in the Dagster UI: one corp's partition materialized from the browser, alone.

The corps file is read when the code location loads, so this test starts a stack of its own
(``dg dev`` with ``WECOM_CORPS_FILE`` naming two corps, each served by its own sandbox) instead
of the session's single-corp ``ui_stack``. Screenshots go to ``test-artifacts/ui-corps-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import pytest
from dagster_support import table_rows, write_corps_file
from e2e_env import cli_env
from e2e_instance import new_dagster_home
from playwright.sync_api import Page, expect, sync_playwright
from ui_support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    DISMISS_COMMUNITY_DIALOG,
    chromium_executable,
    running_dev_server,
)
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.dev.dev_ui import DevServer
from wecom_assets.sandbox.org import generate_org
from wecom_assets.sandbox.server import SandboxServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]
expect.set_options(timeout=30_000)

WECOM_ASSETS = ("wecom_departments", "wecom_users", "dept_membership")
# The lineage view filtered to the three tables, as in test_ui_browser.py: "Materialize all" then
# covers exactly them and their checks.
GRAPH_PATH = "/asset-groups~" + quote(" or ".join(f'key:"{asset}"' for asset in WECOM_ASSETS)) + "/"
RUN_ID = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@dataclass(frozen=True)
class CorpsStack:
    """``dg dev`` loaded with a corps file of two corps, and what each corp's sandbox served."""

    server: DevServer
    orgs: list[dict[str, Any]]
    sandboxes: list[SandboxServer]
    dagster_home: Path
    database: Path


@pytest.fixture(scope="module")
def corps_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpsStack]:
    tmp = tmp_path_factory.mktemp("ui_corps")
    orgs = [
        generate_org(users=120, departments=15, seed=61 + n, corp_id=f"ww_ui_corp{n}")
        for n in range(2)
    ]
    with SandboxServer(orgs[0]) as first, SandboxServer(orgs[1]) as second:
        sandboxes = [first, second]
        corps_file = write_corps_file(tmp / "corps.yaml", orgs, [s.url for s in sandboxes])
        home = new_dagster_home(tmp / "dagster_home")
        database = tmp / "wecom.duckdb"
        env = cli_env(
            dagster_home=home,
            duckdb_path=database,
            corp_id="",
            corp_secret="",
            base_url="",
            extra={
                "WECOM_CORPS_FILE": str(corps_file),
                **{f"WECOM_SECRET_{n}": str(org["corp_secret"]) for n, org in enumerate(orgs)},
            },
        )
        with running_dev_server(env, home, "dg-dev-corps.log") as server:
            yield CorpsStack(server, orgs, sandboxes, home, database)


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), args=list(CHROMIUM_ARGS)
        )
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
        context.add_init_script(DISMISS_COMMUNITY_DIALOG)
        context.set_default_timeout(30_000)
        yield context.new_page()
        browser.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"ui-corps-{name}.png"))


def test_materializing_one_corps_partition_from_the_ui_syncs_that_corp_alone(
    corps_stack: CorpsStack, page: Page
) -> None:
    chosen, other = corps_stack.orgs
    page.goto(corps_stack.server.url + GRAPH_PATH)
    page.get_by_role("button", name="Materialize all").click()
    page.get_by_text("Select a partition or create one").click()
    partitions = page.get_by_role("menuitem")
    expect(partitions.filter(has_text=other["corp_id"])).to_be_visible()
    partitions.filter(has_text=chosen["corp_id"]).click()
    page.keyboard.press("Escape")
    _shot(page, "1-one-partition-chosen")
    page.get_by_role("button", name="Launch 1 run").click()

    view = page.locator("a[href^='/runs/']", has_text="View").first
    run_id = RUN_ID.search(view.get_attribute("href") or "")
    assert run_id, "no link to the launched run"
    view.click()
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=90_000)
    _shot(page, "2-run")
    assert status.inner_text() == "Success"

    with dg.DagsterInstance.from_config(str(corps_stack.dagster_home)) as instance:
        runs = instance.get_runs()
    assert [(run.run_id, run.tags.get("dagster/partition")) for run in runs] == [
        (run_id.group(1), chosen["corp_id"])
    ]
    assert_warehouse_holds(corps_stack.database, chosen)
    corps = table_rows(corps_stack.database, "SELECT DISTINCT corp_id FROM wecom_users")
    assert corps == {(chosen["corp_id"],)}
    unused = corps_stack.sandboxes[1].stats()
    assert (unused["gettoken"], unused["calls"]) == (0, {})
