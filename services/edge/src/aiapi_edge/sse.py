"""An incremental reader of Server-Sent Events: just enough to meter a stream passing through.

The bytes sent to the client are never rebuilt from what this reader returns; it only tells the
edge which events went by (and whether the bytes so far end on an event boundary, where a
``ping`` may be slipped in).
"""

from __future__ import annotations

SseEvent = tuple[bytes, bytes]  # (event name, data)


class SseReader:
    """Feed it chunks as they arrive; it returns the events each chunk completed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def at_boundary(self) -> bool:
        """True when every byte fed so far belongs to a complete event."""
        return not self._buffer

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = parse_event(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        return events


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
