"""The decider component: turns votes into commit or abort under the bus's decider policy.

The policy core (agent/judgement/policy.py) is pure and deterministic, so several deciders may run
on one
bus; the first decision on the log is final and readers ignore the rest. The policy for an
intent is the latest decider_policy entry before it, so a change applies only to later intents.
"""

from __future__ import annotations

from logact.agent.components.runner import Component
from logact.agent.core import entries as e
from logact.agent.judgement.policy import DEFAULT_POLICY, Policy, decide
from logact.protocol.api import LogAPI


class Decider(Component):
    """``default`` decides intents appended before any decider_policy entry."""

    def __init__(self, log: LogAPI, bus: str, default: Policy = DEFAULT_POLICY) -> None:
        super().__init__(log, bus)
        self.state.decider_policies.default = default
        self._decided: set[int] = set()

    async def step(self, now: int) -> int | None:
        wake: int | None = None
        for record in list(self.state.undecided.values()):
            if record.position in self._decided:
                continue
            policy = self.state.decider_policies.policy_for(record.position)
            decision = decide(policy, record.policy_votes(), intent_ts_ms=record.ts, now_ms=now)
            if decision is None:
                if policy.deadline_ms is not None:
                    due = record.ts + policy.deadline_ms
                    wake = due if wake is None else min(wake, due)
                continue
            entry_type = e.Commit if decision.commit else e.Abort
            await self.append(
                *entry_type(record.position, decision.reason, policy.version).to_entry()
            )
            self._decided.add(record.position)
        return wake
