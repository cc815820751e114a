"""The mail sender (SMTP I/O): a background task that sends what the outbox table holds.

Requests only write rows into ``mail_outbox``; this loop claims due rows (a lease, so replicas
never send the same mail twice at once), hands each to the SMTP server, deletes it once accepted
and otherwise retries with a doubling delay, giving up (and logging) after the last attempt.
Neither the SMTP password nor a mail's text is ever logged; a failure is logged by its type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import repository
from aiapi_accounts.smtp_url import SmtpTarget

log = logging.getLogger("aiapi.accounts.mail")

_BATCH = 20


def retry_delay_s(attempts: int, base_s: float, max_s: float) -> float:
    """The wait after the ``attempts``-th failed attempt: base, then doubling up to the cap."""
    return float(min(max_s, base_s * 2 ** min(attempts - 1, 30)))


class MailSender:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        target: SmtpTarget,
        sender: str,
        *,
        poll_s: float,
        retry_base_s: float,
        retry_max_s: float,
        max_attempts: int,
        timeout_s: float,
    ) -> None:
        self._pool = pool
        self._target = target
        self._sender = sender
        self._poll_s = poll_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Look for mail now (a request just queued some) rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while await self._send_due() and not stop.is_set():
                    pass
            except Exception as exc:  # noqa: BLE001 (the database hiccupped; the next round retries)
                log.warning("mail outbox round failed: %s", type(exc).__name__)
            self._wake.clear()
            stopping = asyncio.create_task(stop.wait())
            waking = asyncio.create_task(self._wake.wait())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait({stopping, waking}, return_when=asyncio.FIRST_COMPLETED),
                    timeout=self._poll_s,
                )
            stopping.cancel()
            waking.cancel()

    async def _send_due(self) -> int:
        """Send one batch of due mail; how many were claimed."""
        # The lease outlasts a send that times out, so a slow server never gets a mail twice.
        lease_s = self._timeout_s * 2 + 60
        async with self._pool.connection() as conn:
            batch = await repository.claim_mail(conn, _BATCH, lease_s)
        for row in batch:
            try:
                await self._send(row["recipient"], row["subject"], row["body"])
            except Exception as exc:  # noqa: BLE001 (any failure: retry later)
                attempts = int(row["attempts"])
                give_up = attempts >= self._max_attempts
                delay = retry_delay_s(attempts, self._retry_base_s, self._retry_max_s)
                async with self._pool.connection() as conn:
                    await repository.reschedule_mail(
                        conn, row["id"], delay, type(exc).__name__, give_up=give_up
                    )
                if give_up:
                    log.error("mail %s given up after %d attempts", row["id"], attempts)
                else:
                    log.warning(
                        "mail %s not sent (%s); retry %d in %.0fs",
                        row["id"],
                        type(exc).__name__,
                        attempts,
                        delay,
                    )
                continue
            async with self._pool.connection() as conn:
                await repository.delete_mail(conn, row["id"])
        return len(batch)

    async def _send(self, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(body)
        t = self._target
        await aiosmtplib.send(
            message,
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.implicit_tls,
            # smtp://: STARTTLS when the server offers it (aiosmtplib's default of None).
            start_tls=False if t.implicit_tls else None,
            timeout=self._timeout_s,
        )
