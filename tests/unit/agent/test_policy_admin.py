"""Policy changes from outside (agent/integrations/policy_admin.py): documents are checked
before they reach the log, versions follow the bus's, and a change numbered from a stale tail
is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from logact.agent.core import entries as e
from logact.agent.core.policy import DEFAULT_POLICY, Policy
from logact.agent.core.replay import read_state
from logact.agent.integrations.policy_admin import (
    PolicyChange,
    PolicyDocError,
    append_change,
    check_voter_policy,
    decider_policy,
    signed,
    veto_policy,
)
from logact.protocol.errors import ConditionFailed
from logact.server.local import LocalLog

BUS = "agent/policy-admin"


def test_signed_adds_the_shipped_identities_unless_the_document_names_its_own() -> None:
    doc = signed({"kind": "veto"})
    assert doc["signers"] == e.VOTE_SIGNERS and doc["deciders"] == list(e.DECIDERS)
    own = signed({"kind": "veto", "deciders": ["me"]})
    assert own["deciders"] == ["me"] and own["signers"] == e.VOTE_SIGNERS
    assert signed([1, 2]) == [1, 2]  # not a document: left for the policy check to refuse


def test_veto_policy_is_the_signed_veto_over_the_kinds() -> None:
    policy = veto_policy(["rule", "llm"], deadline_ms=60_000)
    expected = {"kind": "veto", "params": {"kinds": ["rule", "llm"]}, "deadline_ms": 60_000}
    assert policy == Policy.from_doc(signed({"version": 0, **expected}))


def test_decider_policy_reads_json_or_a_file_and_defaults_to_the_signed_default(
    tmp_path: Path,
) -> None:
    assert decider_policy(None).kind == DEFAULT_POLICY.kind
    assert decider_policy(None).deciders == e.DECIDERS
    doc = {"kind": "all", "params": {"kinds": ["rule"]}, "deadline_ms": 30_000}
    from_text = decider_policy(json.dumps(doc))
    assert (from_text.kind, from_text.deadline_ms) == ("all", 30_000)
    (tmp_path / "policy.json").write_text(json.dumps(doc))
    assert decider_policy(f"@{tmp_path / 'policy.json'}") == from_text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kind": "nope"}', "unknown decider policy kind 'nope'"),
        ('{"kind": "veto"', "Expecting"),  # not JSON
        ("[1]", "not a mapping"),
        ("@/nonexistent/policy.json", "No such file"),
    ],
)
def test_a_bad_decider_policy_is_one_error_that_says_why(text: str, message: str) -> None:
    with pytest.raises(PolicyDocError, match=message):
        decider_policy(text)


def test_check_voter_policy_accepts_what_its_voters_accept() -> None:
    check_voter_policy({"kind": "llm", "prompt_extra": "no network"})
    check_voter_policy({"kind": "rule", "default": "allow"})
    check_voter_policy({"kind": "provenance", "anything": 1})  # no checks of its own
    for bad in ([], {"kind": 1}, {"kind": "llm", "prompt_extra": 3}, {"kind": "rule", "x": 1}):
        with pytest.raises(ValueError):
            check_voter_policy(bad)


def test_a_change_is_checked_whole_before_anything_is_used() -> None:
    change = PolicyChange.from_json('{"kind": "first_voter"}', '{"kind": "llm"}')
    assert change.decider == signed({"kind": "first_voter"})
    assert change.voter == {"kind": "llm"}
    assert not change.empty and PolicyChange.from_json(None, None).empty
    for decider, voter in (
        ('{"kind": "first_voter"}', '{"kind": "rule", "rules": [{"effect": "deny"}]}'),
        ('{"kind": "nope"}', None),
        ("null", None),
        (None, "not json"),
    ):
        with pytest.raises(PolicyDocError):
            PolicyChange.from_json(decider, voter)


async def test_versions_follow_the_bus_and_a_joint_change_is_one_batch(
    memory_log: LocalLog,
) -> None:
    assert await append_change(memory_log, BUS, PolicyChange(voter={"kind": "llm"})) == [0]
    await memory_log.append(BUS, *e.DeciderPolicy(4, signed({"kind": "first_voter"})).to_entry())
    both = PolicyChange(signed({"kind": "on_by_default"}), {"kind": "rule", "default": "allow"})
    assert await append_change(memory_log, BUS, both) == [2, 3]
    state = await read_state(memory_log, BUS)
    assert state.decider_policies.current.version == 5
    assert [(p.version, p.policy["kind"]) for _, p in state.voter_policies] == [
        (1, "llm"),
        (2, "rule"),
    ]


async def test_a_change_numbered_from_a_stale_tail_is_refused(memory_log: LocalLog) -> None:
    """Another operator appends between the read and the append: the batch is not written."""
    await memory_log.append(BUS, *e.AgentInput("tidy").to_entry())
    append_batch = memory_log.append_batch

    async def racing(bus: str, entries: Any, **options: Any) -> range:
        await append_batch(bus, [e.VoterPolicy(1, {"kind": "llm"}).to_entry()])
        return await append_batch(bus, entries, **options)

    memory_log.append_batch = racing  # type: ignore[method-assign]
    with pytest.raises(ConditionFailed):
        await append_change(memory_log, BUS, PolicyChange(voter={"kind": "provenance"}))
    state = await read_state(memory_log, BUS)
    assert [p.policy for _, p in state.voter_policies] == [{"kind": "llm"}]
