"""The Dagster UI as a person uses it, in headless Chromium: materialize, look, check the tables.

Screenshots of every step go to ``test-artifacts/ui-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import dagster as dg
import pytest
from dagster_support import expected_users
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from ui_support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    DISMISS_COMMUNITY_DIALOG,
    UiStack,
    chromium_executable,
)
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.definitions import defs
from wecom_assets.warehouse.tables import USERS

pytestmark = pytest.mark.browser
# Two cores run the webserver, the daemon, the run's steps and Chromium: give the UI time.
expect.set_options(timeout=30_000)

WECOM_ASSETS = ("wecom_departments", "wecom_users", "dept_membership")
# The lineage view filtered to the three tables (the URL the selection box produces), so their nodes
# show details and "Materialize all" covers exactly them and their checks.
GRAPH_PATH = "/asset-groups~" + quote(" or ".join(f'key:"{asset}"' for asset in WECOM_ASSETS)) + "/"
RUN_ID = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    context.add_init_script(DISMISS_COMMUNITY_DIALOG)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def _check_names(asset: str) -> set[str]:
    """Names of the checks on ``asset``: its data-quality rules and the freshness check."""
    return {
        key.name
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key == dg.AssetKey(asset)
    }


def _shot(page: Page, stack: UiStack, name: str) -> None:
    """Save a screenshot, and make sure the page does not show the corp secret."""
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"))
    assert stack.secret not in page.content(), f"the corp secret is on the page {page.url}"


def _graph_node(page: Page, asset: str) -> Locator:
    """The node of ``asset`` in the asset graph."""
    return page.locator("foreignObject").filter(has=page.locator(f'[data-tooltip="{asset}"]'))


def test_materialize_all_from_the_asset_graph_fills_the_tables(
    ui_stack: UiStack,
    page: Page,
) -> None:
    stack = ui_stack
    page.goto(stack.url + GRAPH_PATH)
    for asset in WECOM_ASSETS:
        checks = len(_check_names(asset))
        expect(_graph_node(page, asset)).to_contain_text(
            re.compile(rf"Asset checks.*/ {checks} Passed")
        )
    _shot(page, stack, "1-asset-graph")

    page.get_by_role("button", name="Materialize all").click()
    view = page.locator("a[href^='/runs/']", has_text="View").first
    run_id = RUN_ID.search(view.get_attribute("href") or "")
    assert run_id, "no link to the launched run"
    view.click()
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=120_000)
    _shot(page, stack, "2-run")
    assert status.inner_text() == "Success"
    assert stack.wait_for_run(run_id.group(1)) == "SUCCESS"

    page.goto(stack.url + GRAPH_PATH)
    for asset in WECOM_ASSETS:
        checks = len(_check_names(asset))
        expect(_graph_node(page, asset)).to_contain_text(f"{checks} / {checks} Passed")
        expect(_graph_node(page, asset)).to_contain_text("Materialized")
    _shot(page, stack, "3-asset-graph-materialized")

    users = expected_users(stack.org)
    page.goto(f"{stack.url}/assets/wecom_users")
    expect(page.locator("body")).to_contain_text(re.compile(rf"Row count\s*{len(users)}(?!\d)"))
    columns = page.locator("table").filter(has_text="Column name")
    for column in USERS.columns:
        name_cell = page.locator("td:first-child", has_text=re.compile(rf"^\s*{column.name}\s*$"))
        row = columns.locator("tr").filter(has=name_cell)
        expect(row).to_contain_text(column.sql_type)
        # The UI renders descriptions as Markdown: `code` loses its backticks.
        expect(row).to_contain_text(column.description.replace("`", ""))
    expect(page.locator("body")).to_contain_text("别名")
    freshness = page.locator("section, div").filter(has_text=re.compile(r"^Freshness policy"))
    expect(freshness.get_by_text("Passing").first).to_be_visible()
    _shot(page, stack, "4-wecom-users")

    page.get_by_role("tab", name="Checks").click()
    for check in _check_names("wecom_users"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(
        len(_check_names("wecom_users"))
    )
    _shot(page, stack, "5-wecom-users-checks")

    assert_warehouse_holds(stack.database, stack.org)


def test_resource_page_shows_env_var_names_not_the_secret(
    ui_stack: UiStack,
    page: Page,
) -> None:
    page.goto(f"{ui_stack.url}/locations/wecom_assets/resources/wecom")
    for field in ("corp_id", "corp_secret"):
        row = page.locator("tr").filter(has=page.get_by_text(field, exact=True))
        expect(row).to_contain_text(f"WECOM_{field.upper()}")
        expect(row).to_contain_text("Env var")
    _shot(page, ui_stack, "6-wecom-resource")


def test_launchpad_shows_the_secret_as_an_env_var_reference(
    ui_stack: UiStack,
    page: Page,
) -> None:
    page.goto(f"{ui_stack.url}/locations/wecom_assets/jobs/wecom_sync/playground")
    expect(page.locator("body")).to_contain_text("env: WECOM_CORP_SECRET")
    _shot(page, ui_stack, "7-launchpad")
