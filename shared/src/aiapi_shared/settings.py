"""The settings base: ``AIAPI_`` environment variables, secrets also readable from files.

Each service subclasses :class:`BaseServiceSettings` with the variables it needs and builds it once,
in its composition root; nothing else reads the environment. Secrets may be given as files in the
directory named by ``AIAPI_SECRETS_DIR`` (Kubernetes secrets mounted as a volume): a file named
after the variable without its prefix, lowercase (``admin_token``), or exactly as the variable
(``AIAPI_ADMIN_TOKEN``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


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
    database_url: SecretStr | None = None
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".data")
    log_level: str = "INFO"
    host: str = "127.0.0.1"

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
