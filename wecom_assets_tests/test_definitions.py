"""How the code location runs its steps."""

from __future__ import annotations

from wecom_assets.defs import definitions


def test_step_processes_fork_from_a_server_that_already_imported_the_code_location() -> None:
    config = definitions.executor.apply_config_mapping({}).value["config"]
    assert config["start_method"] == {
        "forkserver": {"preload_modules": ["wecom_assets.definitions"]}
    }
