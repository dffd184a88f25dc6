"""The decider's policy core: pure functions from (policy, votes, time) to commit / abort.

Nothing here does I/O, reads a clock or draws random numbers: the decider process feeds in the
votes it has read from the bus (in log order), the intent's timestamp and the current time, and
appends whatever :func:`decide` returns. Because the function is deterministic, several deciders
may run at once; readers keep the first decision per intent (:class:`DecisionLog`).

Policy kinds (``Policy.kind``) and their ``params``:

``on_by_default``
    Commit at once, without waiting for votes. No params.
``off_by_default``
    Abort at once. No params.
``first_voter``
    The first counted vote decides. ``kinds`` (optional): only votes of these voter kinds count.
``all``
    AND over voter kinds. ``kinds`` (required): a reject by a voter of a listed kind aborts at
    once; the intent commits when every listed kind has at least one approval. Other kinds are
    ignored.
``any``
    OR over voter kinds. ``kinds`` (required): an approval by a voter of a listed kind commits at
    once; the intent aborts when every listed kind has been rejected (and none approved).
``veto``
    ``kinds`` (required): a reject by *any* voter, listed or not, aborts at once; the intent
    commits when every listed kind has at least one approval. (Unlike ``all``, voters of unlisted
    kinds may veto; they are just not waited for.)
``k_of_n``
    Quorum. ``k`` (required, >= 1) and either ``n`` (the number of voters counted: the first ``n``
    distinct voters, optionally only of ``kinds``) or ``voters`` (the voter ids counted; n is their
    number). Commits at ``k`` approvals, aborts as soon as ``k`` approvals are out of reach.
``weighted``
    ``voter_weights`` ({voter_id: weight}) and/or ``kind_weights`` ({kind: weight}), weights >= 0,
    and ``threshold`` (0 < threshold <= total weight). Each listed voter id is one slot; each listed
    kind is one slot, filled by the first vote of that kind whose voter id is not listed itself.
    Score = sum of weight * probability over filled slots (a boolean vote counts as 1 or 0).
    Commits once score >= threshold, aborts once the score can no longer reach it (at the latest
    when every slot is filled). Arithmetic is exact decimal (see :func:`exact`), so vote order
    never matters.

Boolean policies (all but ``weighted``) read a vote's ``approve`` when set, otherwise its
``probability >= approve_threshold`` (param, default 0.5).

Every policy may carry ``deadline_ms``: if the intent is still undecided when
``now_ms - intent_ts_ms >= deadline_ms``, the decision is abort with reason ``"timeout"``.
Only the first vote of each voter id counts; votes are evaluated in the order given (log order)
and the decision is taken at the first vote that determines the outcome, so adding votes to a
decided sequence never changes the decision.

**Escalation.** A vote with ``escalate`` says "not automatically: a person must decide" (the
information-flow voter's verdict on a value from untrusted content). Under any policy, an
escalated intent never commits without a person: the first vote of kind ``human`` (``logact
vote``) answers it. A person's approval stands in for every escalating vote and the policy then
decides as usual; a person's rejection aborts. Without an answer, the policy may still abort
(another voter's veto) but never commits, and at ``deadline_ms`` the escalation counts as
denied, or as approved where the policy says ``unanswered = "allow"``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, NamedTuple, TypeGuard

from logact.agent.core.entries import Abort, Commit, Vote

__all__ = [
    "DEFAULT_APPROVE_THRESHOLD",
    "DEFAULT_POLICY",
    "ESCALATION_KIND",
    "POLICY_KINDS",
    "TIMEOUT_REASON",
    "Decision",
    "DecisionLog",
    "Policy",
    "PolicyError",
    "PolicyLog",
    "approves",
    "decide",
    "exact",
    "first_vote_per_voter",
    "vote_weight",
]

POLICY_KINDS = (
    "on_by_default",
    "off_by_default",
    "first_voter",
    "all",
    "any",
    "k_of_n",
    "veto",
    "weighted",
)
TIMEOUT_REASON = "timeout"
DEFAULT_APPROVE_THRESHOLD = 0.5
#: The vote kind that answers an escalation: a person's (``logact vote``).
ESCALATION_KIND = "human"
#: What an escalation nobody answered by the deadline means.
UNANSWERED = ("deny", "allow")

_THRESHOLD = ("approve_threshold",)
_ALLOWED_PARAMS: dict[str, frozenset[str]] = {
    "on_by_default": frozenset(),
    "off_by_default": frozenset(),
    "first_voter": frozenset(("kinds", *_THRESHOLD)),
    "all": frozenset(("kinds", *_THRESHOLD)),
    "any": frozenset(("kinds", *_THRESHOLD)),
    "veto": frozenset(("kinds", *_THRESHOLD)),
    "k_of_n": frozenset(("k", "n", "voters", "kinds", *_THRESHOLD)),
    "weighted": frozenset(("voter_weights", "kind_weights", "threshold")),
}
_DOC_KEYS = frozenset(
    ("kind", "params", "deadline_ms", "version", "signers", "deciders", "unanswered")
)


class PolicyError(ValueError):
    """A decider policy (or its document) is invalid."""


#: The decider's verdict on one intent: the commit or abort entry to append.
Decision = Commit | Abort


class _Outcome(NamedTuple):
    """What a policy kind concludes, before it is written as the decision on an intent."""

    commit: bool
    reason: str


# ---------------------------------------------------------------------------------------------
# Votes


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def exact(value: float) -> Fraction:
    """A number as the decimal it is written as: ``exact(0.1) == Fraction(1, 10)``.

    Weights, thresholds and probabilities are compared exactly, in decimal, so that sums do not
    depend on vote order and ``0.7 + 0.2 + 0.1`` reaches a threshold of ``1.0``.
    """
    return Fraction(value) if isinstance(value, int) else Fraction(repr(value))


def approves(vote: Vote, approve_threshold: float = DEFAULT_APPROVE_THRESHOLD) -> bool:
    """The vote read as a boolean: ``approve`` when set, else its probability by the threshold."""
    if vote.approve is not None:
        return vote.approve
    assert vote.probability is not None
    return vote.probability >= approve_threshold


def vote_weight(vote: Vote) -> Fraction:
    """The vote read as a probability (exact): ``probability`` when set, else 1 or 0."""
    if vote.probability is not None:
        return exact(vote.probability)
    return Fraction(1 if vote.approve else 0)


def first_vote_per_voter(votes: Iterable[Vote]) -> Iterator[Vote]:
    """The votes in order, each voter's later votes dropped (a voter's first vote is final)."""
    seen: set[str] = set()
    for vote in votes:
        if vote.voter_id not in seen:
            seen.add(vote.voter_id)
            yield vote


# ---------------------------------------------------------------------------------------------
# Policies


def _names(kind: str, key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise PolicyError(f"{kind} policy: {key} must be a list of strings, got {value!r}")
    if not value:
        raise PolicyError(f"{kind} policy: {key} must not be empty")
    for item in value:
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{kind} policy: {key} entries must be non-empty strings: {item!r}")
    if len(set(value)) != len(value):
        raise PolicyError(f"{kind} policy: {key} has duplicates: {list(value)!r}")
    return tuple(value)


def _weights(kind: str, key: str, value: object) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{kind} policy: {key} must be a mapping of name to weight")
    out: dict[str, float] = {}
    for name, weight in value.items():
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{kind} policy: {key} names must be non-empty strings: {name!r}")
        if not _is_real(weight) or weight < 0:
            raise PolicyError(
                f"{kind} policy: {key}[{name!r}] must be a finite number >= 0, got {weight!r}"
            )
        out[name] = weight
    return MappingProxyType(out)


def _normalize_params(kind: str, params: object) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise PolicyError(f"{kind} policy: params must be a mapping, got {params!r}")
    unknown = sorted(set(params) - _ALLOWED_PARAMS[kind])
    if unknown:
        allowed = ", ".join(sorted(_ALLOWED_PARAMS[kind])) or "none"
        raise PolicyError(f"{kind} policy: unknown params {unknown} (allowed: {allowed})")
    out: dict[str, Any] = {}
    if "approve_threshold" in params:
        value = params["approve_threshold"]
        if not _is_real(value) or not 0.0 <= value <= 1.0:
            raise PolicyError(f"{kind} policy: approve_threshold must be in [0, 1], got {value!r}")
        out["approve_threshold"] = value
    if "kinds" in params:
        out["kinds"] = _names(kind, "kinds", params["kinds"])
    elif kind in ("all", "any", "veto"):
        raise PolicyError(f"{kind} policy: params.kinds (the voter kinds it ranges over) required")

    if kind == "k_of_n":
        k = params.get("k")
        if not _is_int(k) or k < 1:
            raise PolicyError(f"k_of_n policy: k must be an integer >= 1, got {k!r}")
        out["k"] = k
        if ("n" in params) == ("voters" in params):
            raise PolicyError("k_of_n policy: give exactly one of n (a count) or voters (ids)")
        if "voters" in params:
            if "kinds" in params:
                raise PolicyError("k_of_n policy: kinds cannot be combined with voters")
            voters = _names(kind, "voters", params["voters"])
            n = len(voters)
            out["voters"] = voters
        else:
            n = params["n"]
            if not _is_int(n) or n < 1:
                raise PolicyError(f"k_of_n policy: n must be an integer >= 1, got {n!r}")
            out["n"] = n
        if k > n:
            raise PolicyError(f"k_of_n policy: k={k} exceeds n={n}, the quorum is unreachable")

    if kind == "weighted":
        total = Fraction(0)
        for key in ("voter_weights", "kind_weights"):
            if key in params:
                out[key] = _weights(kind, key, params[key])
                total += sum((exact(w) for w in out[key].values()), Fraction(0))
        if not out.get("voter_weights") and not out.get("kind_weights"):
            raise PolicyError("weighted policy: voter_weights or kind_weights must name voters")
        threshold = params.get("threshold")
        if not _is_real(threshold) or threshold <= 0:
            raise PolicyError(f"weighted policy: threshold must be a number > 0, got {threshold!r}")
        if exact(threshold) > total:
            raise PolicyError(
                f"weighted policy: threshold {threshold} exceeds the total weight {float(total)}"
            )
        out["threshold"] = threshold
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Policy:
    """A versioned decider policy. Construction validates (raises :class:`PolicyError`)."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    deadline_ms: int | None = None
    version: int = 0
    #: Voter kind -> the principal whose votes of that kind count. When set, a vote counts
    #: only if the log's author of it (stamped by the server) is the principal named for its
    #: kind; any other vote is forged: ignored, and reported by the bus fold.
    signers: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: Principals whose commit/abort count (when set); others' are ignored and reported.
    deciders: tuple[str, ...] = ()
    #: An escalation no person answered by the deadline: "deny" (abort) or "allow" (commit).
    unanswered: str = "deny"

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise PolicyError(
                f"unknown decider policy kind {self.kind!r} (known: {', '.join(POLICY_KINDS)})"
            )
        if self.deadline_ms is not None and (not _is_int(self.deadline_ms) or self.deadline_ms < 1):
            raise PolicyError(
                f"deadline_ms must be a positive integer or None, got {self.deadline_ms!r}"
            )
        if not _is_int(self.version) or self.version < 0:
            raise PolicyError(f"version must be an integer >= 0, got {self.version!r}")
        params = _normalize_params(self.kind, self.params)
        object.__setattr__(self, "params", MappingProxyType(params))
        signers = self.signers
        if not isinstance(signers, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in signers.items()
        ):
            raise PolicyError("signers must map voter kinds to principal names")
        object.__setattr__(self, "signers", MappingProxyType(dict(signers)))
        deciders = self.deciders
        if not isinstance(deciders, list | tuple) or not all(
            isinstance(d, str) and d for d in deciders
        ):
            raise PolicyError("deciders must be a list of principal names")
        object.__setattr__(self, "deciders", tuple(deciders))
        if self.unanswered not in UNANSWERED:
            raise PolicyError(f"unanswered must be one of {UNANSWERED}, got {self.unanswered!r}")

    def counts_vote(self, kind: str, author: str) -> bool:
        """Whether a vote of ``kind`` appended by principal ``author`` counts."""
        return not self.signers or self.signers.get(kind) == author

    def counts_decision(self, author: str) -> bool:
        return not self.deciders or author in self.deciders

    @classmethod
    def from_doc(cls, doc: object) -> Policy:
        """Build from a decider_policy entry body: {kind, params?, deadline_ms?, version}."""
        if not isinstance(doc, Mapping):
            raise PolicyError(f"a decider policy must be a mapping, got {type(doc).__name__}")
        unknown = sorted(set(doc) - _DOC_KEYS)
        if unknown:
            raise PolicyError(f"decider policy: unknown keys {unknown}")
        if "kind" not in doc:
            raise PolicyError("decider policy: kind is required")
        if "version" not in doc:
            raise PolicyError("decider policy: version is required")
        return cls(
            kind=doc["kind"],
            params=doc.get("params") or {},
            deadline_ms=doc.get("deadline_ms"),
            version=doc["version"],
            signers=doc.get("signers") or {},
            deciders=doc.get("deciders") or (),
            unanswered=doc.get("unanswered", "deny"),
        )

    def to_doc(self) -> dict[str, Any]:
        """A plain (JSON/CBOR-ready) document; ``Policy.from_doc(p.to_doc()) == p``."""
        doc: dict[str, Any] = {"kind": self.kind, "params": _plain(self.params)}
        if self.deadline_ms is not None:
            doc["deadline_ms"] = self.deadline_ms
        if self.signers:
            doc["signers"] = dict(self.signers)
        if self.deciders:
            doc["deciders"] = list(self.deciders)
        if self.unanswered != "deny":
            doc["unanswered"] = self.unanswered
        doc["version"] = self.version
        return doc


