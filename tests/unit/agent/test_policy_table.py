"""Exhaustive table for the decider's policy core: every policy kind x vote pattern x deadline.

The grid below has one line per vote pattern and one column per policy configuration; each cell
is expanded into one test per deadline mode. ``test_policy.py`` holds the hand-picked cases,
reasons, validation and ``PolicyLog`` tests; this file is the systematic sweep, plus property
tests that check relations between decisions (deadline, unlisted voters, vote reading, order).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_votes import vote

from logact.agent.core.entries import Abort, Vote
from logact.agent.core.policy import (
    POLICY_KINDS,
    TIMEOUT_REASON,
    Decision,
    Policy,
    approves,
    decide,
    exact,
    first_vote_per_voter,
    vote_weight,
)

TIMEOUT = Abort(0, TIMEOUT_REASON, 0)

# ---------------------------------------------------------------------------------------------
# Vote patterns, written the way they read: "r1+ l1-" is an approval by r1 (a rule voter), then a
# rejection by l1 (an llm voter). "r1=.49" is a probability-only vote; "r1-=.9" is a boolean
# rejection that also carries probability 0.9. The first letter gives the voter's kind.

VOTER_KIND = {"r": "rule", "l": "llm", "h": "human"}  # "human" is listed by no policy below
_TOKEN = re.compile(r"^([rlh])(\d)([+-]?)(?:=([0-9.]+))?$")


def parse_votes(pattern: str) -> list[Vote]:
    votes: list[Vote] = []
    for token in pattern.split():
        if token == "(none)":
            continue
        m = _TOKEN.match(token)
        assert m is not None, f"bad vote token {token!r}"
        letter, digit, sign, p = m.groups()
        approve = {"+": True, "-": False, "": None}[sign]
        probability = float(p) if p is not None else None
        votes.append(vote(f"{letter}{digit}", VOTER_KIND[letter], approve, probability))
    return votes


def test_parse_votes() -> None:
    assert parse_votes("(none)") == []
    assert parse_votes("r1+ l2- h1=.4 r2+=.1") == [
        vote("r1", "rule", approve=True),
        vote("l2", "llm", approve=False),
        vote("h1", "human", probability=0.4),
        vote("r2", "rule", approve=True, probability=0.1),
    ]


# ---------------------------------------------------------------------------------------------
# Policy configurations (the grid's columns). Kind-based ones list "rule" and "llm"; "human" is
# always unlisted.

COLUMNS: dict[str, tuple[str, Policy]] = {
    # abbreviation: (test id, policy)
    "fv": ("first_voter", Policy("first_voter")),
    "fk": ("first_voter[kinds]", Policy("first_voter", {"kinds": ["rule", "llm"]})),
    "al": ("all", Policy("all", {"kinds": ["rule", "llm"]})),
    "an": ("any", Policy("any", {"kinds": ["rule", "llm"]})),
    "ve": ("veto", Policy("veto", {"kinds": ["rule", "llm"]})),
    # 2 approvals among the first 3 voters, whatever their kind.
    "kn": ("k_of_n[n]", Policy("k_of_n", {"k": 2, "n": 3})),
    # 2 approvals among r1, r2, l1.
    "kv": ("k_of_n[voters]", Policy("k_of_n", {"k": 2, "voters": ["r1", "r2", "l1"]})),
    # 1 approval among the first 2 voters of kind rule or llm.
    "kk": ("k_of_n[kinds]", Policy("k_of_n", {"k": 1, "n": 2, "kinds": ["rule", "llm"]})),
    # Slots: the first rule voter (weight 2), the first llm voter (weight 1); total 3.
    "wk": (
        "weighted[kinds]",
        Policy("weighted", {"kind_weights": {"rule": 2, "llm": 1}, "threshold": 2}),
    ),
    # Slots: r1 (0.5), l1 (0.3), the first llm voter other than l1 (0.2); total 1.0.
    "wv": (
        "weighted[voters]",
        Policy(
            "weighted",
            {
                "voter_weights": {"r1": 0.5, "l1": 0.3},
                "kind_weights": {"llm": 0.2},
                "threshold": 0.8,
            },
        ),
    ),
}

# C = commit, A = abort, . = still open (without a deadline). on_by_default and off_by_default
# are added to every line as C and A.
GRID = """
pattern              fv fk al an ve kn kv kk wk wv
(none)               .  .  .  .  .  .  .  .  .  .
# one vote by a listed kind
r1+                  C  C  .  C  .  .  .  C  C  .
r1-                  A  A  A  .  A  .  .  .  A  A
l1+                  C  C  .  C  .  .  .  C  .  .
l1-                  A  A  A  .  A  .  .  .  .  A
# two votes, every order
r1+ l1+              C  C  C  C  C  C  C  C  C  C
r1- l1-              A  A  A  A  A  A  A  A  A  A
r1+ l1-              C  C  A  C  A  .  .  C  C  A
l1- r1+              A  A  A  C  A  .  .  C  C  A
r1- l1+              A  A  A  C  A  .  .  C  A  A
l1+ r1-              C  C  A  C  A  .  .  C  A  A
r1+ r2+              C  C  .  C  .  C  C  C  C  .
l1- l2+              A  A  A  C  A  .  .  C  .  A
# three votes
r1+ l1- h1+          C  C  A  C  A  C  .  C  C  A
r1- l1+ h1-          A  A  A  C  A  A  .  C  A  A
r2- r1+ l1+          A  A  A  C  A  C  C  C  A  C
l2+ r1+ l1+          C  C  C  C  C  C  C  C  C  C
l2- l1+ r1+          A  A  A  C  A  C  C  C  C  C
# a voter's later votes are ignored
r1- r1+              A  A  A  .  A  .  .  .  A  A
r1+ r1-              C  C  .  C  .  .  .  C  C  .
r1+ r1+              C  C  .  C  .  .  .  C  C  .
r1- r1+ l1+          A  A  A  C  A  .  .  C  A  A
r1+ r1- l1+          C  C  C  C  C  C  C  C  C  C
# votes by an unlisted kind
h1+                  C  .  .  .  .  .  .  .  .  .
h1-                  A  .  .  .  A  .  .  .  .  .
h1=.4                A  .  .  .  A  .  .  .  .  .
h1+ r1+              C  C  .  C  .  C  .  C  C  .
h1- r1+ l1+          A  C  C  C  A  C  C  C  C  C
h1+ h2- r1-          C  A  A  .  A  A  .  .  A  A
# probability only, around the default approve_threshold 0.5
r1=.49               A  A  A  .  A  .  .  .  A  A
r1=.5                C  C  .  C  .  .  .  C  .  A
r1=.51               C  C  .  C  .  .  .  C  .  A
r1=.5 l1=.5          C  C  C  C  C  C  C  C  A  A
r1=.49 l1=.51        A  A  A  C  A  .  .  C  A  A
l1=1 r1=.5           C  C  C  C  C  C  C  C  C  A
r1=.7 l1=.6          C  C  C  C  C  C  C  C  C  A
# boolean and probability: boolean policies read approve, weighted reads probability
r1+=.1               C  C  .  C  .  .  .  C  A  A
r1-=.9               A  A  A  .  A  .  .  .  .  .
r1-=1 l1-=1          A  A  A  A  A  A  A  A  C  C
r1+=0 l1+=0          C  C  C  C  C  C  C  C  A  A
"""


def parse_grid(grid: str) -> list[tuple[str, dict[str, str]]]:
    lines = [ln for ln in grid.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0].split()[1:]
    assert header == list(COLUMNS), header
    rows: list[tuple[str, dict[str, str]]] = []
    for line in lines[1:]:
        words = line.split()
        cells = words[-len(header) :]
        name = " ".join(words[: -len(header)])
        assert all(c in "CA." for c in cells) and len(cells) == len(header), line
        rows.append((name, dict(zip(header, cells, strict=True))))
    return rows


ROWS = parse_grid(GRID)
assert len({name for name, _ in ROWS}) == len(ROWS), "duplicate pattern in GRID"

INTENT_TS = 1_700_000_000_000  # a realistic wall-clock timestamp (ms)
DEADLINE = 1_000
DEADLINES: dict[str, tuple[int | None, int]] = {
    # mode: (deadline_ms, now_ms)
    "no_deadline": (None, INTENT_TS + 10**9),
    "before_deadline": (DEADLINE, INTENT_TS + DEADLINE - 1),
    "at_deadline": (DEADLINE, INTENT_TS + DEADLINE),
}

_CELL = {"C": "commit", "A": "abort", ".": None}
_ALL_COLUMNS: dict[str, tuple[str, Policy]] = {
    "on": ("on_by_default", Policy("on_by_default")),
    "off": ("off_by_default", Policy("off_by_default")),
    **COLUMNS,
}
assert {p.kind for _, p in _ALL_COLUMNS.values()} == set(POLICY_KINDS)


class GridCase(NamedTuple):
    policy: Policy  # with the mode's deadline
    votes: list[Vote]
    now_ms: int
    expected: str | None  # "commit", "abort" or None (still open)
    reason: str | None  # the exact reason when it is fixed ("timeout"), else None


def _grid_cases() -> list[object]:
    cases: list[object] = []
    for pattern, cells in ROWS:
        cells = {"on": "C", "off": "A", **cells}
        for abbrev, (policy_id, base) in _ALL_COLUMNS.items():
            for mode, (deadline_ms, now_ms) in DEADLINES.items():
                expected, reason = _CELL[cells[abbrev]], None
                reached = deadline_ms is not None and now_ms - INTENT_TS >= deadline_ms
                if expected is None and reached:
                    expected, reason = "abort", TIMEOUT_REASON
                policy = Policy(base.kind, base.params, deadline_ms=deadline_ms)
                case = GridCase(policy, parse_votes(pattern), now_ms, expected, reason)
                case_id = f"{policy_id}-{pattern.replace(' ', ',')}-{mode}"
                cases.append(pytest.param(case, id=case_id))
    return cases


# One parameter per test (not four): pytest's per-argument fixture cost dominates this table.
@pytest.mark.parametrize("case", _grid_cases())
def test_grid(case: GridCase) -> None:
    got = decide(case.policy, case.votes, intent_id=0, intent_ts_ms=INTENT_TS, now_ms=case.now_ms)
    if case.expected is None:
        assert got is None
        return
    assert got is not None
    assert got.commit is (case.expected == "commit"), got
    if case.reason is not None:
        assert got.reason == case.reason
        return
    # Decided by votes (or unconditionally): never a timeout, whatever the clock says.
    assert got.reason != TIMEOUT_REASON
    if case.policy.kind in ("on_by_default", "off_by_default"):
        assert got.reason.startswith(case.policy.kind)
    else:
        assert any(v.voter_id in got.reason for v in case.votes), got


# ---------------------------------------------------------------------------------------------
# approve_threshold: the boolean reading of probability votes, for every boolean policy kind.
# Each policy below is decided by a single counted vote, so the verdict is the vote's reading.

SINGLE_VOTE_POLICIES: dict[str, tuple[str, dict[str, object]]] = {
    "first_voter": ("first_voter", {}),
    "all": ("all", {"kinds": ["rule"]}),
    "any": ("any", {"kinds": ["rule"]}),
    "veto": ("veto", {"kinds": ["rule"]}),
    "k_of_n[n]": ("k_of_n", {"k": 1, "n": 1}),
    "k_of_n[voters]": ("k_of_n", {"k": 1, "voters": ["r1"]}),
}

THRESHOLD_ROWS = [
    # (approve_threshold or None for the default, vote, commit?)
    (None, "r1=0", False),
    (None, "r1=.5", True),
    (None, "r1=1", True),
    (0.7, "r1=.69", False),
    (0.7, "r1=.7", True),
    (0.7, "r1=.71", True),
    (0.7, "r1-=.99", False),
    (0.7, "r1+=0", True),
    (0.3, "r1=.29", False),
    (0.3, "r1=.3", True),
    (0.0, "r1=0", True),
    (0.0, "r1-=1", False),
    (1.0, "r1=.99", False),
    (1.0, "r1=1", True),
    (1, "r1=1", True),  # an integer threshold is accepted
]


@pytest.mark.parametrize(
    ("kind", "params", "threshold", "pattern", "commit"),
    [
        pytest.param(kind, params, threshold, pattern, commit, id=f"{name}-t={threshold}-{pattern}")
        for name, (kind, params) in SINGLE_VOTE_POLICIES.items()
        for threshold, pattern, commit in THRESHOLD_ROWS
    ],
)
def test_approve_threshold(
    kind: str, params: dict[str, object], threshold: float | None, pattern: str, commit: bool
) -> None:
    if threshold is not None:
        params = {**params, "approve_threshold": threshold}
    policy = Policy(kind, params)
    got = decide(policy, parse_votes(pattern), intent_id=0, intent_ts_ms=0, now_ms=0)
    assert got is not None and got.commit is commit, got


# ---------------------------------------------------------------------------------------------
# Weighted: score against threshold in exact decimal, for scores just below, at and above it.

WEIGHTED_ROWS = [
    # (voter_weights, threshold, votes, expected: True / False / None)
    ({"r1": 1}, 0.3, "r1=.3", True),
    ({"r1": 1}, 0.3, "r1=.299", False),
    ({"r1": 1}, 0.3, "r1=.301", True),
    ({"r1": 3}, 0.3, "r1=.1", True),  # 3 * 0.1 == 0.3 exactly
    ({"r1": 0.1}, 0.03, "r1=.3", True),
    # In binary floating point 0.6 + 0.3 + 0.1 < 1.0 (asserted below); in decimal it is 1.0.
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 1.0, "r1+ r2+ l1+", True),
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 1.0, "l1+ r2+ r1+", True),
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 1.0, "r1+ r2+", None),
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 1.0, "r1+ r2=.99", False),
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 0.9, "l1- r2+ r1+", True),
    ({"r1": 0.6, "r2": 0.3, "l1": 0.1}, 0.9, "l1=.01 r2+", None),
    # A zero-weight voter fills a slot without moving the score.
    ({"r1": 0, "l1": 1}, 0.5, "r1+", None),
    ({"r1": 0, "l1": 1}, 0.5, "r1+ l1=.5", True),
    ({"r1": 0, "l1": 1}, 0.5, "r1+ l1=.49", False),
    # Unlisted voters (no kind_weights here) do not count, whatever they say.
    ({"r1": 1}, 1, "r2+ l1+ h1+", None),
    ({"r1": 1}, 1, "r2- h1- r1+", True),
]
assert 0.6 + 0.3 + 0.1 < 1.0 and 0.1 + 0.3 + 0.6 == 1.0  # why the rows above need exactness


@pytest.mark.parametrize(
    ("weights", "threshold", "pattern", "expected"),
    [
        pytest.param(w, t, p, e, id=f"{'+'.join(f'{k}:{v}' for k, v in w.items())}>={t}-{p}")
        for w, t, p, e in WEIGHTED_ROWS
    ],
)
def test_weighted_threshold(
    weights: dict[str, float], threshold: float, pattern: str, expected: bool | None
) -> None:
    policy = Policy("weighted", {"voter_weights": weights, "threshold": threshold})
    got = decide(policy, parse_votes(pattern), intent_id=0, intent_ts_ms=0, now_ms=0)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.commit is expected, got


# ---------------------------------------------------------------------------------------------
# Deadline boundaries that the grid's fixed modes do not reach.

DEADLINE_ROWS = [
    # (id, policy, votes, deadline_ms, intent_ts_ms, now_ms, expected)
    ("1ms-at-intent", Policy("all", {"kinds": ["rule"]}), "(none)", 1, 500, 500, None),
    ("1ms-one-after", Policy("all", {"kinds": ["rule"]}), "(none)", 1, 500, 501, TIMEOUT),
    ("clock-behind-intent", Policy("all", {"kinds": ["rule"]}), "(none)", 1, 500, 0, None),
    ("intent-at-epoch", Policy("any", {"kinds": ["rule"]}), "(none)", 10, 0, 10, TIMEOUT),
    ("unlisted-only-times-out", Policy("all", {"kinds": ["rule"]}), "h1- h2+", 10, 0, 10, TIMEOUT),
    ("dup-does-not-decide", Policy("k_of_n", {"k": 2, "n": 2}), "r1+ r1+", 10, 0, 10, TIMEOUT),
    ("veto-unlisted-reject", Policy("veto", {"kinds": ["rule"]}), "h1-", 10, 0, 10**6, False),
    ("on_by_default-late", Policy("on_by_default"), "(none)", 1, 0, 10**6, True),
    ("off_by_default-late", Policy("off_by_default"), "r1+", 1, 0, 10**6, False),
]


@pytest.mark.parametrize(
    ("policy", "pattern", "deadline_ms", "intent_ts_ms", "now_ms", "expected"),
    [pytest.param(*row[1:], id=str(row[0])) for row in DEADLINE_ROWS],
)
def test_deadline_boundaries(
    policy: Policy,
    pattern: str,
    deadline_ms: int,
    intent_ts_ms: int,
    now_ms: int,
    expected: Decision | bool | None,
) -> None:
    policy = Policy(policy.kind, policy.params, deadline_ms=deadline_ms)
    got = decide(
        policy, parse_votes(pattern), intent_id=0, intent_ts_ms=intent_ts_ms, now_ms=now_ms
    )
    if isinstance(expected, bool):
        assert got is not None and got.commit is expected and got.reason != TIMEOUT_REASON
    else:
        assert got == expected


def test_a_late_vote_overrides_an_earlier_timeout_verdict() -> None:
    """``decide`` is a function of (votes, now): a timeout is not sticky across calls.

    A decider that evaluates at the deadline with no votes yields "timeout"; one that evaluates
    later, after a deciding vote was appended, yields the vote's verdict. Readers keep the first
    decision in the log (``DecisionLog``), which records the disagreement as a conflict.
    """
    policy = Policy("all", {"kinds": ["rule"]}, deadline_ms=100)
    assert decide(policy, [], intent_id=0, intent_ts_ms=0, now_ms=100) == TIMEOUT
    late = decide(policy, parse_votes("r1+"), intent_id=0, intent_ts_ms=0, now_ms=10_000)
    assert late is not None and late.commit


# ---------------------------------------------------------------------------------------------
# Properties

KINDS = ("rule", "llm", "human")
NOISE_KIND = "audit"  # listed by no generated policy
VOTER_IDS = tuple(f"v{i}" for i in range(6))  # distinct substrings of any reason text
PROBABILITIES = (0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 1.0)

# Strategies are built once: building them inside composites dominates the runtime.
BOOL_ST = st.booleans()
VOTER_ST = st.sampled_from(VOTER_IDS)
KIND_ST = st.sampled_from(KINDS)
ANY_KIND_ST = st.sampled_from((*KINDS, NOISE_KIND))
KINDS_ST = st.lists(KIND_ST, min_size=1, max_size=3, unique=True)
VOTERS_ST = st.lists(VOTER_ST, min_size=1, unique=True)
UPTO_ST = {n: st.integers(1, n) for n in range(1, len(VOTER_IDS) + 1)}  # k in 1..n
PROBABILITY_ST = st.one_of(st.sampled_from(PROBABILITIES), st.floats(0, 1))
WEIGHT_ST = st.integers(0, 5000).map(lambda w: w / 1000)
VOTER_WEIGHTS_ST = st.dictionaries(VOTER_ST, WEIGHT_ST, max_size=4)
KIND_WEIGHTS_ST = st.dictionaries(KIND_ST, WEIGHT_ST, max_size=3)
UNIT_ST = st.floats(0.001, 1.0)
MASK_ST = st.integers(1, 2**7 - 1)
SHAPE_ST = st.sampled_from(("bool", "prob", "both"))
NOISE_ST = st.integers(0, 4)


@st.composite
def vote_st(draw: st.DrawFn) -> Vote:
    shape = draw(SHAPE_ST)
    approve = draw(BOOL_ST) if shape != "prob" else None
    probability = draw(PROBABILITY_ST) if shape != "bool" else None
    return vote(draw(VOTER_ST), draw(ANY_KIND_ST), approve, probability)


votes_st = st.lists(vote_st(), max_size=10)


def draw_weights(draw: st.DrawFn) -> tuple[dict[str, float], dict[str, float], float]:
    """(voter_weights, kind_weights, threshold) with 0 < threshold <= total weight. Half the
    thresholds are the exact sum of a subset of the weights, so that ties are common."""
    vw = draw(VOTER_WEIGHTS_ST)
    kw = draw(KIND_WEIGHTS_ST)
    weights = [*vw.values(), *kw.values()]
    total = sum((exact(w) for w in weights), Fraction(0))
    if total == 0:
        vw = {**vw, VOTER_IDS[0]: 1.0}
        weights = [*vw.values(), *kw.values()]
        total = sum((exact(w) for w in weights), Fraction(0))
    if draw(BOOL_ST):
        threshold = float(total) * draw(UNIT_ST)
    else:
        mask = draw(MASK_ST)
        subset = sum((exact(w) for i, w in enumerate(weights) if mask >> i & 1), Fraction(0))
        threshold = float(subset or total)
    assert threshold > 0 and exact(threshold) <= total, (threshold, total)
    return vw, kw, threshold


@st.composite
def policy_st(draw: st.DrawFn, kinds: tuple[str, ...] = POLICY_KINDS) -> Policy:
    kind = draw(st.sampled_from(kinds))
    params: dict[str, object] = {}
    if kind in ("all", "any", "veto") or (kind == "first_voter" and draw(BOOL_ST)):
        params["kinds"] = draw(KINDS_ST)
    elif kind == "k_of_n":
        if draw(BOOL_ST):
            voters = draw(VOTERS_ST)
            params["voters"] = voters
            params["k"] = draw(UPTO_ST[len(voters)])
        else:
            params["n"] = n = draw(UPTO_ST[5])
            params["k"] = draw(UPTO_ST[n])
            if draw(BOOL_ST):
                params["kinds"] = draw(KINDS_ST)
    elif kind == "weighted":
        vw, kw, threshold = draw_weights(draw)
        params = {"voter_weights": vw, "kind_weights": kw, "threshold": threshold}
    if kind not in ("weighted", "on_by_default", "off_by_default") and draw(BOOL_ST):
        params["approve_threshold"] = draw(PROBABILITY_ST)
    return Policy(kind, params)


def without_deadline(policy: Policy) -> Policy:
    return Policy(policy.kind, policy.params)


def with_deadline(policy: Policy, deadline_ms: int) -> Policy:
    return Policy(policy.kind, policy.params, deadline_ms=deadline_ms)


@settings(max_examples=100, deadline=None)
@given(
    policy_st(),
    votes_st,
    st.integers(1, 100),
    st.integers(0, 10**13),
    st.integers(-200, 200),
)
def test_deadline_only_settles_what_votes_left_open(
    policy: Policy, votes: list[Vote], deadline_ms: int, intent_ts_ms: int, elapsed: int
) -> None:
    """With a deadline, the decision is the vote decision if any; otherwise "timeout" from the
    deadline on and nothing before it (so no decision appears early unless votes determine it)."""
    now_ms = intent_ts_ms + elapsed
    by_votes = decide(
        without_deadline(policy), votes, intent_id=0, intent_ts_ms=intent_ts_ms, now_ms=now_ms
    )
    got = decide(
        with_deadline(policy, deadline_ms),
        votes,
        intent_id=0,
        intent_ts_ms=intent_ts_ms,
        now_ms=now_ms,
    )
    if by_votes is not None:
        assert got == by_votes
        assert by_votes.reason != TIMEOUT_REASON
    elif elapsed >= deadline_ms:
        assert got == TIMEOUT
    else:
        assert got is None


@settings(max_examples=60, deadline=None)
@given(policy_st(), votes_st, votes_st, st.integers(0, 200), st.integers(0, 10**6))
def test_a_vote_decision_survives_more_votes_and_more_time(
    policy: Policy, votes: list[Vote], more: list[Vote], now_ms: int, later: int
) -> None:
    policy = with_deadline(policy, 100)
    first = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=now_ms)
    if first is None or first == TIMEOUT:
        return
    assert decide(policy, votes + more, intent_id=0, intent_ts_ms=0, now_ms=now_ms + later) == first


@settings(max_examples=60, deadline=None)
@given(policy_st(kinds=tuple(k for k in POLICY_KINDS if "default" not in k)), votes_st)
def test_the_decision_is_taken_at_a_counted_vote_that_it_names(
    policy: Policy, votes: list[Vote]
) -> None:
    final = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
    if final is None:
        return
    i = next(
        i
        for i in range(len(votes) + 1)
        if decide(policy, votes[:i], intent_id=0, intent_ts_ms=0, now_ms=0) is not None
    )
    assert i >= 1
    assert decide(policy, votes[:i], intent_id=0, intent_ts_ms=0, now_ms=0) == final
    deciding = votes[i - 1]
    assert deciding.voter_id not in {v.voter_id for v in votes[: i - 1]}, "a repeat vote decided"
    assert deciding.voter_id in final.reason, (deciding, final)


def _counted(policy: Policy, vote: Vote) -> bool:
    """Whether ``policy`` can count ``vote`` at all (a voter's first vote)."""
    params = policy.params
    if policy.kind == "weighted":
        return vote.voter_id in params.get("voter_weights", {}) or vote.kind in params.get(
            "kind_weights", {}
        )
    if policy.kind == "k_of_n" and "voters" in params:
        return vote.voter_id in params["voters"]
    if policy.kind == "veto":  # unlisted approvals are ignored, unlisted rejections veto
        threshold = params.get("approve_threshold", 0.5)
        return vote.kind in params["kinds"] or not approves(vote, threshold)
    return "kinds" not in params or vote.kind in params["kinds"]


@settings(max_examples=60, deadline=None)
@given(policy_st(kinds=tuple(k for k in POLICY_KINDS if "default" not in k)), votes_st)
def test_votes_a_policy_does_not_count_change_nothing(policy: Policy, votes: list[Vote]) -> None:
    firsts = list(first_vote_per_voter(votes))
    kept = [v for v in firsts if _counted(policy, v)]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) == decide(
        policy, kept, intent_id=0, intent_ts_ms=0, now_ms=0
    )


