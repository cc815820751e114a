from __future__ import annotations

import shutil
from pathlib import Path
from unittest.mock import patch

import psycopg
import pytest
from aiapi_cli.embedded import EmbeddedPostgres
from aiapi_shared.db import MigrationError, idle_probe, migrate, open_pool
from psycopg_pool import AsyncConnectionPool

PACKAGE = "tests.shared.migrations_ok"


async def test_migrations_apply_once_in_the_service_schema(database_url: str) -> None:
    assert await migrate(database_url, schema="svc", package=PACKAGE) == [
        "0001_first.sql",
        "0002_second.sql",
    ]
    assert await migrate(database_url, schema="svc", package=PACKAGE) == []
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO svc.widget (name, colour) VALUES ('a', 'red')")
        rows = conn.execute("SELECT version FROM svc.schema_migrations ORDER BY 1").fetchall()
    assert rows == [(1,), (2,)]


async def test_two_services_own_separate_schemas(database_url: str) -> None:
    await migrate(database_url, schema="one", package=PACKAGE)
    await migrate(database_url, schema="two", package=PACKAGE)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO one.widget (name) VALUES ('x')")
        assert conn.execute("SELECT count(*) FROM two.widget").fetchone() == (0,)


async def test_an_edited_migration_stops_the_service(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package_dir = tmp_path / "edited_migrations"
    shutil.copytree(Path(__file__).parent / "migrations_ok", package_dir)
    monkeypatch.syspath_prepend(str(tmp_path))
    await migrate(database_url, schema="svc", package="edited_migrations")
    (package_dir / "0001_first.sql").write_text("CREATE TABLE widget (id int);\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(database_url, schema="svc", package="edited_migrations")


async def test_pool_resolves_names_in_the_service_schema(database_url: str) -> None:
    await migrate(database_url, schema="svc", package=PACKAGE)
    pool = open_pool(database_url, schema="svc", max_size=2)
    await pool.open()
    try:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO widget (name) VALUES ('pooled')")
            cur = await conn.execute("SELECT name FROM widget")
            assert await cur.fetchall() == [("pooled",)]
    finally:
        await pool.close()


async def test_the_pool_probes_only_idle_connections_and_replaces_broken_ones(
    restartable_postgres: EmbeddedPostgres,
) -> None:
    probes: list[int] = []

    async def counted(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        probes.append(1)
        await conn.execute("")

    now = [100.0]
    probe = idle_probe(1.0, clock=lambda: now[0])
    pool = AsyncConnectionPool(
        restartable_postgres.url, min_size=1, max_size=1, check=probe, open=False
    )
    await pool.open(wait=True)
    try:
        with patch.object(AsyncConnectionPool, "check_connection", counted):
            for _ in range(3):  # the first checkout probes; the next two, a moment later, do not
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
            assert len(probes) == 1
            now[0] += 1.0  # idle for a second: probed again
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            assert len(probes) == 2
            restartable_postgres.stop()
            restartable_postgres.start()
            # Used a moment ago, so not probed: the first statement fails and the pool drops it.
            with pytest.raises(psycopg.OperationalError):
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
            async with pool.connection(timeout=30.0) as conn:  # a new connection serves
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
            now[0] += 5.0
            restartable_postgres.stop()
            restartable_postgres.start()
            # Idle this time: probed, replaced before use, and the caller never sees it.
            async with pool.connection(timeout=30.0) as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()


async def test_the_pool_hands_out_the_connection_used_last(database_url: str) -> None:
    """Light traffic stays on one warm connection (no probe, its statements prepared), however
    many the pool holds; two at once still get two."""
    pool = open_pool(database_url, schema="public", min_size=4, max_size=4)
    await pool.open(wait=True)
    try:
        backends = []
        for _ in range(6):
            async with pool.connection() as conn:
                backends.append(conn.info.backend_pid)
        assert len(set(backends)) == 1, backends
        async with pool.connection() as first, pool.connection() as second:
            assert first.info.backend_pid != second.info.backend_pid
            both = {first.info.backend_pid, second.info.backend_pid}
        async with pool.connection() as conn:  # the one returned last: the outer block's
            assert conn.info.backend_pid in both
    finally:
        await pool.close()
