from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from aiapi_shared.events import (
    ALL_EVENTS,
    EVENTS_BY_SUBJECT,
    Event,
    UsageRecorded,
    catalogue_schema,
)
from aiapi_shared.events.catalogue_schema import build_catalogue
from pydantic import ValidationError

SUBJECT = re.compile(r"^[a-z]+\.v[0-9]+\.[a-z_]+\.[a-z_]+$")


def _samples() -> dict[str, dict[str, object]]:
    folder = resources.files("aiapi_shared.events").joinpath("samples")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            out[entry.name.removesuffix(".json")] = json.loads(entry.read_text("utf-8"))
    return out


def test_every_event_has_a_golden_sample_and_every_sample_an_event() -> None:
    assert set(_samples()) == {cls.subject for cls in ALL_EVENTS}


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda cls: cls.subject)
def test_golden_sample_parses_and_round_trips(cls: type[Event]) -> None:
    sample = _samples()[cls.subject]
    event = cls.model_validate_json(json.dumps(sample))
    assert event.event_id == sample["event_id"]
    again = cls.model_validate_json(event.to_json())
    assert again == event


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda cls: cls.subject)
def test_subjects_follow_context_version_entity_verb(cls: type[Event]) -> None:
    assert SUBJECT.match(cls.subject), cls.subject
    context = cls.subject.split(".")[0]
    assert cls.__module__.endswith(f"{context}_v1")


def test_unknown_fields_are_ignored_and_events_are_frozen() -> None:
    sample = dict(_samples()[UsageRecorded.subject])
    sample["a_field_from_the_future"] = {"x": 1}
    event = UsageRecorded.model_validate(sample)
    with pytest.raises(ValidationError):
        event.request_id = "other"  # type: ignore[misc]


def test_events_get_an_id_and_a_time_by_default() -> None:
    sample = dict(_samples()[UsageRecorded.subject])
    del sample["event_id"], sample["occurred_at"]
    first, second = UsageRecorded.model_validate(sample), UsageRecorded.model_validate(sample)
    assert first.event_id != second.event_id
    assert first.occurred_at.tzinfo is not None


def test_money_in_events_is_a_decimal_string() -> None:
    sample = _samples()["billing.v1.request.priced"]
    event = EVENTS_BY_SUBJECT["billing.v1.request.priced"].model_validate(sample)
    assert json.loads(event.to_json())["cost"] == "0.002988"


def test_catalogue_lists_every_event_with_its_subject() -> None:
    catalogue = build_catalogue()
    assert set(catalogue["events"]) == set(EVENTS_BY_SUBJECT)
    priced = catalogue["events"]["billing.v1.request.priced"]
    assert priced["x-subject"] == "billing.v1.request.priced"
    assert priced["properties"]["cost"]["type"] == "string"


def test_the_schema_command_writes_the_file_it_is_given(tmp_path: Path) -> None:
    out = tmp_path / "events.schema.json"
    assert catalogue_schema.main([str(out)]) == 0
    assert json.loads(out.read_text("utf-8")) == build_catalogue()


def test_the_schema_command_prints_its_usage_and_writes_no_file_for_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        catalogue_schema.main(["--help"])
    assert exited.value.code == 0
    assert "usage: aiapi events-schema" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # it once wrote the catalogue to a file named --help
