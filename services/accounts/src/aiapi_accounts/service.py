"""The composition root: builds every part from the settings, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiapi_shared.bus import Bus, KeyValue
from aiapi_shared.catalogue import Catalogue, default_catalogue
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.events.records_v1 import CATALOGUE_BUCKET, KEYS_BUCKET, UPSTREAM_KEYS_BUCKET
from aiapi_shared.lifecycle import StartupRefused
from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import keysync, repository
from aiapi_accounts.account_mail import AccountMail
from aiapi_accounts.addressbook import AddressBook
from aiapi_accounts.catalogue_view import CatalogueView
from aiapi_accounts.commands import Accounts
from aiapi_accounts.consumers import Consumers
from aiapi_accounts.context import Context
from aiapi_accounts.domain import Backoff, Limits, Throttle
from aiapi_accounts.mailer import MailSender
from aiapi_accounts.notices import Notices
from aiapi_accounts.operators.service import Operators
from aiapi_accounts.passwords import Passwords
from aiapi_accounts.peers import Peers
from aiapi_accounts.relay import Relay
from aiapi_accounts.settings import AccountsSettings
from aiapi_accounts.smtp_url import parse_smtp_url
from aiapi_accounts.upstream_pool import UpstreamPool

log = logging.getLogger("aiapi.accounts")

SCHEMA = "accounts"
_PRUNE_EVERY_S = 600.0


class Service:
    """Started by the runner; ``started`` once the key records are resynced."""

    def __init__(self, settings: AccountsSettings, catalogue: Catalogue | None = None) -> None:
        if settings.database_url is None:
            raise StartupRefused("AIAPI_DATABASE_URL is required")
        self.settings = settings
        self.catalogue = CatalogueView(catalogue or default_catalogue())
        self._database_url = settings.database_url.get_secret_value()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pool: AsyncConnectionPool | None = None
        self.bus: Bus | None = None
        self.relay: Relay | None = None
        self.ctx: Context | None = None
        self.upstream_pool: UpstreamPool | None = None
        self.started = False
        self.failed = asyncio.Event()  # never set today: the runner watches NATS itself

    async def start(self) -> Context:
        await migrate(self._database_url, schema=SCHEMA, package="aiapi_accounts.migrations")
        self.pool = open_pool(self._database_url, schema=SCHEMA)
        await self.pool.open(wait=True, timeout=30.0)
        self.bus = await Bus.connect_as(self.settings, name="aiapi-accounts")
        await self.bus.ensure_streams()
        kv = await self.bus.ensure_kv(KEYS_BUCKET)
        self._tasks.append(
            asyncio.create_task(
                self.bus.watch_kv(CATALOGUE_BUCKET, self.catalogue.on_change, stop=self._stop),
                name="catalogue",
            )
        )
        await self._resync(kv)
        self.relay = Relay(self.pool, self.bus, kv, self.catalogue)
        s = self.settings
        self.upstream_pool = UpstreamPool(
            self.pool,
            self.bus,
            await self.bus.ensure_kv(UPSTREAM_KEYS_BUCKET),
            public_key=s.upstream_seal_public_key,
        )
        await self.upstream_pool.resync()
        passwords = Passwords(time_cost=s.argon2_time_cost, memory_kib=s.argon2_memory_kib)
        throttle = Throttle(
            per_email=Backoff(
                s.sign_in_free_failures_per_email,
                s.sign_in_base_delay_s,
                s.sign_in_max_delay_per_email_s,
            ),
            per_address=Backoff(
                s.sign_in_free_failures_per_ip,
                s.sign_in_base_delay_s,
                s.sign_in_max_delay_per_ip_s,
            ),
            forget_s=s.sign_in_forget_s,
        )
        accounts = Accounts(
            self.pool,
            self.relay,
            passwords,
            throttle,
            Limits(s.max_keys_per_account, s.account_writes_per_minute),
            session_ttl_s=s.session_ttl_s,
            invitation_ttl_s=s.invitation_ttl_s,
            verification_required=s.verification_required,
        )
        peers = Peers(self.bus, timeout_s=s.peer_timeout_s, payments_enabled=s.payments_enabled)
        addresses = AddressBook(
            self.pool,
            peers,
            requests_per_hour=s.deposit_address_requests_per_hour,
            check_verified=accounts.check_verified,
        )
        sender = self._mail_sender()
        mail = AccountMail(
            self.pool,
            accounts,
            enabled=sender is not None,
            verification_required=s.verification_required,
            base_url=s.public_dashboard_url or "",
            verify_ttl_s=s.email_token_ttl_s,
            reset_ttl_s=s.password_reset_ttl_s,
            requests_per_hour=s.mail_requests_per_hour,
            kick=sender.kick if sender is not None else lambda: None,
        )
        operators = Operators(
            self.pool,
            passwords,
            throttle,
            bootstrap_token=s.admin_token.get_secret_value(),
            session_ttl_s=s.operator_session_ttl_s,
        )
        self.ctx = Context(s, accounts, peers, self.catalogue, addresses, mail, operators)
        if sender is not None:
            self._tasks.append(asyncio.create_task(sender.run(self._stop), name="mail"))
            self._tasks += Notices(self.bus, mail).start(self._stop)
        self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name="relay"))
        self._tasks += Consumers(
            self.bus, accounts, last_used_resolution_s=s.last_used_resolution_s
        ).start(self._stop)
        self._tasks.append(asyncio.create_task(self._prune(accounts, operators), name="prune"))
        self._tasks.append(
            asyncio.create_task(self.upstream_pool.run(self._stop), name="upstream-pool")
        )
        self.relay.kick()  # deliver whatever a previous run left in the outbox
        self.started = True
        log.info("accounts service started")
        return self.ctx

    def _mail_sender(self) -> MailSender | None:
        s = self.settings
        if s.smtp_url is None or s.smtp_from is None:
            return None
        assert self.pool is not None
        return MailSender(
            self.pool,
            parse_smtp_url(s.smtp_url.get_secret_value()),
            s.smtp_from,
            poll_s=s.mail_poll_s,
            retry_base_s=s.mail_retry_base_s,
            retry_max_s=s.mail_retry_max_s,
            max_attempts=s.mail_max_attempts,
            timeout_s=s.smtp_timeout_s,
        )

    async def _resync(self, kv: KeyValue) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            await keysync.full_resync(kv, conn, self.catalogue.current)

    async def _prune(self, accounts: Accounts, operators: Operators) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=_PRUNE_EVERY_S)
            try:
                await accounts.prune()
                await operators.prune()
            except Exception as exc:  # noqa: BLE001 (housekeeping; the next round retries)
                log.warning("pruning sign-in failures failed: %s", type(exc).__name__)

    async def ready(self) -> bool:
        return self.started and await self.healthy()

    def render_metrics(self) -> bytes:
        """The consumers' redelivery and dead-letter counters (none of its own yet)."""
        return self.bus.metrics.render() if self.bus is not None else b""

    async def healthy(self) -> bool:
        if self.bus is None or self.pool is None or not self.bus.is_connected:
            return False
        try:
            async with asyncio.timeout(2.0), self.pool.connection() as conn:
                await repository.ping(conn)
        except Exception:  # noqa: BLE001 (any failure means: not healthy)
            return False
        return True

    async def stop(self) -> None:
        self.started = False
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5.0)
        if self.bus is not None:
            await self.bus.close()
        if self.pool is not None:
            await self.pool.close()
        log.info("accounts service stopped")
