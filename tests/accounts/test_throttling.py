"""Sign-in throttling: counted atomically in PostgreSQL before a password is even verified,
growing delays per email and per client address, forwarded addresses only from trusted proxies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiapi_accounts.passwords import Passwords
from aiapi_accounts.settings import AccountsSettings
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import PASSWORD, Running, make_settings, run_app
from tests.accounts.test_process import ARGV, ready_url, service_env

SIGN_IN = "/api/v1/auth/sign-in"
WRONG = "wrong password here"
LONG = 3600  # a wait no test run outlasts: nothing here depends on how fast the machine is


def settings_with(database_url: str, nats_url: str, **overrides: Any) -> AccountsSettings:
    values: dict[str, Any] = {
        "sign_in_base_delay_s": LONG,
        "sign_in_max_delay_per_email_s": LONG,
        "sign_in_max_delay_per_ip_s": LONG,
        "sign_in_forget_s": 2 * LONG,
    }
    values.update(overrides)
    return make_settings(database_url, nats_url, **values)


async def sign_in(
    app: Running, email: str, password: str = WRONG, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await app.client.post(
        SIGN_IN, json={"email": email, "password": password}, headers=headers or {}
    )


async def age(app: Running, seconds: int) -> None:
    """Move every throttling record ``seconds`` into the past (instead of sleeping)."""
    assert app.service.pool is not None
    async with app.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE sign_in_attempts SET last_at = last_at - make_interval(secs => %s)",
            (seconds,),
        )


async def test_parallel_guesses_are_counted_before_any_password_is_verified(
    database_url: str, nats_url: str, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str | None] = []
    original = Passwords.verify

    async def counting(self: Passwords, stored: str | None, password: str) -> bool:
        verified.append(stored)
        return await original(self, stored, password)

    monkeypatch.setattr(Passwords, "verify", counting)
    settings = settings_with(database_url, nats_url, sign_in_free_failures_per_email=5)
    async with run_app(settings, bus) as app:
        await app.client.post(
            "/api/v1/auth/sign-up", json={"email": "bob@example.com", "password": PASSWORD}
        )
        answers = await asyncio.gather(*(sign_in(app, "bob@example.com") for _ in range(20)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [401] * 5 + [429] * 15
        assert len(verified) == 5  # argon2 ran for the admitted five only
        for refused in (a for a in answers if a.status_code == 429):
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert 1 <= int(refused.headers["retry-after"]) <= LONG
        # Even the right password waits now (the wait is per email, whoever asks).
        assert (await sign_in(app, "bob@example.com", PASSWORD)).status_code == 429
        assert len(verified) == 5


async def test_each_failure_beyond_the_free_ones_doubles_the_wait_up_to_the_cap(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = settings_with(
        database_url,
        nats_url,
        sign_in_free_failures_per_email=2,
        sign_in_base_delay_s=100,
        sign_in_max_delay_per_email_s=400,
    )
    async with run_app(settings, bus) as app:
        email = "carol@example.com"
        assert [(await sign_in(app, email)).status_code for _ in range(2)] == [401, 401]
        waits = []
        for _ in range(5):
            refused = await sign_in(app, email)
            assert refused.status_code == 429
            wait = int(refused.headers["retry-after"])
            waits.append(wait)
            await age(app, wait)  # the wait is over: the next attempt is evaluated
            assert (await sign_in(app, email)).status_code == 401
        # 100, 200, 400, then capped at 400 (a second or so may have passed in between).
        for wait, expected in zip(waits, (100, 200, 400, 400, 400), strict=True):
            assert expected - 5 <= wait <= expected


async def test_a_success_resets_the_email_and_a_quiet_scope_is_forgotten(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = settings_with(database_url, nats_url, sign_in_free_failures_per_email=3)
    async with run_app(settings, bus) as app:
        email = "dave@example.com"
        await app.client.post("/api/v1/auth/sign-up", json={"email": email, "password": PASSWORD})
        for _ in range(2):
            assert (await sign_in(app, email)).status_code == 401
        assert (await sign_in(app, email, PASSWORD)).status_code == 200
        assert [(await sign_in(app, email)).status_code for _ in range(4)] == [401] * 3 + [429]
        await age(app, settings.sign_in_forget_s + 1)
        assert [(await sign_in(app, email)).status_code for _ in range(4)] == [401] * 3 + [429]


async def test_an_attacker_cannot_keep_a_victim_locked_out_for_long(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    """The per-email wait caps low; the attacker's own address is what slows down for long."""
    settings = make_settings(
        database_url,
        nats_url,
        sign_in_free_failures_per_email=2,
        sign_in_free_failures_per_ip=4,
        sign_in_base_delay_s=30,
        sign_in_max_delay_per_email_s=60,
        sign_in_max_delay_per_ip_s=900,
        trusted_proxies="127.0.0.1",
    )
    attacker = {"x-forwarded-for": "203.0.113.9"}
    victim = {"x-forwarded-for": "198.51.100.20"}
    async with run_app(settings, bus) as app:
        email = "erin@example.com"
        await app.client.post("/api/v1/auth/sign-up", json={"email": email, "password": PASSWORD})
        # The attacker guesses as fast as it is allowed to, for a dozen rounds.
        waits = []
        for _ in range(12):
            answer = await sign_in(app, email, headers=attacker)
            if answer.status_code == 429:
                waits.append(int(answer.headers["retry-after"]))
                await age(app, waits[-1])
        # Its own address ends up waiting far longer than any email ever does ...
        assert max(waits) > 60
        last = await sign_in(app, email, headers=attacker)
        assert last.status_code == 429
        assert int(last.headers["retry-after"]) > 60
        # ... while the victim waits at most the per-email cap, and then gets in although the
        # attacker is still waiting.
        victim_try = await sign_in(app, email, PASSWORD, headers=victim)
        if victim_try.status_code == 429:
            assert int(victim_try.headers["retry-after"]) <= 60
            await age(app, 60)
            victim_try = await sign_in(app, email, PASSWORD, headers=victim)
        assert victim_try.status_code == 200
        assert (await sign_in(app, email, headers=attacker)).status_code == 429


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    limits: dict[str, Any] = {"sign_in_free_failures_per_ip": 3}

    async def codes(
        app: Running, forwarded: list[str], header: str = "x-forwarded-for"
    ) -> list[int]:
        return [
            (await sign_in(app, f"u{n}@example.com", headers={header: value})).status_code
            for n, value in enumerate(forwarded)
        ]

    # No trusted proxy: the header is the client's own invention; the peer is the client.
    async with run_app(settings_with(database_url, nats_url, **limits), bus) as app:
        spoofed = [f"198.51.100.{n}" for n in range(5)]
        assert await codes(app, spoofed) == [401, 401, 401, 429, 429]

    trusted = settings_with(
        database_url, nats_url, trusted_proxies="10.0.0.0/8, 127.0.0.1", **limits
    )
    async with run_app(trusted, bus) as app:
        await age(app, 2 * LONG + 1)  # forget the previous run's counts
        # Behind the proxy, one attacker no longer throttles everybody ...
        attacker = ["203.0.113.7"] * 4
        assert await codes(app, attacker) == [401, 401, 401, 429]
        assert await codes(app, ["198.51.100.1"]) == [401]
        # ... and what the client wrote left of the proxy's entry buys it nothing; trusted
        # hops (10.0.0.0/8) on the right are skipped.
        rotated = [f"192.0.2.{n}, 203.0.113.7, 10.1.2.3" for n in range(3)]
        assert await codes(app, rotated) == [429, 429, 429]
        # Only the configured header is read: a Forwarded header is passed through by an
        # X-Forwarded-For proxy, so it is the client's and ignored (the peer is then the proxy).
        assert await codes(app, ['for="192.0.2.200"'] * 4, "forwarded") == [401, 401, 401, 429]

    forwarded = settings_with(
        database_url, nats_url, trusted_proxies="127.0.0.1", forwarded_header="forwarded", **limits
    )
    async with run_app(forwarded, bus) as app:
        await age(app, 2 * LONG + 1)
        hops = ['for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"'] * 4
        assert await codes(app, hops, "forwarded") == [401, 401, 401, 429]
        # Another address in the same IPv6 /64 is the same client.
        same_net = ['for="[2001:db8:cafe::99]"']
        assert await codes(app, same_net, "forwarded") == [429]
        assert await codes(app, ['for="[2001:db8:beef::1]"'], "forwarded") == [401]


