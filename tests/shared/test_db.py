from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from aiapi_shared.db import MigrationError, migrate, open_pool

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
