"""What each component decides from the fold (its pure ``plan``) and the runner's one rule for
its own appends: a component does not act again until the state shows what it appended."""

from __future__ import annotations

import pytest
import trio

from logact.agent.components import decider, executor, voters
from logact.agent.components.runner import Component, run_component
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import Policy
from logact.agent.judgement.rules import RuleSet
from logact.protocol.codec import Entry
from logact.server.local import open_memory

BUS = "agent/plans"


class Bus:
    """Entries folded in order at consecutive positions, each at ``ts`` 1000 + position."""

    def __init__(self) -> None:
        self.state = BusState(BUS)

    def add(self, entry: e.AgentEntry) -> int:
        position = self.state.next
        entry_type, body = entry.to_entry()
        self.state.apply(Entry(position, 1000 + position, entry_type, "local", body))
        return position

    def intent(self) -> int:
        return self.add(e.Intent(e.ToolCall("shell", {"command": "ls"})))


def test_a_voter_plans_the_undecided_intents_it_has_not_voted_on() -> None:
    bus = Bus()
    voted, decided, open_ = bus.intent(), bus.intent(), bus.intent()
    bus.add(e.Vote(voted, "me", "rule", "ok", True))
    bus.add(e.Vote(open_, "other", "rule", "ok", True))
    bus.add(e.Commit(decided, "on by default"))
    assert [record.position for record in voters.plan(bus.state, "me")] == [open_]
    assert [record.position for record in voters.plan(bus.state, "other")] == [voted]


def test_a_ballot_casts_the_vote_entry_for_its_intent() -> None:
    ballot = voters.Ballot(7, "ifc", "ifc")
    assert ballot.cast(False, "asks a person", escalate=True) == e.Vote(
        7, "ifc", "ifc", "asks a person", False, None, True
    )
    assert ballot.cast(None, "unsure", 0.25) == e.Vote(7, "ifc", "ifc", "unsure", None, 0.25)


def test_the_decider_plans_decisions_and_its_next_deadline() -> None:
    bus = Bus()
    bus.state.decider_policies.default = Policy.from_doc(
        {"kind": "first_voter", "deadline_ms": 500, "version": 0}
    )
    approved, waiting = bus.intent(), bus.intent()
    bus.add(e.Vote(approved, "rules", "rule", "fine", True))
    due = decider.plan(bus.state, now=1000)
    assert [(type(d), d.intent_id) for d in due.decisions] == [(e.Commit, approved)]
    assert due.wake == 1000 + waiting + 500
    late = decider.plan(bus.state, now=1000 + waiting + 500)
    assert [(type(d), d.intent_id) for d in late.decisions] == [
        (e.Commit, approved),
        (e.Abort, waiting),
    ]


def test_the_executor_plans_committed_unstarted_intents_and_reports_interrupted_ones() -> None:
    bus = Bus()
    interrupted, later, first = bus.intent(), bus.intent(), bus.intent()
    bus.add(e.Commit(interrupted, "ok"))
    bus.add(e.ExecStart(interrupted))
    bus.add(e.Commit(first, "ok"))
    bus.add(e.Commit(later, "ok"))
    assert [record.position for record in executor.plan(bus.state)] == [later, first]
    [report] = executor.in_doubt_results(bus.state)
    assert (report.intent_id, report.ok, report.in_doubt) == (interrupted, False, True)


class Counter(Component):
    """Appends one note per step until it has stepped ``limit`` times."""

    def __init__(self, *args: object, limit: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.limit = limit
        self.steps: list[int] = []

    async def step(self, now: int) -> int | None:
        self.steps.append(self.state.next)
        await self.append("note", {"step": len(self.steps)})
        self.finished = len(self.steps) == self.limit
        return now  # step again at once: only its own append may hold it back


async def test_a_component_steps_only_once_its_own_append_is_folded_in() -> None:
    with trio.fail_after(10):
        async with open_memory() as log:
            component = Counter(log, BUS, limit=3)
            assert component.caught_up
            await component.append("note", {"before": True})
            assert not component.caught_up
            await run_component(component)
    # Each step saw everything it had appended before: one more entry every time.
    assert component.steps == [1, 2, 3]


async def test_judges_give_each_kind_its_judge_and_name_what_is_missing() -> None:
    bus = Bus()
    position = bus.intent()
    judges = voters.Judges(rules=RuleSet.from_doc({"default": "deny", "rules": []}))
    ballot = voters.Ballot(position, "rules", "rule")
    with trio.fail_after(10):
        vote = await judges.judge("rule")(bus.state, bus.state.intents[position], ballot)
    assert vote == e.Vote(position, "rules", "rule", "no rule matched (default deny)", False)
    assert judges.judge("provenance") is not None
    with pytest.raises(ValueError, match="llm voter needs a model"):
        judges.judge("llm")
    with pytest.raises(ValueError, match="ifc voter needs information-flow labels"):
        judges.judge("ifc")
    with pytest.raises(ValueError, match="unknown voter kind 'oracle'"):
        judges.judge("oracle")
