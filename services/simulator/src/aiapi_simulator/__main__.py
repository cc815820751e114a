"""`python -m aiapi_simulator`: serve the upstream simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiapi_shared.runner import launch

from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.serve import plan


def parse_args(argv: Sequence[str] | None = None) -> SimulatorConfig:
    parser = argparse.ArgumentParser(
        prog="aiapi-simulator",
        description="An Anthropic Messages API simulator for trying and load-testing aiapi.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="delay before the first byte of each reply"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=0.0,
        help="pace of streamed deltas (one delta = one token); 0 = unlimited",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=10.0,
        help="seconds between ping events while a stream is stalled or slow",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="accept only this upstream key (repeatable); default: any key",
    )
    parser.add_argument(
        "--strict-models", action="store_true", help="answer 404 for models not listed"
    )
    parser.add_argument(
        "--max-recorded-requests",
        type=int,
        default=1000,
        help="how many requests GET /_sim/requests keeps (oldest dropped first)",
    )
    parser.add_argument(
        "--batch-processing-s",
        type=float,
        default=0.3,
        help="how long a Message Batch takes to end (POST /_sim/batches changes it at run time)",
    )
    args = parser.parse_args(argv)
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        tokens_per_second=args.tokens_per_second,
        ping_interval=args.ping_interval,
        api_keys=frozenset(args.api_key),
        strict_models=args.strict_models,
        max_recorded_requests=args.max_recorded_requests,
        batch_processing_s=args.batch_processing_s,
    )


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    print(
        f"aiapi simulator: serving a simulated Anthropic API on http://{config.host}:{config.port}",
        file=sys.stderr,
        flush=True,
    )
    launch(lambda: plan(config))


if __name__ == "__main__":
    main()
