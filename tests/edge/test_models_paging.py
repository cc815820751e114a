"""``GET /v1/models`` pages like the real API (``limit``, ``after_id``, ``before_id``,
``has_more``, ``first_id``, ``last_id``), and the OpenAI SDK still gets the whole list."""

from __future__ import annotations

import httpx
import orjson
import pytest
from aiapi_edge.catalogue_routes import ModelsCatalogue, PageError
from aiapi_shared.catalogue import Catalogue, default_catalogue

from .conftest import EdgeEnv


def many_models(count: int) -> Catalogue:
    base = default_catalogue()
    template = base.models[0]
    models = tuple(template.model_copy(update={"id": f"model-{n:02d}"}) for n in range(count))
    return base.model_copy(update={"models": models})


def page(catalogue: ModelsCatalogue, query: str, *, anthropic: bool = True) -> dict[str, object]:
    body: dict[str, object] = orjson.loads(
        catalogue.page(query.encode(), anthropic_client=anthropic)
    )
    return body


def ids(body: dict[str, object]) -> list[str]:
    data = body["data"]
    assert isinstance(data, list)
    return [m["id"] for m in data]


def test_the_default_page_holds_twenty_and_says_there_is_more() -> None:
    catalogue = ModelsCatalogue(many_models(25))
    first = page(catalogue, "")
    assert ids(first) == [f"model-{n:02d}" for n in range(20)]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == ("model-00", "model-19")
    rest = page(catalogue, "after_id=model-19")
    assert ids(rest) == [f"model-{n:02d}" for n in range(20, 25)]
    assert rest["has_more"] is False


def test_before_id_walks_back_and_limit_bounds_the_page() -> None:
    catalogue = ModelsCatalogue(many_models(7))
    back = page(catalogue, "before_id=model-05&limit=2")
    assert ids(back) == ["model-03", "model-04"] and back["has_more"] is True
    start = page(catalogue, "before_id=model-02&limit=5")
    assert ids(start) == ["model-00", "model-01"] and start["has_more"] is False
    assert ids(page(catalogue, "limit=1000")) == [f"model-{n:02d}" for n in range(7)]


def test_an_openai_client_without_paging_gets_every_model() -> None:
    catalogue = ModelsCatalogue(many_models(25))
    whole = page(catalogue, "", anthropic=False)
    assert len(ids(whole)) == 25 and whole["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after_id=nope", "after_id"),
        ("after_id=model-01&before_id=model-03", "before_id"),
    ],
)
def test_bad_paging_is_refused(query: str, param: str) -> None:
    with pytest.raises(PageError) as refused:
        page(ModelsCatalogue(many_models(5)), query)
    assert refused.value.param == param


async def test_the_anthropic_sdk_pages_through_every_model(env: EdgeEnv) -> None:
    sold = [m.id for m in default_catalogue().models]
    listed = [m.id async for m in env.anthropic().models.list(limit=1)]
    assert listed == sold
    assert [m.id async for m in env.openai().models.list()] == sold


async def test_bad_paging_gets_a_400_in_the_anthropic_shape(env: EdgeEnv) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            env.url + "/v1/models?limit=0",
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "limit" in body["error"]["message"]
    assert body["request_id"] == answer.headers["request-id"]