@settings(max_examples=60, deadline=None)
@given(policy_st(kinds=("first_voter", "all", "any", "veto", "k_of_n")), votes_st)
def test_boolean_policies_see_only_the_boolean_reading(policy: Policy, votes: list[Vote]) -> None:
    threshold = policy.params.get("approve_threshold", 0.5)
    booleans = [vote(v.voter_id, v.kind, approve=approves(v, threshold)) for v in votes]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) == decide(
        policy, booleans, intent_id=0, intent_ts_ms=0, now_ms=0
    )


@settings(max_examples=60, deadline=None)
@given(policy_st(kinds=("weighted",)), votes_st)
def test_weighted_sees_only_the_probability(policy: Policy, votes: list[Vote]) -> None:
    """approve=True/False weighs 1/0; a probability, when given, overrides approve."""
    probabilities = [vote(v.voter_id, v.kind, probability=float(vote_weight(v))) for v in votes]
    assert decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0) == decide(
        policy, probabilities, intent_id=0, intent_ts_ms=0, now_ms=0
    )


@settings(max_examples=60, deadline=None)
@given(KIND_ST, st.none() | PROBABILITY_ST, votes_st)
def test_single_kind_policies_agree(
    kind: str, approve_threshold: float | None, votes: list[Vote]
) -> None:
    """Over a single kind, first_voter, all, any and 1-of-1 all mean "that kind's first vote"."""
    extra = {} if approve_threshold is None else {"approve_threshold": approve_threshold}
    policies = [
        Policy("first_voter", {"kinds": [kind], **extra}),
        Policy("all", {"kinds": [kind], **extra}),
        Policy("any", {"kinds": [kind], **extra}),
        Policy("k_of_n", {"k": 1, "n": 1, "kinds": [kind], **extra}),
    ]
    outcomes = set()
    for policy in policies:
        got = decide(policy, votes, intent_id=0, intent_ts_ms=0, now_ms=0)
        outcomes.add(None if got is None else got.commit)
    assert len(outcomes) == 1, outcomes


