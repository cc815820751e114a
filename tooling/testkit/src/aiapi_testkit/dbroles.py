"""Database roles as a production deployment has them: an owner that runs the migrations job, and
one login role per service that gets only data rights from that job (docs/operations.md)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def as_role(url: str, role: str) -> str:
    """``url`` with ``role`` as its user (the test servers trust loopback: no password)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@dataclass(frozen=True)
class Roles:
    owner: str
    services: dict[str, str]  # service -> its login role
    database_url: str

    @property
    def owner_url(self) -> str:
        return as_role(self.database_url, self.owner)

    def url(self, service: str) -> str:
        return as_role(self.database_url, self.services[service])

    def run_job(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m aiapi_shared.dbadmin ARGS`` as the owner, as a deployment runs it."""
        return subprocess.run(
            [sys.executable, "-m", "aiapi_shared.dbadmin", *args],
            env={**os.environ, "AIAPI_DATABASE_URL": self.owner_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def migrate_all(self) -> None:
        for service, role in self.services.items():
            done = self.run_job("migrate", service, "--grant", role)
            if done.returncode != 0:
                raise RuntimeError(f"migrations job for {service} failed: {done.stderr}")


@contextlib.contextmanager
def service_roles(database_url: str, services: Sequence[str]) -> Iterator[Roles]:
    """An owner role allowed to create schemas in the database, a role per service with no rights
    yet, and nobody but the owner allowed to create in ``public``; all dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    roles = Roles(f"owner_{tag}", {s: f"{s}_{tag}" for s in services}, database_url)
    database = urlsplit(database_url).path.lstrip("/")
    names = [roles.owner, *roles.services.values()]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for role in names:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT CREATE, CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(roles.owner)
            )
        )
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        yield roles
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for role in reversed(names):
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
