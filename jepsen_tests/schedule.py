"""Fault schedules from a seed: the same seed and nemesis set always give the same schedule.

A schedule is a list of ``Fault``s in time order. Each fault starts after a quiet period (the
cluster heals and the workload shows whether it recovered), lasts ``duration_s``, and no two
faults overlap, so every fault window in a history belongs to exactly one fault. The schedule
is pure data: ``nemesis.apply`` carries a fault out, resolving role targets (``leader``,
``follower``) against the cluster at that moment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: Fault kind -> the targets it may pick (role names or partition shapes).
NEMESES: dict[str, tuple[str, ...]] = {
    "kill": ("random", "leader"),
    "pause": ("follower", "leader"),
    "partition": ("isolate-leader", "majority-minority", "bridge"),
    "restart-all": ("all",),
    # Pause a follower, load with >= 10 KB entries, kill -9 the leader, resume the follower.
    "targeted": ("follower",),
    # Kill a node (or all: a cluster-wide power loss), cut its record files back to their last
    # fsync'd size, restart it.
    "lose-unsynced": ("random", "follower", "leader", "all"),
    # Fuzzed frames, decoding bombs, idle connections and Raft-port junk at one node.
    "hostile": ("leader", "follower"),
}

#: (shortest, longest) time a fault of each kind stays in effect, in seconds.
DURATIONS: dict[str, tuple[float, float]] = {
    "kill": (1.0, 5.0),
    "pause": (1.0, 5.0),
    "partition": (2.0, 8.0),
    "restart-all": (0.0, 2.0),
    "targeted": (2.0, 5.0),
    "lose-unsynced": (0.5, 3.0),
    "hostile": (3.0, 8.0),
}

DEFAULT_QUIET_S = 5.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: starts ``at_s`` seconds into the run and is healed ``duration_s`` later."""

    at_s: float
    kind: str
    duration_s: float
    target: str

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_nemeses(nemeses: Iterable[str]) -> list[tuple[str, str]]:
    """``kind`` or ``kind:target`` names (or ``all``) as sorted, distinct (kind, target) pairs.

    Sorted so the set of choices, and so the schedule, does not depend on the order given.
    """
    choices: set[tuple[str, str]] = set()
    for raw in nemeses:
        name = raw.strip()
        if not name:
            continue
        if name == "all":
            choices.update((kind, t) for kind, targets in NEMESES.items() for t in targets)
            continue
        kind, _, target = name.partition(":")
        if kind not in NEMESES:
            raise ValueError(f"unknown nemesis {kind!r}; known: {', '.join(NEMESES)}, all")
        if target and target not in NEMESES[kind]:
            raise ValueError(
                f"nemesis {kind!r} has no target {target!r}; known: {', '.join(NEMESES[kind])}"
            )
        choices.update((kind, t) for t in ([target] if target else NEMESES[kind]))
    return sorted(choices)


def make_schedule(
    seed: int,
    nemeses: Sequence[str],
    total_s: float,
    *,
    quiet_s: float = DEFAULT_QUIET_S,
) -> list[Fault]:
    """Faults for a run of ``total_s`` seconds, deterministic in (seed, nemeses, times).

    The first fault starts no earlier than ``quiet_s``; between two faults, and between the
    last fault's end and ``total_s``, there are at least ``quiet_s`` seconds (healing time).
    Kinds come in rounds, each a seeded permutation of the kinds, so every kind runs once
    before any runs twice (a run of at least :func:`needed_s` seconds exercises them all); then
    a target and a duration are drawn; a fault that would not fit ends the schedule.
    """
    if total_s < 0 or quiet_s < 0:
        raise ValueError("total_s and quiet_s must be >= 0")
    choices = parse_nemeses(nemeses)
    if not choices:
        return []
    rng = random.Random(seed)
    kinds = sorted({kind for kind, _ in choices})
    faults: list[Fault] = []
    at = quiet_s + rng.uniform(0.0, quiet_s / 2)
    while True:
        for kind in rng.sample(kinds, len(kinds)):
            target = rng.choice([t for k, t in choices if k == kind])
            low, high = DURATIONS[kind]
            duration = rng.uniform(low, high)
            if at + duration + quiet_s > total_s:
                return faults
            fault = Fault(at, kind, duration, target)
            faults.append(fault)
            at = fault.end_s + quiet_s + rng.uniform(0.0, quiet_s / 2)


def needed_s(nemeses: Sequence[str], *, quiet_s: float = DEFAULT_QUIET_S) -> float:
    """The shortest run whose schedule is sure to hold every requested kind at least once:
    each kind at its longest, with the longest gap before it, and the quiet time at the end."""
    kinds = {kind for kind, _ in parse_nemeses(nemeses)}
    return 1.5 * quiet_s + sum(DURATIONS[kind][1] + 1.5 * quiet_s for kind in kinds)


def unscheduled(schedule: Sequence[Fault], nemeses: Sequence[str]) -> list[str]:
    """The requested kinds the schedule never runs (the run is too short for them)."""
    kinds = {kind for kind, _ in parse_nemeses(nemeses)}
    return sorted(kinds - {fault.kind for fault in schedule})
