"""NATS credentials and TLS as settings: what fits together, what is refused (naming settings,
never values), and a TLS connection verified against the configured CA."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.settings import BaseServiceSettings, NatsSettingsError, nats_connect_options


class _Edge(BaseServiceSettings):
    service_name: ClassVar[str] = "edge"


class _Tool(BaseServiceSettings):
    pass


def test_user_and_password_from_the_environment_and_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nats_password").write_text("s3cret-from-a-file\n")
    monkeypatch.setenv("AIAPI_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("AIAPI_NATS_USER", "edge")
    options = nats_connect_options(_Edge())
    assert options.user == "edge"
    assert options.password is not None
    assert options.password.get_secret_value() == "s3cret-from-a-file"
    assert options.inbox_prefix == "_INBOX.edge"  # the edge's replies come to its own inbox
    assert nats_connect_options(_Tool()).inbox_prefix is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"nats_url": "nats://edge:hunter2-password@127.0.0.1:4222"}, "AIAPI_NATS_URL"),
        ({"nats_user": "edge"}, "AIAPI_NATS_PASSWORD"),
        ({"nats_password": "hunter2-password"}, "AIAPI_NATS_USER"),
        (
            {"nats_user": "edge", "nats_password": "hunter2-password", "nats_nkey_file": "/x"},
            "AIAPI_NATS_NKEY_FILE",
        ),
        ({"nats_ca_file": "/nonexistent/ca.pem"}, "AIAPI_NATS_CA_FILE"),
        ({"nats_cert_file": "/nonexistent/c.pem"}, "AIAPI_NATS_KEY_FILE"),
    ],
)
def test_settings_that_do_not_fit_are_refused_by_name(values: dict[str, str], named: str) -> None:
    with pytest.raises(NatsSettingsError) as refused:
        nats_connect_options(_Edge(**values))  # type: ignore[arg-type]
    assert named in str(refused.value)
    assert "hunter2" not in str(refused.value)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test CA")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=aiapi test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=d)  # fmt: skip
    return d


async def test_a_tls_server_is_verified_against_the_configured_ca(
    tmp_path: Path, certificates: Path
) -> None:
    tls = (
        f'tls {{ cert_file: "{certificates / "server.pem"}", '
        f'key_file: "{certificates / "server.key"}" }}\n'
    )
    server = EmbeddedNats(tmp_path / "nats", authorization=tls)
    server.start()
    try:
        trusted = _Edge(nats_url=server.url, nats_ca_file=certificates / "ca.pem")
        bus = await Bus.connect(server.url, name="tls", options=nats_connect_options(trusted))
        try:
            assert bus.is_connected
            assert bus.client.connected_url is not None
        finally:
            await bus.close()
        # Without the CA, the system's trust store does not know this server: no connection.
        with pytest.raises((BusUnavailable, asyncio.TimeoutError)):
            await asyncio.wait_for(
                Bus.connect(
                    server.url,
                    name="untrusted",
                    options=nats_connect_options(_Edge(nats_url=server.url)),
                ),
                timeout=5,
            )
    finally:
        server.stop()


async def test_an_nkey_seed_file_logs_in(tmp_path: Path) -> None:
    import secrets

    import nkeys

    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "edge.nk"
    seed_file.write_bytes(seed)
    server = EmbeddedNats(
        tmp_path / "nats", authorization=f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}\n'
    )
    server.start()
    try:
        settings = _Edge(nats_url=server.url, nats_nkey_file=seed_file)
        bus = await Bus.connect(server.url, name="nkey", options=nats_connect_options(settings))
        try:
            await bus.ensure_streams()  # a real round trip under that identity
        finally:
            await bus.close()
        with pytest.raises(BusUnavailable):
            await Bus.connect(server.url, name="anonymous")
    finally:
        server.stop()
