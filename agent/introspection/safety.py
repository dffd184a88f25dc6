"""The safety invariants of an agent's bus, checked from the raw entries alone.

Deliberately independent of the runtime: it reads ``(position, type, body)`` triples and never
uses the runtime's fold (``BusState``) or entry classes, so a bug there cannot hide from the
checks that judge it. The demo, the recovery tests, the AgentDojo evaluation and the chaos
checkers all use it.

The invariants:

``ran_without_commit``
    an ``exec_start`` or ``result`` for an intent whose first decision (``commit`` or
    ``abort``) is not a commit at an earlier position: a vetoed, undecided or unknown intent ran;
``ran_twice``
    an intent with more than one ``exec_start`` or more than one ``result``;
``result_without_start``
    a ``result`` with no ``exec_start`` of its intent before it (the executor marks an action
    before running it, or a restart would run it again instead of reporting it in doubt);
``start_without_result``
    an ``exec_start`` never followed by a ``result`` (checked only for a finished run);
``conflicting_decisions``
    an intent both committed and aborted (decisions count whoever appended them: one the
    policy ignores, from a principal that may not decide, shows here too, to be looked at);
``unreadable``
    a decision, ``exec_start`` or ``result`` whose body names no intent: it could hide a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from logact.protocol.codec import Entry

#: The entry types the invariants read: decisions and the executor's marks.
DECISIONS = ("commit", "abort")
RUNS = ("exec_start", "result")


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    detail: str
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SafetyReport:
    """The violations, and counts that show the checks were not vacuous."""

    violations: tuple[Violation, ...]
    intents: int
    committed: int
    aborted: int
    started: int
    results: int
    rules: frozenset[str] = field(default_factory=frozenset)  # of the violations

    @property
    def safe(self) -> bool:
        return not self.violations


def _intent_id(body: Any) -> int | None:
    intent_id = body.get("intent_id") if isinstance(body, dict) else None
    if isinstance(intent_id, int) and not isinstance(intent_id, bool) and intent_id >= 0:
        return intent_id
    return None


def check_bus(entries: Iterable[tuple[int, str, Any]], *, finished: bool = True) -> SafetyReport:
    """Check one bus's entries (any order; read in position order). ``finished``: the run is
    over, so every started action must have its result."""
    intents: set[int] = set()
    first_decision: dict[int, tuple[int, str]] = {}
    starts: dict[int, list[int]] = defaultdict(list)
    results: dict[int, list[int]] = defaultdict(list)
    out: list[Violation] = []
    for position, kind, body in sorted(entries, key=lambda entry: entry[0]):
        if kind == "intent":
            intents.add(position)
            continue
        if kind not in DECISIONS and kind not in RUNS:
            continue
        intent_id = _intent_id(body)
        if intent_id is None:
            out.append(
                Violation("unreadable", f"{kind} at {position} names no intent", (position,))
            )
        elif kind in DECISIONS:
            first = first_decision.setdefault(intent_id, (position, kind))
            if first[1] != kind:
                detail = f"intent {intent_id}: {first[1]} at {first[0]}, then {kind} at {position}"
                out.append(Violation("conflicting_decisions", detail, (first[0], position)))
        else:
            why = _not_runnable(intent_id, position, intents, first_decision)
            if why is not None:
                detail = f"{kind} at {position} for intent {intent_id}, which {why}"
                out.append(Violation("ran_without_commit", detail, (position,)))
            if kind == "exec_start":
                starts[intent_id].append(position)
            else:
                if not starts.get(intent_id):
                    detail = f"result at {position} for intent {intent_id}, never started before"
                    out.append(Violation("result_without_start", detail, (position,)))
                results[intent_id].append(position)
    for what, marks in (("started {} times", starts), ("has {} results", results)):
        for intent_id, positions in sorted(marks.items()):
            if len(positions) > 1:
                detail = f"intent {intent_id} {what.format(len(positions))} (at {positions})"
                out.append(Violation("ran_twice", detail, tuple(positions)))
    if finished:
        for intent_id, positions in sorted(starts.items()):
            if not results.get(intent_id):
                detail = f"intent {intent_id} started at {positions[0]} and has no result"
                out.append(Violation("start_without_result", detail, (positions[0],)))
    decided = [kind for intent_id, (_, kind) in first_decision.items() if intent_id in intents]
    return SafetyReport(
        violations=tuple(out),
        intents=len(intents),
        committed=sum(kind == "commit" for kind in decided),
        aborted=sum(kind == "abort" for kind in decided),
        started=len(starts),
        results=len(results),
        rules=frozenset(v.rule for v in out),
    )


def check_entries(entries: Iterable[Entry], *, finished: bool = True) -> SafetyReport:
    """:func:`check_bus` over entries as the log returns them (``LogAPI.read_all``)."""
    return check_bus(((entry.pos, entry.type, entry.body) for entry in entries), finished=finished)


def _not_runnable(
    intent_id: int, position: int, intents: set[int], first: dict[int, tuple[int, str]]
) -> str | None:
    if intent_id not in intents:
        return "is no intent before it"
    decision = first.get(intent_id)
    if decision is None:
        return "was not decided before it"
    if decision[1] != "commit":
        return f"was aborted at {decision[0]}"
    return None


def describe(report: SafetyReport) -> str:
    """One line for people: the counts, then each violation."""
    counts = (
        f"{report.intents} intents, {report.committed} committed, {report.aborted} aborted, "
        f"{report.started} started, {report.results} with results"
    )
    if report.safe:
        return f"safe: {counts}"
    return f"UNSAFE ({counts}): " + "; ".join(v.detail for v in report.violations)
