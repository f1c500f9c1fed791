"""The webserver's GraphQL API: launch `wecom_sync`, read what the UI shows, find no secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dagster_support import expected_users
from leak_scan import find_leaks
from ui_support import LOCATION, REPOSITORY, STARTED_STACKS, UiStack
from warehouse_oracle import assert_warehouse_holds

from wecom_assets.defs.settings import OWNERS
from wecom_assets.warehouse.tables import TAGS, USERS

pytestmark = [
    pytest.mark.e2e,
    # dagster-graphql's client still calls gql with arguments gql has deprecated.
    pytest.mark.filterwarnings(
        "ignore:Using variable_values and operation_name:DeprecationWarning"
    ),
]


RESOURCES_QUERY = """
query {
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    ... on RepositoryLocation { repositories { name allTopLevelResourceDetails {
      name description
      configFields { name description }
      configuredValues { key value type }
    } } }
  } } } }
}
"""
RUN_QUERY = """
query($id: ID!) {
  runOrError(runId: $id) { ... on Run { status runConfigYaml tags { key value } } }
}
"""
LOGS_QUERY = """
query($id: ID!) {
  logsForRun(runId: $id, limit: 5000) {
    ... on EventConnection { hasMore events { __typename
      ... on MessageEvent { message stepKey }
      ... on MaterializationEvent { metadataEntries { label
        ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString } } }
      ... on ErrorEvent { error { message stack } }
    } }
  }
}
"""
ASSET_QUERY = """
query($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) { ... on Asset {
    definition {
      owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
      metadataEntries { label }
    }
    assetMaterializations(limit: 1) { runId metadataEntries { __typename label
      ... on IntMetadataEntry { intValue }
      ... on TextMetadataEntry { text }
      ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
    } }
  } }
}
"""


@pytest.fixture(scope="module")
def sync_run(ui_stack: UiStack) -> tuple[str, str]:
    """`wecom_sync` launched through Dagster's GraphQL client; its run id and final status."""
    run_id = ui_stack.client().submit_job_execution(
        "wecom_sync", repository_location_name=LOCATION, repository_name=REPOSITORY
    )
    return run_id, ui_stack.wait_for_run(run_id)


def _wecom_resource(stack: UiStack) -> tuple[dict[str, Any], str]:
    data, text = stack.graphql(RESOURCES_QUERY)
    (entry,) = [e for e in data["workspaceOrError"]["locationEntries"] if e["name"] == LOCATION]
    (repository,) = entry["locationOrLoadError"]["repositories"]
    resources = {r["name"]: r for r in repository["allTopLevelResourceDetails"]}
    return resources["wecom"], text


def test_wecom_sync_launched_through_graphql_succeeds_and_fills_the_tables(
    ui_stack: UiStack,
    sync_run: tuple[str, str],
) -> None:
    _, status = sync_run
    assert status == "SUCCESS"
    assert_warehouse_holds(ui_stack.database, ui_stack.org)


def test_users_materialization_shows_row_count_schema_table_and_api_calls(
    ui_stack: UiStack,
    sync_run: tuple[str, str],
) -> None:
    run_id, _ = sync_run
    data, _ = ui_stack.graphql(ASSET_QUERY, path=["wecom_users"])
    asset = data["assetOrError"]
    (materialization,) = asset["assetMaterializations"]
    assert materialization["runId"] == run_id
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    # Integer entries are what the asset's Plots tab charts over time.
    assert entries["dagster/row_count"]["__typename"] == "IntMetadataEntry"
    assert entries["dagster/row_count"]["intValue"] == len(expected_users(ui_stack.org))
    assert entries["wecom/api_calls"]["__typename"] == "IntMetadataEntry"
    assert entries["wecom/api_calls"]["intValue"] == len(ui_stack.org["departments"])
    assert entries["dagster/table_name"]["text"] == "main.wecom_users"
    columns = entries["dagster/column_schema"]["schema"]["columns"]
    assert [(c["name"], c["type"], c["description"]) for c in columns] == [
        (c.name, c.sql_type, c.description) for c in USERS.columns
    ]
    owners = [
        f"team:{owner['team']}" if "team" in owner else owner["email"]
        for owner in asset["definition"]["owners"]
    ]
    assert owners == OWNERS


def test_tags_materialization_shows_row_count_schema_and_the_tag_calls(
    ui_stack: UiStack,
    sync_run: tuple[str, str],
) -> None:
    run_id, _ = sync_run
    data, _ = ui_stack.graphql(ASSET_QUERY, path=["wecom_tags"])
    (materialization,) = data["assetOrError"]["assetMaterializations"]
    assert materialization["runId"] == run_id
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    assert entries["dagster/row_count"]["intValue"] == len(ui_stack.org["tags"])
    assert entries["wecom/api_calls"]["intValue"] == 1 + len(ui_stack.org["tags"])
    assert entries["dagster/table_name"]["text"] == "main.wecom_tags"
    columns = entries["dagster/column_schema"]["schema"]["columns"]
    assert [c["name"] for c in columns] == list(TAGS.column_names)


def test_resource_config_shows_env_var_names_for_the_credentials(
    ui_stack: UiStack,
) -> None:
    resource, _ = _wecom_resource(ui_stack)
    configured = {value["key"]: value for value in resource["configuredValues"]}
    assert configured["corp_id"] == {"key": "corp_id", "value": "WECOM_CORP_ID", "type": "ENV_VAR"}
    assert configured["corp_secret"] == {
        "key": "corp_secret",
        "value": "WECOM_CORP_SECRET",
        "type": "ENV_VAR",
    }
    assert all(field["description"] for field in resource["configFields"])


def test_secret_and_tokens_appear_in_no_graphql_answer_nor_instance_storage(
    ui_stack: UiStack,
    sync_run: tuple[str, str],
) -> None:
    run_id, _ = sync_run
    tokens = ui_stack.sandbox.stats()["issued_tokens"]
    assert tokens, "the run fetched no token, so this test would prove nothing"
    logs, logs_text = ui_stack.graphql(LOGS_QUERY, id=run_id)
    assert not logs["logsForRun"]["hasMore"]
    answers = {
        "resources": _wecom_resource(ui_stack)[1],
        "run": ui_stack.graphql(RUN_QUERY, id=run_id)[1],
        "run logs": logs_text,
        "wecom_users": ui_stack.graphql(ASSET_QUERY, path=["wecom_users"])[1],
        "wecom_departments": ui_stack.graphql(ASSET_QUERY, path=["wecom_departments"])[1],
    }
    for name, text in answers.items():
        decoded = json.dumps(json.loads(text), ensure_ascii=False)
        assert ui_stack.secret not in decoded, f"the corp secret is in the {name} answer"
        for token in tokens:
            assert token not in decoded, f"an access token is in the {name} answer"

    needles = {"corp secret": ui_stack.secret}
    needles.update({f"token {i}": token for i, token in enumerate(tokens)})
    home = ui_stack.dagster_home
    assert find_leaks([home], needles, exclude=[home / ".wecom"]) == []
    assert find_leaks([home / ".wecom"], {"corp secret": ui_stack.secret}) == []


def test_the_ui_stack_is_started_once_for_the_whole_session(ui_stack: UiStack) -> None:
    # Last in this module, so in a run of the suite (or of test_ui_browser.py and this file) it
    # comes after every other test that used the stack: all of them must have shared one.
    assert STARTED_STACKS == [ui_stack.dagster_home]
