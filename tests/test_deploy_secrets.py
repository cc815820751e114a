"""The deployment files give each service its own secrets and its own NATS user, and NATS the
permission model of aiapi_shared.nats_permissions (generated, never edited by hand)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared import billing_api
from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.nats_permissions import (
    ADMIN_USER,
    SERVICES,
    deployment_server_auth,
    inbox_prefix,
    password_variable,
)
from aiapi_shared.settings import NatsConnectOptions
from pydantic import SecretStr

from tests.k8s_render import OVERLAYS, rendered

ROOT = Path(__file__).resolve().parents[1]
AUTH_CONF = ROOT / "deploy/nats/auth.conf"


def _k8s() -> list[dict[str, Any]]:
    """Every overlay's manifests, rendered (tests/test_k8s.py validates them)."""
    return [doc for overlay in OVERLAYS for doc in rendered(overlay)]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_nats_configurations_are_generated_from_the_permission_model() -> None:
    expected = deployment_server_auth()
    assert AUTH_CONF.read_text() == expected, "regenerate deploy/nats/auth.conf"
    assert (ROOT / "deploy/k8s/base/nats/auth.conf").read_text() == expected, (
        "regenerate deploy/k8s/base/nats/auth.conf"
    )
    configs = [d for d in _k8s() if d["metadata"]["name"].startswith("nats-config")]
    assert configs and all(d["data"]["auth.conf"] == expected for d in configs)


async def test_nats_server_runs_the_deployment_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = {user: secrets.token_hex(16) for user in (*SERVICES, ADMIN_USER)}
    for user, password in passwords.items():
        monkeypatch.setenv(password_variable(user), password)  # the server inherits them
    server = EmbeddedNats(tmp_path / "nats", authorization=AUTH_CONF.read_text())
    server.start()
    try:
        with pytest.raises(BusUnavailable):
            await Bus.connect(server.url, name="anonymous")
        login = NatsConnectOptions(
            user="edge", password=SecretStr(passwords["edge"]), inbox_prefix=inbox_prefix("edge")
        )
        edge = await Bus.connect(server.url, name="edge", options=login)
        try:
            await edge.ensure_streams()
            with pytest.raises(BusUnavailable):
                await edge.request(billing_api.ADJUST_SUBJECT, b"{}", timeout_s=1.0)
        finally:
            await edge.close()
    finally:
        server.stop()
    assert any(billing_api.ADJUST_SUBJECT in line for line in server.violations())


def test_compose_gives_each_service_its_own_secrets() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["AIAPI_NATS_USER"] == name
        assert env["AIAPI_NATS_PASSWORD"].startswith(f"${{{password_variable(name)}:?")
        assert service.get("env_file") in (None, [{"path": f".env.{name}", "required": False}])
        assert ("AIAPI_ADMIN_TOKEN" in env) == (name == "accounts"), name
        assert ("AIAPI_DATABASE_URL" in env) == (name != "edge"), name
        # The seal of runtime upstream keys: opened by the edge alone, sealed by accounts.
        assert ("AIAPI_UPSTREAM_SEAL_PRIVATE_KEY" in env) == (name == "edge"), name
        assert ("AIAPI_UPSTREAM_SEAL_PUBLIC_KEY" in env) == (name == "accounts"), name
    nats_env = services["nats"]["environment"]
    assert set(nats_env) == {password_variable(u) for u in (*SERVICES, ADMIN_USER)}
    assert "/etc/nats/auth.conf" in services["nats"]["command"]


def test_kubernetes_gives_each_service_its_own_secret() -> None:
    for doc in _k8s():
        if doc["kind"] not in ("Deployment", "StatefulSet") or doc["metadata"]["name"] == "nats":
            continue
        service = doc["metadata"]["name"].removeprefix("aiapi-")
        pod = doc["spec"]["template"]["spec"]
        secrets_used = [
            v["secret"]["secretName"]
            for v in pod["volumes"]
            if "secret" in v and "items" not in v["secret"]  # CA certificates: one file each
        ]
        assert secrets_used == [f"aiapi-{service}-secrets"], service
        for v in pod["volumes"]:
            if "items" in v.get("secret", {}):
                assert [i["key"] for i in v["secret"]["items"]] == ["ca.crt"], service
        (container,) = pod["containers"]
        assert {"name": "AIAPI_NATS_USER", "value": service} in container["env"], service
    config = next(d for d in _k8s() if d["metadata"]["name"].startswith("aiapi-config"))
    assert not any("TOKEN" in k or "PASSWORD" in k or "DATABASE" in k for k in config["data"])
