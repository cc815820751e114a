"""The operator's dead-letter tool (I/O): ``python -m aiapi_shared.deadletter list|replay|drop``.

Messages a consumer could not decode are set aside in the ``DEADLETTER`` stream (see
:mod:`aiapi_shared.redelivery`). This lists them with where they came from and why, publishes
one (or all) again to its original subject once the cause is fixed (a consumer upgraded to read
it), or drops one for good. It connects like a service (``AIAPI_NATS_URL`` and the credential
settings), as the operator's NATS user: only ``admin`` may read and delete dead letters. Exit
status: 0 done, 1 a dead letter named was not found, 2 NATS unreachable or the login refused.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable, Sequence

from aiapi_shared.bus import Bus, BusError
from aiapi_shared.redelivery import DeadLetter
from aiapi_shared.settings import BaseServiceSettings, NatsSettingsError

_PREVIEW = 120
_CONNECT_TIMEOUT_S = 15.0  # Bus.connect waits for NATS forever; an operator does not


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiapi_shared.deadletter",
        description="List, replay or drop the messages consumers set aside (stream DEADLETTER).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the oldest dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON document per line")
    replay = commands.add_parser("replay", help="publish again to the original subject")
    replay.add_argument("sequences", type=int, nargs="*", help="DEADLETTER sequence numbers")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    drop = commands.add_parser("drop", help="delete for good")
    drop.add_argument("sequences", type=int, nargs="+")
    return parser


def describe(letter: DeadLetter) -> str:
    """One line for a person: where it came from, when and why it was set aside, a preview."""
    when = letter.set_aside_at.isoformat() if letter.set_aside_at else "?"
    preview = letter.data[:_PREVIEW].decode("utf-8", "replace")
    more = "…" if len(letter.data) > _PREVIEW else ""
    return (
        f"#{letter.sequence} {when} consumer={letter.consumer} subject={letter.subject}"
        f" from={letter.stream}#{letter.stream_sequence} reason={letter.reason!r}"
        f" data={preview!r}{more}"
    )


def document(letter: DeadLetter) -> dict[str, object]:
    try:
        data: dict[str, str] = {"text": letter.data.decode("utf-8")}
    except UnicodeDecodeError:
        data = {"base64": base64.b64encode(letter.data).decode()}
    return {
        "sequence": letter.sequence,
        "set_aside_at": letter.set_aside_at.isoformat() if letter.set_aside_at else None,
        "consumer": letter.consumer,
        "subject": letter.subject,
        "stream": letter.stream,
        "stream_sequence": letter.stream_sequence,
        "msg_id": letter.msg_id,
        "reason": letter.reason,
        "data": data,
    }


async def run(args: argparse.Namespace, bus: Bus) -> int:
    if args.command == "list":
        for letter in await bus.dead_letters(limit=args.limit):
            print(json.dumps(document(letter)) if args.json else describe(letter))
        return 0
    if args.command == "replay":
        sequences: Sequence[int] = args.sequences
        if args.all:
            sequences = [letter.sequence for letter in await bus.dead_letters(limit=1_000_000)]
        return await _each(sequences, bus.replay_dead_letter, "replayed")
    return await _each(args.sequences, bus.drop_dead_letter, "dropped")


async def _each(
    sequences: Sequence[int], action: Callable[[int], Awaitable[DeadLetter]], verb: str
) -> int:
    status = 0
    for sequence in sequences:
        try:
            letter = await action(sequence)
        except LookupError as exc:
            print(f"#{sequence}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"#{sequence} {verb}: {letter.subject} (consumer {letter.consumer})")
    return status


async def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = BaseServiceSettings()
        bus = await asyncio.wait_for(
            Bus.connect_as(settings, name="aiapi-deadletter"), timeout=_CONNECT_TIMEOUT_S
        )
    except NatsSettingsError as exc:  # names settings, never their values
        print(f"NATS settings: {exc}", file=sys.stderr)
        return 2
    except (BusError, TimeoutError, OSError) as exc:
        print(f"NATS is unreachable or refused the login: {type(exc).__name__}", file=sys.stderr)
        return 2
    try:
        return await run(args, bus)
    except BusError as exc:
        print(f"NATS failed: {exc}", file=sys.stderr)
        return 2
    finally:
        await bus.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
