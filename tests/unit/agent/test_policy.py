"""Decider policy core: table tests (policy x vote pattern x deadline), properties, PolicyLog."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_votes import vote

from logact.agent.core.entries import Abort, Commit, Vote
from logact.agent.core.policy import (
    DEFAULT_POLICY,
    POLICY_KINDS,
    TIMEOUT_REASON,
    Decision,
    DecisionLog,
    Policy,
    PolicyError,
    PolicyLog,
    approves,
    decide,
    exact,
    first_vote_per_voter,
)


def yes(voter: str, kind: str, reason: str = "ok") -> Vote:
    return vote(voter, kind, approve=True, reason=reason)


def no(voter: str, kind: str, reason: str = "ok") -> Vote:
    return vote(voter, kind, approve=False, reason=reason)


def prob(voter: str, kind: str, p: float) -> Vote:
    return vote(voter, kind, probability=p)


# ---------------------------------------------------------------------------------------------
# The table: every policy x vote pattern x deadline

POLICIES = {
    "on_by_default": Policy("on_by_default"),
    "off_by_default": Policy("off_by_default"),
    "first_voter": Policy("first_voter"),
    "all": Policy("all", {"kinds": ["rule", "llm"]}),
    "any": Policy("any", {"kinds": ["rule", "llm"]}),
    "k_of_n": Policy("k_of_n", {"k": 2, "n": 3}),
    "veto": Policy("veto", {"kinds": ["rule", "llm"]}),
    "weighted": Policy("weighted", {"kind_weights": {"rule": 1, "llm": 1}, "threshold": 1.5}),
}
assert set(POLICIES) == set(POLICY_KINDS)

PATTERNS: dict[str, list[Vote]] = {
    "none": [],
    "one_approve": [yes("r1", "rule")],
    "approve": [yes("r1", "rule"), yes("l1", "llm")],
    "reject": [no("r1", "rule"), no("l1", "llm")],
    "mixed": [yes("r1", "rule"), no("l1", "llm")],
    # r1's second vote must be ignored: only the first vote per voter counts.
    "duplicate": [no("r1", "rule"), yes("r1", "rule"), yes("l1", "llm")],
    "dup_approve": [yes("r1", "rule"), yes("r1", "rule"), no("l1", "llm")],
    "prob_high": [prob("r1", "rule", 0.9), prob("l1", "llm", 0.7)],
    "prob_low": [prob("r1", "rule", 0.4), prob("l1", "llm", 0.9)],
    # A voter of a kind no kind-based policy lists.
    "unlisted_reject": [no("h1", "human")],
    "unlisted_approve": [yes("h1", "human"), yes("r1", "rule")],
}

# "C:a,b" commit, "A:a" abort (names that must appear in the reason), "-" undecided.
ON = "C:on_by_default"
OFF = "A:off_by_default"
TABLE: dict[str, dict[str, str]] = {
    "none": {
        "first_voter": "-",
        "all": "-",
        "any": "-",
        "k_of_n": "-",
        "veto": "-",
        "weighted": "-",
    },
    "one_approve": {
        "first_voter": "C:r1",
        "all": "-",
        "any": "C:r1",
        "k_of_n": "-",
        "veto": "-",
        "weighted": "-",
    },
    "approve": {
        "first_voter": "C:r1",
        "all": "C:r1,l1",
        "any": "C:r1",
        "k_of_n": "C:r1,l1",
        "veto": "C:r1,l1",
        "weighted": "C:r1,l1",
    },
    "reject": {
        "first_voter": "A:r1",
        "all": "A:r1",
        "any": "A:r1,l1",
        "k_of_n": "A:r1,l1",
        "veto": "A:r1",
        "weighted": "A:r1",
    },
    "mixed": {
        "first_voter": "C:r1",
        "all": "A:l1",
        "any": "C:r1",
        "k_of_n": "-",
        "veto": "A:l1",
        "weighted": "A:r1,l1",
    },
    "duplicate": {
        "first_voter": "A:r1",
        "all": "A:r1",
        "any": "C:l1",
        "k_of_n": "-",
        "veto": "A:r1",
        "weighted": "A:r1",
    },
    "dup_approve": {
        "first_voter": "C:r1",
        "all": "A:l1",
        "any": "C:r1",
        "k_of_n": "-",
        "veto": "A:l1",
        "weighted": "A:r1,l1",
    },
    "prob_high": {
        "first_voter": "C:r1",
        "all": "C:r1,l1",
        "any": "C:r1",
        "k_of_n": "C:r1,l1",
        "veto": "C:r1,l1",
        "weighted": "C:r1,l1",
    },
    "prob_low": {
        "first_voter": "A:r1",
        "all": "A:r1",
        "any": "C:l1",
        "k_of_n": "-",
        "veto": "A:r1",
        "weighted": "A:r1",
    },
    "unlisted_reject": {
        "first_voter": "A:h1",
        "all": "-",
        "any": "-",
        "k_of_n": "-",
        "veto": "A:h1",
        "weighted": "-",
    },
    "unlisted_approve": {
        "first_voter": "C:h1",
        "all": "-",
        "any": "C:r1",
        "k_of_n": "C:h1,r1",
        "veto": "-",
        "weighted": "-",
    },
}
for row in TABLE.values():
    row.update({"on_by_default": ON, "off_by_default": OFF})
assert set(TABLE) == set(PATTERNS)

DEADLINES = {"none": None, "not_passed": 1000, "passed": 1000}
INTENT_TS = 5_000
NOW = {"none": 1_000_000, "not_passed": INTENT_TS + 999, "passed": INTENT_TS + 1000}

CASES = [
    pytest.param(policy, pattern, deadline, id=f"{policy}-{pattern}-{deadline}")
    for policy in POLICIES
    for pattern in PATTERNS
    for deadline in DEADLINES
]


@pytest.mark.parametrize(("policy_name", "pattern", "deadline"), CASES)
def test_table(policy_name: str, pattern: str, deadline: str) -> None:
    base = POLICIES[policy_name]
    policy = Policy(base.kind, base.params, deadline_ms=DEADLINES[deadline])
    got = decide(
        policy, PATTERNS[pattern], intent_id=0, intent_ts_ms=INTENT_TS, now_ms=NOW[deadline]
    )
    expected = TABLE[pattern][policy_name]
    if expected == "-":
        if deadline == "passed":
            assert got == Abort(0, TIMEOUT_REASON, 0)
        else:
            assert got is None
        return
    outcome, names = expected.split(":")
    assert got is not None
    assert got.commit is (outcome == "C"), got
    for name in names.split(","):
        assert name in got.reason, (name, got)
    assert got.reason != TIMEOUT_REASON


def test_reasons_name_the_deciding_voter_and_quote_its_reason() -> None:
    veto = POLICIES["veto"]
    got = decide(
        veto,
        [yes("r1", "rule"), no("l1", "llm", "deletes /etc")],
        intent_id=0,
        intent_ts_ms=0,
        now_ms=0,
    )
    assert got == Abort(0, "vetoed by l1 (llm): deletes /etc", 0)


def test_k_of_n_abort_as_soon_as_unreachable() -> None:
    policy = Policy("k_of_n", {"k": 2, "n": 3})
    votes = [no("a", "rule"), yes("b", "llm"), no("c", "human")]
    assert decide(policy, votes[:2], intent_id=0, intent_ts_ms=0, now_ms=0) is None
    got = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
    assert got is not None and not got.commit
    assert "a, c" in got.reason and "b" in got.reason


def test_k_of_n_with_voter_set_ignores_others() -> None:
    policy = Policy("k_of_n", {"k": 2, "voters": ["a", "b", "c"]})
    votes = [yes("x", "rule"), yes("y", "rule"), yes("a", "rule")]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) is None
    got = decide(policy, [*votes, yes("c", "llm")], intent_id=0, intent_ts_ms=0, now_ms=0)
    assert got == Commit(0, "2 of 3 approved: a, c", 0)


def test_k_of_n_counts_only_listed_kinds_and_first_n_voters() -> None:
    policy = Policy("k_of_n", {"k": 1, "n": 2, "kinds": ["llm"]})
    votes = [yes("r", "rule"), no("l1", "llm"), no("l2", "llm"), yes("l3", "llm")]
    got = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
    assert got is not None and not got.commit and "l3" not in got.reason


def test_approve_threshold_param_changes_the_boolean_reading() -> None:
    votes = [prob("r1", "rule", 0.6)]
    default = Policy("first_voter")
    strict = Policy("first_voter", {"approve_threshold": 0.8})
    assert decide(default, votes, intent_id=0, intent_ts_ms=0, now_ms=0).commit is True  # type: ignore[union-attr]
    assert decide(strict, votes, intent_id=0, intent_ts_ms=0, now_ms=0).commit is False  # type: ignore[union-attr]
    # Exactly at the threshold approves.
    assert (
        decide(default, [prob("r", "rule", 0.5)], intent_id=0, intent_ts_ms=0, now_ms=0).commit
        is True
    )  # type: ignore[union-attr]


def test_explicit_approve_wins_over_probability_for_boolean_policies() -> None:
    sure_no = vote("r1", "rule", approve=False, probability=0.99)
    assert (
        decide(Policy("first_voter"), [sure_no], intent_id=0, intent_ts_ms=0, now_ms=0).commit
        is False
    )  # type: ignore[union-attr]
    weighted = Policy("weighted", {"voter_weights": {"r1": 1}, "threshold": 0.9})
    assert decide(weighted, [sure_no], intent_id=0, intent_ts_ms=0, now_ms=0).commit is True  # type: ignore[union-attr]


def test_first_voter_kinds_filter() -> None:
    policy = Policy("first_voter", {"kinds": ["human"]})
    votes = [no("r1", "rule"), yes("h1", "human", "looks fine")]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) == Commit(
        0, "first voter approved: h1 (human): looks fine", 0
    )


def test_weighted_slots_voter_weight_overrides_kind() -> None:
    policy = Policy(
        "weighted",
        {"voter_weights": {"boss": 3}, "kind_weights": {"llm": 0.1, "rule": 0.2}, "threshold": 0.3},
    )
    votes = [prob("l1", "llm", 1.0), prob("r1", "rule", 1.0)]
    for order in (votes, votes[::-1]):
        assert decide(policy, order, intent_id=0, intent_ts_ms=0, now_ms=0).commit is True  # type: ignore[union-attr]
    # boss (an llm) fills its own slot, not the llm slot: 0.3 is still reachable.
    assert decide(policy, [no("boss", "llm")], intent_id=0, intent_ts_ms=0, now_ms=0) is None
    got = decide(
        policy, [no("boss", "llm"), no("l1", "llm")], intent_id=0, intent_ts_ms=0, now_ms=0
    )
    assert got is not None and not got.commit and "boss" in got.reason and "l1" in got.reason
    assert (
        decide(policy, [yes("boss", "human")], intent_id=0, intent_ts_ms=0, now_ms=0).commit is True
    )  # type: ignore[union-attr]
    # A second llm voter does not refill the llm slot.
    assert (
        decide(policy, [no("l1", "llm"), yes("l2", "llm")], intent_id=0, intent_ts_ms=0, now_ms=0)
        is None
    )
    got = decide(
        policy,
        [no("l1", "llm"), yes("l2", "llm"), no("boss", "rule")],
        intent_id=0,
        intent_ts_ms=0,
        now_ms=0,
    )
    assert got is not None and not got.commit and "l2" not in got.reason


def test_weighted_arithmetic_is_exact_decimal() -> None:
    # Float sums of 0.2, 0.2, 0.5 straddle 0.9 depending on the order; in decimal the sum is
    # exactly 0.9, so every order must commit.
    assert min(0.2 + 0.2 + 0.5, 0.2 + 0.5 + 0.2) < 0.9 <= max(0.2 + 0.2 + 0.5, 0.2 + 0.5 + 0.2)
    policy = Policy("weighted", {"voter_weights": {"a": 0.2, "b": 0.2, "c": 0.5}, "threshold": 0.9})
    votes = [yes("a", "rule"), yes("b", "rule"), yes("c", "rule")]
    for order in itertools.permutations(votes):
        got = decide(policy, list(order), intent_id=0, intent_ts_ms=0, now_ms=0)
        assert got is not None and got.commit, (order, got)
    # "Unanimous" written as threshold == sum of weights is valid and reachable.
    assert 0.7 + 0.2 + 0.1 < 1.0
    unanimous = Policy(
        "weighted", {"voter_weights": {"a": 0.7, "b": 0.2, "c": 0.1}, "threshold": 1.0}
    )
    assert decide(unanimous, votes, intent_id=0, intent_ts_ms=0, now_ms=0).commit is True  # type: ignore[union-attr]
    assert exact(0.1) + exact(0.2) == exact(0.3)


def test_timeout_is_exact_at_the_boundary_and_votes_win_over_late_evaluation() -> None:
    policy = Policy("all", {"kinds": ["rule"]}, deadline_ms=100)
    assert decide(policy, [], intent_id=0, intent_ts_ms=0, now_ms=99) is None
    assert decide(policy, [], intent_id=0, intent_ts_ms=0, now_ms=100) == Abort(0, "timeout", 0)
    # Votes that decide stand even when evaluated after the deadline.
    assert (
        decide(policy, [yes("r", "rule")], intent_id=0, intent_ts_ms=0, now_ms=10_000).commit
        is True
    )  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Properties

KINDS = ("rule", "llm", "human")
VOTER_IDS = ("a", "b", "c", "d", "e")


@st.composite
def votes_strategy(draw: st.DrawFn, voter_ids: tuple[str, ...] = VOTER_IDS) -> Vote:
    voter = draw(st.sampled_from(voter_ids))
    kind = draw(st.sampled_from(KINDS))
    if kind != "human" and draw(st.integers(0, 5)) == 0:
        return vote(voter, kind, approve=False, escalate=True)
    if draw(st.booleans()):
        return vote(voter, kind, approve=draw(st.booleans()))
    return vote(voter, kind, probability=draw(st.floats(0, 1)))


kinds_st = st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True)
weight_st = st.floats(0, 5, allow_nan=False).map(lambda w: round(w, 3))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    kind = draw(st.sampled_from(POLICY_KINDS))
    params: dict[str, object] = {}
    if kind in ("all", "any", "veto") or (kind == "first_voter" and draw(st.booleans())):
        params["kinds"] = draw(kinds_st)
    elif kind == "k_of_n":
        if draw(st.booleans()):
            voters = draw(st.lists(st.sampled_from(VOTER_IDS), min_size=1, unique=True))
            params["voters"] = voters
            params["k"] = draw(st.integers(1, len(voters)))
        else:
            params["n"] = n = draw(st.integers(1, 5))
            params["k"] = draw(st.integers(1, n))
    elif kind == "weighted":
        vw = draw(st.dictionaries(st.sampled_from(VOTER_IDS), weight_st, max_size=3))
        kw = draw(st.dictionaries(st.sampled_from(KINDS), weight_st, max_size=3))
        total = sum(vw.values()) + sum(kw.values())
        if total <= 0:
            vw = {"a": 1.0}
            total = 1.0
        params = {"voter_weights": vw, "kind_weights": kw}
        params["threshold"] = draw(st.floats(0.001, 0.999)) * total
    if kind not in ("weighted", "on_by_default", "off_by_default") and draw(st.booleans()):
        params.setdefault("approve_threshold", draw(st.floats(0, 1)))
    return Policy(kind, params)


@settings(max_examples=100, deadline=None)
@given(policies(), st.lists(votes_strategy(), max_size=10))
def test_decision_is_monotonic_in_votes(policy: Policy, votes: list[Vote]) -> None:
    decided: Decision | None = None
    for i in range(len(votes) + 1):
        got = decide(policy, votes[:i], intent_id=0, intent_ts_ms=0, now_ms=0)
        if decided is not None:
            assert got == decided
        decided = got


@settings(max_examples=60, deadline=None)
@given(
    policies(),
    st.lists(votes_strategy(), max_size=8),
    st.integers(1, 50),
    st.integers(0, 100),
    st.integers(0, 100),
)
def test_decision_is_monotonic_in_time(
    policy: Policy, votes: list[Vote], deadline: int, t1: int, dt: int
) -> None:
    policy = Policy(policy.kind, policy.params, deadline_ms=deadline)
    first = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=t1)
    later = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=t1 + dt)
    if first is not None:
        assert later == first
    if t1 + dt >= deadline:
        assert later is not None  # a deadline always ends the wait


@settings(max_examples=60, deadline=None)
@given(policies(), st.lists(votes_strategy(), max_size=10), st.data())
def test_only_the_first_vote_per_voter_counts(
    policy: Policy, votes: list[Vote], data: st.DataObject
) -> None:
    firsts = list(first_vote_per_voter(votes))
    assert [v.voter_id for v in firsts] == list(dict.fromkeys(v.voter_id for v in votes))
    # Insert later votes by voters who already voted, anywhere after their first vote.
    extended = list(votes)
    for _ in range(data.draw(st.integers(0, 4))):
        if not extended:
            break
        i = data.draw(st.integers(0, len(extended) - 1))
        original = extended[i]
        flipped = vote(original.voter_id, data.draw(st.sampled_from(KINDS)), approve=True)
        j = data.draw(st.integers(i + 1, len(extended)))
        extended.insert(j, flipped)
    expected = decide(policy, firsts, intent_id=0, intent_ts_ms=0, now_ms=0)
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) == expected
    assert decide(policy, extended, intent_id=0, intent_ts_ms=0, now_ms=0) == expected


def dec(x: float) -> Fraction:
    return Fraction(repr(x))


def prob_of(vote: Vote) -> float:
    if vote.probability is not None:
        return vote.probability
    return 1.0 if vote.approve else 0.0


def _verdict(vote: Vote, policy: Policy) -> bool:
    return approves(vote, policy.params.get("approve_threshold", 0.5))


@st.composite
def complete_electorates(draw: st.DrawFn) -> tuple[Policy, list[Vote], bool]:
    """A policy, one vote from every voter it waits for (distinct voters), and the outcome."""
    kind = draw(st.sampled_from(("all", "any", "veto", "k_of_n", "weighted")))

    def verdict(voter: str, vkind: str) -> Vote:
        if draw(st.booleans()):
            return vote(voter, vkind, approve=draw(st.booleans()))
        return vote(voter, vkind, probability=draw(st.floats(0, 1)))

    if kind in ("all", "any", "veto"):
        kinds = draw(kinds_st)
        policy = Policy(kind, {"kinds": kinds})
        votes = [verdict(f"v{i}", k) for i, k in enumerate(kinds)]
        oks = [_verdict(v, policy) for v in votes]
        return policy, votes, (any(oks) if kind == "any" else all(oks))
    if kind == "k_of_n":
        n = draw(st.integers(1, 5))
        k = draw(st.integers(1, n))
        policy = Policy("k_of_n", {"k": k, "n": n})
        votes = [verdict(f"v{i}", draw(st.sampled_from(KINDS))) for i in range(n)]
        return policy, votes, sum(_verdict(v, policy) for v in votes) >= k
    vw = draw(st.dictionaries(st.sampled_from(VOTER_IDS), weight_st, min_size=1, max_size=4))
    kw = draw(st.dictionaries(st.sampled_from(KINDS), weight_st, max_size=3))
    total = sum(vw.values()) + sum(kw.values())
    if total <= 0:
        vw = {next(iter(vw)): 1.0}
        total = 1.0
    threshold = draw(st.floats(0.001, 0.999)) * total
    policy = Policy("weighted", {"voter_weights": vw, "kind_weights": kw, "threshold": threshold})
    votes = [verdict(voter, "rule") for voter in vw]
    votes += [verdict(f"k-{k}", k) for k in kw]
    score = sum(
        (dec(vw.get(v.voter_id, kw.get(v.kind, 0))) * dec(prob_of(v)) for v in votes),
        Fraction(0),
    )
    return policy, votes, score >= dec(threshold)


@settings(max_examples=100, deadline=None)
@given(complete_electorates(), st.randoms(use_true_random=False))
def test_order_of_votes_does_not_change_the_final_decision(
    case: tuple[Policy, list[Vote], bool], rnd: object
) -> None:
    policy, votes, expected = case
    shuffled = list(votes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for order in (votes, shuffled, votes[::-1]):
        got = decide(policy, order, intent_id=0, intent_ts_ms=0, now_ms=0)
        assert got is not None, (policy, order)
        assert got.commit is expected, (policy, order, got)


def test_order_independence_small_exhaustive() -> None:
    policy = Policy("k_of_n", {"k": 2, "voters": ["a", "b", "c"]})
    votes = [yes("a", "rule"), no("b", "rule"), yes("c", "llm")]
    results = {
        decide(policy, list(p), intent_id=0, intent_ts_ms=0, now_ms=0).commit  # type: ignore[union-attr]
        for p in itertools.permutations(votes)
    }
    assert results == {True}


# ---------------------------------------------------------------------------------------------
# PolicyLog and decisions


def test_policy_log_default_and_later_intents_only() -> None:
    log = PolicyLog()
    assert log.policy_for(0) == DEFAULT_POLICY
    assert log.current == DEFAULT_POLICY
    veto = Policy("veto", {"kinds": ["rule"]}, version=1)
    quorum = Policy("k_of_n", {"k": 2, "n": 3}, version=2)
    assert log.add(10, veto)
    assert log.add(20, quorum)
    assert log.policy_for(5) == DEFAULT_POLICY
    assert log.policy_for(10) == DEFAULT_POLICY  # never the entry's own position
    assert log.policy_for(11) is veto
    assert log.policy_for(20) is veto  # an intent before the change keeps the old policy
    assert log.policy_for(21) is quorum
    assert log.current is quorum
    assert len(log) == 2


def test_policy_log_configurable_default() -> None:
    on = Policy("on_by_default")
    log = PolicyLog(default=on)
    assert log.policy_for(100) is on


def test_policy_log_ignores_stale_versions_and_replays() -> None:
    log = PolicyLog()
    v1 = Policy("all", {"kinds": ["rule"]}, version=1)
    v1_other = Policy("any", {"kinds": ["llm"]}, version=1)  # lost the compare-and-swap
    v3 = Policy("first_voter", version=3)
    v2 = Policy("on_by_default", version=2)
    assert log.add(3, v1)
    assert not log.add(4, v1_other)
    assert not log.add(4, v1_other)  # replay of a seen position
    assert log.add(7, v3)
    assert not log.add(9, v2)
    assert log.policy_for(100) is v3
    assert log.policy_for(5) is v1
    assert not log.add(3, v1)  # replaying an earlier position is a no-op
    with pytest.raises(ValueError, match="log order"):
        log.add(5, v2)
    with pytest.raises(ValueError, match="position"):
        log.add(-1, v2)


def test_decision_log_first_decision_is_final() -> None:
    commit = Commit(7, "ok")
    abort = Abort(7, "timeout")
    log = DecisionLog()
    assert log.record(commit)
    assert not log.record(commit)
    assert not log.record(abort)
    assert log.decision_for(7) == commit
    assert log.conflicts == [abort]
    assert 7 in log and 8 not in log
    assert log.decision_for(8) is None
    assert log.record(abort_8 := Abort(8, "vetoed")) and log.decisions() == {7: commit, 8: abort_8}


# ---------------------------------------------------------------------------------------------
# Documents and validation


@pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))
def test_doc_round_trip(policy: Policy) -> None:
    p = Policy(policy.kind, policy.params, deadline_ms=250, version=4)
    doc = p.to_doc()
    assert Policy.from_doc(doc) == p
    assert doc["kind"] == p.kind and doc["version"] == 4 and doc["deadline_ms"] == 250
    assert isinstance(doc["params"], dict)
    for value in doc["params"].values():
        assert isinstance(value, list | dict | int | float)


def test_from_doc_minimal() -> None:
    assert Policy.from_doc({"kind": "on_by_default", "version": 1}) == Policy(
        "on_by_default", version=1
    )


BAD_DOCS = [
    ("not a mapping", ["all"], "must be a mapping"),
    ("unknown kind", {"kind": "majority", "version": 1}, "unknown decider policy kind"),
    ("missing kind", {"version": 1}, "kind is required"),
    ("missing version", {"kind": "on_by_default"}, "version is required"),
    ("unknown key", {"kind": "on_by_default", "version": 1, "when": 3}, "unknown keys"),
    ("negative version", {"kind": "on_by_default", "version": -1}, "version"),
    ("bool version", {"kind": "on_by_default", "version": True}, "version"),
    ("zero deadline", {"kind": "veto", "version": 1, "deadline_ms": 0}, "deadline_ms"),
    ("float deadline", {"kind": "on_by_default", "version": 1, "deadline_ms": 1.5}, "deadline"),
    ("params not mapping", {"kind": "all", "version": 1, "params": [1]}, "params must be"),
    ("params on on_by_default", {"kind": "on_by_default", "version": 1, "params": {"k": 1}}, "k"),
    ("all without kinds", {"kind": "all", "version": 1}, "kinds"),
    ("any empty kinds", {"kind": "any", "version": 1, "params": {"kinds": []}}, "empty"),
    ("veto str kinds", {"kind": "veto", "version": 1, "params": {"kinds": "rule"}}, "list"),
    ("dup kinds", {"kind": "all", "version": 1, "params": {"kinds": ["a", "a"]}}, "duplicates"),
    ("bad kind name", {"kind": "all", "version": 1, "params": {"kinds": ["a", 3]}}, "strings"),
    ("unknown param", {"kind": "all", "version": 1, "params": {"kinds": ["a"], "x": 1}}, "x"),
    ("k > n", {"kind": "k_of_n", "version": 1, "params": {"k": 4, "n": 3}}, "exceeds"),
    ("k zero", {"kind": "k_of_n", "version": 1, "params": {"k": 0, "n": 3}}, "k must"),
    ("k missing", {"kind": "k_of_n", "version": 1, "params": {"n": 3}}, "k must"),
    (
        "n and voters",
        {"kind": "k_of_n", "version": 1, "params": {"k": 1, "n": 1, "voters": ["a"]}},
        "exactly one",
    ),
    ("neither n nor voters", {"kind": "k_of_n", "version": 1, "params": {"k": 1}}, "exactly one"),
    (
        "k > voters",
        {"kind": "k_of_n", "version": 1, "params": {"k": 2, "voters": ["a"]}},
        "exceeds",
    ),
    (
        "kinds+voters",
        {"kind": "k_of_n", "version": 1, "params": {"k": 1, "voters": ["a"], "kinds": ["r"]}},
        "kinds",
    ),
    (
        "weighted no weights",
        {"kind": "weighted", "version": 1, "params": {"threshold": 1}},
        "weights",
    ),
    (
        "negative weight",
        {"kind": "weighted", "version": 1, "params": {"voter_weights": {"a": -1}, "threshold": 1}},
        ">= 0",
    ),
    (
        "nan weight",
        {
            "kind": "weighted",
            "version": 1,
            "params": {"kind_weights": {"a": float("nan")}, "threshold": 1},
        },
        "finite",
    ),
    (
        "threshold > total",
        {"kind": "weighted", "version": 1, "params": {"voter_weights": {"a": 1}, "threshold": 2}},
        "exceeds the total",
    ),
    (
        "threshold zero",
        {"kind": "weighted", "version": 1, "params": {"voter_weights": {"a": 1}, "threshold": 0}},
        "threshold",
    ),
    (
        "threshold missing",
        {"kind": "weighted", "version": 1, "params": {"voter_weights": {"a": 1}}},
        "threshold",
    ),
    (
        "approve_threshold > 1",
        {"kind": "first_voter", "version": 1, "params": {"approve_threshold": 1.5}},
        "approve_threshold",
    ),
    (
        "approve_threshold on weighted",
        {
            "kind": "weighted",
            "version": 1,
            "params": {"voter_weights": {"a": 1}, "threshold": 1, "approve_threshold": 0.5},
        },
        "approve_threshold",
    ),
]


@pytest.mark.parametrize(
    ("doc", "match"), [(d, m) for _, d, m in BAD_DOCS], ids=[i for i, _, _ in BAD_DOCS]
)
def test_policy_errors(doc: object, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        Policy.from_doc(doc)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
    with pytest.raises(ValueError):
        Policy("quorum")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"voter_id": "", "kind": "rule", "approve": True},
        {"voter_id": "a", "kind": "", "approve": True},
        {"voter_id": "a", "kind": "rule"},
        {"voter_id": "a", "kind": "rule", "approve": 1},
        {"voter_id": "a", "kind": "rule", "probability": 1.5},
        {"voter_id": "a", "kind": "rule", "probability": -0.1},
        {"voter_id": "a", "kind": "rule", "probability": float("nan")},
        {"voter_id": "a", "kind": "rule", "probability": True},
    ],
)
def test_invalid_votes(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        vote(**kwargs)  # type: ignore[arg-type]


def test_signers_and_deciders_round_trip_and_decide_who_counts() -> None:
    policy = Policy("veto", {"kinds": ["human"]}, signers={"human": "alice"}, deciders=["d"])
    assert Policy.from_doc(policy.to_doc()) == policy
    assert policy.counts_vote("human", "alice") and not policy.counts_vote("human", "voter")
    assert not policy.counts_vote("rule", "alice")  # a kind nobody signs never counts
    assert policy.counts_decision("d") and not policy.counts_decision("root")
    open_policy = Policy("veto", {"kinds": ["human"]})
    assert open_policy.counts_vote("human", "anyone") and open_policy.counts_decision("anyone")


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "veto", "params": {"kinds": ["h"]}, "version": 1, "signers": ["h"]},
        {"kind": "veto", "params": {"kinds": ["h"]}, "version": 1, "signers": {"h": ""}},
        {"kind": "veto", "params": {"kinds": ["h"]}, "version": 1, "deciders": "d"},
        {"kind": "veto", "params": {"kinds": ["h"]}, "version": 1, "deciders": [3]},
    ],
)
def test_bad_signers_or_deciders_are_policy_errors(doc: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        Policy.from_doc(doc)


# ---------------------------------------------------------------------------------------------
# Escalation to a person


def escalate(voter: str, kind: str, reason: str = "value from untrusted content") -> Vote:
    return vote(voter, kind, approve=False, reason=reason, escalate=True)


VETO = Policy("veto", {"kinds": ["rule", "ifc"]}, deadline_ms=100)


def test_an_escalated_intent_waits_for_a_person_and_is_denied_unanswered() -> None:
    votes = [yes("rules", "rule"), escalate("flow", "ifc")]
    assert decide(VETO, votes, intent_id=0, intent_ts_ms=0, now_ms=99) is None
    late = decide(VETO, votes, intent_id=0, intent_ts_ms=0, now_ms=100)
    assert late is not None and not late.commit
    assert "did not answer" in late.reason and "untrusted content" in late.reason


def test_a_persons_answer_decides_an_escalation() -> None:
    votes = [yes("rules", "rule"), escalate("flow", "ifc")]
    approved = decide(VETO, [*votes, yes("alice", "human")], intent_id=0, intent_ts_ms=0, now_ms=0)
    assert approved is not None and approved.commit and "person" in approved.reason
    rejected = decide(
        VETO, [*votes, no("alice", "human", "not mine")], intent_id=0, intent_ts_ms=0, now_ms=0
    )
    assert rejected == Abort(
        0,
        "a person rejected the escalated action: alice (human): not mine "
        "(asked: flow (ifc): value from untrusted content)",
        0,
    )


def test_another_voters_veto_aborts_without_waiting_for_the_person() -> None:
    votes = [escalate("flow", "ifc"), no("rules", "rule", "denied")]
    decision = decide(VETO, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
    assert decision is not None and not decision.commit and "denied" in decision.reason


def test_a_policy_may_allow_an_unanswered_escalation() -> None:
    policy = Policy.from_doc({**VETO.to_doc(), "unanswered": "allow", "version": 1})
    assert Policy.from_doc(policy.to_doc()) == policy
    votes = [yes("rules", "rule"), escalate("flow", "ifc")]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=99) is None
    late = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=100)
    assert late is not None and late.commit and "allowed by policy" in late.reason
    with pytest.raises(PolicyError, match="unanswered"):
        Policy("veto", {"kinds": ["rule"]}, unanswered="maybe")


@settings(max_examples=200, deadline=None)
@given(policies(), st.lists(votes_strategy(), max_size=10), st.integers(0, 200))
def test_nothing_escalated_commits_without_a_person_before_the_deadline(
    policy: Policy, votes: list[Vote], now: int
) -> None:
    """Whatever the policy and the other votes: an escalation without a person's answer never
    commits before the deadline, and is denied at it unless the policy allows it."""
    if policy.kind in ("on_by_default", "off_by_default"):
        return
    policy = Policy(policy.kind, policy.params, deadline_ms=100)
    counted = list(first_vote_per_voter(votes))
    decision = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=now)
    escalated = next((i for i, v in enumerate(counted) if v.escalate), None)
    if escalated is None:
        return
    earlier = decide(policy, counted[:escalated], intent_id=0, intent_ts_ms=0, now_ms=0)
    answered = any(v.kind == "human" for v in counted)
    if earlier is None and not answered:
        assert decision is None or not decision.commit
        if now >= 100:
            assert decision is not None and not decision.commit


@settings(max_examples=200, deadline=None)
@given(policies(), st.lists(votes_strategy(), max_size=10))
def test_a_persons_rejection_of_an_escalation_never_commits(
    policy: Policy, votes: list[Vote]
) -> None:
    if policy.kind in ("on_by_default", "off_by_default"):
        return
    decided_before = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
    answered = [*votes, escalate("flow", "ifc"), no("alice", "human", "no")]
    decision = decide(policy, answered, intent_id=0, intent_ts_ms=0, now_ms=0)
    if decided_before is None and not any(v.kind == "human" for v in votes):
        assert decision is not None and not decision.commit
