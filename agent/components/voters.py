"""Voter components: each undecided intent gets one vote from each voter, in log order.

A voter's judgement is a function ``(state, record) -> Judgement``; this module runs it against
the bus. A restarted voter replays the bus and sees its own earlier votes, so it votes at most
once per intent (a vote in flight when it died may appear twice; only the first counts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import openai

from logact.agent.components.runner import Component
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.judgement import ifc, llm_voter, provenance
from logact.agent.judgement.rules import RuleError, RuleSet
from logact.protocol.api import LogAPI


@dataclass(frozen=True, slots=True)
class Judgement:
    approve: bool | None
    reason: str
    probability: float | None = None
    escalate: bool = False  # ask a person (agent/judgement/policy.py, "Escalation")


Judge = Callable[[BusState, IntentRecord], Awaitable[Judgement]]


class Voter(Component):
    """Votes on every intent that is still undecided when it gets to it."""

    def __init__(self, log: LogAPI, bus: str, voter_id: str, kind: str, judge: Judge) -> None:
        super().__init__(log, bus)
        self.voter_id = voter_id
        self.kind = kind
        self.judge = judge
        self._voted: set[int] = set()

    def _has_voted(self, record: IntentRecord) -> bool:
        if record.position in self._voted:
            return True
        return any(vote.voter_id == self.voter_id for _, vote in record.votes)

    async def step(self, now: int) -> int | None:
        for record in list(self.state.undecided.values()):
            if record.decision is not None or self._has_voted(record):
                continue
            judgement = await self.judge(self.state, record)
            vote = e.Vote(
                record.position,
                self.voter_id,
                self.kind,
                judgement.reason,
                judgement.approve,
                judgement.probability,
                judgement.escalate or None,
            )
            await self.append(*vote.to_entry())
            self._voted.add(record.position)
        return None


def rule_judge(default_rules: RuleSet) -> Judge:
    """Rules from the file, replaced by the latest ``voter_policy`` of kind ``rule`` before the
    intent (``{"kind": "rule", "default": ..., "rules": [...]}``)."""

    async def judge(state: BusState, record: IntentRecord) -> Judgement:
        rules = default_rules
        policy = state.voter_policy_for(record.position, "rule")
        if policy is not None:
            doc = {k: v for k, v in policy.policy.items() if k != "kind"}
            try:
                rules = RuleSet.from_doc(doc)
            except RuleError as exc:  # a broken policy must not open the gate
                return Judgement(False, f"rule policy v{policy.version} is invalid: {exc}")
        verdict = rules.evaluate(record.intent.action, state.bus)
        return Judgement(verdict.approve, verdict.reason)

    return judge


def llm_judge(client: openai.OpenAI, model: str, *, timeout: float = 60) -> Judge:
    """The LLM voter: the model's structured verdict on the intent in its bus context."""

    async def judge(state: BusState, record: IntentRecord) -> Judgement:
        context = llm_voter.context_from_bus(state, record)
        verdict = await llm_voter.judge(client, model, context, timeout=timeout)
        vote = verdict.to_vote(record.position, "llm")
        return Judgement(vote.approve, vote.reason, vote.probability)

    return judge


def provenance_judge() -> Judge:
    """The provenance voter: rejects actions whose values only injected instructions supplied."""

    async def judge(state: BusState, record: IntentRecord) -> Judgement:
        sources = provenance.sources_from_bus(state, record.position)
        verdict = provenance.judge_action(record.intent.action, sources)
        return Judgement(verdict.approve, verdict.reason)

    return judge


def ifc_judge(labels: ifc.Labels) -> Judge:
    """The information-flow voter: escalates calls whose critical values come from content
    others can write (agent/judgement/ifc.py), whatever that content says."""

    async def judge(state: BusState, record: IntentRecord) -> Judgement:
        sources = ifc.sources_from_bus(state, record.position, labels)
        verdict = ifc.judge_call(labels, record.intent.action, sources)
        return Judgement(verdict.approve, verdict.reason, escalate=verdict.escalate)

    return judge