# Order independence once every slot is filled, with votes the policy ignores interleaved.


def _vote(draw: st.DrawFn, voter: str, kind: str) -> Vote:
    if draw(BOOL_ST):
        return vote(voter, kind, approve=draw(BOOL_ST))
    return vote(voter, kind, probability=draw(PROBABILITY_ST))


@st.composite
def full_k_of_n(draw: st.DrawFn) -> tuple[Policy, list[Vote], list[Vote], bool]:
    """(policy, one vote per counted slot, votes it ignores, expected commit)."""
    threshold = draw(PROBABILITY_ST)
    if draw(BOOL_ST):
        voters = draw(VOTERS_ST)
        k = draw(UPTO_ST[len(voters)])
        policy = Policy("k_of_n", {"k": k, "voters": voters, "approve_threshold": threshold})
        counted = [_vote(draw, v, draw(KIND_ST)) for v in voters]
        noise = [_vote(draw, f"x{v}", draw(KIND_ST)) for v in VOTER_IDS if v not in voters]
    else:
        kinds = draw(KINDS_ST)
        n = draw(UPTO_ST[5])
        k = draw(UPTO_ST[n])
        params = {"k": k, "n": n, "kinds": kinds, "approve_threshold": threshold}
        policy = Policy("k_of_n", params)
        counted = [_vote(draw, f"v{i}", draw(st.sampled_from(kinds))) for i in range(n)]
        noise = [_vote(draw, f"x{i}", NOISE_KIND) for i in range(draw(NOISE_ST))]
    approvals = sum(approves(v, threshold) for v in counted)
    return policy, counted, noise, approvals >= k


