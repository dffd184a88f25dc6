"""Votes as the decider policy tests write them: on intent 0, a reason unless one matters."""

from __future__ import annotations

from logact.agent.core.entries import Vote


def vote(
    voter_id: str,
    kind: str,
    approve: bool | None = None,
    probability: float | None = None,
    reason: str = "ok",
    escalate: bool = False,
) -> Vote:
    """A vote on intent 0, as the bus would hold it."""
    return Vote(0, voter_id, kind, reason, approve, probability, escalate or None)
