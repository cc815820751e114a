"""The deployment files are valid without a Docker engine or a cluster: Kubernetes manifests against
the API schemas (strict), docker-compose.yml for the things a typo would break."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.33.0"


def _k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "deploy/k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize(
    "doc", _k8s_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_kubernetes_manifest_is_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _commands_of(spec: dict[str, Any]) -> list[list[str]]:
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    return [c["command"] for c in containers if c.get("command", [""])[0] == "python"]


def test_every_container_runs_a_module_that_exists() -> None:
    modules = []
    for doc in _k8s_documents():
        for command in _commands_of(doc.get("spec", {})):
            modules.append(command[command.index("-m") + 1])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        command = service.get("command", [])
        if command[:1] == ["python"]:
            modules.append(command[command.index("-m") + 1])
    assert {"aiapi_edge", "aiapi_billing", "aiapi_accounts", "aiapi_payments"} <= set(modules)
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_compose_dependencies_and_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"nats", "postgres", "edge", "billing", "accounts", "payments"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        depends = service.get("depends_on") or {}
        assert set(depends) <= set(services), name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], (name, volume)
    assert services["edge"]["environment"]["AIAPI_EDGE_SPOOL_DIR"]
    assert "8080:8080" in services["edge"]["ports"]


def test_compose_passes_no_secret_in_clear() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "sk-ant-" not in text
    assert "sk-cc-" not in text
    assert "${POSTGRES_PASSWORD:?" in text