async def test_the_server_process_does_not_believe_forwarding_headers_by_itself(
    database_url: str, nats_url: str, spawn: SpawnFn
) -> None:
    """uvicorn, left to its defaults, takes X-Forwarded-For from 127.0.0.1 as the client: a
    client on the same host could then rotate it for fresh budgets. The service turns that off
    and judges the headers itself (here: no trusted proxy, so the peer is the client)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(database_url, nats_url, port)
    env |= {"AIAPI_SIGN_IN_FREE_FAILURES_PER_IP": "2", "AIAPI_SIGN_IN_BASE_DELAY_S": "600"}
    spawn(ARGV, env=env, health_url=ready_url(env), name="accounts")
    async with httpx.AsyncClient(base_url=base) as client:
        codes = [
            (
                await client.post(
                    SIGN_IN,
                    json={"email": f"p{n}@example.com", "password": WRONG},
                    headers={"x-forwarded-for": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(3)
        ]
    assert codes == [401, 401, 429]


def test_settings_refuse_bad_proxies_and_a_forget_time_inside_a_delay() -> None:
    url = "postgresql://x@localhost/x"
    with pytest.raises(ValueError, match="not an IP address"):
        make_settings(url, "nats://x", trusted_proxies="10.0.0.1, proxy.local")
    with pytest.raises(ValueError, match="FORGET"):
        make_settings(url, "nats://x", sign_in_forget_s=60, sign_in_max_delay_per_ip_s=900)
    parsed = make_settings(url, "nats://x", trusted_proxies=" 10.0.0.0/8 ,::1,")
    assert [str(n) for n in parsed.proxy_networks] == ["10.0.0.0/8", "::1/128"]


async def test_a_stolen_session_cannot_guess_the_password_through_a_password_change(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = settings_with(database_url, nats_url, sign_in_free_failures_per_email=3)
    async with run_app(settings, bus) as app:
        csrf = {"x-csrf-token": await app.signed_in("fay@example.com")}
        url = "/api/v1/account/password"
        guesses = [
            (
                await app.client.post(
                    url,
                    json={"current_password": f"guess number {n}", "new_password": PASSWORD},
                    headers=csrf,
                )
            ).status_code
            for n in range(4)
        ]
        assert guesses == [400, 400, 400, 429]
        # The guesses were failures of the email: sign-in waits too.
        assert (await sign_in(app, "fay@example.com", PASSWORD)).status_code == 429
