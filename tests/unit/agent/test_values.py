"""Reading values out of tool output someone else wrote: bounded, whatever it holds."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from logact.agent.judgement.values import MAX_RECORD_DEPTH, as_number, parse_records


def test_records_parse_and_prose_does_not() -> None:
    assert parse_records('[{"id": 1, "subject": "hi"}]') == [{"id": 1, "subject": "hi"}]
    assert parse_records("id: 1\nsubject: hi\n") == {"id": 1, "subject": "hi"}
    assert parse_records("Dear Emma: please pay the bill today.") is None


def test_a_yaml_alias_bomb_is_prose_not_a_billion_strings() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    assert parse_records("\n".join(lines)) is None


def test_deep_nesting_is_prose_without_a_recursion_error() -> None:
    assert parse_records("[" * 100_000 + "]" * 100_000) is None
    deep: object = "leaf"
    for _ in range(MAX_RECORD_DEPTH + 5):
        deep = {"k": deep}
    assert parse_records(json.dumps(deep)) is None
    assert parse_records("- " * 5000 + "x") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_prose(text: str) -> None:
    parsed = parse_records(text)
    assert parsed is None or isinstance(parsed, dict | list)


def test_numbers_are_read_as_written() -> None:
    assert as_number("30,000") == 30000 and as_number("1.50") == as_number("1.5")
    assert as_number("nan") is None and as_number("abc") is None
