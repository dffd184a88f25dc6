"""Bus patterns of roles: wildcards by segment, and ``{principal}`` never reaches another's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logact.server import bus_patterns

BUS = st.from_regex(r"[A-Za-z0-9._/-]{1,40}", fullmatch=True)
NAME = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)


@given(BUS, NAME)
def test_double_star_matches_every_bus_and_a_literal_only_itself(bus: str, name: str) -> None:
    assert bus_patterns.matches(("**",), bus, name)
    assert bus_patterns.matches((bus,), bus, name)
    assert not bus_patterns.matches((bus,), bus + "x", name)


@given(
    NAME, NAME, st.from_regex(r"[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,3}", fullmatch=True)
)
def test_a_principal_subtree_is_its_own(me: str, other: str, rest: str) -> None:
    pattern = ("agent/{principal}/**",)
    assert bus_patterns.matches(pattern, f"agent/{me}/{rest}", me)
    if other != me:
        assert not bus_patterns.matches(pattern, f"agent/{other}/{rest}", me)


@pytest.mark.parametrize(
    ("pattern", "bus", "expected"),
    [
        ("agent/*", "agent/a", True),
        ("agent/*", "agent/a/b", False),
        ("agent/**", "agent/a/b", True),
        ("claude_code.**", "claude_code.root.s-1", True),
        ("claude_code.**", "codex.root.s-1", False),
        ("a.b", "aXb", False),  # a dot is a dot, not "any character"
    ],
)
def test_wildcards(pattern: str, bus: str, expected: bool) -> None:
    assert bus_patterns.matches((pattern,), bus, "p") is expected


@pytest.mark.parametrize("pattern", ["", "a b", "{user}/x", "a[0]", "x" * 257])
def test_invalid_patterns(pattern: str) -> None:
    assert not bus_patterns.valid(pattern)
