"""An incremental reader of Server-Sent Events: just enough to meter a stream passing through.

The bytes sent to the client are never rebuilt from what this reader returns; it only tells the
edge which events went by (and whether the bytes so far end on an event boundary, where a
``ping`` may be slipped in).
"""

from __future__ import annotations

SseEvent = tuple[bytes, bytes]  # (event name, data)


class SseReader:
    """Feed it chunks as they arrive; it returns the events each chunk completed.

    ``keep`` names the events the caller reads (None: all). The others are recognised by their
    first line and skipped without being parsed: at 50,000 events a second through one edge,
    most of them text deltas that only the client reads, that is most of the reading saved.
    """

    __slots__ = ("_buffer", "_cr", "_keep")

    def __init__(self, keep: frozenset[bytes] | None = None) -> None:
        self._buffer = b""
        self._keep = keep
        self._cr = False  # the last chunk ended with CR: a LF starting the next one is its pair

    @property
    def at_boundary(self) -> bool:
        """True when every byte fed so far belongs to a complete event."""
        return not self._buffer

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._cr:  # a CRLF cut between two reads is one line end, not two
            self._cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        keep = self._keep
        events: list[SseEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _event(buffer, start, end, keep)
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:] if start else buffer
        return events


def _event(buffer: bytes, start: int, end: int, keep: frozenset[bytes] | None) -> SseEvent | None:
    """The event of ``buffer[start:end]`` if ``keep`` wants it (as :func:`parse_event` reads it).

    The upstream's usual shape, one ``event:`` line then one ``data:`` line, is read by offsets
    without splitting the block; anything else goes through :func:`parse_event`.
    """
    if buffer.startswith(b"event:", start):
        newline = buffer.find(b"\n", start, end)
        if (
            newline > 0
            and buffer.startswith(b"data:", newline + 1)
            and buffer.find(b"\n", newline + 1, end) < 0
        ):
            name = buffer[start + 6 : newline].strip()
            if keep is not None and name not in keep:
                return None
            data_at = newline + 7 if buffer[newline + 6 : newline + 7] == b" " else newline + 6
            return name, buffer[data_at:end]
    event = parse_event(buffer[start:end])
    if event is None or (keep is not None and event[0] not in keep):
        return None
    return event


def parse_event(block: bytes) -> SseEvent | None:
    """One event block (lines without the blank separator line) → (name, data), or None."""
    name = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data and not name:
        return None
    return name, b"\n".join(data)


PING_EVENT = b'event: ping\ndata: {"type": "ping"}\n\n'
