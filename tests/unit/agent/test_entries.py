"""The entry vocabulary: round trips through CBOR, rejection of bad bodies, role mapping."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.agent.core.entries import (
    DECIDERS,
    ENTRY_TYPES,
    FENCED_TYPES,
    MAX_OUTPUT_CHARS,
    ROLE_CLAIMS,
    ROLE_TYPES,
    SEVERITIES,
    VOTE_SIGNERS,
    Abort,
    AgentInput,
    AgentOutput,
    CodeBlock,
    Commit,
    DeciderPolicy,
    EntryError,
    ExecStart,
    Health,
    InfIn,
    InfOut,
    Intent,
    Mail,
    Result,
    ToolCall,
    Usage,
    Vote,
    VoterPolicy,
    cap_output,
    parse,
)
from logact.ops.test_config import agent_token, write_local_config
from logact.protocol.codec import BUS_ID
from logact.server.config import ClusterConfig, load_config

# --- strategies for valid entries ---------------------------------------------------------------

text = st.text(max_size=30)
name = st.text(min_size=1, max_size=16)
position = st.integers(min_value=0, max_value=2**63 - 1)
count = st.integers(min_value=0, max_value=10**9)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
doc = st.dictionaries(st.text(max_size=8), plain, max_size=4)
message = st.builds(lambda d, role: {**d, "role": role}, doc, name)


@st.composite
def results(draw: st.DrawFn) -> Result:
    ok = draw(st.booleans())
    return Result(
        intent_id=draw(position),
        ok=ok,
        output=draw(st.text(max_size=50)),
        error=None if ok else draw(name),
        duration_ms=draw(st.none() | count),
        in_doubt=False if ok else draw(st.booleans()),
    )


@st.composite
def votes(draw: st.DrawFn) -> Vote:
    approve = draw(st.none() | st.booleans())
    probability = draw(st.floats(0, 1) if approve is None else st.none() | st.floats(0, 1))
    return Vote(draw(position), draw(name), draw(name), draw(name), approve, probability)


STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "agent_input": st.builds(AgentInput, name),
    "agent_output": st.builds(AgentOutput, text, st.none() | position),
    "inf_in": st.builds(InfIn, name, st.lists(message, min_size=1, max_size=3).map(tuple)),
    "inf_out": st.builds(InfOut, name, message, st.none() | st.builds(Usage, count, count)),
    "intent": st.builds(
        Intent,
        st.builds(ToolCall, name, doc, st.none() | name) | st.builds(CodeBlock, name, name),
        st.none() | text,
    ),
    "vote": votes(),
    "commit": st.builds(Commit, position, name, st.none() | count),
    "abort": st.builds(Abort, position, name, st.none() | count),
    "exec_start": st.builds(ExecStart, position),
    "result": results(),
    "mail": st.builds(Mail, name, st.from_regex(BUS_ID, fullmatch=True), name, st.none() | text),
    "decider_policy": st.builds(DeciderPolicy, st.integers(min_value=1, max_value=2**63 - 1), doc),
    "voter_policy": st.builds(VoterPolicy, st.integers(min_value=1, max_value=2**63 - 1), doc),
    "health": st.builds(
        Health,
        name,
        position,
        st.lists(
            st.fixed_dictionaries(
                {
                    "signal": name,
                    "severity": st.sampled_from(SEVERITIES),
                    "detail": text,
                    "positions": st.lists(position, max_size=3),
                }
            ),
            max_size=3,
        ).map(tuple),
        st.none() | text,
    ),
}


def test_every_entry_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(ENTRY_TYPES)
    assert len(ENTRY_TYPES) == 14


@pytest.mark.parametrize("etype", sorted(STRATEGIES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip_through_cbor(etype: str, data: st.DataObject) -> None:
    entry = data.draw(STRATEGIES[etype])
    entry_type, body = entry.to_entry()
    assert entry_type == etype
    decoded = parse(etype, cbor2.loads(cbor2.dumps(body)))
    assert type(decoded) is type(entry)
    assert decoded == entry


# --- invalid bodies -----------------------------------------------------------------------------

VOTE = {"intent_id": 7, "voter_id": "rules", "kind": "rule", "approve": True, "reason": "allowed"}
TOOL = {"kind": "tool", "tool": "shell", "arguments": {"cmd": "ls"}}
RESULT = {"intent_id": 7, "ok": True, "output": "done", "duration_ms": 3, "in_doubt": False}
MAIL = {"from": "alice", "to": "agent.a", "text": "hi"}
INF_OUT = {"model": "m", "message": {"role": "assistant", "content": "x"}}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


INVALID: list[tuple[str, Any, str | None]] = [
    ("vote", [VOTE], None),
    ("vote", {**VOTE, "probability": 1.5}, "probability"),
    ("vote", {**VOTE, "probability": -0.1}, "probability"),
    ("vote", {**VOTE, "probability": math.nan}, "probability"),
    ("vote", {**VOTE, "probability": True}, "probability"),
    ("vote", {**VOTE, "approve": "yes"}, "approve"),
    ("vote", without(VOTE, "approve"), "approve"),
    ("vote", {**VOTE, "approve": None}, "approve"),
    ("vote", without(VOTE, "reason"), "reason"),
    ("vote", {**VOTE, "reason": ""}, "reason"),
    ("vote", {**VOTE, "voter_id": ""}, "voter_id"),
    ("vote", {**VOTE, "voter": "rules"}, "voter"),
    ("vote", without(VOTE, "kind"), "kind"),
    ("vote", {**VOTE, "intent_id": -1}, "intent_id"),
    ("vote", {**VOTE, "intent_id": True}, "intent_id"),
    ("vote", {**VOTE, "intent_id": 7.0}, "intent_id"),
    ("vote", {**VOTE, "weight": 2}, "weight"),
    ("commit", {"intent_id": 1}, "reason"),
    ("commit", {"intent_id": 1, "reason": "ok", "policy_version": -1}, "policy_version"),
    ("abort", {"intent_id": "1", "reason": "veto"}, "intent_id"),
    ("abort", {"intent_id": 1, "reason": "veto", "voter": "x"}, "voter"),
    ("intent", {}, "action"),
    ("intent", {"action": ["shell"]}, "action"),
    ("intent", {"action": {**TOOL, "kind": "sql"}}, "action.kind"),
    ("intent", {"action": without(TOOL, "kind")}, "action.kind"),
    ("intent", {"action": {**TOOL, "tool": ""}}, "action.tool"),
    ("intent", {"action": without(TOOL, "arguments")}, "action.arguments"),
    ("intent", {"action": {**TOOL, "arguments": ["ls"]}}, "action.arguments"),
    ("intent", {"action": {**TOOL, "arguments": {"x": b"raw"}}}, "action.arguments"),
    ("intent", {"action": {**TOOL, "arguments": {"x": [math.inf]}}}, "action.arguments"),
    ("intent", {"action": {**TOOL, "arguments": {1: "x"}}}, "action.arguments"),
    ("intent", {"action": {**TOOL, "call_id": 5}}, "action.call_id"),
    ("intent", {"action": {"kind": "code", "code": "print(1)"}}, "action.language"),
    (
        "intent",
        {"action": {"kind": "code", "language": "py", "code": "1", "tool": "t"}},
        "action.tool",
    ),
    ("intent", {"action": TOOL, "reasoning": 5}, "reasoning"),
    ("exec_start", {}, "intent_id"),
    ("result", {**RESULT, "error": "boom"}, "error"),
    ("result", {**RESULT, "ok": False}, "error"),
    ("result", {**RESULT, "ok": "true"}, "ok"),
    ("result", {**RESULT, "in_doubt": True}, "in_doubt"),
    ("result", {**RESULT, "output": "x" * (MAX_OUTPUT_CHARS + 1)}, "output"),
    ("result", {**RESULT, "duration_ms": -5}, "duration_ms"),
    ("result", {**RESULT, "intent_id": 2**63}, "intent_id"),
    ("result", {**RESULT, "duration_ms": 1.5}, "duration_ms"),
    ("inf_in", {"model": "m", "messages": []}, "messages"),
    ("inf_in", {"model": "m", "messages": "hello"}, "messages"),
    ("inf_in", {"model": "m", "messages": [{"content": "hi"}]}, "messages[0]"),
    ("inf_in", {"messages": [{"role": "user"}]}, "model"),
    ("inf_out", without(INF_OUT, "message"), "message"),
    ("inf_out", {**INF_OUT, "message": {"content": "x"}}, "message"),
    ("inf_out", {**INF_OUT, "usage": [1, 2]}, "usage"),
    (
        "inf_out",
        {**INF_OUT, "usage": {"prompt_tokens": -1, "completion_tokens": 0}},
        "usage.prompt_tokens",
    ),
    ("inf_out", {**INF_OUT, "usage": {"prompt_tokens": 1}}, "usage.completion_tokens"),
    (
        "inf_out",
        {**INF_OUT, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
        "usage.total_tokens",
    ),
    ("mail", {**MAIL, "to": "no spaces allowed"}, "to"),
    ("mail", {**MAIL, "to": ""}, "to"),
    ("mail", without(MAIL, "from"), "from"),
    ("mail", {**MAIL, "sender": "bob"}, "sender"),
    ("mail", {**MAIL, "subject": 3}, "subject"),
    ("mail", {**MAIL, "text": ""}, "text"),
    ("decider_policy", {"version": 0, "policy": {}}, "version"),
    ("decider_policy", {"version": 1, "policy": ["all"]}, "policy"),
    ("voter_policy", {"version": "2", "policy": {}}, "version"),
    ("voter_policy", {"version": 2}, "policy"),
    ("agent_input", {"text": ""}, "text"),
    ("agent_output", {"text": "done", "input_id": -1}, "input_id"),
]


@pytest.mark.parametrize(("etype", "body", "field"), INVALID)
def test_invalid_body_is_rejected_naming_the_field(
    etype: str, body: Any, field: str | None
) -> None:
    with pytest.raises(EntryError) as caught:
        parse(etype, body)
    error = caught.value
    assert (error.entry_type, error.field) == (etype, field)
    assert etype in str(error)
    if field is not None:
        assert repr(field) in str(error)


def test_the_table_bases_are_valid() -> None:
    """Each invalid case above differs from a valid body only in the field it names."""
    parse("vote", VOTE)
    parse("intent", {"action": TOOL})
    parse("result", RESULT)
    parse("mail", MAIL)
    parse("inf_out", INF_OUT)


def test_unknown_entry_type_is_rejected() -> None:
    with pytest.raises(EntryError, match="unknown entry type"):
        parse("launch_missiles", {})


def test_constructors_validate_too() -> None:
    with pytest.raises(EntryError, match="probability"):
        Vote(1, "v", "llm", "fine", probability=2.0)
    with pytest.raises(EntryError, match="action"):
        Intent(action={"tool": "shell"})  # type: ignore[arg-type]
    with pytest.raises(EntryError, match="error"):
        Result(1, ok=False)


def test_messages_given_as_a_list_are_frozen_into_a_tuple() -> None:
    entry = InfIn("m", [{"role": "user", "content": "hi"}])  # type: ignore[arg-type]
    assert entry.messages == ({"role": "user", "content": "hi"},)


def test_a_vote_may_be_a_probability_alone() -> None:
    vote = parse("vote", {**without(VOTE, "approve"), "probability": 0.25})
    assert vote == Vote(7, "rules", "rule", "allowed", probability=0.25)
    assert vote.approve is None


def test_optional_fields_are_left_out_and_null_means_absent() -> None:
    assert Commit(3, "on_by_default").to_body() == {"intent_id": 3, "reason": "on_by_default"}
    assert parse("commit", {"intent_id": 3, "reason": "x", "policy_version": None}) == Commit(
        3, "x"
    )
    assert Mail("bob", "agent.a", "hi").to_body() == {"from": "bob", "to": "agent.a", "text": "hi"}


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=200))
def test_cap_output_bounds_length_and_keeps_short_text(value: str, limit: int) -> None:
    capped = cap_output(value, limit)
    assert len(capped) <= limit
    if len(value) <= limit:
        assert capped == value


def test_cap_output_keeps_head_and_tail() -> None:
    capped = cap_output("HEAD" + "x" * 200_000 + "TAIL")
    assert len(capped) <= MAX_OUTPUT_CHARS
    assert capped.startswith("HEAD") and capped.endswith("TAIL") and "cut" in capped
    Result(1, ok=True, output=capped)  # a capped output is always acceptable


# --- roles --------------------------------------------------------------------------------------


COMPONENT_ROLES = ("driver", "voter", "decider", "executor", "mailer", "policy", "supervisor")


def test_component_roles_partition_the_entry_types() -> None:
    """Every type is owned by exactly one component role (user and hook are outside parties)."""
    owned = [etype for role in COMPONENT_ROLES for etype in ROLE_TYPES[role]]
    assert sorted(owned) == sorted(ENTRY_TYPES)
    assert ROLE_TYPES["user"] | ROLE_TYPES["hook"] <= ENTRY_TYPES.keys()


def test_role_types_match_the_cluster_configuration(shipped_config: ClusterConfig) -> None:
    """Each principal of config/cluster.toml holding an agent role may append exactly
    ROLE_TYPES[role], may claim exactly ROLE_CLAIMS[role], and is not an admin; every role has
    one."""
    config = shipped_config
    holders = {role: 0 for role in ROLE_TYPES}
    for principal in config.tokens.values():
        if principal.admin or principal.roles[0].name not in ROLE_TYPES:
            continue
        (configured,) = principal.roles
        role, types = configured.name, ROLE_TYPES[configured.name]
        holders[role] += 1
        assert configured.append == types, role
        allowed = {etype for etype in ENTRY_TYPES if principal.may_append(etype)}
        assert allowed == types, role
        claims = ROLE_CLAIMS.get(role, frozenset())
        assert {name for name in ("driver", "executor") if principal.may_claim(name)} == claims
    assert all(holders.values()), holders


@pytest.mark.parametrize("source", ["shipped", "generated"])
def test_every_signer_and_decider_is_its_own_principal(
    source: str, shipped_config: ClusterConfig, tmp_path: Path
) -> None:
    """The default policies' signers exist, each voter kind with its own principal, and may
    append votes; the deciders may append decisions."""
    config = shipped_config if source == "shipped" else load_config(write_local_config(tmp_path))
    by_name = {p.name: p for p in config.tokens.values()}
    assert len(set(VOTE_SIGNERS.values())) == len(VOTE_SIGNERS)
    for kind, name in VOTE_SIGNERS.items():
        assert by_name[name].may_append("vote") and not by_name[name].admin, kind
    for name in DECIDERS:
        assert by_name[name].may_append("commit") and by_name[name].may_append("abort")


def test_the_shipped_fences_are_the_runtimes(shipped_config: ClusterConfig) -> None:
    config = shipped_config
    assert config.fences == {t: name for name, types in FENCED_TYPES.items() for t in types}


def test_generated_configs_carry_the_same_agent_roles(tmp_path: Path) -> None:
    config = load_config(write_local_config(tmp_path))
    for role, types in ROLE_TYPES.items():
        principal = config.principal_for(agent_token(role))
        assert principal is not None
        assert {etype for etype in ENTRY_TYPES if principal.may_append(etype)} == types


@pytest.mark.parametrize(
    ("findings", "problem"),
    [
        ([{"signal": "x", "severity": "bad", "detail": "", "positions": []}], "severity"),
        ([{"signal": "", "severity": "warn", "detail": "", "positions": []}], "signal"),
        ([{"signal": "x", "severity": "warn", "detail": "", "positions": [-1]}], "positions"),
        ([{"signal": "x", "severity": "warn", "detail": ""}], "exactly the keys"),
        ("none", "list of findings"),
    ],
)
def test_a_bad_health_finding_names_its_problem(findings: Any, problem: str) -> None:
    with pytest.raises(EntryError, match=problem):
        Health.from_body({"checker": "c", "through": 3, "findings": findings})


def test_the_shipped_agent_roles_stay_on_agent_buses(shipped_config: ClusterConfig) -> None:
    """Agent components act and read on agent and hook buses only; the hook on its own."""
    by_name = {p.name: p for p in shipped_config.tokens.values()}
    for name in ("driver", "rule-voter", "decider", "executor", "user", "human", "mailer"):
        principal = by_name[name]
        etype = sorted(principal.roles[0].append)[0]
        for bus in ("agent/a1", "claude_code.alice.s1", "codex.bob.s2"):
            assert principal.may_append_on(etype, bus) and principal.may_read(bus), (name, bus)
        for bus in ("app/orders", "demo/x", "agentish/1"):
            assert not principal.may_append_on(etype, bus), (name, bus)
            assert not principal.may_read(bus), (name, bus)
    hook = by_name["hook"]
    assert hook.may_append_on("intent", "claude_code.alice.s1")
    assert not hook.may_append_on("intent", "agent/a1") and not hook.may_read("agent/a1")
    assert by_name["app"].may_append_on("note", "app/orders")
    assert by_name["observer"].may_read("app/orders") and by_name["observer"].may_read("agent/a1")
