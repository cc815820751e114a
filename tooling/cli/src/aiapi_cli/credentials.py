"""The credentials of a one-machine deployment (``aiapi up``) and of the test kit's servers.

``aiapi up`` generates them on its first start into ``<data dir>/secrets/`` (a directory only its
owner may enter, each file mode 0600) and reuses them on every later start; a data directory
from a version that had none gets them on its next start. Rotating one is deleting its file and
starting again: the NATS configuration is written anew on every start, and PostgreSQL's password
is set on every start over the local socket (see ``EmbeddedPostgres``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiapi_shared.nats_permissions import ADMIN_USER, SERVICES, quoted, render_server_auth
from aiapi_shared.upstream_seal import generate_keypair, public_of

NATS_USERS: tuple[str, ...] = (*SERVICES, ADMIN_USER)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def read_or_create_secret(path: Path, make: Callable[[], str] = new_secret) -> str:
    """The secret kept in ``path``, made by ``make`` and written (0600, never wider) if absent.
    A file left wider by an older version is narrowed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        value = path.read_text("utf-8").strip()
        if value:
            return value
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # an empty file: a start cut short
    value = make()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


@dataclass(frozen=True)
class NatsUsers:
    """A password for each NATS user: one per service (its permissions from
    ``aiapi_shared.nats_permissions``) and the full-rights ``admin`` (the operator, the tests)."""

    passwords: dict[str, str]

    @classmethod
    def generate(cls) -> NatsUsers:
        return cls({user: new_secret() for user in NATS_USERS})

    @classmethod
    def kept_in(cls, directory: Path) -> NatsUsers:
        return cls({user: read_or_create_secret(directory / f"nats-{user}") for user in NATS_USERS})

    def server_config(self, *, anonymous_as: str | None = None) -> str:
        return render_server_auth(
            lambda user: quoted(self.passwords[user]), NATS_USERS, anonymous_as=anonymous_as
        )

    def env(self, user: str) -> dict[str, str]:
        """The environment that makes a service (or any aiapi process) log in as ``user``."""
        return {"AIAPI_NATS_USER": user, "AIAPI_NATS_PASSWORD": self.passwords[user]}


@dataclass(frozen=True)
class LocalCredentials:
    """What ``aiapi up`` keeps in ``<data dir>/secrets``."""

    directory: Path
    nats: NatsUsers
    postgres_password: str
    # The upstream pool's seal (docs/security.md): the private half goes to the edges only, the
    # public half (derived) to accounts, which seals the keys the operator adds.
    upstream_seal_private: str

    @property
    def upstream_seal_public(self) -> str:
        return public_of(self.upstream_seal_private)

    @classmethod
    def kept_in(cls, data_dir: Path) -> LocalCredentials:
        directory = data_dir / "secrets"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        return cls(
            directory=directory,
            nats=NatsUsers.kept_in(directory),
            postgres_password=read_or_create_secret(directory / "postgres"),
            upstream_seal_private=read_or_create_secret(
                directory / "upstream-seal", lambda: generate_keypair()[0]
            ),
        )
