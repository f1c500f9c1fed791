"""``deploy/`` holds config that Dagster, dagster-docker, dagster-k8s and the Helm chart accept.

None of it runs here (no Docker daemon, no cluster): each file is validated against the schema the
service would apply when it starts, and the Dockerfile against the repository it builds from.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher
from dagster_postgres import DagsterPostgresStorage
from deploy_files import (
    DEPLOY,
    DOCKER,
    DOCKERFILE,
    HELM_VALUES,
    ROOT,
    copy_sources,
    dockerfile_instructions,
    dockerignore_admits,
    helm_k8s_run_launcher_config,
    helm_postgres_storage_config,
    helm_run_monitoring_config,
    helm_run_queue_config,
    load_yaml,
    schema_errors,
)

POSTGRES_FIELDS = ("hostname", "port", "username", "password", "db_name")


def instance_config(directory: Path) -> dict[str, Any]:
    config, custom_class = dagster_instance_config(str(directory))
    assert custom_class is None
    return dict(config)


def test_instance_config_loads_against_dagsters_instance_schema() -> None:
    config = instance_config(DEPLOY)

    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True


def test_instance_storage_takes_every_postgres_setting_from_the_environment() -> None:
    postgres_db = load_yaml(DEPLOY / "dagster.yaml")["storage"]["postgres"]["postgres_db"]

    assert {field: set(postgres_db[field]) for field in POSTGRES_FIELDS} == {
        field: {"env"} for field in POSTGRES_FIELDS
    }


def test_instance_and_helm_storage_use_the_driver_dagster_postgres_is_written_for() -> None:
    postgres_db = instance_config(DEPLOY)["storage"]["postgres"]["postgres_db"]
    helm_db = helm_postgres_storage_config(load_yaml(HELM_VALUES))["postgres_db"]

    assert postgres_db["scheme"] == helm_db["scheme"] == "postgresql+psycopg2"


def test_instance_storage_config_validates_against_dagster_postgres() -> None:
    storage = instance_config(DEPLOY)["storage"]["postgres"]

    assert schema_errors(DagsterPostgresStorage.config_type(), storage) == []


def test_instance_run_coordinator_names_the_queued_coordinator_dagster_imports() -> None:
    coordinator = instance_config(DEPLOY)["run_coordinator"]
    module = __import__(coordinator["module"], fromlist=[coordinator["class"]])

    assert getattr(module, coordinator["class"]) is QueuedRunCoordinator
    assert schema_errors(QueuedRunCoordinator.config_type(), coordinator.get("config", {})) == []


def test_instance_allows_one_run_per_corp_at_a_time() -> None:
    runs = instance_config(DEPLOY)["concurrency"]["runs"]

    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in runs["tag_concurrency_limits"]


def test_docker_instance_config_loads_against_dagsters_instance_schema() -> None:
    config = instance_config(DOCKER)

    assert config["run_launcher"]["class"] == "DockerRunLauncher"


def test_docker_instance_config_differs_from_the_instance_only_by_its_run_launcher() -> None:
    base = load_yaml(DEPLOY / "dagster.yaml")
    docker = load_yaml(DOCKER / "dagster.yaml")

    assert {key: value for key, value in docker.items() if key != "run_launcher"} == base


def test_docker_run_launcher_config_validates_against_docker_run_launcher() -> None:
    launcher = load_yaml(DOCKER / "dagster.yaml")["run_launcher"]

    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert schema_errors(DockerRunLauncher.config_type(), launcher["config"]) == []


def test_docker_run_launcher_passes_on_only_variables_the_daemon_has() -> None:
    passed = load_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]["env_vars"]
    compose = load_yaml(DOCKER / "docker-compose.yaml")
    env_file = (DOCKER / "wecom.env.example").read_text(encoding="utf-8")
    daemon_env = set(compose["services"]["daemon"]["environment"]) | {
        line.split("=", 1)[0] for line in env_file.splitlines() if "=" in line
    }

    assert set(passed) <= daemon_env


def test_docker_run_containers_join_the_compose_network() -> None:
    launcher = load_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]
    networks = load_yaml(DOCKER / "docker-compose.yaml")["networks"]

    assert launcher["network"] in {network["name"] for network in networks.values()}


def test_docker_runs_start_in_the_image_the_compose_file_builds() -> None:
    services = load_yaml(DOCKER / "docker-compose.yaml")["services"]
    code = services["wecom_code"]

    assert code["build"]["dockerfile"] == "deploy/Dockerfile"
    assert code["environment"]["DAGSTER_CURRENT_IMAGE"] == code["image"]
    assert services["webserver"]["image"] == services["daemon"]["image"] == code["image"]


def test_docker_workspace_points_at_the_code_location_service_and_port() -> None:
    server = load_yaml(DOCKER / "workspace.yaml")["load_from"][0]["grpc_server"]
    services = load_yaml(DOCKER / "docker-compose.yaml")["services"]
    command = dockerfile_instructions(DOCKERFILE)[-1].arguments

    assert server["host"] in services
    assert f'"-p", "{server["port"]}"' in command


def test_helm_run_launcher_translates_to_a_valid_k8s_run_launcher_config() -> None:
    config = helm_k8s_run_launcher_config(load_yaml(HELM_VALUES), release="dagster")

    assert schema_errors(K8sRunLauncher.config_type(), config) == []
    assert config["env_secrets"] == ["wecom-secrets"]


def test_helm_values_choose_the_k8s_run_launcher() -> None:
    assert load_yaml(HELM_VALUES)["runLauncher"]["type"] == "K8sRunLauncher"


def test_helm_postgresql_translates_to_a_valid_postgres_storage_config() -> None:
    values = load_yaml(HELM_VALUES)

    assert values["postgresql"]["enabled"] is False
    assert (
        schema_errors(DagsterPostgresStorage.config_type(), helm_postgres_storage_config(values))
        == []
    )


def test_helm_run_queue_matches_the_instance_run_limits() -> None:
    queue = helm_run_queue_config(load_yaml(HELM_VALUES))
    runs = instance_config(DEPLOY)["concurrency"]["runs"]

    assert schema_errors(QueuedRunCoordinator.config_type(), queue) == []
    assert queue["max_concurrent_runs"] == runs["max_concurrent_runs"]
    assert queue["tag_concurrency_limits"] == runs["tag_concurrency_limits"]


def test_helm_run_monitoring_translates_to_a_valid_instance_setting() -> None:
    monitoring = helm_run_monitoring_config(load_yaml(HELM_VALUES))
    schema = dagster_instance_config_schema()["run_monitoring"].config_type

    assert schema_errors(schema, monitoring) == []


def test_helm_code_location_serves_the_definitions_module_with_the_secret() -> None:
    deployments = load_yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]

    assert [d["dagsterApiGrpcArgs"] for d in deployments] == [["-m", "wecom_assets.definitions"]]
    assert deployments[0]["envSecrets"] == [{"name": "wecom-secrets"}]


def test_dockerfile_copies_only_paths_that_exist_and_enter_the_build_context() -> None:
    sources = copy_sources(dockerfile_instructions(DOCKERFILE))
    ignore = DEPLOY / "Dockerfile.dockerignore"

    assert sources
    assert [s for s in sources if not (ROOT / s).exists()] == []
    assert [s for s in sources if not dockerignore_admits(ignore, s)] == []


def test_dockerfile_starts_from_python_3_11_slim() -> None:
    first = dockerfile_instructions(DOCKERFILE)[0]

    assert (first.keyword, first.arguments) == ("FROM", "python:3.11-slim")


def test_dockerfile_installs_the_deploy_extra_with_the_pinned_constraints() -> None:
    runs = [i.arguments for i in dockerfile_instructions(DOCKERFILE) if i.keyword == "RUN"]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")

    assert "pip install --no-cache-dir -c constraints.txt '.[deploy]'" in runs
    assert "\ndeploy = [" in pyproject


def test_dockerfile_runs_as_a_user_that_is_not_root() -> None:
    users = [i.arguments for i in dockerfile_instructions(DOCKERFILE) if i.keyword == "USER"]

    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_serves_the_code_location_module() -> None:
    last = dockerfile_instructions(DOCKERFILE)[-1]

    assert last.keyword == "CMD"
    assert '"code-server", "start"' in last.arguments
    assert '"-m", "wecom_assets.definitions"' in last.arguments


def _docker_daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.mark.e2e
@pytest.mark.skipif(not _docker_daemon_answers(), reason="no Docker daemon answers `docker info`")
def test_image_builds_and_imports_the_definitions() -> None:
    tag = "wecom_assets:test"
    subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=900
    )
    probe = subprocess.run(
        ["docker", "run", "--rm", tag, "python", "-c", "import wecom_assets.definitions"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert probe.returncode == 0, probe.stderr
