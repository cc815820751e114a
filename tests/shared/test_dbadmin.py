"""The migrations job applies a service's migrations as the owner and grants the service's role
only data rights; the service then starts without DDL, and cannot change its tables."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from aiapi_shared.db import MigrationError, migrate
from aiapi_testkit.dbroles import Roles, service_roles

PACKAGE = "aiapi_billing.migrations"


@pytest.fixture
def roles(database_url: str) -> Iterator[Roles]:
    with service_roles(database_url, ["billing"]) as created:
        yield created


async def test_the_job_migrates_and_the_service_role_needs_no_ddl(roles: Roles) -> None:
    service_url = roles.url("billing")
    # Before the job, the service role cannot create its schema: a clear error, not a crash.
    with pytest.raises(MigrationError, match="run the migrations job"):
        await migrate(service_url, schema="billing", package=PACKAGE)

    done = roles.run_job("migrate", "billing", "--grant", roles.services["billing"])
    assert done.returncode == 0, done.stderr
    assert "migration(s) applied" in done.stdout

    assert await migrate(service_url, schema="billing", package=PACKAGE) == []
    with psycopg.connect(service_url, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM billing.schema_migrations")  # data rights
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE billing.intruder (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE billing.schema_migrations")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE billing.schema_migrations ADD COLUMN x int")


async def test_a_pending_migration_stops_the_service_role_with_a_clear_error(
    database_url: str, roles: Roles
) -> None:
    roles.migrate_all()
    with psycopg.connect(database_url, autocommit=True) as conn:  # a new version's migration
        conn.execute(
            "DELETE FROM billing.schema_migrations WHERE version = "
            "(SELECT max(version) FROM billing.schema_migrations)"
        )
    with pytest.raises(MigrationError, match="run the migrations job"):
        await migrate(roles.url("billing"), schema="billing", package=PACKAGE)


def test_the_job_refuses_an_unknown_service(roles: Roles) -> None:
    done = roles.run_job("migrate", "edge")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
