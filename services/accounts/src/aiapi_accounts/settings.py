"""The accounts service's settings (``AIAPI_`` environment variables or secret files)."""

from __future__ import annotations

from typing import ClassVar

from aiapi_shared.settings import BaseServiceSettings
from pydantic import Field, SecretStr, field_validator


class AccountsSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "accounts"

    accounts_port: int = Field(default=8081, ge=0, le=65535)
    # Required: the operator API has no anonymous mode, so the service refuses to start without it.
    admin_token: SecretStr
    # `aiapi up` on plain-HTTP localhost sets this false; browsers drop Secure cookies over HTTP.
    cookie_secure: bool = True
    session_ttl_s: int = Field(default=14 * 24 * 3600, gt=0)
    # Sign-in throttling: failures counted per email and per client address in a sliding window.
    sign_in_window_s: int = Field(default=15 * 60, gt=0)
    sign_in_max_failures_per_email: int = Field(default=5, gt=0)
    sign_in_max_failures_per_ip: int = Field(default=50, gt=0)
    # How long an operator's invitation (the one-time token that sets a password) stays usable.
    invitation_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    # How long accounts waits for billing or payments to answer a request.
    peer_timeout_s: float = Field(default=5.0, gt=0)
    # A key's last-used time is only written when it moved by more than this (coarse on purpose).
    last_used_resolution_s: int = Field(default=60, ge=0)
    # Argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)

    @field_validator("admin_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError("AIAPI_ADMIN_TOKEN must be at least 16 characters")
        return value
