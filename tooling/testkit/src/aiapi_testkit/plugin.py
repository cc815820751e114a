"""pytest fixtures that run the real things on loopback: NATS with JetStream, PostgreSQL, services.

* ``postgres_server`` (session): one embedded PostgreSQL cluster, or the server that
  ``AIAPI_TEST_DATABASE_URL`` names; ``database_url`` gives each test a fresh database in it.
* ``restartable_postgres``: a cluster of the test's own, which the test may stop and start.
* ``nats_server``: a nats-server of the test's own (its streams are the test's alone), which the
  test may stop, kill and start again on the same port with the same store.
* ``nats_url``: ``AIAPI_TEST_NATS_URL`` when set (wiped of streams and KV first), else
  ``nats_server``'s URL.
* ``bus``: a connected :class:`aiapi_shared.bus.Bus` on ``nats_url``.
* ``spawn``: starts :class:`ServiceProcess` children and stops every one at the test's end.
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
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_shared.bus import Bus
from psycopg import sql

from aiapi_testkit.process import ServiceProcess


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


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_url(request: pytest.FixtureRequest) -> str:
    external = os.environ.get("AIAPI_TEST_NATS_URL")
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
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_url, name="aiapi-test")
    try:
        yield connected
    finally:
        await connected.close()


SpawnFn = Callable[..., ServiceProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[SpawnFn]:
    started: list[ServiceProcess] = []

    def start(
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
        name: str | None = None,
        timeout_s: float = 30.0,
    ) -> ServiceProcess:
        label = name or Path(argv[0]).name
        proc = ServiceProcess(
            argv, env=env or {}, health_url=health_url, log_path=tmp_path / f"{label}.log"
        )
        started.append(proc)
        return proc.start(timeout_s=timeout_s)

    try:
        yield start
    finally:
        for proc in reversed(started):
            proc.stop()
