"""An agent's bus folded into plain state: the one view every component replays.

Pure: entries go in (in log order) and nothing here does I/O. Each component keeps a
:class:`BusState`, catches up by replaying the bus from its start, and then applies entries as
they commit; what it should do next is a function of this state.

Entries whose body is not valid for their type are kept in ``invalid`` and otherwise ignored: a
bad entry (written by an admin, or by an older version) must not stop an agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from logact.agent.core import entries as e
from logact.agent.core.policy import DecisionLog, Policy, PolicyError, PolicyLog
from logact.protocol.codec import Entry

T = TypeVar("T")


@dataclass(slots=True)
class IntentRecord:
    """One intent and everything the bus says about it."""

    position: int
    ts: int
    author: str
    intent: e.Intent
    votes: list[tuple[int, e.Vote]] = field(default_factory=list)
    decision: e.Commit | e.Abort | None = None  # the first one: final
    exec_start: int | None = None  # position of the first exec_start
    result: e.Result | None = None  # the first result

    @property
    def committed(self) -> bool:
        return isinstance(self.decision, e.Commit)

    @property
    def aborted(self) -> bool:
        return isinstance(self.decision, e.Abort)

    @property
    def in_doubt(self) -> bool:
        """Started, no result: it may or may not have taken effect."""
        return self.exec_start is not None and self.result is None

    @property
    def closed(self) -> bool:
        """Nothing more will happen to it: aborted, or has a result."""
        return self.aborted or self.result is not None

    def vote_entries(self) -> list[e.Vote]:
        """The counted votes, in log order."""
        return [vote for _, vote in self.votes]


class BusState:
    """The fold of one bus."""

    def __init__(self, bus: str) -> None:
        self.bus = bus
        self.next = 0  # the position after the last entry applied (the cursor)
        self.entries: list[tuple[Entry, e.AgentEntry]] = []  # every valid entry, in log order
        self.intents: dict[int, IntentRecord] = {}
        self.undecided: dict[int, IntentRecord] = {}  # no decision yet (voters, deciders)
        self.runnable: dict[int, IntentRecord] = {}  # committed, not started (executor)
        self.invalid: list[tuple[Entry, str]] = []
        self.decider_policies = PolicyLog()
        self.voter_policies: list[tuple[int, e.VoterPolicy]] = []  # accepted, ascending version
        self.decisions = DecisionLog()
        self.orphans: list[Entry] = []  # votes/decisions/results naming no intent
        #: Votes and decisions whose author the intent's policy does not accept, with why.
        self.forged: list[tuple[Entry, str]] = []

    def apply(self, raw: Entry) -> e.AgentEntry | None:
        """Fold one entry (positions must come in order); returns it typed, or None if invalid."""
        if raw.pos < self.next:
            return None  # already applied (a resumed subscription may repeat)
        self.next = raw.pos + 1
        try:
            entry = e.parse(raw.type, raw.body)
        except e.EntryError as exc:
            if raw.type in e.ENTRY_TYPES:
                self.invalid.append((raw, str(exc)))
            return None  # not an agent entry at all (e.g. a note): not ours to judge
        if not self._fold(raw, entry):
            self.orphans.append(raw)
        self.entries.append((raw, entry))
        return entry

    def _fold(self, raw: Entry, entry: e.AgentEntry) -> bool:
        match entry:
            case e.Intent():
                record = IntentRecord(raw.pos, raw.ts, raw.author, entry)
                self.intents[raw.pos] = self.undecided[raw.pos] = record
            case e.Vote() | e.Commit() | e.Abort() | e.ExecStart() | e.Result():
                about = self.intents.get(entry.intent_id)
                if about is None:
                    return False
                self._fold_about(raw, entry, about)
            case e.DeciderPolicy():
                try:
                    policy = Policy.from_doc({**entry.policy, "version": entry.version})
                except PolicyError as exc:
                    self.invalid.append((raw, str(exc)))
                else:
                    self.decider_policies.add(raw.pos, policy)
            case e.VoterPolicy():
                last = self.voter_policies[-1][1].version if self.voter_policies else 0
                if entry.version > last:
                    self.voter_policies.append((raw.pos, entry))
        return True

    def _fold_about(self, raw: Entry, entry: e.AgentEntry, record: IntentRecord) -> None:
        policy = self.decider_policies.policy_for(record.position)
        match entry:
            case e.Vote() if not policy.counts_vote(entry.kind, raw.author):
                signer = policy.signers.get(entry.kind)
                why = f"a {entry.kind!r} vote counts only from {signer!r}, not {raw.author!r}"
                self.forged.append((raw, why if signer else f"no signer for {entry.kind!r}"))
            case e.Commit() | e.Abort() if not policy.counts_decision(raw.author):
                self.forged.append((raw, f"{raw.author!r} is not a decider of this bus"))
            case e.Vote():
                record.votes.append((raw.pos, entry))
            case e.Commit() | e.Abort():
                if self.decisions.record(entry):
                    record.decision = entry
                    del self.undecided[record.position]
                    if record.committed and record.exec_start is None and record.result is None:
                        self.runnable[record.position] = record
            case e.ExecStart():
                if record.exec_start is None:
                    record.exec_start = raw.pos
                self.runnable.pop(record.position, None)
            case e.Result():
                if record.result is None:
                    record.result = entry
                self.runnable.pop(record.position, None)

    def voter_policy_for(
        self, intent_position: int, kind: str | None = None
    ) -> e.VoterPolicy | None:
        """The latest voter policy (for voters of ``kind``) appended before the intent.

        A change applies to later intents only. A policy document names the voter kind it is
        for in its ``kind`` key.
        """
        found = None
        for position, policy in self.voter_policies:
            if position >= intent_position:
                break
            if kind is None or policy.policy.get("kind") == kind:
                found = policy
        return found

    def in_doubt(self) -> list[IntentRecord]:
        return [r for r in self.intents.values() if r.in_doubt]

    def of_type(self, cls: type[T]) -> list[tuple[Entry, T]]:
        return [(raw, entry) for raw, entry in self.entries if isinstance(entry, cls)]
