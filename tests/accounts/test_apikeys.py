"""The key format: prefix, ≥160 random bits, a checksum that refuses a mistyped key offline."""

from __future__ import annotations

import hashlib
import math

from aiapi_shared import apikeys
from hypothesis import given
from hypothesis import strategies as st


def test_a_new_key_is_well_formed_and_carries_more_than_160_random_bits() -> None:
    key = apikeys.generate_key()
    assert key.startswith("sk-cc-")
    assert len(key) == apikeys.KEY_LENGTH == 42
    assert apikeys.is_well_formed(key)
    assert apikeys.BODY_LENGTH * math.log2(len(apikeys.ALPHABET)) > 160
    assert len({apikeys.generate_key() for _ in range(1000)}) == 1000


def test_every_single_character_typo_is_refused() -> None:
    key = apikeys.generate_key()
    start = len(apikeys.PREFIX)
    for position in range(start, len(key)):
        for replacement in apikeys.ALPHABET:
            if replacement != key[position]:
                typo = key[:position] + replacement + key[position + 1 :]
                assert not apikeys.is_well_formed(typo), (position, replacement)


def test_swapped_neighbours_and_shape_errors_are_refused() -> None:
    key = apikeys.generate_key()
    for i in range(len(apikeys.PREFIX), len(key) - 1):
        if key[i] != key[i + 1]:
            swapped = key[:i] + key[i + 1] + key[i] + key[i + 2 :]
            assert not apikeys.is_well_formed(swapped)
    for bad in (
        key[:-1],
        key + "a",
        "sk-ant-" + key[6:],
        key.replace("sk-cc-", "SK-CC-"),
        "",
        " " + key,
    ):
        assert not apikeys.is_well_formed(bad)
    assert not apikeys.is_well_formed(key[:10] + "-" + key[11:])


@given(st.text(max_size=60))
def test_random_text_is_almost_never_a_key(text: str) -> None:
    if apikeys.is_well_formed(text):
        assert text.startswith("sk-cc-")


def test_hash_and_hint() -> None:
    key = apikeys.generate_key()
    assert apikeys.key_hash(key) == hashlib.sha256(key.encode()).hexdigest()
    assert apikeys.key_hint(key) == "sk-cc-..." + key[-4:]
    # The hint comes from the checksum only: it says nothing of the random part.
    assert key[-4:] == apikeys.checksum(key[6:36])[-4:]
