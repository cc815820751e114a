"""The edge's HTTP/1.1 server protocol: the shared head bounds (:mod:`aiapi_shared.http_guard`:
header size and time, broken framing, no WebSocket), with refusals in the route's own format
(Anthropic's, or OpenAI's on the OpenAI routes)."""

from __future__ import annotations

from aiapi_shared.errors import problem_for_status
from aiapi_shared.http_guard import HeadGuardedProtocol, bounded

from aiapi_edge.errors import GatewayError, anthropic_error_body, openai_error_body_for
from aiapi_edge.gateway import new_request_id
from aiapi_edge.settings import EdgeSettings

_OPENAI_PATHS = (b"/chat/completions", b"/responses")


class GuardedHttpProtocol(HeadGuardedProtocol):
    def refusal(self, status: int, message: str, url: bytes) -> tuple[bytes, bytes]:
        # The shared guard names a status (408, 431, 400): the same domain error here.
        error = GatewayError(problem_for_status(status), message)
        request_id = new_request_id().encode()
        if any(path in url for path in _OPENAI_PATHS):
            ids = b"request-id: %s\r\nx-request-id: %s\r\n" % (request_id, request_id)
            return ids, openai_error_body_for(error)
        ids = b"request-id: %s\r\n" % request_id
        return ids, anthropic_error_body(error.type, message, request_id.decode())


def guarded_protocol(settings: EdgeSettings) -> type[HeadGuardedProtocol]:
    """The protocol class uvicorn's ``http=`` takes, with the bounds of ``settings``."""
    return bounded(
        GuardedHttpProtocol,
        header_timeout_s=settings.edge_header_timeout_s,
        max_header_bytes=settings.edge_max_header_bytes,
    )