@st.composite
def full_weighted(draw: st.DrawFn) -> tuple[Policy, list[Vote], list[Vote], bool]:
    vw, kw, threshold = draw_weights(draw)
    policy = Policy("weighted", {"voter_weights": vw, "kind_weights": kw, "threshold": threshold})
    # A listed voter fills its own slot whatever its kind; each kind slot gets one fresh voter.
    counted = [_vote(draw, v, draw(ANY_KIND_ST)) for v in vw]
    counted += [_vote(draw, f"k-{kind}", kind) for kind in kw]
    noise = [_vote(draw, f"x{i}", NOISE_KIND) for i in range(draw(NOISE_ST))]
    weights = {**{f"k-{k}": w for k, w in kw.items()}, **vw}
    score = sum((exact(weights[v.voter_id]) * vote_weight(v) for v in counted), Fraction(0))
    return policy, counted, noise, score >= exact(threshold)


@settings(max_examples=100, deadline=None)
@given(st.one_of(full_k_of_n(), full_weighted()), st.data())
def test_final_outcome_is_order_independent_once_every_slot_is_filled(
    case: tuple[Policy, list[Vote], list[Vote], bool], data: st.DataObject
) -> None:
    policy, counted, noise, expected = case
    order = data.draw(st.permutations([*counted, *noise]))
    got = decide(policy, order, intent_id=0, intent_ts_ms=0, now_ms=0)
    assert got is not None, (policy, order)
    assert got.commit is expected, (policy, order, got)
