"""The files of ``deploy/``, read the way Dagster and its Helm chart read them.

No Docker daemon or Kubernetes cluster runs the tests, so the deployment's config is checked
against the schemas the running services would apply: Dagster's instance schema, the run
launchers' and run coordinator's config schemas, and, for the Helm values, the translation the
chart's templates make from its camelCase values into the instance's ``dagster.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dagster._config import validate_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKER = DEPLOY / "docker"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"

# What the chart's run-launcher template writes for keys of `runLauncher.config.k8sRunLauncher`
# (helm/dagster/templates/helpers/instance/_run-launcher.tpl): the config key, and how the
# value changes on the way. A value key missing here is one the chart does not know.
_K8S_LAUNCHER_KEYS: Mapping[str, str] = {
    "imagePullPolicy": "image_pull_policy",
    "jobNamespace": "job_namespace",
    "loadInclusterConfig": "load_incluster_config",
    "kubeconfigFile": "kubeconfig_file",
    "envConfigMaps": "env_config_maps",
    "envSecrets": "env_secrets",
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "failPodOnRunFailure": "fail_pod_on_run_failure",
    "resources": "resources",
    "schedulerName": "scheduler_name",
    "securityContext": "security_context",
    "runK8sConfig": "run_k8s_config",
}
_RUN_K8S_CONFIG_KEYS: Mapping[str, str] = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}
# The chart lists Secrets and ConfigMaps as `{name: ...}` objects; the launcher takes names.
_NAMED_SOURCES = {"envConfigMaps", "envSecrets"}
_QUEUE_KEYS: Mapping[str, str] = {
    "maxConcurrentRuns": "max_concurrent_runs",
    "tagConcurrencyLimits": "tag_concurrency_limits",
    "dequeueIntervalSeconds": "dequeue_interval_seconds",
}
_MONITORING_KEYS: Mapping[str, str] = {
    "enabled": "enabled",
    "startTimeoutSeconds": "start_timeout_seconds",
    "cancelTimeoutSeconds": "cancel_timeout_seconds",
    "maxResumeRunAttempts": "max_resume_run_attempts",
    "pollIntervalSeconds": "poll_interval_seconds",
}


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def schema_errors(schema: object, config: object) -> list[str]:
    """Dagster's own messages for ``config`` against a config schema; empty when it is valid."""
    result = validate_config(schema, config)
    return [] if result.success else [error.message for error in result.errors or ()]


def helm_k8s_run_launcher_config(values: Mapping[str, Any], release: str) -> dict[str, Any]:
    """The ``K8sRunLauncher`` config the chart writes from ``values`` into the instance.

    Besides the translated values, the chart always sets the instance ConfigMap, the PostgreSQL
    password Secret, ``DAGSTER_HOME`` and the service account.

    Raises:
        KeyError: ``values`` holds a key the chart does not translate.
    """
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "instance_config_map": f"{release}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "dagster_home": values["global"].get("dagsterHome", "/opt/dagster/dagster_home"),
        "service_account_name": release,
    }
    for key, value in launcher.items():
        if key in _NAMED_SOURCES:
            config[_K8S_LAUNCHER_KEYS[key]] = [source["name"] for source in value]
        elif key == "runK8sConfig":
            config["run_k8s_config"] = {_RUN_K8S_CONFIG_KEYS[k]: v for k, v in value.items()}
        else:
            config[_K8S_LAUNCHER_KEYS[key]] = value
    return config


def helm_postgres_storage_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's ``storage.postgres`` the chart writes from ``values.postgresql``.

    The password is read from the Secret into ``DAGSTER_PG_PASSWORD`` in every pod.
    """
    postgres = values["postgresql"]
    return {
        "postgres_db": {
            "hostname": postgres["postgresqlHost"],
            "username": postgres["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "db_name": postgres["postgresqlDatabase"],
            "port": postgres["service"]["port"],
            "scheme": postgres["postgresqlScheme"],
        }
    }


def helm_run_queue_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``QueuedRunCoordinator`` config the chart writes from ``values.dagsterDaemon``."""
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {_QUEUE_KEYS[key]: value for key, value in queue.items()}


def helm_run_monitoring_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's ``run_monitoring`` the chart writes from ``values.dagsterDaemon``."""
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    return {_MONITORING_KEYS[key]: value for key, value in monitoring.items()}


@dataclass(frozen=True)
class DockerInstruction:
    """One instruction of a Dockerfile, continuation lines joined."""

    keyword: str
    arguments: str


def dockerfile_instructions(path: Path) -> list[DockerInstruction]:
    """The Dockerfile's instructions in order, comments and blank lines left out."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instructions.append(DockerInstruction(keyword.upper(), arguments.strip()))
    return instructions


def copy_sources(instructions: list[DockerInstruction]) -> list[str]:
    """The build-context paths every ``COPY`` reads (``--from`` stages left out)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        words = [word for word in instruction.arguments.split() if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def dockerignore_admits(ignore_file: Path, path: str) -> bool:
    """Whether a ``*``-then-exceptions ``.dockerignore`` lets ``path`` into the build context."""
    admitted = False
    for raw in ignore_file.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if _matches(pattern, path):
            admitted = negated
    return admitted


def _matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
    return re.fullmatch(regex + "(/.*)?", path) is not None
