"""The credentials of ``aiapi up``: generated once into the data directory (0600), reused, given
to each service process alone; PostgreSQL with a password, an older trust-only cluster included."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiapi_cli.credentials import NATS_USERS, LocalCredentials
from aiapi_cli.embedded import EmbeddedPostgres
from aiapi_cli.ports import free_port
from aiapi_cli.stack import plan_stack
from aiapi_cli.supervisor import child_env
from aiapi_shared.nats_permissions import SERVICES
from aiapi_shared.upstream_seal import seal, unseal


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_made_once_private_and_reused(tmp_path: Path) -> None:
    first = LocalCredentials.kept_in(tmp_path)
    assert _mode(first.directory) == 0o700
    files = sorted(first.directory.iterdir())
    assert [f.name for f in files] == sorted(
        [*(f"nats-{u}" for u in NATS_USERS), "postgres", "upstream-seal"]
    )
    assert all(_mode(f) == 0o600 for f in files)
    again = LocalCredentials.kept_in(tmp_path)
    assert again == first
    assert len(set(first.nats.passwords.values())) == len(NATS_USERS)  # each its own
    # rotation: delete a file, start again
    (first.directory / "nats-edge").unlink()
    rotated = LocalCredentials.kept_in(tmp_path)
    assert rotated.nats.passwords["edge"] != first.nats.passwords["edge"]
    assert rotated.nats.passwords["billing"] == first.nats.passwords["billing"]


def test_a_file_left_readable_by_an_older_version_is_narrowed(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o755)
    (secrets_dir / "postgres").write_text("kept-from-before\n")
    (secrets_dir / "postgres").chmod(0o644)
    credentials = LocalCredentials.kept_in(tmp_path)
    assert credentials.postgres_password == "kept-from-before"
    assert _mode(secrets_dir / "postgres") == 0o600
    assert _mode(secrets_dir) == 0o700


def test_each_service_gets_only_its_own_secrets(tmp_path: Path) -> None:
    credentials = LocalCredentials.kept_in(tmp_path)
    plan = plan_stack(
        {},
        nats_url="nats://127.0.0.1:4222",
        database_url="postgresql://postgres:pw@127.0.0.1:5432/aiapi",
        data_dir=tmp_path,
        admin_token="operator-token-" + "x1y2z3" * 4,
        instance_id="up-test",
        pick_port=free_port,
        nats_logins={s: credentials.nats.env(s) for s in SERVICES},
        upstream_seal=(credentials.upstream_seal_private, credentials.upstream_seal_public),
    )
    operator_env = {
        "AIAPI_DATABASE_URL": "postgresql://elsewhere",
        "AIAPI_ADMIN_TOKEN": "from-the-operator-shell",
        "AIAPI_NATS_PASSWORD": "someone-elses",
        "AIAPI_UPSTREAM_SEAL_PRIVATE_KEY": "an-operators-private-key",
        "AIAPI_LOG_LEVEL": "DEBUG",
    }
    by_name = {spec.name: child_env(spec, operator_env) for spec in plan.services}
    for service in SERVICES:
        env = by_name[service]
        assert env["AIAPI_NATS_USER"] == service
        assert env["AIAPI_NATS_PASSWORD"] == credentials.nats.passwords[service]
        assert env["AIAPI_LOG_LEVEL"] == "DEBUG"  # what is not a secret still passes
        assert ("AIAPI_ADMIN_TOKEN" in env) == (service == "accounts")
        assert ("AIAPI_DATABASE_URL" in env) == (service != "edge")
        # The seal's private half opens every upstream key the operator adds: the edge only.
        assert ("AIAPI_UPSTREAM_SEAL_PRIVATE_KEY" in env) == (service == "edge")
        assert ("AIAPI_UPSTREAM_SEAL_PUBLIC_KEY" in env) == (service == "accounts")
        assert "an-operators-private-key" not in env.values()
        assert "from-the-operator-shell" not in env.values()
    others = {credentials.nats.passwords[u] for u in NATS_USERS if u != "edge"}
    assert not others & set(by_name["edge"].values())
    assert by_name["edge"]["AIAPI_UPSTREAM_SEAL_PRIVATE_KEY"] == credentials.upstream_seal_private
    opened = seal(by_name["accounts"]["AIAPI_UPSTREAM_SEAL_PUBLIC_KEY"], "sk-ant-check")
    assert unseal(credentials.upstream_seal_private, opened) == "sk-ant-check"


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A directory outside pytest's base temp: as root, PostgreSQL runs as ``nobody``, and
    another pytest session resetting that directory's permissions would cut it off."""
    directory = Path(tempfile.mkdtemp(prefix="aiapi-test-up-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_postgres_takes_a_password_also_for_a_cluster_made_without_one(own_dir: Path) -> None:
    tmp_path = own_dir
    old = EmbeddedPostgres(tmp_path / "postgres", durable=False)  # as earlier versions made it
    old.start()
    try:
        with psycopg.connect(old.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        port = old.port
    finally:
        old.stop()
    password = LocalCredentials.kept_in(tmp_path).postgres_password
    new = EmbeddedPostgres(tmp_path / "postgres", port=port, durable=False, password=password)
    new.start()
    try:
        with psycopg.connect(new.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
        for wrong in (f"postgresql://postgres@127.0.0.1:{port}/postgres",
                      f"postgresql://postgres:wrong@127.0.0.1:{port}/postgres"):  # fmt: skip
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(wrong, connect_timeout=5)
    finally:
        new.stop()
