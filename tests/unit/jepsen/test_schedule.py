"""Fault schedules (jepsen_tests/schedule.py): replayable from a seed, well-spaced, in bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.jepsen_tests.schedule import (
    DURATIONS,
    NEMESES,
    Fault,
    make_schedule,
    needed_s,
    parse_nemeses,
    unscheduled,
)

KINDS = sorted(NEMESES)
seeds = st.integers(min_value=0, max_value=2**64)
nemesis_sets = st.lists(st.sampled_from(KINDS), min_size=1, max_size=len(KINDS), unique=True)
totals = st.floats(min_value=0.0, max_value=3600.0, allow_nan=False)
quiets = st.floats(min_value=0.0, max_value=30.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(seed=seeds, nemeses=nemesis_sets, total=totals, quiet=quiets)
def test_same_seed_same_schedule(seed: int, nemeses: list[str], total: float, quiet: float) -> None:
    first = make_schedule(seed, nemeses, total, quiet_s=quiet)
    assert make_schedule(seed, nemeses, total, quiet_s=quiet) == first
    # The order the nemeses are named in does not matter either.
    assert make_schedule(seed, list(reversed(nemeses)), total, quiet_s=quiet) == first


@settings(max_examples=200, deadline=None)
@given(seed=seeds, nemeses=nemesis_sets, total=totals, quiet=quiets)
def test_schedule_uses_only_its_kinds_and_never_overlaps(
    seed: int, nemeses: list[str], total: float, quiet: float
) -> None:
    faults = make_schedule(seed, nemeses, total, quiet_s=quiet)
    for fault in faults:
        assert fault.kind in nemeses
        assert fault.target in NEMESES[fault.kind]
        low, high = DURATIONS[fault.kind]
        assert low <= fault.duration_s <= high
        assert fault.at_s >= quiet
        assert fault.at_s + fault.duration_s + quiet <= total
    for before, after in itertools.pairwise(faults):
        assert before.end_s + quiet <= after.at_s, (before, after)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, kind=st.sampled_from(KINDS), data=st.data())
def test_a_target_restriction_is_respected(seed: int, kind: str, data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(NEMESES[kind]))
    faults = make_schedule(seed, [f"{kind}:{target}"], 600.0, quiet_s=2.0)
    assert faults
    assert {(f.kind, f.target) for f in faults} == {(kind, target)}


def test_different_seeds_give_different_schedules() -> None:
    schedules = {tuple(make_schedule(seed, ["all"], 300.0)) for seed in range(20)}
    assert len(schedules) == 20


def test_long_runs_use_every_kind_and_target() -> None:
    faults = make_schedule(7, ["all"], 20_000.0, quiet_s=1.0)
    assert {(f.kind, f.target) for f in faults} == {
        (kind, target) for kind, targets in NEMESES.items() for target in targets
    }


def test_short_or_empty_runs() -> None:
    assert make_schedule(1, [], 600.0) == []
    assert make_schedule(1, ["kill"], 4.0, quiet_s=5.0) == []
    faults = make_schedule(1, ["kill"], 60.0, quiet_s=5.0)
    assert faults and all(isinstance(f, Fault) for f in faults)


def test_parse_nemeses() -> None:
    assert parse_nemeses(["kill:leader", "pause"]) == [
        ("kill", "leader"),
        ("pause", "follower"),
        ("pause", "leader"),
    ]
    assert parse_nemeses([" kill ", ""]) == [("kill", "leader"), ("kill", "random")]
    with pytest.raises(ValueError, match="unknown nemesis 'flood'"):
        parse_nemeses(["flood"])
    with pytest.raises(ValueError, match="no target 'bridge'"):
        parse_nemeses(["kill:bridge"])


def test_fault_to_json_round_trips() -> None:
    fault = Fault(12.5, "partition", 3.25, "bridge")
    assert Fault(**fault.to_json()) == fault
    assert fault.end_s == 15.75


@settings(max_examples=200, deadline=None)
@given(seed=seeds, nemeses=nemesis_sets, quiet=quiets, extra=st.floats(0.0, 100.0))
def test_a_run_of_needed_s_exercises_every_requested_kind(
    seed: int, nemeses: list[str], quiet: float, extra: float
) -> None:
    total = needed_s(nemeses, quiet_s=quiet) + extra
    faults = make_schedule(seed, nemeses, total, quiet_s=quiet)
    assert {fault.kind for fault in faults} == set(nemeses)
    assert unscheduled(faults, nemeses) == []


def test_a_short_run_names_the_kinds_it_leaves_out() -> None:
    faults = make_schedule(1, ["all"], 30.0)
    left_out = unscheduled(faults, ["all"])
    assert left_out and len(left_out) + len({f.kind for f in faults}) == len(NEMESES)
    assert needed_s(["all"]) > 30.0
