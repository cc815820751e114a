"""Model ids that tools send: the dated snapshot ids shipped as aliases, ``-latest`` forms, and
the operator's pattern aliases, through both SDKs; ``/v1/models`` lists what is sold."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from aiapi_edge.catalogue_routes import ModelsCatalogue
from aiapi_shared.catalogue import Catalogue, default_catalogue

from .conftest import EdgeEnv
from .support import sim_requests, usage_events

PATTERNS = {"claude-sonnet-4-6-*": "claude-sonnet-4-6", "claude-*-haiku": "claude-haiku-4-5"}


@pytest.fixture
def edge_catalogue() -> Catalogue:
    shipped = default_catalogue()
    return shipped.model_copy(update={"aliases": {**shipped.aliases, **PATTERNS}})


def served_id(catalogue: Catalogue, requested: str) -> str:
    entry = catalogue.model(requested)
    assert entry is not None, requested
    return entry.id


def test_the_shipped_catalogue_knows_the_published_dated_ids() -> None:
    shipped = default_catalogue()
    served = shipped.model("claude-haiku-4-5-20251001")
    assert served is not None and served.id == "claude-haiku-4-5"


@pytest.mark.parametrize(
    ("requested", "served"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),  # shipped dated id
        ("claude-sonnet-4-6-latest", "claude-sonnet-4-6"),  # -latest of a sold id
        ("claude-haiku-4-5-20251001-latest", "claude-haiku-4-5"),  # -latest of an alias
        ("claude-sonnet-4-6-20270101", "claude-sonnet-4-6"),  # operator's prefix pattern
        ("claude-3-haiku", "claude-haiku-4-5"),  # operator's glob
        ("claude-opus-4-7", "claude-opus-4-7"),  # a sold id is never shadowed
    ],
)
def test_resolution_rules(edge_catalogue: Catalogue, requested: str, served: str) -> None:
    entry = edge_catalogue.model(requested)
    assert entry is not None and entry.id == served


def test_the_most_specific_pattern_wins_and_unknown_ids_stay_unknown() -> None:
    catalogue = default_catalogue().model_copy(
        update={"aliases": {"claude-*": "claude-haiku-4-5", "claude-opus-*": "claude-opus-4-7"}}
    )
    assert served_id(catalogue, "claude-opus-9") == "claude-opus-4-7"
    assert served_id(catalogue, "claude-next") == "claude-haiku-4-5"
    assert catalogue.model("gpt-4o") is None
    assert default_catalogue().model("claude-next") is None


def test_listing_aliases_is_the_operators_choice(edge_catalogue: Catalogue) -> None:
    sold = [m.id for m in edge_catalogue.models]
    plain = ModelsCatalogue(edge_catalogue)
    assert [m["id"] for m in _data(plain)] == sold
    listed = ModelsCatalogue(edge_catalogue, include_aliases=True)
    assert [m["id"] for m in _data(listed)] == [*sold, "claude-haiku-4-5-20251001"]


def _data(catalogue: ModelsCatalogue) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = orjson.loads(catalogue.list_body)["data"]
    return data


@pytest.mark.parametrize(
    "requested", ["claude-haiku-4-5-20251001", "claude-sonnet-4-6-latest", "claude-3-haiku"]
)
async def test_each_alias_form_through_both_sdks(env: EdgeEnv, requested: str) -> None:
    answer = await env.anthropic().messages.create(
        model=requested, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.content
    chat = await env.openai().chat.completions.create(
        model=requested, messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content
    served = served_id(env.edge.app.service.catalogue, requested)
    assert {_model_of(r) for r in sim_requests(env.sim_url)[-2:]} == {served}
    events = await usage_events(env.bus, 2)
    assert {(e.model, e.requested_model) for e in events} == {(served, requested)}
    # The model endpoint answers an alias as the model it is served as.
    model = await env.anthropic().models.retrieve(requested)
    assert model.id == served


def _model_of(request: dict[str, Any]) -> str:
    model: str = json.loads(request["raw"])["model"]
    return model
