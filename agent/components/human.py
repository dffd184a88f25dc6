"""The human voter's view: which intents wait for a person, and the context to judge them."""

from __future__ import annotations

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.introspection.timeline import clip, describe_action, status


def pending(state: BusState, voter_id: str) -> list[IntentRecord]:
    """Undecided intents this voter has not voted on, oldest first."""
    return [
        record
        for record in state.undecided.values()
        if not any(vote.voter_id == voter_id for _, vote in record.votes)
    ]


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
