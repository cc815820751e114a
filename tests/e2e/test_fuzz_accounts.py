"""Bad input never breaks accounts: schemathesis fuzzes every operation of its OpenAPI documents
(the customer API on the public port, the operator API on the admin port), from the schema (valid) and against it (invalid), with no
credentials, an operator token or a signed-in customer's session, against the real deployment
(billing, payments and the edge running, so no peer is missing). Every answer is below 500, every error
is ``{"error": {"type", "message"}}``, and accounts still serves afterwards. Budget:
AIAPI_FUZZ_SCALE (tests/edge/fuzz_bodies.py; docs/accounts.md, "Fuzzing").
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import internal_env
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.edge.fuzz_bodies import fuzz_settings, nested_arrays, nested_objects

from .support import ADMIN_TOKEN, Deployment, open_account

EXAMPLES_PER_OPERATION = 12
HOSTILE_BODIES = [
    nested_arrays(300_000),
    nested_objects(300_000),
    b'{"email": "\\ud800@example.com", "password": "\\udfff\\udfff\\udfff\\udfff"}',
    b'{"email": "\xed\xa0\x80@example.com", "password": "x"}',
    b'{"amount_usd": NaN, "reason": "x"}',
    b'{"amount_usd": "1e999", "reason": "x", "usd": 1e999}',
    b'{"name": "' + b"k" * 60_000 + b'"}',
    b"\xff\xfe{",
    b"",
    b"[]",
]
PASSWORD = "fuzzing is fun, says nobody"


def signed_in(base: str) -> tuple[dict[str, str], dict[str, str]]:
    """A customer's session: its cookies, and the CSRF header its writes carry."""
    with httpx.Client(base_url=base, timeout=10) as client:
        creds = {"email": "fuzz@example.com", "password": PASSWORD}
        assert client.post("/api/v1/auth/sign-up", json=creds).status_code == 202
        inside = client.post("/api/v1/auth/sign-in", json=creds)
        assert inside.status_code == 200, inside.text
        return dict(client.cookies), {"x-csrf-token": inside.json()["csrf_token"]}


def check(answer: Any, where: str) -> None:
    assert answer.status_code < 500, (where, answer.status_code, answer.content[:300])
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert isinstance(error["type"], str), (where, error)
        assert isinstance(error["message"], str), (where, error)


def fuzz_operation(
    operation: Any,
    base: str,
    session: requests.Session,
    credentials: dict[str, tuple[dict[str, str], dict[str, str]]],
    account_id: str,
    key_id: str,
) -> None:
    """Valid and invalid examples of one operation, as each kind of caller."""
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @fuzz_settings(EXAMPLES_PER_OPERATION)
    @given(case=strategy, who=st.sampled_from(sorted(credentials)), real=st.booleans())
    def run(case: Any, who: str, real: bool) -> None:
        headers, jar = credentials[who]
        if real and case.path_parameters:
            # Real ids in the paths now and then, so that fuzzing reaches past "not found".
            for name in case.path_parameters:
                case.path_parameters[name] = key_id if name == "key_id" else account_id
        answer = case.call(
            base_url=base, session=session, headers=dict(headers), cookies=jar, timeout=30
        )
        where = f"{who} {case.method} {case.formatted_path} {case.body!r:.300}"
        check(answer, f"{where} {case.headers!r:.200} {case.query!r:.200}")

    run()


@pytest.mark.slow
def test_every_accounts_operation_answers_below_500(deployment: Deployment, spawn: SpawnFn) -> None:
    # Payments too: the operator's rates and the deposit lists ask it.
    env, ready = internal_env(deployment.env)
    spawn(
        [sys.executable, "-m", "aiapi_payments"],
        env=env,
        health_url=ready,
        name="payments",
        timeout_s=60,
    )
    base = deployment.accounts_url
    with deployment.admin() as admin:
        account_id, key_id, _ = open_account(admin, "5.00")
    cookies, csrf = signed_in(base)
    # Each listener's own document: the customer API on the public port, the operator API on
    # the admin port.
    apis = []
    for url in (base, deployment.admin_url):
        spec = schemathesis.openapi.from_dict(httpx.get(url + "/openapi.json", timeout=10).json())
        apis.append((url, [result.ok() for result in spec.get_all_operations()]))
    credentials = {
        "none": ({}, {}),
        "operator": ({"authorization": f"Bearer {ADMIN_TOKEN}"}, {}),
        "session": (csrf, cookies),
    }
    assert sum(len(operations) for _, operations in apis) >= 30
    with requests.Session() as session:
        for url, operations in apis:
            for operation in operations:
                fuzz_operation(operation, url, session, credentials, account_id, key_id)
    # Bytes no schema describes, to every operation that takes a body.
    for url, operations in apis:
        with httpx.Client(base_url=url, timeout=30) as client:
            for operation in operations:
                if operation.method.upper() not in ("POST", "PUT", "PATCH"):
                    continue
                path = operation.path.replace("{id}", account_id).replace("{key_id}", key_id)
                for body in HOSTILE_BODIES:
                    for who, (headers, jar) in credentials.items():
                        client.cookies.clear()
                        client.cookies.update(jar)
                        answer = client.request(
                            operation.method.upper(),
                            path,
                            content=body,
                            headers={**headers, "content-type": "application/json"},
                        )
                        check(answer, f"{who} {operation.method} {path} {body[:40]!r}")
    # Still serving, and the session still works unless the fuzz signed it out.
    with httpx.Client(base_url=base, timeout=10) as client:
        assert httpx.get(deployment.probe_url("accounts", "/readyz")).status_code == 200
        plans = client.get("/api/v1/plans")
        assert plans.status_code == 200, plans.text
