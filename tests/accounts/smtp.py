"""A real SMTP server for the mail tests (aiosmtpd, on loopback) that keeps what it received.

It offers a login (in plain text: loopback only) and records it, so the tests also see that the
service logs in with the URL's user and password. ``stop()`` and ``start()`` take it down and
bring it back on the same port (the "SMTP is down" tests)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiapi_cli.ports import free_port
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "mailer"
PASSWORD = "smtp-password-for-tests"
LINK = re.compile(r"(https?://\S+\?token=[A-Za-z0-9_%-]+)")


class MailServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []
        self._lock = threading.Condition()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            # AUTH offered without TLS (loopback only); the tests check the login happened.
            auth_require_tls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == (USER, PASSWORD))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(message)
            self._lock.notify_all()
        return "250 Message accepted for delivery"

    def to(self, recipient: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.received if m["To"] == recipient]

    def wait_for(self, recipient: str, subject: str, *, count: int = 1) -> EmailMessage:
        """The ``count``-th mail to ``recipient`` with ``subject`` (waits up to 30 s)."""
        deadline = time.monotonic() + 30
        with self._lock:
            while True:
                found = [
                    m for m in self.received if m["To"] == recipient and m["Subject"] == subject
                ]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                assert left > 0, f"no mail {subject!r} to {recipient}: {self.received}"
                self._lock.wait(min(left, 0.2))

    async def wait_for_async(self, recipient: str, subject: str, *, count: int = 1) -> EmailMessage:
        return await asyncio.to_thread(self.wait_for, recipient, subject, count=count)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def link_in(message: EmailMessage) -> str:
    found = LINK.search(body_of(message))
    assert found, body_of(message)
    return found.group(1)


def token_in(message: EmailMessage) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(link_in(message)).query)["token"][0]


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    """A running server (import this fixture into a test module to use it)."""
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
