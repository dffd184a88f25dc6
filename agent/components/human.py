"""The human voter: which intents wait for a person, the context to judge them, and the
person's answer as a vote on the bus."""

from __future__ import annotations

from dataclasses import dataclass

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.core.policy import ESCALATION_KIND
from logact.agent.core.text import clip
from logact.agent.introspection.timeline import describe_action, status
from logact.protocol.api import LogAPI


def pending(state: BusState, voter_id: str) -> list[IntentRecord]:
    """Undecided intents this voter has not voted on, oldest first."""
    return [
        record
        for record in state.undecided.values()
        if not any(vote.voter_id == voter_id for _, vote in record.votes)
    ]


def counts(state: BusState, position: int, voter_id: str) -> bool:
    """Whether a vote from ``voter_id`` on the intent at ``position`` would count: only a first
    vote, cast before the decision, does (a later one is recorded all the same)."""
    return any(record.position == position for record in pending(state, voter_id))


def context(state: BusState, record: IntentRecord, recent: int = 5) -> list[str]:
    """The task, the last few outcomes before the intent, the action and the votes so far."""
    lines: list[str] = []
    task = None
    outcomes: list[str] = []
    for raw, entry in state.entries:
        if raw.pos >= record.position:
            break
        if isinstance(entry, e.AgentInput):
            task = entry.text
        elif isinstance(entry, e.Intent):
            earlier = f"#{raw.pos} {clip(describe_action(entry.action), 60)}"
            outcomes.append(f"{earlier} → {status(state.intents[raw.pos])}")
    lines.append(f"task: {clip(task or '(none)', 200)}")
    lines += [f"earlier: {line}" for line in outcomes[-recent:]]
    lines.append(f"PROPOSED #{record.position}: {describe_action(record.intent.action)}")
    if record.intent.reasoning:
        lines.append(f"reasoning: {clip(record.intent.reasoning, 200)}")
    for _, v in record.votes:
        verdict = "ESCALATED TO YOU" if v.escalate else "approve" if v.approve else "reject"
        lines.append(f"vote: {v.voter_id} ({v.kind}) {verdict}: {v.reason}")
    return lines


#: What a person may say when asked about an intent, and what it means.
APPROVE, REJECT, SKIP = "approve", "reject", "skip"
WORDS = {"y": APPROVE, "yes": APPROVE, "n": REJECT, "no": REJECT, "s": SKIP, "skip": SKIP}


def understood(said: str) -> str | None:
    """What a person's reply means (:data:`APPROVE`, :data:`REJECT` or :data:`SKIP`), or None
    if it is none of :data:`WORDS` (ask again: a typo must not count as either way)."""
    return WORDS.get(said.strip().lower())


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer on the intent at ``position``; no reason says which way they went."""

    position: int
    approve: bool
    reason: str | None = None

    def vote(self, voter_id: str) -> e.Vote:
        default = "approved by a person" if self.approve else "rejected by a person"
        return e.Vote(
            self.position, voter_id, ESCALATION_KIND, self.reason or default, self.approve
        )


async def cast(log: LogAPI, bus: str, voter_id: str, answer: Answer) -> int:
    """Append ``answer`` as ``voter_id``'s vote; its position."""
    return await log.append(bus, *answer.vote(voter_id).to_entry())
