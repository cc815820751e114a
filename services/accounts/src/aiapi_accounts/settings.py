"""The accounts service's settings (``AIAPI_`` environment variables or secret files)."""

from __future__ import annotations

from typing import ClassVar

from aiapi_shared.secret_strength import MIN_LENGTH, weakness
from aiapi_shared.settings import BaseServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator

from aiapi_accounts.clientaddr import ForwardedHeader, Network, parse_networks
from aiapi_accounts.smtp_url import parse_smtp_url


class AccountsSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "accounts"

    accounts_port: int = Field(default=8081, ge=0, le=65535)
    # The operator API (/admin/v1 and its docs) listens apart from the customer API, on loopback
    # unless set otherwise: exposing it is a decision, not a default.
    admin_port: int = Field(default=8088, ge=0, le=65535)
    admin_host: str = "127.0.0.1"
    internal_port: int = Field(default=9081, ge=0, le=65535)
    # Required: the operator API has no anonymous mode, so the service refuses to start without it.
    admin_token: SecretStr
    # The public half of the upstream pool's seal (base64): keys the operator adds are sealed
    # with it and only the edges, holding the private half, can open them (docs/security.md).
    # Unset: the pool's own keys may be changed but no key can be added at runtime.
    upstream_seal_public_key: str | None = None
    # `aiapi up` on plain-HTTP localhost sets this false; browsers drop Secure cookies over HTTP.
    cookie_secure: bool = True
    session_ttl_s: int = Field(default=14 * 24 * 3600, gt=0)
    # An operator's console session (the operator listener's cookie) lasts a working day.
    operator_session_ttl_s: int = Field(default=12 * 3600, gt=0)
    # Sign-in throttling (docs/accounts.md): per email and per client address, a number of free
    # failures, then each failure doubles the wait before the next attempt is even evaluated,
    # from the base delay up to a cap. The per-email cap is low on purpose, so that nobody can
    # keep someone else's account locked; the per-address one is long.
    sign_in_free_failures_per_email: int = Field(default=5, ge=0)
    sign_in_max_delay_per_email_s: int = Field(default=60, gt=0)
    sign_in_free_failures_per_ip: int = Field(default=20, ge=0)
    sign_in_max_delay_per_ip_s: int = Field(default=15 * 60, gt=0)
    sign_in_base_delay_s: int = Field(default=1, gt=0)
    # A scope with no attempt for this long starts again from zero (longer than both caps).
    sign_in_forget_s: int = Field(default=3600, gt=0)
    # Proxies whose forwarding header is believed (IPs or CIDR ranges, comma-separated); with
    # none, the socket peer is the client. Only the header named here is read.
    trusted_proxies: str = ""
    forwarded_header: ForwardedHeader = "x-forwarded-for"
    # Abuse caps of the customer API (operators are not capped by them; docs/accounts.md).
    max_keys_per_account: int = Field(default=50, ge=1)
    account_writes_per_minute: int = Field(default=30, ge=1)
    deposit_address_requests_per_hour: int = Field(default=10, ge=1)
    # How long an operator's invitation (the one-time token that sets a password) stays usable.
    invitation_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    # Whether this deployment runs payments. Off: the deposit lists are empty. On: a payments that
    # does not answer gets 503, never an empty list that would read as "no deposits".
    payments_enabled: bool = True
    # How long accounts waits for billing or payments to answer a request.
    peer_timeout_s: float = Field(default=5.0, gt=0)
    # A key's last-used time is only written when it moved by more than this (coarse on purpose).
    last_used_resolution_s: int = Field(default=60, ge=0)
    # Argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    # The dashboard's quick-start snippets: the edge's public base URL (``https://api.example``).
    # Unset: the dashboard's own scheme and host name with ``AIAPI_EDGE_PORT`` (what `aiapi up` runs).
    public_edge_url: str | None = None
    edge_port: int = Field(default=8080, ge=0, le=65535)
    # Block explorer links on the top-up page: network -> URL with ``{tx}`` for the transaction
    # hash, as JSON (``{"ethereum": "https://etherscan.io/tx/{tx}"}``). Empty: no links.
    explorer_tx_urls: dict[str, str] = Field(default_factory=dict)
    # Account mail (docs/accounts.md "Email"): ``smtp://user:pass@host:587`` (STARTTLS when the
    # server offers it) or ``smtps://user:pass@host:465`` (TLS from the start). Unset: no mail
    # at all. A secret (the password): also readable from the secrets directory, never logged.
    smtp_url: SecretStr | None = None
    smtp_from: str | None = None
    # The dashboard's public base URL (``https://dash.example``): the links in mails point there.
    # Required with SMTP: a link built from a request's Host header could point anywhere.
    public_dashboard_url: str | None = None
    # New sign-ups verify their email before creating keys or getting deposit addresses.
    # Unset: on exactly when SMTP is configured.
    require_email_verification: bool | None = None
    email_token_ttl_s: int = Field(default=24 * 3600, gt=0)
    # The operator console's live view reads these edges' internal /metrics, comma-separated
    # (``http://10.0.0.5:9080/metrics,...``). Empty: the live view shows billing's figures only.
    console_edge_metrics_urls: str = ""
    password_reset_ttl_s: int = Field(default=3600, gt=0)
    # Per account (resend) or per email (password reset): mails asked for per hour.
    mail_requests_per_hour: int = Field(default=3, ge=1)
    # The mail sender: how often it looks for pending mail, the first retry's delay (doubling
    # up to the cap), and how many attempts a mail gets before it is given up (logged).
    mail_poll_s: float = Field(default=5.0, gt=0)
    mail_retry_base_s: float = Field(default=10.0, gt=0)
    mail_retry_max_s: float = Field(default=3600.0, gt=0)
    mail_max_attempts: int = Field(default=25, ge=1)
    smtp_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("explorer_tx_urls")
    @classmethod
    def _explorer_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for network, url in value.items():
            if not url.startswith(("https://", "http://")) or "{tx}" not in url:
                raise ValueError(
                    f"AIAPI_EXPLORER_TX_URLS[{network}] must be an http(s) URL containing {{tx}}"
                )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _forget_after_the_caps(self) -> AccountsSettings:
        if self.sign_in_forget_s <= max(
            self.sign_in_max_delay_per_email_s, self.sign_in_max_delay_per_ip_s
        ):
            raise ValueError("AIAPI_SIGN_IN_FORGET_S must be longer than both maximum delays")
        return self

    @model_validator(mode="after")
    def _mail_complete(self) -> AccountsSettings:
        if self.smtp_url is not None:
            parse_smtp_url(self.smtp_url.get_secret_value())
            if not self.smtp_from:
                raise ValueError("AIAPI_SMTP_FROM is required with AIAPI_SMTP_URL")
            if not (self.public_dashboard_url or "").startswith(("https://", "http://")):
                raise ValueError(
                    "AIAPI_PUBLIC_DASHBOARD_URL (http(s)://...) is required with AIAPI_SMTP_URL"
                )
        elif self.require_email_verification:
            raise ValueError("AIAPI_REQUIRE_EMAIL_VERIFICATION needs AIAPI_SMTP_URL")
        return self

    @property
    def mail_enabled(self) -> bool:
        return self.smtp_url is not None

    @property
    def verification_required(self) -> bool:
        if self.require_email_verification is None:
            return self.mail_enabled
        return self.require_email_verification

    @property
    def proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @field_validator("admin_token")
    @classmethod
    def _token_strong(cls, value: SecretStr) -> SecretStr:
        # A placeholder or guessable operator token is refused at start (the message never
        # repeats the value): it guards every balance and key.
        reason = weakness(value.get_secret_value())
        if reason is not None:
            raise ValueError(
                f"AIAPI_ADMIN_TOKEN is refused: {reason}; use at least {MIN_LENGTH} random "
                "characters (openssl rand -hex 32)"
            )
        return value