DEFAULT_POLICY = Policy("off_by_default")


# ---------------------------------------------------------------------------------------------
# Deciding


def _who(vote: Vote) -> str:
    return f"{vote.voter_id} ({vote.kind})"


def _said(vote: Vote) -> str:
    return f"{_who(vote)}: {vote.reason}" if vote.reason else _who(vote)


def _by_kind(found: Mapping[str, list[str]], kinds: Sequence[str]) -> str:
    return "; ".join(f"{k} by {', '.join(found[k])}" for k in kinds)


def _first_voter(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    kinds = policy.params.get("kinds")
    threshold = policy.params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    for vote in votes:
        if kinds is not None and vote.kind not in kinds:
            continue
        ok = approves(vote, threshold)
        return _Outcome(ok, f"first voter {'approved' if ok else 'rejected'}: {_said(vote)}")
    return None


def _all(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    kinds = policy.params["kinds"]
    threshold = policy.params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    approved: dict[str, list[str]] = {}
    for vote in votes:
        if vote.kind not in kinds:
            continue
        if not approves(vote, threshold):
            return _Outcome(False, f"rejected by {_said(vote)} (all of {list(kinds)} must approve)")
        approved.setdefault(vote.kind, []).append(vote.voter_id)
        if len(approved) == len(kinds):
            return _Outcome(True, f"all kinds approved: {_by_kind(approved, kinds)}")
    return None


def _any(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    kinds = policy.params["kinds"]
    threshold = policy.params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    rejected: dict[str, list[str]] = {}
    for vote in votes:
        if vote.kind not in kinds:
            continue
        if approves(vote, threshold):
            return _Outcome(True, f"approved by {_said(vote)}")
        rejected.setdefault(vote.kind, []).append(vote.voter_id)
        if len(rejected) == len(kinds):
            return _Outcome(False, f"every kind rejected: {_by_kind(rejected, kinds)}")
    return None


def _veto(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    kinds = policy.params["kinds"]
    threshold = policy.params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    approved: dict[str, list[str]] = {}
    for vote in votes:
        if not approves(vote, threshold):
            return _Outcome(False, f"vetoed by {_said(vote)}")
        if vote.kind in kinds:
            approved.setdefault(vote.kind, []).append(vote.voter_id)
            if len(approved) == len(kinds):
                return _Outcome(True, f"no veto; approved: {_by_kind(approved, kinds)}")
    return None


def _k_of_n(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    params = policy.params
    k: int = params["k"]
    voters = params.get("voters")
    kinds = params.get("kinds")
    n: int = len(voters) if voters is not None else params["n"]
    threshold = params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    yes: list[str] = []
    no: list[str] = []
    for vote in votes:
        if voters is not None and vote.voter_id not in voters:
            continue
        if kinds is not None and vote.kind not in kinds:
            continue
        (yes if approves(vote, threshold) else no).append(vote.voter_id)
        if len(yes) >= k:
            return _Outcome(True, f"{k} of {n} approved: {', '.join(yes)}")
        if len(yes) + (n - len(yes) - len(no)) < k:
            approved = f"; approved by {', '.join(yes)}" if yes else ""
            return _Outcome(
                False,
                f"quorum {k} of {n} unreachable: rejected by {', '.join(no)}{approved}",
            )
    return None


def _weighted(policy: Policy, votes: Iterable[Vote]) -> _Outcome | None:
    params = policy.params
    voter_weights: Mapping[str, float] = params.get("voter_weights", {})
    kind_weights: Mapping[str, float] = params.get("kind_weights", {})
    threshold = exact(params["threshold"])
    remaining = sum(
        (exact(w) for w in (*voter_weights.values(), *kind_weights.values())), Fraction(0)
    )
    score = Fraction(0)
    filled_kinds: set[str] = set()
    terms: list[str] = []
    for vote in votes:
        if vote.voter_id in voter_weights:
            weight = voter_weights[vote.voter_id]
        elif vote.kind in kind_weights and vote.kind not in filled_kinds:
            filled_kinds.add(vote.kind)
            weight = kind_weights[vote.kind]
        else:
            continue
        p = vote_weight(vote)
        remaining -= exact(weight)
        score += exact(weight) * p
        terms.append(f"{vote.voter_id}={weight:g}*{float(p):g}")
        summary = f"score {float(score):.4g} vs threshold {float(threshold):g} ({', '.join(terms)})"
        if score >= threshold:
            return _Outcome(True, f"weighted {summary} reached")
        if score + remaining < threshold:
            return _Outcome(False, f"weighted {summary} unreachable")
    return None


_DECIDERS = {
    "first_voter": _first_voter,
    "all": _all,
    "any": _any,
    "veto": _veto,
    "k_of_n": _k_of_n,
    "weighted": _weighted,
}


def decide(
    policy: Policy, votes: Iterable[Vote], *, intent_id: int, intent_ts_ms: int, now_ms: int
) -> Decision | None:
    """The decision on intent ``intent_id``, or None while it is still open.

    ``votes`` are that intent's votes in log order; only each voter's first vote counts. A
    decision determined by the votes stands even if the deadline has passed by the time it is
    computed; an intent still open at ``intent_ts_ms + deadline_ms`` aborts with reason
    ``"timeout"``.
    """
    outcome = _outcome(policy, list(votes), late=_late(policy, intent_ts_ms, now_ms))
    if outcome is None:
        return None
    decision = Commit if outcome.commit else Abort
    return decision(intent_id, outcome.reason, policy.version)


def _late(policy: Policy, intent_ts_ms: int, now_ms: int) -> bool:
    return policy.deadline_ms is not None and now_ms - intent_ts_ms >= policy.deadline_ms


def _outcome(policy: Policy, votes: list[Vote], *, late: bool) -> _Outcome | None:
    if policy.kind == "on_by_default":
        return _Outcome(True, "on_by_default: committed without waiting for votes")
    if policy.kind == "off_by_default":
        return _Outcome(False, "off_by_default: aborted without waiting for votes")
    counted = list(first_vote_per_voter(votes))
    if any(v.escalate for v in counted):
        # Decided at the first vote that determines the outcome, as without escalations.
        for end in range(1, len(counted) + 1):
            decision = _escalated(policy, counted[:end], late=False)
            if decision is not None:
                return decision
        return _escalated(policy, counted, late=late)
    decision = _DECIDERS[policy.kind](policy, counted)
    if decision is not None:
        return decision
    return _Outcome(False, TIMEOUT_REASON) if late else None


def _escalated(policy: Policy, votes: list[Vote], *, late: bool) -> _Outcome | None:
    """The decision on an intent a voter escalated to a person (see the module doc).

    The policy is first applied as if the person approved: if that aborts (another voter's
    veto), the abort stands whatever the person says, which keeps decisions monotonic in votes.
    """
    escalations = [v for v in votes if v.escalate]
    if not escalations:
        decision = _DECIDERS[policy.kind](policy, votes)
        return decision if decision is not None or not late else _Outcome(False, TIMEOUT_REASON)
    threshold = policy.params.get("approve_threshold", DEFAULT_APPROVE_THRESHOLD)
    if_approved = _DECIDERS[policy.kind](
        policy,
        [
            replace(v, approve=True, probability=None, escalate=None) if v.escalate else v
            for v in votes
        ],
    )
    if if_approved is not None and not if_approved.commit:
        return if_approved
    person = next((v for v in votes if v.kind == ESCALATION_KIND and not v.escalate), None)
    asked = "; ".join(_said(v) for v in escalations)
    if person is not None and not approves(person, threshold):
        return _Outcome(
            False, f"a person rejected the escalated action: {_said(person)} (asked: {asked})"
        )
    if person is not None and if_approved is not None:
        return _Outcome(True, f"approved by a person on escalation; {if_approved.reason}")
    if not late:
        return None
    if person is None and policy.unanswered == "deny":
        return _Outcome(False, f"escalated to a person, who did not answer in time: {asked}")
    if if_approved is None:
        return _Outcome(False, TIMEOUT_REASON)
    return _Outcome(True, f"escalated, unanswered by the deadline, allowed by policy: {asked}")


# ---------------------------------------------------------------------------------------------
# Policy history and decision de-duplication


class PolicyLog:
    """Decider policies by log position: an intent is decided by the latest policy before it.

    ``add`` takes policy entries in log order. An entry whose version is not greater than the
    latest accepted one is a stale or duplicate write (a lost compare-and-swap, or an at-least-once
    re-append) and is ignored. Replaying an already-seen position is a no-op.
    """

    def __init__(self, default: Policy = DEFAULT_POLICY) -> None:
        self.default = default
        self._positions: list[int] = []  # accepted entries, ascending
        self._policies: list[Policy] = []
        self._seen: set[int] = set()
        self._last_seen = -1

    def add(self, position: int, policy: Policy) -> bool:
        """Record the policy entry at ``position``; True if it took effect."""
        if not _is_int(position) or position < 0:
            raise ValueError(f"log position must be an integer >= 0, got {position!r}")
        if position in self._seen:
            return False
        if position < self._last_seen:
            raise ValueError(
                f"policy entry at {position} added after {self._last_seen}: add in log order"
            )
        self._seen.add(position)
        self._last_seen = position
        if self._policies and policy.version <= self._policies[-1].version:
            return False
        self._positions.append(position)
        self._policies.append(policy)
        return True

    def policy_for(self, intent_position: int) -> Policy:
        """The policy deciding the intent at ``intent_position``."""
        i = bisect.bisect_left(self._positions, intent_position)
        return self._policies[i - 1] if i else self.default

    @property
    def current(self) -> Policy:
        """The policy for intents appended from now on."""
        return self._policies[-1] if self._policies else self.default

    def __len__(self) -> int:
        return len(self._policies)


class DecisionLog:
    """The final decision per intent; later (duplicate) decisions are ignored.

    Duplicates that disagree with the final decision (possible when deciders ran with different
    views of the clock) are kept in ``conflicts`` for diagnosis.
    """

    def __init__(self) -> None:
        self._final: dict[int, Decision] = {}
        self.conflicts: list[Decision] = []

    def record(self, decision: Decision) -> bool:
        """Record a decision read from the log; True if it is the final one (the first)."""
        final = self._final.get(decision.intent_id)
        if final is None:
            self._final[decision.intent_id] = decision
            return True
        if final.commit != decision.commit:
            self.conflicts.append(decision)
        return False

    def decision_for(self, intent_position: int) -> Decision | None:
        return self._final.get(intent_position)

    def __contains__(self, intent_position: object) -> bool:
        return intent_position in self._final

    def decisions(self) -> dict[int, Decision]:
        return dict(self._final)
