"""pytest fixtures that run the real things on loopback: NATS with JetStream, PostgreSQL, services.

* ``postgres_server`` (session): one embedded PostgreSQL cluster, or the server that
  ``AIAPI_TEST_DATABASE_URL`` names; ``database_url`` gives each test a fresh database in it.
* ``restartable_postgres``: a cluster of the test's own, which the test may stop and start.
* ``nats_server``: a nats-server of the test's own (its streams are the test's alone), which the
  test may stop, kill and start again on the same port with the same store. It runs with the
  product's NATS users and permissions (``aiapi_shared.nats_permissions``): a process given
  ``nats_login(service)`` has that service's rights and no more; a client without credentials
  acts as the full-rights ``admin`` (for tests of one service in-process or of the bus alone).
* ``strict_nats_server``: the same without that allowance: every client must log in.
* ``nats_users``: the passwords of the test servers' users; ``nats_login(service)`` the
  environment (``AIAPI_NATS_USER``/``AIAPI_NATS_PASSWORD``) of a process logging in as one.
* ``nats_url``: ``AIAPI_TEST_NATS_URL`` when set (wiped of streams and KV first), else
  ``nats_server``'s URL.
* ``bus``: a connected :class:`aiapi_shared.bus.Bus` on ``nats_url``, as ``admin``.
* ``nats_cluster``: three nats-server processes as one JetStream cluster, any node killable.
* ``spawn``: starts :class:`ServiceProcess` children and stops every one at the test's end
  (side by side); ``spawning`` and ``running_nats`` give the same for a wider scope.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_shared.bus import Bus
from aiapi_shared.nats_permissions import ADMIN_USER, SERVICES
from aiapi_shared.settings import NatsConnectOptions
from psycopg import sql
from pydantic import SecretStr

from aiapi_testkit.nats_cluster import NatsCluster
from aiapi_testkit.process import ServiceProcess, stop_all

# A bare edge runs a worker per CPU (the product's default). The suite starts an edge a few
# hundred times, and each extra worker adds about a second to a start and stop here (a process
# to import, connect and make ready), so edges started by tests run one worker unless the test
# asks for more: tests/edge/test_workers.py and tests/e2e/test_workers.py run two, `aiapi up`'s
# tests run what its plan sizes. `AIAPI_EDGE_WORKERS=0 ./aiapi test` runs the whole suite with
# the default instead.
SUITE_EDGE_WORKERS = "1"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AIAPI_EDGE_WORKERS", SUITE_EDGE_WORKERS)


class PostgresHandle:
    """A PostgreSQL server the tests may create databases in."""

    def __init__(self, admin_url: str, embedded: EmbeddedPostgres | None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return _with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def _own_cluster() -> Iterator[EmbeddedPostgres]:
    """A throwaway cluster outside pytest's base temp directory: as root, PostgreSQL runs as
    ``nobody``, and another pytest session resetting that directory's permissions would cut it off."""
    directory = Path(tempfile.mkdtemp(prefix="aiapi-test-pg-"))
    server = EmbeddedPostgres(directory, durable=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresHandle]:
    external = os.environ.get("AIAPI_TEST_DATABASE_URL")
    if external:
        yield PostgresHandle(external, None)
        return
    with _own_cluster() as server:
        yield PostgresHandle(server.url, server)


@pytest.fixture
def database_url(postgres_server: PostgresHandle) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture
def restartable_postgres() -> Iterator[EmbeddedPostgres]:
    with _own_cluster() as server:
        yield server


@pytest.fixture(scope="session")
def nats_users() -> NatsUsers:
    return NatsUsers.generate()


def _external_nats() -> str | None:
    return os.environ.get("AIAPI_TEST_NATS_URL") or None


@pytest.fixture
def nats_login(nats_users: NatsUsers) -> Callable[[str], dict[str, str]]:
    """``nats_login("edge")``: the environment of a process logging in as the edge. Empty for
    an external server (``AIAPI_TEST_NATS_URL``), whose users are not ours."""
    if _external_nats():
        return lambda service: {}
    return nats_users.env


