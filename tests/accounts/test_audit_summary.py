"""What the audit log keeps of a body (pure): secrets replaced by name and by shape, the rest
kept, long and deep values shortened; the reason from the body or the header."""

from __future__ import annotations

import json

from aiapi_accounts.operators import audit

JSON = "application/json"


def test_secret_fields_are_replaced_and_the_rest_kept() -> None:
    body = (
        b'{"name": "ci", "key": "anything", "password": "hunter22hunter", "csrf_token": "t",'
        b' "upstream": {"api_key": "x", "base_url": "https://api.example", "weight": 2},'
        b' "idempotency_key": "retry-1", "key_id": "key_1", "enabled": true}'
    )
    assert audit.summary(body, JSON) == {
        "name": "ci",
        "key": "[redacted]",
        "password": "[redacted]",
        "csrf_token": "[redacted]",
        "upstream": {"api_key": "[redacted]", "base_url": "https://api.example", "weight": 2},
        "idempotency_key": "retry-1",
        "key_id": "key_1",
        "enabled": True,
    }


def test_key_material_is_replaced_whatever_its_field_is_called() -> None:
    body = b'{"note": "sk-ant-api03-abc", "list": ["sk-cc-xyz", "aiapi_op_123", "fine"]}'
    assert audit.summary(body, JSON) == {
        "note": "[redacted]",
        "list": ["[redacted]", "[redacted]", "fine"],
    }


def test_forms_are_read_and_their_tokens_replaced() -> None:
    form = "application/x-www-form-urlencoded"
    assert audit.summary(b"csrf_token=abc&email=a%40b.c&new_password=x", form) == {
        "csrf_token": "[redacted]",
        "email": "a@b.c",
        "new_password": "[redacted]",
    }


def test_long_deep_and_unreadable_bodies_are_shortened_or_described() -> None:
    long = audit.summary(b'{"note": "' + b"a" * 500 + b'"}', JSON)
    assert long["note"] == "a" * 200 + "..."
    deep = audit.summary(b'{"a": {"b": {"c": {"d": {"e": 1}}}}}', JSON)
    assert deep == {"a": {"b": {"c": {"d": "[...]"}}}}
    assert audit.summary(b"\xff\xfe", JSON) == {"_body": "2 bytes, not JSON or a form"}
    assert audit.summary(b"", JSON) == {}
    assert audit.summary(b'["sk-1", 2]', JSON) == {"_body": ["[redacted]", 2]}


def test_the_reason_comes_from_the_body_else_the_percent_encoded_header() -> None:
    assert audit.reason(b'{"reason": " refund "}', JSON, "other") == "refund"
    assert audit.reason(b"{}", JSON, "ticket%20%2342%20%C3%A9t%C3%A9") == "ticket #42 été"
    assert audit.reason(b'{"reason": ""}', JSON, None) is None
    assert audit.reason(b"", JSON, "x" * 2000) == "x" * audit.MAX_REASON


def test_the_account_acted_on_and_the_cursor() -> None:
    assert audit.account_of("/admin/v1/accounts/{id}/keys", {"id": "acc_1"}, "key_1") == "acc_1"
    assert audit.account_of("/admin/v1/accounts", {}, "acc_2") == "acc_2"
    assert audit.account_of("/admin/v1/x/{account_id}", {"account_id": "acc_3"}, None) == "acc_3"
    assert audit.account_of("/admin/v1/operators/{id}", {"id": "op_1"}, None) is None
    assert audit.decode_cursor(audit.encode_cursor(42)) == 42
    assert audit.decode_cursor("nope") is None
    assert audit.decode_cursor(audit.encode_cursor(42)[:-2]) is None


def test_nul_characters_and_deep_nesting_cannot_break_the_entry() -> None:
    assert audit.summary(b'{"na\\u0000me": "a\\u0000b"}', JSON) == {"na\ufffdme": "a\ufffdb"}
    for depth in (50, 5000, 50_000):
        # Cut at a few levels, or described when the parser gives up: small either way.
        nested = b"[" * depth + b"]" * depth
        assert len(json.dumps(audit.summary(nested, JSON))) < 100
    assert audit.reason(b"", JSON, "x%00y") == "x\ufffdy"
