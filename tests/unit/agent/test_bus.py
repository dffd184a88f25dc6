"""The bus fold (agent/core/bus.py): what every component replays before it acts.

Entries are built by hand as they come off the log (position, timestamp, author, type, body)
and applied in order; the tests check the records, the ``undecided`` / ``runnable`` indexes, the
decision log and the policy histories that the voters, decider, executor and driver read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import Policy
from logact.protocol.codec import Entry

BUS = "agent/test-bus"


class Bus:
    """A hand-built bus: appends entries at consecutive positions and folds each one."""

    def __init__(self, bus: str = BUS) -> None:
        self.state = BusState(bus)
        self.raws: list[Entry] = []

    def raw(self, entry_type: str, body: Any, *, author: str = "local", ts: int = 0) -> Entry:
        """Append an arbitrary (type, body) and fold it; returns the raw entry."""
        raw = Entry(len(self.raws), ts or 1000 + len(self.raws), entry_type, author, body)
        self.raws.append(raw)
        self.state.apply(raw)
        return raw

    def add(self, entry: e.AgentEntry, *, author: str = "local", ts: int = 0) -> int:
        """Append a typed entry and fold it; returns its position."""
        return self.raw(*entry.to_entry(), author=author, ts=ts).pos

    def intent(self, tool: str = "shell", **arguments: Any) -> int:
        return self.add(e.Intent(e.ToolCall(tool, arguments or {"command": "ls"})))

    def vote(self, intent_id: int, approve: bool = True, voter: str = "rules") -> int:
        return self.add(e.Vote(intent_id, voter, "rule", f"{voter} says {approve}", approve))


def test_intent_opens_an_undecided_record_with_its_header() -> None:
    bus = Bus()
    pos = bus.add(e.Intent(e.ToolCall("shell", {"command": "ls"}), "look"), author="driver", ts=7)
    record = bus.state.intents[pos]
    assert (record.position, record.ts, record.author) == (pos, 7, "driver")
    assert record.intent.reasoning == "look"
    assert record.votes == [] and record.decision is None and record.result is None
    assert bus.state.undecided == {pos: record}
    assert bus.state.runnable == {}
    assert not record.committed and not record.aborted and not record.closed
    assert bus.state.next == pos + 1


def test_votes_attach_to_their_intent_in_log_order() -> None:
    bus = Bus()
    first, second = bus.intent(), bus.intent()
    v1 = bus.vote(second, True, "rules")
    v2 = bus.vote(first, False, "llm")
    v3 = bus.add(e.Vote(second, "judge", "llm", "unsure", probability=0.25))
    assert [pos for pos, _ in bus.state.intents[first].votes] == [v2]
    assert [pos for pos, _ in bus.state.intents[second].votes] == [v1, v3]
    assert bus.state.intents[second].vote_entries() == [
        e.Vote(second, "rules", "rule", "rules says True", True),
        e.Vote(second, "judge", "llm", "unsure", probability=0.25),
    ]
    # Votes decide nothing by themselves.
    assert set(bus.state.undecided) == {first, second}


def test_commit_then_exec_start_then_result() -> None:
    bus = Bus()
    pos = bus.intent()
    record = bus.state.intents[pos]
    bus.add(e.Commit(pos, "ok", 0))
    assert record.committed and isinstance(record.decision, e.Commit)
    assert bus.state.undecided == {} and bus.state.runnable == {pos: record}
    start = bus.add(e.ExecStart(pos))
    assert record.exec_start == start and record.in_doubt
    assert bus.state.runnable == {} and bus.state.in_doubt() == [record]
    assert not record.closed
    bus.add(e.Result(pos, ok=True, output="out"))
    assert record.result == e.Result(pos, ok=True, output="out")
    assert not record.in_doubt and record.closed and bus.state.in_doubt() == []


def test_abort_closes_the_intent_and_never_makes_it_runnable() -> None:
    bus = Bus()
    pos = bus.intent()
    bus.add(e.Abort(pos, "vetoed"))
    record = bus.state.intents[pos]
    assert record.aborted and record.closed and not record.committed
    assert bus.state.undecided == {} and bus.state.runnable == {}


def test_first_decision_is_final_and_a_disagreeing_one_is_a_conflict() -> None:
    bus = Bus()
    committed, aborted = bus.intent(), bus.intent()
    bus.add(e.Commit(committed, "first"))
    bus.add(e.Commit(committed, "again"))  # agrees: a duplicate, not a conflict
    bus.add(e.Abort(committed, "late abort"))
    bus.add(e.Abort(aborted, "no"))
    bus.add(e.Commit(aborted, "late commit"))
    assert bus.state.intents[committed].decision == e.Commit(committed, "first")
    assert bus.state.intents[aborted].decision == e.Abort(aborted, "no")
    assert bus.state.decisions.decision_for(committed) == e.Commit(committed, "first")
    assert bus.state.decisions.conflicts == [
        e.Abort(committed, "late abort"),
        e.Commit(aborted, "late commit"),
    ]
    # The late commit does not make the aborted intent runnable.
    assert set(bus.state.runnable) == {committed}


def test_started_or_finished_intents_are_not_runnable_when_the_commit_comes_later() -> None:
    bus = Bus()
    started, finished = bus.intent(), bus.intent()
    bus.add(e.ExecStart(started))
    bus.add(e.Result(finished, ok=True))  # e.g. a hook harness ran it and recorded the outcome
    bus.add(e.Commit(started, "ok"))
    bus.add(e.Commit(finished, "ok"))
    assert bus.state.runnable == {} and bus.state.undecided == {}
    assert [r.position for r in bus.state.in_doubt()] == [started]


def test_only_the_first_exec_start_and_result_count() -> None:
    bus = Bus()
    pos = bus.intent()
    bus.add(e.Commit(pos, "ok"))
    first_start = bus.add(e.ExecStart(pos))
    bus.add(e.ExecStart(pos))
    bus.add(e.Result(pos, ok=False, error="interrupted", in_doubt=True))
    bus.add(e.Result(pos, ok=True, output="late"))
    record = bus.state.intents[pos]
    assert record.exec_start == first_start
    assert record.result is not None and record.result.in_doubt
    assert bus.state.runnable == {}


def test_invalid_agent_bodies_are_kept_aside_and_other_types_ignored() -> None:
    bus = Bus()
    bad_intent = bus.raw("intent", {"action": {"kind": "teleport"}})
    bad_vote = bus.raw("vote", {"intent_id": 0, "voter_id": "v", "kind": "rule"})
    note = bus.raw("note", {"anything": True})
    not_a_map = bus.raw("commit", "yes")
    good = bus.intent()
    assert [raw for raw, _ in bus.state.invalid] == [bad_intent, bad_vote, not_a_map]
    assert "action.kind" in bus.state.invalid[0][1]
    assert "'reason'" in bus.state.invalid[1][1]
    assert set(bus.state.intents) == {good}
    assert [raw for raw, _ in bus.state.entries] == [bus.raws[good]]
    assert note not in bus.state.orphans
    assert bus.state.next == good + 1  # every entry advanced the cursor


def test_apply_returns_the_typed_entry_or_none() -> None:
    state = BusState(BUS)
    intent = e.Intent(e.ToolCall("shell", {"command": "ls"}))
    assert state.apply(Entry(0, 1, "intent", "a", intent.to_body())) == intent
    assert state.apply(Entry(1, 1, "note", "a", {})) is None
    assert state.apply(Entry(2, 1, "vote", "a", {})) is None
    assert state.apply(Entry(0, 1, "intent", "a", intent.to_body())) is None


def test_entries_naming_no_intent_are_orphans() -> None:
    bus = Bus()
    intent = bus.intent()
    vote_pos = bus.vote(intent)
    orphan_vote = bus.vote(99)  # no such position
    orphan_commit = bus.add(e.Commit(vote_pos, "a vote is not an intent"))
    orphan_result = bus.add(e.Result(orphan_commit + 5, ok=True))  # a position not yet written
    orphan_start = bus.add(e.ExecStart(12345))
    assert [raw.pos for raw in bus.state.orphans] == [
        orphan_vote,
        orphan_commit,
        orphan_result,
        orphan_start,
    ]
    assert bus.state.intents[intent].votes == [(vote_pos, bus.state.intents[intent].votes[0][1])]
    assert bus.state.decisions.decisions() == {}
    assert set(bus.state.undecided) == {intent}


def test_repeated_and_old_positions_are_ignored() -> None:
    bus = Bus()
    intent = bus.intent()
    vote = bus.vote(intent)
    commit = bus.add(e.Commit(intent, "ok"))
    before = (bus.state.next, list(bus.state.entries))
    for pos in (intent, vote, commit):  # a resumed subscription may deliver them again
        assert bus.state.apply(bus.raws[pos]) is None
    # An old position with a different body (never legal on the log) is ignored too.
    assert bus.state.apply(Entry(vote, 1, *e.Abort(intent, "late").to_entry()[:1], "x", {})) is None
    assert (bus.state.next, bus.state.entries) == before
    assert len(bus.state.intents[intent].votes) == 1
    assert bus.state.decisions.conflicts == []
    assert set(bus.state.runnable) == {intent}


def test_decider_policies_take_effect_for_later_intents_and_only_with_higher_versions() -> None:
    bus = Bus()
    early = bus.intent()
    v1 = bus.add(e.DeciderPolicy(1, {"kind": "on_by_default"}))
    middle = bus.intent()
    bus.add(e.DeciderPolicy(1, {"kind": "first_voter"}))  # same version: a lost race
    bus.add(e.DeciderPolicy(3, {"kind": "all", "params": {"kinds": ["rule"]}}))
    bus.add(e.DeciderPolicy(2, {"kind": "off_by_default"}))  # older version: stale
    late = bus.intent()
    bad = bus.raw("decider_policy", {"version": 4, "policy": {"kind": "majority"}})
    version_zero = bus.raw("decider_policy", {"version": 0, "policy": {"kind": "on_by_default"}})
    last = bus.intent()
    policies = bus.state.decider_policies
    assert policies.policy_for(early) == policies.default == Policy("off_by_default")
    assert policies.policy_for(middle) == Policy("on_by_default", version=1)
    assert policies.policy_for(late) == Policy("all", {"kinds": ["rule"]}, version=3)
    assert policies.policy_for(last) == policies.policy_for(late) == policies.current
    assert len(policies) == 2
    assert [raw for raw, _ in bus.state.invalid] == [bad, version_zero]
    assert policies.policy_for(v1) == policies.default  # the policy entry itself: not before it


def test_voter_policy_applies_only_to_later_intents_of_its_kind() -> None:
    bus = Bus()
    before = bus.intent()
    rule_v1 = e.VoterPolicy(1, {"kind": "rule", "default": "allow"})
    bus.add(rule_v1)
    between = bus.intent()
    llm_v2 = e.VoterPolicy(2, {"kind": "llm", "prompt": "be strict"})
    bus.add(llm_v2)
    bus.add(e.VoterPolicy(1, {"kind": "rule", "default": "deny"}))  # not newer: ignored
    rule_v3 = e.VoterPolicy(3, {"kind": "rule", "rules": []})
    bus.add(rule_v3)
    after = bus.intent()
    state = bus.state
    assert state.voter_policy_for(before, "rule") is None
    assert state.voter_policy_for(before) is None
    assert state.voter_policy_for(between, "rule") == rule_v1
    assert state.voter_policy_for(between, "llm") is None
    assert state.voter_policy_for(after, "rule") == rule_v3
    assert state.voter_policy_for(after, "llm") == llm_v2
    assert state.voter_policy_for(after) == rule_v3
    assert state.voter_policy_for(after, "simulation") is None
    assert [p.version for _, p in state.voter_policies] == [1, 2, 3]


def test_of_type_lists_typed_entries_in_log_order() -> None:
    bus = Bus()
    a, b = bus.intent(), bus.intent("read_file", path="x")
    bus.vote(a)
    found = bus.state.of_type(e.Intent)
    assert [raw.pos for raw, _ in found] == [a, b]
    assert [entry.action.tool for _, entry in found] == ["shell", "read_file"]  # type: ignore[union-attr]


# --- random interleavings ----------------------------------------------------------------------


@dataclass
class Model:
    """What the fold should say, kept independently: per intent, its first decision etc."""

    decision: dict[int, bool] = field(default_factory=dict)  # intent -> commit?
    started: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    conflicts: list[tuple[int, bool]] = field(default_factory=list)
    intents: list[int] = field(default_factory=list)
    orphans: int = 0
    invalid: int = 0


OP_NAMES = ("intent", "vote", "commit", "abort", "exec_start", "result")
OPS = st.lists(
    st.tuples(
        st.sampled_from((*OP_NAMES, "dup", "note", "invalid", "orphan")),
        st.integers(min_value=0, max_value=50),
    ),
    max_size=60,
)


def _apply_op(bus: Bus, model: Model, op: str, n: int) -> None:
    """Append the entry ``op`` stands for (about intent number ``n``) and update the model."""
    if op == "note":
        bus.raw("note", {"n": n})
    elif op == "invalid":
        bus.raw("commit", {"intent_id": n})  # no reason: invalid
        model.invalid += 1
    elif op == "orphan":
        bus.add(e.Commit(10_000 + n, "names nothing"))
        model.orphans += 1
    elif op == "dup":  # a replayed entry: ignored
        if bus.raws:
            assert bus.state.apply(bus.raws[n % len(bus.raws)]) is None
    elif op == "intent" or not model.intents:
        model.intents.append(bus.intent())
    else:
        target = model.intents[n % len(model.intents)]
        if op == "vote":
            bus.vote(target, n % 2 == 0, f"v{n % 3}")
        elif op in ("commit", "abort"):
            commit = op == "commit"
            bus.add((e.Commit if commit else e.Abort)(target, op))
            if target not in model.decision:
                model.decision[target] = commit
            elif model.decision[target] != commit:
                model.conflicts.append((target, commit))
        elif op == "exec_start":
            bus.add(e.ExecStart(target))
            model.started.add(target)
        else:
            bus.add(e.Result(target, ok=True, output=str(n)))
            model.finished.add(target)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_random_interleavings_keep_the_indexes_right(ops: list[tuple[str, int]]) -> None:
    """Whatever the order, undecided = intents without a decision and runnable = committed
    intents without exec_start or result; the first decision wins; replays, notes, invalid
    bodies and orphans change nothing."""
    bus = Bus()
    model = Model()
    for op, n in ops:
        _apply_op(bus, model, op, n)
        state = bus.state
        assert set(state.intents) == set(model.intents)
        assert set(state.undecided) == {p for p in model.intents if p not in model.decision}
        assert set(state.runnable) == {
            p
            for p, commit in model.decision.items()
            if commit and p not in model.started and p not in model.finished
        }
        for p in model.intents:
            record = state.intents[p]
            assert state.undecided.get(p, record) is record
            assert state.runnable.get(p, record) is record
            if p in model.decision:
                assert record.committed == model.decision[p]
                assert record.aborted == (not model.decision[p])
            assert record.in_doubt == (p in model.started and p not in model.finished)
        assert [(d.intent_id, d.commit) for d in state.decisions.conflicts] == model.conflicts
        assert state.next == len(bus.raws)
        assert (len(state.orphans), len(state.invalid)) == (model.orphans, model.invalid)
