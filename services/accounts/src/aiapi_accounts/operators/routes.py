"""The operator API's routes for operators, their tokens and the audit log (``/admin/v1``).

Every route here, like every other on the operator listener, is behind the gate: it asks for the
acting operator with :func:`~aiapi_accounts.http.acting`, and a support operator's write never
reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.errors import InvalidRequest
from aiapi_accounts.http import acting, answer, context, no_content, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.operators import audit
from aiapi_accounts.operators.repository import AuditFilter
from aiapi_accounts.operators.schemas import (
    AuditPageAnswer,
    CreateOperatorBody,
    CreateTokenBody,
    OperatorAnswer,
    OperatorListAnswer,
    PatchOperatorBody,
    TokenAnswer,
    TokenCreatedAnswer,
    TokenListAnswer,
    WhoAmIAnswer,
)
from aiapi_accounts.request_filter import moment

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


async def whoami(request: Request) -> Response:
    me = acting(request)
    return answer(WhoAmIAnswer(operator=OperatorAnswer.of(me.operator), via=me.via))


async def create_operator(request: Request) -> Response:
    me = acting(request)
    body = await read_body(request, CreateOperatorBody)
    created = await context(request).operators.create(
        body.name, body.email, body.role, body.password, me.operator
    )
    return answer(OperatorAnswer.of(created), 201)


async def list_operators(request: Request) -> Response:
    acting(request)
    found = await context(request).operators.all()
    return answer(OperatorListAnswer(data=[OperatorAnswer.of(o) for o in found]))


async def get_operator(request: Request) -> Response:
    acting(request)
    found = await context(request).operators.get(request.path_params["operator_id"])
    return answer(OperatorAnswer.of(found))


async def patch_operator(request: Request) -> Response:
    acting(request)
    body = await read_body(request, PatchOperatorBody)
    if body.disabled is None and body.role is None and body.password is None:
        raise InvalidRequest('give "disabled", "role" or "password"')
    changed = await context(request).operators.change(
        request.path_params["operator_id"],
        disabled=body.disabled,
        role=body.role,
        password=body.password,
    )
    return answer(OperatorAnswer.of(changed))


async def create_token(request: Request) -> Response:
    acting(request)
    body = await read_body(request, CreateTokenBody)
    issued = await context(request).operators.issue_token(
        request.path_params["operator_id"], body.name
    )
    shown = TokenAnswer.of(issued.token).model_dump()
    return answer(TokenCreatedAnswer(**shown, token=issued.secret), 201)


async def list_tokens(request: Request) -> Response:
    acting(request)
    found = await context(request).operators.tokens(request.path_params["operator_id"])
    return answer(TokenListAnswer(data=[TokenAnswer.of(t) for t in found]))


async def revoke_token(request: Request) -> Response:
    acting(request)
    await context(request).operators.revoke_token(
        request.path_params["operator_id"], request.path_params["token_id"]
    )
    return no_content()


def audit_filter(params: Mapping[str, str]) -> AuditFilter:
    """``?account_id=&operator=&from=&to=&cursor=&limit=`` as a query of the log."""
    before = None
    if params.get("cursor"):
        before = audit.decode_cursor(params["cursor"])
        if before is None:
            raise InvalidRequest("cursor is not one this API gave")
    raw = params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return AuditFilter(
        account_id=params.get("account_id") or None,
        operator=params.get("operator") or None,
        since=moment(params["from"], "from", end_of_day=False) if params.get("from") else None,
        until=moment(params["to"], "to", end_of_day=True) if params.get("to") else None,
        before_id=before,
        limit=int(raw),
    )


async def list_audit(request: Request) -> Response:
    acting(request)
    where = audit_filter(request.query_params)
    # One more than a page tells whether an older page exists.
    found = await context(request).operators.audit(
        AuditFilter(**{**where.__dict__, "limit": where.limit + 1})
    )
    page = found[: where.limit]
    more = len(found) > where.limit
    return answer(
        AuditPageAnswer(
            data=page,
            next_cursor=audit.encode_cursor(page[-1].id) if more and page else None,
        )
    )


_O = "/admin/v1/operators"
_REASON = (("Aiapi-Reason", "why (kept in the audit log; percent-encoded UTF-8)"),)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/admin/v1/whoami", whoami, "The acting operator", "admin", "operators",
             None, WhoAmIAnswer),
    Endpoint("POST", _O, create_operator, "Create an operator (admin or support)", "admin",
             "operators", CreateOperatorBody, OperatorAnswer, status=201, errors=(400, 403, 409),
             headers=_REASON),
    Endpoint("GET", _O, list_operators, "Every operator", "admin", "operators", None,
             OperatorListAnswer),
    Endpoint("GET", _O + "/{operator_id}", get_operator, "An operator", "admin", "operators",
             None, OperatorAnswer, errors=(404,)),
    Endpoint("PATCH", _O + "/{operator_id}", patch_operator,
             "Disable or enable an operator, change its role or console password", "admin",
             "operators", PatchOperatorBody, OperatorAnswer, errors=(400, 403, 404),
             headers=_REASON),
    Endpoint("POST", _O + "/{operator_id}/tokens", create_token,
             "Issue an operator API token (shown once)", "admin", "operators", CreateTokenBody,
             TokenCreatedAnswer, status=201, errors=(400, 403, 404), headers=_REASON),
    Endpoint("GET", _O + "/{operator_id}/tokens", list_tokens, "An operator's tokens (no secrets)",
             "admin", "operators", None, TokenListAnswer, errors=(404,)),
    Endpoint("DELETE", _O + "/{operator_id}/tokens/{token_id}", revoke_token,
             "Revoke an operator token", "admin", "operators", status=204, errors=(403, 404),
             headers=_REASON),
    Endpoint("GET", "/admin/v1/audit", list_audit,
             "The audit log, newest first (?account_id=&operator=&from=&to=&cursor=&limit=)",
             "admin", "operators", None, AuditPageAnswer, errors=(400,)),
)  # fmt: skip
