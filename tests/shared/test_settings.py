from __future__ import annotations

from pathlib import Path

import pytest
from aiapi_shared.settings import BaseServiceSettings
from pydantic import SecretStr


class _Settings(BaseServiceSettings):
    admin_token: SecretStr | None = None


def test_reads_aiapi_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIAPI_NATS_URL", "nats://10.0.0.1:4222")
    assert _Settings().nats_url == "nats://10.0.0.1:4222"


def test_secrets_can_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("s3cret\n")
    (tmp_path / "AIAPI_DATABASE_URL").write_text("postgresql://db/x")
    monkeypatch.setenv("AIAPI_SECRETS_DIR", str(tmp_path))
    settings = _Settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://db/x"
    assert "s3cret" not in repr(settings)


def test_environment_wins_over_secret_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "admin_token").write_text("from-file")
    monkeypatch.setenv("AIAPI_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("AIAPI_ADMIN_TOKEN", "from-env")
    token = _Settings().admin_token
    assert token is not None and token.get_secret_value() == "from-env"