def admin_options(users: NatsUsers) -> NatsConnectOptions:
    return NatsConnectOptions(user=ADMIN_USER, password=SecretStr(users.passwords[ADMIN_USER]))


@contextlib.contextmanager
def running_nats(directory: Path, authorization: str) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(directory, authorization=authorization)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path, nats_users: NatsUsers) -> Iterator[EmbeddedNats]:
    config = nats_users.server_config(anonymous_as=ADMIN_USER)
    with running_nats(tmp_path / "nats", config) as server:
        yield server
    # A service refused something its code does: the grants and the code disagree.
    assert server.violations() == [], "NATS refused a service (aiapi_shared.nats_permissions)"


@pytest.fixture
def strict_nats_server(tmp_path: Path, nats_users: NatsUsers) -> Iterator[EmbeddedNats]:
    with running_nats(tmp_path / "nats-strict", nats_users.server_config()) as server:
        yield server


@pytest.fixture
async def nats_url(request: pytest.FixtureRequest) -> str:
    external = _external_nats()
    if not external:
        server: EmbeddedNats = request.getfixturevalue("nats_server")
        return server.url
    bus = await Bus.connect(external, name="aiapi-test-wipe")
    try:
        names = [info.config.name async for info in _stream_infos(bus)]
        for name in names:
            await bus.js.delete_stream(name)
    finally:
        await bus.close()
    return external


async def _stream_infos(bus: Bus) -> AsyncIterator[Any]:
    for info in await bus.js.streams_info():
        yield info


@pytest.fixture
async def bus(nats_url: str, nats_users: NatsUsers) -> AsyncIterator[Bus]:
    options = None if _external_nats() else admin_options(nats_users)
    connected = await Bus.connect(nats_url, name="aiapi-test", options=options)
    try:
        yield connected
    finally:
        await connected.close()


SpawnFn = Callable[..., ServiceProcess]


def _as_service(
    argv: Sequence[str], env: Mapping[str, str], login: Callable[[str], dict[str, str]]
) -> dict[str, str]:
    """A service process (``-m aiapi_<service>``) logs in to NATS as that service unless the
    test chose a login: every process test then runs with the production permissions."""
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    service = module.removeprefix("aiapi_")
    if service not in SERVICES or "AIAPI_NATS_URL" not in env or "AIAPI_NATS_USER" in env:
        return dict(env)
    return {**login(service), **env}


@contextlib.contextmanager
def spawning(log_dir: Path, login: Callable[[str], dict[str, str]]) -> Iterator[SpawnFn]:
    """What :func:`spawn` gives, for any scope: the processes it started stop at the end."""
    started: list[ServiceProcess] = []

    def start(
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
        name: str | None = None,
        timeout_s: float = 30.0,
        wait: bool = True,
    ) -> ServiceProcess:
        label = name or Path(argv[0]).name
        proc = ServiceProcess(
            argv,
            env=_as_service(argv, env or {}, login),
            health_url=health_url,
            log_path=log_dir / f"{label}.log",
        )
        started.append(proc)
        return proc.start(timeout_s=timeout_s, wait=wait)

    try:
        yield start
    finally:
        # Side by side: nothing here depends on the order (a test that does stops it itself).
        stop_all(reversed(started))


@pytest.fixture
def spawn(tmp_path: Path, nats_login: Callable[[str], dict[str, str]]) -> Iterator[SpawnFn]:
    """Starts service processes (stopped at the test's end); see :func:`_as_service`.
    ``wait=False``: started without waiting for its health (``proc.wait_healthy()`` later)."""
    with spawning(tmp_path, nats_login) as start:
        yield start


@pytest.fixture
def nats_cluster(tmp_path: Path, nats_users: NatsUsers) -> Iterator[NatsCluster]:
    """Three nats-server processes as one JetStream cluster on loopback (``url`` lists them),
    with the per-service users and no anonymous access, as in production."""
    cluster = NatsCluster(tmp_path / "nats-cluster", extra_config=nats_users.server_config())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
    assert cluster.violations() == [], "NATS refused a service (aiapi_shared.nats_permissions)"
