"""The decider component: turns votes into commit or abort under the bus's decider policy.

The policy core (agent/core/policy.py) is pure and deterministic, so several deciders may run
on one
bus; the first decision on the log is final and readers ignore the rest. The policy for an
intent is the latest decider_policy entry before it, so a change applies only to later intents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logact.agent.components.runner import Component
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import DEFAULT_POLICY, Policy, decide
from logact.protocol.api import LogAPI


@dataclass(slots=True)
class Plan:
    """The decisions due now, and when (ms) to look again for a deadline, if ever."""

    decisions: list[e.Commit | e.Abort] = field(default_factory=list)
    wake: int | None = None


def plan(state: BusState, now: int) -> Plan:
    """What the policies say about every undecided intent at ``now``."""
    due = Plan()
    for record in state.undecided.values():
        policy = state.decider_policies.policy_for(record.position)
        decision = decide(
            policy,
            record.vote_entries(),
            intent_id=record.position,
            intent_ts_ms=record.ts,
            now_ms=now,
        )
        if decision is not None:
            due.decisions.append(decision)
        elif policy.deadline_ms is not None:
            deadline = record.ts + policy.deadline_ms
            due.wake = deadline if due.wake is None else min(due.wake, deadline)
    return due


class Decider(Component):
    """``default`` decides intents appended before any decider_policy entry."""

    def __init__(self, log: LogAPI, bus: str, default: Policy = DEFAULT_POLICY) -> None:
        super().__init__(log, bus)
        self.state.decider_policies.default = default

    async def step(self, now: int) -> int | None:
        due = plan(self.state, now)
        if due.decisions:
            await self.append_batch([decision.to_entry() for decision in due.decisions])
        return due.wake
