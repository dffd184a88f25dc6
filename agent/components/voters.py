"""Voter components: each undecided intent gets one vote from each voter, in log order.

A voter's judgement is a function ``(state, record, ballot) -> Vote``; this module plans which
intents need its vote (a pure function of the fold) and runs the judgement against the bus. A
restarted voter replays the bus and sees its own earlier votes, so it votes at most once per
intent (a vote in flight when it died may appear twice; only the first counts).
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
class Ballot:
    """Who votes on which intent: a judge fills it in with its verdict."""

    intent_id: int
    voter_id: str
    kind: str

    def cast(
        self,
        approve: bool | None,
        reason: str,
        probability: float | None = None,
        *,
        escalate: bool = False,
    ) -> e.Vote:
        """The vote entry; an escalation asks a person (agent/core/policy.py, "Escalation")."""
        return e.Vote(
            self.intent_id,
            self.voter_id,
            self.kind,
            reason,
            approve,
            probability,
            escalate or None,
        )


Judge = Callable[[BusState, IntentRecord, Ballot], Awaitable[e.Vote]]


def plan(state: BusState, voter_id: str) -> list[IntentRecord]:
    """The undecided intents ``voter_id`` has not voted on, in log order."""
    return [
        record
        for record in state.undecided.values()
        if not any(vote.voter_id == voter_id for _, vote in record.votes)
    ]


class Voter(Component):
    """Votes on every intent that is still undecided when it gets to it."""

    def __init__(self, log: LogAPI, bus: str, voter_id: str, kind: str, judge: Judge) -> None:
        super().__init__(log, bus)
        self.voter_id = voter_id
        self.kind = kind
        self.judge = judge

    async def step(self, now: int) -> int | None:
        for record in plan(self.state, self.voter_id):
            ballot = Ballot(record.position, self.voter_id, self.kind)
            vote = await self.judge(self.state, record, ballot)
            await self.append(*vote.to_entry())
        return None


def rule_judge(default_rules: RuleSet) -> Judge:
    """Rules from the file, replaced by the latest ``voter_policy`` of kind ``rule`` before the
    intent (``{"kind": "rule", "default": ..., "rules": [...]}``)."""

    async def judge(state: BusState, record: IntentRecord, ballot: Ballot) -> e.Vote:
        rules = default_rules
        policy = state.voter_policy_for(record.position, "rule")
        if policy is not None:
            doc = {k: v for k, v in policy.policy.items() if k != "kind"}
            try:
                rules = RuleSet.from_doc(doc)
            except RuleError as exc:  # a broken policy must not open the gate
                return ballot.cast(False, f"rule policy v{policy.version} is invalid: {exc}")
        verdict = rules.evaluate(record.intent.action, state.bus)
        return ballot.cast(verdict.approve, verdict.reason)

    return judge


def llm_judge(client: openai.OpenAI, model: str, *, timeout: float = 60) -> Judge:
    """The LLM voter: the model's structured verdict on the intent in its bus context."""

    async def judge(state: BusState, record: IntentRecord, ballot: Ballot) -> e.Vote:
        context = llm_voter.context_from_bus(state, record)
        verdict = await llm_voter.judge(client, model, context, timeout=timeout)
        return verdict.to_vote(ballot.intent_id, ballot.voter_id, ballot.kind)

    return judge


def provenance_judge() -> Judge:
    """The provenance voter: rejects actions whose values only injected instructions supplied."""

    async def judge(state: BusState, record: IntentRecord, ballot: Ballot) -> e.Vote:
        sources = provenance.sources_from_bus(state, record.position)
        verdict = provenance.judge_action(record.intent.action, sources)
        return ballot.cast(verdict.approve, verdict.reason)

    return judge


def ifc_judge(labels: ifc.Labels) -> Judge:
    """The information-flow voter: escalates calls whose critical values come from content
    others can write (agent/judgement/ifc.py), whatever that content says."""

    async def judge(state: BusState, record: IntentRecord, ballot: Ballot) -> e.Vote:
        sources = ifc.sources_from_bus(state, record.position, labels)
        verdict = ifc.judge_call(labels, record.intent.action, sources)
        return ballot.cast(verdict.approve, verdict.reason, escalate=verdict.escalate)

    return judge


@dataclass(frozen=True, slots=True)
class Judges:
    """What each kind of voter judges with: the rule voter's rules, the information-flow
    voter's labels, the LLM voter's model (client, name). A kind whose need is missing is a
    ValueError when asked for."""

    rules: RuleSet | None = None
    labels: ifc.Labels | None = None
    reviewer: tuple[openai.OpenAI, str] | None = None

    def judge(self, kind: str) -> Judge:
        """The judge of a voter of ``kind`` (rule, provenance, ifc or llm)."""
        match kind:
            case "provenance":
                return provenance_judge()
            case "rule" if self.rules is not None:
                return rule_judge(self.rules)
            case "ifc" if self.labels is not None:
                return ifc_judge(self.labels)
            case "llm" if self.reviewer is not None:
                return llm_judge(*self.reviewer)
            case "rule" | "ifc" | "llm":
                raise ValueError(f"a {kind} voter needs {_NEEDS[kind]}")
        raise ValueError(f"unknown voter kind {kind!r} (known: rule, provenance, ifc, llm)")


_NEEDS = {"rule": "rules", "ifc": "information-flow labels", "llm": "a model"}
