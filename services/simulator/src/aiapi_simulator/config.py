"""The simulator's settings: one frozen value handed to `create_app` and the CLI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of `GET /v1/models`."""

    id: str
    display_name: str
    created_at: str


DEFAULT_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    ModelInfo("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ModelInfo("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulator behaves; every field has a default that suits tests.

    latency_ms: delay before the first byte of every `/v1/messages` response.
    tokens_per_second: pace of streamed deltas (one delta is one output token); 0 = unpaced.
    ping_interval: seconds between `ping` events while a stream is stalled or slow; 0 = never.
    api_keys: when not empty, only these upstream keys are accepted (others get 401).
    strict_models: when true, `/v1/messages` answers 404 for a model not in `models`.
    require_anthropic_version: a request without `anthropic-version` gets 400, like the real API.
    max_recorded_requests: how many requests `GET /_sim/requests` keeps (oldest dropped first).
    batch_processing_s: how long a Message Batch takes to end (changeable at run time through
        `POST /_sim/batches`).
    organization_id: the value of the `anthropic-organization-id` header (a gateway must drop it).
    """

    host: str = "127.0.0.1"
    port: int = 8090
    latency_ms: int = 0
    tokens_per_second: float = 0.0
    ping_interval: float = 10.0
    api_keys: frozenset[str] = frozenset()
    models: tuple[ModelInfo, ...] = DEFAULT_MODELS
    strict_models: bool = False
    require_anthropic_version: bool = True
    max_recorded_requests: int = 1000
    organization_id: str = "00000000-0000-4000-8000-00000000a1a1"
    batch_processing_s: float = 0.3
