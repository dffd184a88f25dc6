"""Changing an agent's policies from outside: documents checked as their readers will check
them, and new versions appended only onto the bus state they were numbered from.

A decider or voter reads policy entries from its bus and skips one it cannot use, so a bad
document must be refused before it is appended: it would be on the log for good. The version
numbers follow the bus's latest ones, and the append expects the tail they were read at, so two
operators changing a policy at once cannot both claim the same version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import DEFAULT_POLICY, Policy
from logact.agent.core.replay import read_state
from logact.agent.judgement.rules import RuleSet
from logact.protocol.api import LogAPI


class PolicyDocError(ValueError):
    """A policy document its reader would refuse; the message says why."""


def signed(doc: Any) -> Any:
    """A decider policy document with the shipped identities unless it names its own: votes of a
    kind count only from the principal named for it, decisions only from the decider."""
    if not isinstance(doc, dict):
        return doc
    return {"signers": dict(e.VOTE_SIGNERS), "deciders": list(e.DECIDERS), **doc}


def veto_policy(kinds: Sequence[str], deadline_ms: int) -> Policy:
    """A veto over ``kinds`` with the shipped identities: what a whole agent runs by default."""
    return Policy(
        "veto",
        {"kinds": list(kinds)},
        deadline_ms=deadline_ms,
        signers=e.VOTE_SIGNERS,
        deciders=e.DECIDERS,
    )


def decider_policy(text: str | None) -> Policy:
    """A decider's default policy from JSON text or ``@file``: {kind, params?, deadline_ms?,
    signers?, deciders?}; signers and deciders default to the shipped principals
    (:func:`signed`); no text is :data:`DEFAULT_POLICY`, signed."""
    try:
        if text is None:
            return Policy.from_doc(signed({"version": 0, **DEFAULT_POLICY.to_doc()}))
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        return Policy.from_doc(signed({"version": 0, **json.loads(text)}))
    except (OSError, TypeError, ValueError) as exc:
        raise PolicyDocError(str(exc)) from exc


def check_voter_policy(doc: Any) -> None:
    """A voter policy the voters of its kind will accept (ValueError / RuleError if not)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        raise ValueError('a voter policy is a JSON object with a string "kind"')
    if doc["kind"] == "rule":
        RuleSet.from_doc({k: v for k, v in doc.items() if k != "kind"})
    elif doc["kind"] == "llm" and not isinstance(doc.get("prompt_extra", ""), str):
        raise ValueError("an llm voter policy's prompt_extra must be a string")


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A new decider policy and/or voter policy, checked, not yet numbered."""

    decider: dict[str, Any] | None = None
    voter: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, decider: str | None, voter: str | None) -> PolicyChange:
        """Both documents parsed and checked before either is used (PolicyDocError if not); the
        decider's is :func:`signed`."""
        try:
            decider_doc = json.loads(decider) if decider is not None else None
            voter_doc = json.loads(voter) if voter is not None else None
            if decider is not None:
                decider_doc = signed(decider_doc)
                Policy.from_doc({"version": 1, **decider_doc})
            if voter is not None:
                check_voter_policy(voter_doc)
        except (TypeError, ValueError) as exc:
            raise PolicyDocError(str(exc)) from exc
        return cls(decider_doc, voter_doc)

    @property
    def empty(self) -> bool:
        return self.decider is None and self.voter is None

    def entries(self, state: BusState) -> list[tuple[str, Any]]:
        """The change as the entries that follow ``state``'s latest policy versions."""
        entries: list[tuple[str, Any]] = []
        if self.decider is not None:
            version = state.decider_policies.current.version + 1
            entries.append(e.DeciderPolicy(version, self.decider).to_entry())
        if self.voter is not None:
            last = state.voter_policies[-1][1].version if state.voter_policies else 0
            entries.append(e.VoterPolicy(last + 1, self.voter).to_entry())
        return entries


async def append_change(log: LogAPI, bus: str, change: PolicyChange) -> list[int]:
    """Append ``change`` to ``bus`` in one batch, at the tail its versions were numbered from
    (the log refuses the batch if anything was appended meanwhile); the positions."""
    state = await read_state(log, bus)
    positions = await log.append_batch(bus, change.entries(state), expect_tail=state.next)
    return list(positions)
