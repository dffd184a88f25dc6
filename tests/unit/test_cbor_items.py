"""Counting CBOR items from headers: exact for every value of the data model, and cut off at
the limit however large the declared lengths are."""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.protocol.cbor_items import item_count
from logact.protocol.codec import MAX_BODY_DEPTH, BadBody, TooManyItems, check_body, decode_body

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.binary(max_size=300),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=60,
)


def items_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(items_of(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(1 + items_of(v) for v in value.values())
    return 1


@settings(max_examples=300, deadline=None)
@given(values, st.integers(min_value=0, max_value=400))
def test_the_count_is_exact_up_to_the_limit(value: Any, limit: int) -> None:
    true_count = items_of(value)
    assert item_count(cbor2.dumps(value), limit) == min(true_count, limit + 1)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(min_value=0, max_value=200))
def test_a_body_decodes_exactly_when_it_is_within_the_limit(value: Any, limit: int) -> None:
    raw = cbor2.dumps(value)
    if items_of(value) <= limit:
        assert check_body(raw, limit) == (items_of(value), value)
        assert decode_body(raw) == value
    else:
        with pytest.raises(TooManyItems):
            check_body(raw, limit)


def outside_the_model(value: Any, depth: int = 0) -> bool:
    """The data model of bodies, by the definition (a tree walk): the oracle for the scan."""
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes | int):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list | dict):
        if depth >= MAX_BODY_DEPTH:
            return True
        if isinstance(value, dict):
            if any(not isinstance(key, str) for key in value):
                return True
            value = list(value.values())
        return any(outside_the_model(child, depth + 1) for child in value)
    return True  # undefined, other simple values


keys = st.text(max_size=3) | st.binary(max_size=2) | st.integers()
anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.sampled_from([cbor2.undefined, cbor2.CBORSimpleValue(99), cbor2.CBORSimpleValue(0)]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=3) | st.binary(max_size=2) | st.integers(), children, max_size=3
        )
    ),
    max_leaves=20,
)


def nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=400, deadline=None)
@given(anything, st.integers(min_value=0, max_value=40))
def test_the_scan_accepts_exactly_the_data_model(value: Any, depth: int) -> None:
    value = nested(value, depth)
    raw = cbor2.dumps(value)
    if outside_the_model(value):
        with pytest.raises(BadBody):
            check_body(raw, 10**6)
    else:
        check_body(raw, 10**6)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=50))
def test_any_bytes_are_counted_or_refused_within_the_limit(raw: bytes, limit: int) -> None:
    try:
        assert 0 <= item_count(raw, limit) <= limit + 1
    except ValueError as exc:
        assert "tags" in str(exc) or "indefinite" in str(exc)


def test_declared_lengths_cost_nothing_beyond_the_limit() -> None:
    huge_array = b"\x9b" + (2**64 - 1).to_bytes(8, "big") + b"\xa0" * 50
    assert item_count(huge_array, 10) == 11
    huge_map = b"\xbb" + (2**64 - 1).to_bytes(8, "big")
    assert item_count(huge_map, 10) == 1  # truncated: what it holds


@pytest.mark.parametrize(
    "raw", [b"\xc2\x41\x01", b"\x9f\xff", b"\x82\x01\xd8\x1c\x00", b"\x1c"], ids=str
)
def test_tags_and_indefinite_lengths_are_refused_by_the_count(raw: bytes) -> None:
    with pytest.raises(ValueError):
        item_count(raw, 100)
    with pytest.raises(BadBody):
        check_body(raw + b"\x00" * 10, 1)
