"""OpenAI Chat Completions ⇄ Anthropic Messages: the pure translation behind the OpenAI routes.

Nothing here does I/O; the routes load, call, and write. One request goes:

1. :func:`to_anthropic` (``request.py``, ``messages.py``) turns the Chat Completions body into an
   Anthropic Messages body, or raises :class:`TranslationError` (answer 400 with
   ``err.to_openai()``). The model's quirks come in as :class:`ModelTraits`.
2. Not streaming: :func:`to_openai_completion` (``response.py``) turns the Anthropic message into a
   ``chat.completion``.
3. Streaming: a :class:`ChunkTranslator` (``stream.py``) is fed each Anthropic SSE event and returns
   ``chat.completion.chunk`` dicts; the caller writes ``data: [DONE]`` at the end.
4. Upstream errors: :func:`openai_error_from_anthropic` (``errors.py``) gives the OpenAI error body.
5. Usage, everywhere: :func:`openai_usage` (``usage.py``): ``prompt_tokens`` = input + cache read
   + cache write, ``cached_tokens`` = cache read, ``cache_write_tokens`` = cache write,
   ``reasoning_tokens`` = thinking tokens when reported.

Each module's docstring lists its mappings one by one; together they are the documentation of the
OpenAI compatibility layer.
"""

from .errors import (
    TranslationError,
    openai_error_body,
    openai_error_from_anthropic,
    openai_error_type,
)
from .request import (
    EFFORT_LEVELS,
    IGNORED_FIELDS,
    THINKING_BUDGETS,
    TranslatedRequest,
    to_anthropic,
)
from .response import FINISH_REASONS, completion_id, finish_reason, to_openai_completion
from .stream import ChunkTranslator
from .traits import ModelTraits
from .usage import merge_usage, openai_usage

__all__ = [
    "EFFORT_LEVELS",
    "FINISH_REASONS",
    "IGNORED_FIELDS",
    "THINKING_BUDGETS",
    "ChunkTranslator",
    "ModelTraits",
    "TranslatedRequest",
    "TranslationError",
    "completion_id",
    "finish_reason",
    "merge_usage",
    "openai_error_body",
    "openai_error_from_anthropic",
    "openai_error_type",
    "openai_usage",
    "to_anthropic",
    "to_openai_completion",
]
