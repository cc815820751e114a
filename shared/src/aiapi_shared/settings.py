"""The settings base: ``AIAPI_`` environment variables, secrets also readable from files.

Each service subclasses :class:`BaseServiceSettings` with the variables it needs and builds it once,
in its composition root; nothing else reads the environment. Secrets may be given as files in the
directory named by ``AIAPI_SECRETS_DIR`` (Kubernetes secrets mounted as a volume): a file named
after the variable without its prefix, lowercase (``admin_token``), or exactly as the variable
(``AIAPI_ADMIN_TOKEN``).

NATS credentials are settings too (never part of ``AIAPI_NATS_URL``): a user and password, a
``.creds`` file (user JWT and NKey seed) or an NKey seed file, and a CA file for TLS;
:func:`nats_connect_options` checks them and turns them into what ``Bus.connect`` takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aiapi_shared.jetstream_limits import DEFAULT_KV_MAX_BYTES, DEFAULT_STREAM_LIMITS
from aiapi_shared.nats_permissions import SERVICES, inbox_prefix

_USAGE, _BILLING = DEFAULT_STREAM_LIMITS["USAGE"], DEFAULT_STREAM_LIMITS["BILLING"]
_PAYMENTS, _ACCOUNTS = DEFAULT_STREAM_LIMITS["PAYMENTS"], DEFAULT_STREAM_LIMITS["ACCOUNTS"]


class _SecretFilesSource(PydanticBaseSettingsSource):
    """Reads ``<dir>/<name>`` or ``<dir>/AIAPI_<NAME>`` for every field, when the file exists."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None) -> None:
        super().__init__(settings_cls)
        self._directory = directory

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        if self._directory is None:
            return None, field_name, False
        for candidate in (field_name, f"AIAPI_{field_name.upper()}"):
            path = self._directory / candidate
            if path.is_file():
                return path.read_text("utf-8").strip(), field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class BaseServiceSettings(BaseSettings):
    """What every aiapi process reads: where NATS and PostgreSQL are, logging, the data dir."""

    model_config = SettingsConfigDict(env_prefix="AIAPI_", extra="ignore", frozen=True)

    service_name: ClassVar[str] = "aiapi"

    nats_url: str = "nats://127.0.0.1:4222"
    # NATS credentials: at most one of user+password, a .creds file, an NKey seed file.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_creds_file: Path | None = None
    nats_nkey_file: Path | None = None
    # TLS: the CA that signed the server's certificate; a client certificate when NATS asks one.
    nats_ca_file: Path | None = None
    nats_cert_file: Path | None = None
    nats_key_file: Path | None = None
    # JetStream storage (aiapi_shared.jetstream_limits; docs/operations.md "JetStream sizing"):
    # copies of every stream and bucket, and each stream's byte and age limits (an hour at least:
    # the age bounds the duplicate window, and a shorter one would expire unsettled usage).
    nats_replicas: int = Field(default=1, ge=1, le=5)
    nats_usage_max_bytes: int = Field(default=_USAGE.max_bytes, gt=0)
    nats_usage_max_age_s: float = Field(default=_USAGE.max_age_s, ge=3600)
    nats_billing_max_bytes: int = Field(default=_BILLING.max_bytes, gt=0)
    nats_billing_max_age_s: float = Field(default=_BILLING.max_age_s, ge=3600)
    nats_payments_max_bytes: int = Field(default=_PAYMENTS.max_bytes, gt=0)
    nats_payments_max_age_s: float = Field(default=_PAYMENTS.max_age_s, ge=3600)
    nats_accounts_max_bytes: int = Field(default=_ACCOUNTS.max_bytes, gt=0)
    nats_accounts_max_age_s: float = Field(default=_ACCOUNTS.max_age_s, ge=3600)
    nats_kv_max_bytes: int = Field(default=DEFAULT_KV_MAX_BYTES, gt=0)
    database_url: SecretStr | None = None
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".data")
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    # The internal listener (liveness, readiness, metrics; docs/operations.md): never public.
    # Each service sets its own default port.
    internal_host: str = "127.0.0.1"
    internal_port: int = Field(default=9080, ge=0, le=65535)
    # Named in the internal health answers; ``aiapi up`` sets it to tell its processes from
    # another stack's. Unset: a random one per process.
    instance_id: str = ""
    # A start that takes longer (NATS or PostgreSQL unreachable) exits 3; the supervisor retries.
    start_timeout_s: float = Field(default=120.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets_dir = os.environ.get("AIAPI_SECRETS_DIR")
        files = _SecretFilesSource(settings_cls, Path(secrets_dir) if secrets_dir else None)
        # Explicit arguments win, then the environment, then secret files.
        return (init_settings, env_settings, files)


class NatsSettingsError(ValueError):
    """The NATS settings do not fit together; the message names settings, never values."""


@dataclass(frozen=True)
class NatsConnectOptions:
    """How to authenticate to NATS and verify it; what ``Bus.connect`` takes besides the URL."""

    user: str | None = None
    password: SecretStr | None = None
    creds_file: Path | None = None
    nkey_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Replies come to <prefix>.>; each service has its own so that its NATS user may read only
    # its own replies (aiapi_shared.nats_permissions).
    inbox_prefix: str | None = None


def nats_connect_options(settings: BaseServiceSettings) -> NatsConnectOptions:
    """The connect options of ``settings``; raises :class:`NatsSettingsError` when they conflict
    or name a file that is not there."""
    if urlsplit(settings.nats_url).password is not None or "@" in settings.nats_url:
        raise NatsSettingsError(
            "AIAPI_NATS_URL must not carry credentials; set AIAPI_NATS_USER and "
            "AIAPI_NATS_PASSWORD (or a creds or NKey file) instead"
        )
    if (settings.nats_user is None) != (settings.nats_password is None):
        raise NatsSettingsError("AIAPI_NATS_USER and AIAPI_NATS_PASSWORD are set together")
    methods = [
        name
        for name, given in (
            ("AIAPI_NATS_USER", settings.nats_user is not None),
            ("AIAPI_NATS_CREDS_FILE", settings.nats_creds_file is not None),
            ("AIAPI_NATS_NKEY_FILE", settings.nats_nkey_file is not None),
        )
        if given
    ]
    if len(methods) > 1:
        raise NatsSettingsError(f"choose one NATS credential, not {' and '.join(methods)}")
    if (settings.nats_cert_file is None) != (settings.nats_key_file is None):
        raise NatsSettingsError("AIAPI_NATS_CERT_FILE and AIAPI_NATS_KEY_FILE are set together")
    for name, path in (
        ("AIAPI_NATS_CREDS_FILE", settings.nats_creds_file),
        ("AIAPI_NATS_NKEY_FILE", settings.nats_nkey_file),
        ("AIAPI_NATS_CA_FILE", settings.nats_ca_file),
        ("AIAPI_NATS_CERT_FILE", settings.nats_cert_file),
        ("AIAPI_NATS_KEY_FILE", settings.nats_key_file),
    ):
        if path is not None and not path.is_file():
            raise NatsSettingsError(f"{name} names no readable file")
    service = settings.service_name
    return NatsConnectOptions(
        user=settings.nats_user,
        password=settings.nats_password,
        creds_file=settings.nats_creds_file,
        nkey_file=settings.nats_nkey_file,
        ca_file=settings.nats_ca_file,
        cert_file=settings.nats_cert_file,
        key_file=settings.nats_key_file,
        inbox_prefix=inbox_prefix(service) if service in SERVICES else None,
    )
