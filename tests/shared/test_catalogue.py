from __future__ import annotations

from datetime import UTC, datetime

from aiapi_shared.catalogue import default_catalogue


def test_ships_the_three_models_of_the_contract_with_their_prices() -> None:
    catalogue = default_catalogue()
    expected = {
        "claude-opus-4-7": (5_000_000_000, 25_000_000_000),
        "claude-sonnet-4-6": (3_000_000_000, 15_000_000_000),
        "claude-haiku-4-5": (1_000_000_000, 5_000_000_000),
    }
    assert {m.id for m in catalogue.models} == set(expected)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    for model_id, (input_price, output_price) in expected.items():
        model = catalogue.model(model_id)
        assert model is not None and model.context_window == 200_000
        price = model.price_at(now)
        assert price is not None
        assert (price.input_usd_per_mtok, price.output_usd_per_mtok) == (input_price, output_price)


def test_no_price_before_the_first_effective_date() -> None:
    model = default_catalogue().model("claude-haiku-4-5")
    assert model is not None
    assert model.price_at(datetime(2020, 1, 1, tzinfo=UTC)) is None


def test_plans_match_the_contract() -> None:
    catalogue = default_catalogue()
    basic, pro = catalogue.plan("basic"), catalogue.plan("pro")
    assert (basic.requests_per_minute, basic.tokens_per_minute, basic.discount_bps) == (
        200,
        1_000_000,
        7000,
    )
    assert (pro.requests_per_minute, pro.tokens_per_minute, pro.discount_bps) == (
        500,
        2_000_000,
        8000,
    )
    assert pro.price_usd == 19_000_000_000


def test_unknown_model_is_none() -> None:
    assert default_catalogue().model("gpt-4o") is None
