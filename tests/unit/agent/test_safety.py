"""The independent safety checker: well-formed runs pass, each kind of broken run is caught."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from logact.agent.introspection.safety import check_bus, describe

Entries = list[tuple[int, str, Any]]


@st.composite
def runs(draw: st.DrawFn) -> Entries:
    """A bus a correct runtime could write: each intent is decided after it is appended; a
    committed one may run (exec_start, then result), interleaved with other intents' entries."""
    count = draw(st.integers(1, 8))
    steps: list[tuple[int, str]] = []  # (intent index, kind), in a per-intent causal order
    for index in range(count):
        kinds = ["intent", draw(st.sampled_from(["commit", "abort"]))]
        kinds += ["vote"] * draw(st.integers(0, 2))
        if kinds[1] == "commit":
            kinds += ["exec_start", "result"]
        steps += [(index, kind) for kind in kinds]
    order = draw(st.permutations(steps))
    # Keep each intent's own steps in their causal order, whatever the interleaving.
    mine: dict[int, list[str]] = {}
    for index, kind in steps:
        mine.setdefault(index, []).append(kind)
    positions: dict[int, int] = {}
    entries: Entries = []
    for position, (index, _) in enumerate(order):
        kind = mine[index].pop(0)
        if kind == "intent":
            positions[index] = position
            entries.append((position, "intent", {"action": {"kind": "tool"}}))
        else:
            entries.append((position, kind, {"intent_id": positions[index]}))
    return entries


@settings(max_examples=300, deadline=None)
@given(runs())
def test_a_correct_run_is_safe_and_counted(entries: Entries) -> None:
    report = check_bus(entries)
    assert report.safe, describe(report)
    assert report.intents == report.committed + report.aborted
    assert report.started == report.results == report.committed


def _first(entries: Entries, kind: str) -> int:
    return next(i for i, (_, k, _) in enumerate(entries) if k == kind)


def _drop(entries: Entries, kind: str) -> Entries:
    index = _first(entries, kind)
    return entries[:index] + entries[index + 1 :]


def _relabel(entries: Entries, old: str, new: str) -> Entries:
    index = _first(entries, old)
    position, _, body = entries[index]
    return [*entries[:index], (position, new, body), *entries[index + 1 :]]


def _again(entries: Entries, kind: str, as_kind: str | None = None) -> Entries:
    """The first ``kind`` entry's body once more at the end, as ``as_kind`` (default: itself)."""
    _, _, body = entries[_first(entries, kind)]
    return [*entries, (len(entries) + 100, as_kind or kind, body)]


MUTATIONS = {
    "ran_without_commit": lambda run: _relabel(run, "commit", "abort"),
    "ran_twice": lambda run: _again(run, "exec_start"),
    "result_without_start": lambda run: _drop(run, "exec_start"),
    "start_without_result": lambda run: _drop(run, "result"),
    "conflicting_decisions": lambda run: _again(run, "commit", "abort"),
}


@settings(max_examples=100, deadline=None)
@given(runs(), st.sampled_from(sorted(MUTATIONS)))
def test_each_broken_run_is_caught_by_its_rule(entries: Entries, rule: str) -> None:
    assume(any(kind == "commit" for _, kind, _ in entries))
    report = check_bus(MUTATIONS[rule](entries))
    assert rule in report.rules, describe(report)


def test_a_run_before_its_commit_is_caught() -> None:
    entries: Entries = [
        (0, "intent", {}),
        (1, "exec_start", {"intent_id": 0}),
        (2, "commit", {"intent_id": 0}),
        (3, "result", {"intent_id": 0}),
    ]
    report = check_bus(entries)
    assert report.rules == {"ran_without_commit"}
    assert "was not decided before it" in describe(report)


def test_an_unfinished_run_may_have_a_start_without_result() -> None:
    entries: Entries = [(0, "intent", {}), (1, "commit", {"intent_id": 0})]
    entries.append((2, "exec_start", {"intent_id": 0}))
    assert "start_without_result" in check_bus(entries).rules
    assert check_bus(entries, finished=False).safe


@pytest.mark.parametrize("body", [None, [], {"intent_id": "0"}, {"intent_id": -1}, {"x": 1}])
def test_an_unreadable_mark_is_reported(body: Any) -> None:
    entries: Entries = [(0, "intent", {}), (1, "commit", {"intent_id": 0}), (2, "exec_start", body)]
    assert check_bus(entries, finished=False).rules == {"unreadable"}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-5, 50),
            st.sampled_from(["intent", "commit", "abort", "exec_start", "result", "vote", "x"]),
            st.recursive(
                st.none() | st.integers() | st.text(max_size=5) | st.booleans(),
                lambda inner: (
                    st.dictionaries(st.just("intent_id") | st.text(max_size=3), inner)
                    | st.lists(inner)
                ),
                max_leaves=5,
            ),
        ),
        max_size=30,
    )
)
def test_any_entries_are_judged_without_raising(entries: Entries) -> None:
    report = check_bus(entries)
    assert report.safe == (not report.violations)
