"""An HTTP/1.1 server protocol for every public listener: uvicorn's httptools protocol with the
bounds it lacks.

httptools (llhttp) keeps a request head in memory however long it grows, and uvicorn times out
neither a connection that never sends a request nor a head that never ends (its keep-alive
timeout only covers the quiet time after a response). Measured on uvicorn 0.54 with httptools:
a 200 MiB header grew the process by 200 MiB, and a connection sending half a head stayed open
for good. This protocol adds, before any of it reaches the application:

* a head must be complete within ``header_timeout_s`` of the connection opening (for its first
  request) or of its first byte (for a later request on a kept-alive connection; the quiet time
  between requests stays uvicorn's keep-alive timeout), else 408 and the connection is closed;
* a head over ``max_header_bytes`` gets 431 and the connection is closed;
* a request the parser rejects (bad chunk sizes, conflicting ``content-length`` and
  ``transfer-encoding``, a malformed request line) gets its 400 as JSON in the service's own
  error format (:meth:`HeadGuardedProtocol.refusal`) rather than uvicorn's ``text/plain``;
* a WebSocket upgrade request is served as plain HTTP.

Once a request has arrived whole, its scope carries ``WHOLE_REQUEST`` (a body reader then needs
no timer). The body's own bounds (size, time) are each application's.

**One write for a whole response.** uvicorn writes a response's head to the socket as soon as
``http.response.start`` is sent, and the body in a ``write`` of its own; on uvloop each is a
system call (and, on loopback or with ``TCP_NODELAY``, a TCP segment of its own, which the
client's kernel wakes it for). Profiled at 64 concurrent JSON requests, the head's own ``write``
was the largest single cost of the edge's requests. Every scope carries ``JOIN_HEAD``, a
callable: an application about to send a complete response (start, then its only body message)
calls it, and the connection holds that response's head until the body is written, then writes
both in one call. Nothing waits on it: the head goes out with the next write, when the response
completes (a ``HEAD`` request has no body write), or when the connection closes, whichever
comes first. Streams do not call it, so their head still goes out at once (it is their first
byte).

**A stream's body straight to the connection.** uvicorn's ``send`` costs a message, a coroutine
(two, behind the application's own wrapper) and a join per body chunk; a long stream sends one
per upstream event. Every scope carries ``CHUNK_WRITER``, a callable: once a response with
chunked framing has started, it returns a :class:`ChunkWriter` that writes body chunks (the same
bytes ``send`` would write for ``more_body=True``) synchronously, and says when the client's
buffer is full so the application stops producing until :meth:`ChunkWriter.drain`. The end of
the body still goes through ``send``.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import partial
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

WHOLE_REQUEST = "aiapi.whole_request"
JOIN_HEAD = "aiapi.join_head"  # scope key: call before a complete response (see above)
CHUNK_WRITER = "aiapi.chunk_writer"  # scope key: a started stream's body writer (see above)


def _json_str(text: str) -> bytes:
    return orjson.dumps(text)


def _response(status: int, headers: bytes, body: bytes) -> bytes:
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            headers,
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class HeadJoiningTransport(asyncio.Transport):
    """The connection's transport as uvicorn's request cycle writes to it: the next write after
    :meth:`join_next` (a response's head) is held and written with the write that follows it
    (the body), or on :meth:`flush` or :meth:`close`. Everything else passes straight through."""

    __slots__ = ("_held", "_join", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._join = False
        self._held: bytes | None = None

    def join_next(self) -> None:
        self._join = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            # One writev of both (uvloop; asyncio joins them), without copying the body.
            self._transport.writelines((held, data))
        elif self._join:
            self._join = False
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held, if anything (the response completed without a body write)."""
        self._join = False
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()


class ChunkWriter:
    """Body chunks of one started response with chunked framing, written to its connection as
    uvicorn's ``send`` would write them (``more_body=True``), without a coroutine per chunk.
    Nothing is written once the client is gone (as ``send`` drops them)."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    def write(self, body: bytes) -> None:
        """Write one chunk (then, while :attr:`blocked`, :meth:`drain` before more)."""
        cycle = self._cycle
        if body and not cycle.disconnected:
            cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))

    @property
    def blocked(self) -> bool:
        """The client's buffer is full."""
        cycle = self._cycle
        return cycle.flow.write_paused and not cycle.disconnected

    async def drain(self) -> None:
        """Until the client's buffer has room again, or the client is gone."""
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()


def _chunk_writer(cycle_ref: weakref.ref[RequestResponseCycle]) -> ChunkWriter | None:
    """The cycle's writer once its response started with chunked framing (else None: use
    ``send``). The scope holds the cycle weakly: the cycle holds the scope, and a reference
    cycle would leave every request (its scope, headers, cycle) to the cyclic garbage
    collector instead of freeing it as it ends (``tests/edge/test_no_cyclic_garbage.py``)."""
    cycle = cycle_ref()
    if (
        cycle is not None
        and cycle.response_started
        and cycle.chunked_encoding
        and not cycle.response_complete
        and cycle.scope["method"] != "HEAD"
    ):
        return ChunkWriter(cycle)
    return None


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already answered."""


class HeadGuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head bounds; a service subclasses it to say how a
    refusal reads in its own error format (:meth:`refusal`)."""

    header_timeout_s: ClassVar[float] = 15.0
    max_header_bytes: ClassVar[int] = 64 * 1024

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True  # between requests, or inside a head
    _head_begun = False  # some of a head has been parsed
    _head_bytes = 0  # bytes of earlier reads into the current head
    _segment = 0  # bytes of the read being parsed
    _completed = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the real transport
        self._joining = HeadJoiningTransport(transport)
        self.transport = self._joining  # what each request cycle writes to
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._segment = len(data)
        completed = self._completed
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # Bytes of a segment in which the previous request ended are not counted: the head that
        # began in it is at most one read long so far.
        if completed == self._completed:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(*self._head_too_large())
                return
        if self._head_begun:
            # A head left unfinished by this read: from now on it is timed. (A head that
            # arrives whole in one read, nearly every one, never needs a timer.)
            self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        self.scope[JOIN_HEAD] = self._joining.join_next  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._in_head = self._head_begun = False
        # A head is at most the bytes read since it began: measure it only when that could be
        # over the bound (a head that arrived whole in one read was never counted above).
        if self._head_bytes + self._segment > self.max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.max_header_bytes:
                self._refuse(*self._head_too_large())
                raise _Refused  # stops the parser: the request never reaches the application
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # this request's (uvicorn just made it)
            self.scope[CHUNK_WRITER] = partial(_chunk_writer, weakref.ref(cycle))  # type: ignore[literal-required]

    def on_response_complete(self) -> None:
        self._joining.flush()  # a head held for a body that was never written (HEAD)
        super().on_response_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0
        self._completed += 1
        if self.scope is not None:
            self.scope[WHOLE_REQUEST] = True  # type: ignore[literal-required]

    # No aiapi service serves a WebSocket: an upgrade request is answered as the plain HTTP
    # request it also is (uvicorn would otherwise hand it to its WebSocket protocol).

    def _should_upgrade_to_ws(self) -> bool:
        return False

    def _unsupported_upgrade_warning(self) -> None:
        return None

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"Malformed HTTP request: {msg}")

    def _head_too_large(self) -> tuple[int, str]:
        return 431, f"Request headers exceed {self.max_header_bytes} bytes."

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being written (a long stream): the
            # client is not stalling, it is reading; time the head again from here.
            self._arm_head_timer()
            return
        message = f"The request headers did not arrive within {self.header_timeout_s:g} s."
        self._refuse(408, message)

    def refusal(self, status: int, message: str, url: bytes) -> tuple[bytes, bytes]:
        """(extra header lines, JSON body) of a refusal, in the service's own error format."""
        body = b'{"error":{"type":"invalid_request_error","message":%s}}' % _json_str(message)
        return b"", body

    def _refuse(self, status: int, message: str) -> None:
        """Answer (unless a response is already under way) and close the connection."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            url: bytes = getattr(self, "url", b"")
            headers, body = self.refusal(status, message, url)
            self.transport.write(_response(status, headers, body))
        if cycle is not None and not cycle.response_complete:
            # The application still serving this request sees the client gone: its reads end,
            # its writes are dropped, so it cannot write after this answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def bounded(
    base: type[HeadGuardedProtocol], *, header_timeout_s: float, max_header_bytes: int
) -> type[HeadGuardedProtocol]:
    """``base`` with these bounds: the class uvicorn's ``http=`` takes."""

    class Configured(base):  # type: ignore[valid-type,misc]
        pass

    Configured.header_timeout_s = header_timeout_s
    Configured.max_header_bytes = max_header_bytes
    return Configured
