"""What the translation needs to know about the model a request is for.

The caller looks the model up in the catalogue and passes these facts in, so the translation stays
pure and never reads the catalogue itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelTraits:
    """Facts about one upstream model that change how a request is written for it.

    - ``supports_adaptive_thinking``: the model takes ``thinking: {"type": "adaptive"}``; otherwise
      ``reasoning_effort`` becomes a fixed ``budget_tokens``.
    - ``supports_effort``: the model takes ``output_config.effort``.
    - ``rejects_sampling_params``: the model refuses ``temperature`` / ``top_p``; they are left out.
    - ``default_max_tokens``: sent when the client gives neither ``max_completion_tokens`` nor
      ``max_tokens`` (Anthropic requires one, OpenAI does not).
    """

    supports_adaptive_thinking: bool
    supports_effort: bool
    rejects_sampling_params: bool
    default_max_tokens: int
