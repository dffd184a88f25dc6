"""The hook core: payload parsing, bus ids, tool outcomes and rendering (no log needed).

Payloads are the samples in tests/fixtures/hooks/, shaped like the harnesses' own (see
docs/hooks.md for where each shape comes from).
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.integrations.hooks import (
    OUTPUT_LIMIT,
    Harness,
    HookEvent,
    HookPayload,
    HookPayloadError,
    HookResponse,
    UnsupportedEvent,
    bus_id,
    find_intent,
    parse_payload,
    render_allow,
    render_deny,
    result_for,
    run_hook,
    tool_outcome,
)
from logact.protocol.api import LogAPI
from logact.protocol.codec import BUS_ID, Entry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hooks"
HARNESS_DIRS = {Harness.CLAUDE_CODE: "claude_code", Harness.CODEX: "codex"}
USER = "alice"


def raw(harness: Harness, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / HARNESS_DIRS[harness] / f"{name}.json").read_text())


def load(harness: Harness, name: str) -> HookPayload:
    return parse_payload(
        harness, (FIXTURES / HARNESS_DIRS[harness] / f"{name}.json").read_bytes(), USER
    )


ALL_FIXTURES = [
    (harness, path.stem)
    for harness, directory in HARNESS_DIRS.items()
    for path in sorted((FIXTURES / directory).glob("*.json"))
]


def decision_of(response: HookResponse) -> dict[str, Any]:
    assert response.exit_code == 0
    return json.loads(response.stdout)["hookSpecificOutput"]


# --- parsing the samples ------------------------------------------------------------------------


@pytest.mark.parametrize(("harness", "name"), ALL_FIXTURES, ids=lambda v: getattr(v, "name", v))
def test_every_sample_parses(harness: Harness, name: str) -> None:
    payload = load(harness, name)
    data = raw(harness, name)
    assert payload.event is HookEvent(data["hook_event_name"])
    assert payload.tool_name == data["tool_name"]
    assert payload.tool_input == data["tool_input"]
    assert payload.tool_use_id == data["tool_use_id"]
    assert BUS_ID.fullmatch(payload.bus)
    call = payload.tool_call()
    assert (call.tool, call.arguments, call.call_id) == (
        data["tool_name"],
        data["tool_input"],
        data["tool_use_id"],
    )


def test_claude_bash_pre_becomes_a_tool_call_intent() -> None:
    payload = load(Harness.CLAUDE_CODE, "pre_bash")
    assert payload.event is HookEvent.PRE_TOOL_USE
    assert payload.bus == "claude_code.alice.5f3c1a2e-8b4d-4e6f-9a1b-2c3d4e5f6a7b"
    assert payload.cwd == "/home/alice/src/shop"
    body = e.Intent(action=payload.tool_call()).to_body()
    assert body["action"] == {
        "kind": "tool",
        "tool": "Bash",
        "arguments": raw(Harness.CLAUDE_CODE, "pre_bash")["tool_input"],
        "call_id": "toolu_01HXk4mQ7yLb2vT9cRz3Wn8P",
    }
    assert e.parse("intent", body) == e.Intent(action=payload.tool_call())


def test_codex_bus_and_shell_tool() -> None:
    payload = load(Harness.CODEX, "pre_bash")
    assert payload.bus == "codex.alice.019a4e7c-3b1f-7d20-8c5e-6f9a0b1c2d3e"
    assert payload.tool_call().arguments == {"command": "cargo test -p shop-core --quiet"}
    assert payload.tool_call().call_id == "call_Jq8v3ZkX1mN5bR7tY2wC9sLd"


def test_codex_null_transcript_path_is_fine() -> None:
    assert raw(Harness.CODEX, "pre_apply_patch")["transcript_path"] is None
    assert load(Harness.CODEX, "pre_apply_patch").tool_name == "apply_patch"


def test_subagent_gets_its_own_bus() -> None:
    payload = load(Harness.CLAUDE_CODE, "pre_bash_subagent")
    assert payload.agent_id == "a7c41e09b2d6f853"
    assert payload.bus == (
        "claude_code.alice.5f3c1a2e-8b4d-4e6f-9a1b-2c3d4e5f6a7b.agent.a7c41e09b2d6f853"
    )


# --- tool outcomes ------------------------------------------------------------------------------


def test_claude_bash_post_records_stdout() -> None:
    output, error = tool_outcome(load(Harness.CLAUDE_CODE, "post_bash"))
    assert error is None
    assert "5 passed" in output and "M src/shop/cart.py" in output


def test_claude_failure_event_is_an_error_result() -> None:
    result = result_for(load(Harness.CLAUDE_CODE, "post_bash_failure"), 7)
    assert result == e.Result(
        intent_id=7, ok=False, output="", error="Command exited with non-zero status code 1"
    )


def test_claude_edit_post_leaves_out_the_original_file() -> None:
    output, error = tool_outcome(load(Harness.CLAUDE_CODE, "post_edit"))
    assert error is None
    assert "item.quantity" in output and "structuredPatch" in output
    assert "originalFile" not in output


def test_claude_write_post_is_ok() -> None:
    result = result_for(load(Harness.CLAUDE_CODE, "post_write"), 3)
    assert result.ok and result.error is None and "test_discount.py" in result.output


def test_codex_bash_post_is_the_output_string() -> None:
    output, error = tool_outcome(load(Harness.CODEX, "post_bash"))
    assert error is None and "12 passed" in output


def test_codex_apply_patch_post_reads_the_json_text() -> None:
    output, error = tool_outcome(load(Harness.CODEX, "post_apply_patch"))
    assert error is None
    assert output == "Success. Updated the following files:\nM src/cart.rs\n"


@pytest.mark.parametrize(
    ("response", "expected_error"),
    [
        ({"stdout": "partial", "stderr": "", "interrupted": True, "isImage": False}, "interrupted"),
        ('{"output": "patch rejected", "metadata": {"exit_code": 1}}', "exit code 1"),
        ({"content": [], "isError": True}, "the tool reported an error"),
        ({"stdout": "ok", "stderr": "", "interrupted": False}, None),
        (["a", 1], None),
        (None, None),
    ],
)
def test_outcome_flags(response: Any, expected_error: str | None) -> None:
    data = raw(Harness.CLAUDE_CODE, "post_bash") | {"tool_response": response}
    _, error = tool_outcome(parse_payload(Harness.CLAUDE_CODE, data, USER))
    assert error == expected_error


def test_result_output_is_capped() -> None:
    data = raw(Harness.CODEX, "post_bash") | {"tool_response": "x" * (OUTPUT_LIMIT * 3)}
    result = result_for(parse_payload(Harness.CODEX, data, USER), 1)
    assert len(result.output) == OUTPUT_LIMIT and "characters cut" in result.output


def test_result_uses_a_reported_duration() -> None:
    data = raw(Harness.CLAUDE_CODE, "post_bash") | {"duration_ms": 1234}
    assert result_for(parse_payload(Harness.CLAUDE_CODE, data, USER), 1).duration_ms == 1234
    assert result_for(load(Harness.CLAUDE_CODE, "post_bash"), 1).duration_ms is None


# --- rendering ----------------------------------------------------------------------------------


def test_claude_allow_and_deny() -> None:
    allow = render_allow(Harness.CLAUDE_CODE, "LogAct committed intent 3: rule ok")
    assert decision_of(allow) == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": "LogAct committed intent 3: rule ok",
    }
    deny = render_deny(Harness.CLAUDE_CODE, "LogAct aborted intent 3:\n  recursive delete")
    assert decision_of(deny)["permissionDecision"] == "deny"
    assert (
        decision_of(deny)["permissionDecisionReason"] == "LogAct aborted intent 3: recursive delete"
    )
    assert allow.stderr == deny.stderr == ""


def test_claude_native_prompt_prints_nothing_on_commit() -> None:
    assert render_allow(Harness.CLAUDE_CODE, "ok", native_prompt=True) == HookResponse()


def test_codex_allow_is_empty_stdout_and_deny_has_a_reason() -> None:
    # Codex rejects permissionDecision "allow" without updatedInput (and then fails open).
    assert render_allow(Harness.CODEX, "committed") == HookResponse()
    assert decision_of(render_deny(Harness.CODEX, "   ")) == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "LogAct denied this tool call",
    }


def test_deny_reason_is_capped() -> None:
    reason = decision_of(render_deny(Harness.CODEX, "why " * 5000))["permissionDecisionReason"]
    assert len(reason) <= 2000


# --- malformed payloads: typed errors, and a deny from run_hook --------------------------------

GOOD = raw(Harness.CLAUDE_CODE, "pre_bash")


def _deep(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(depth):
        doc = {"x": doc}
    return doc


MALFORMED: list[tuple[str, Any]] = [
    ("not-json", b"PreToolUse Bash ls"),
    ("empty", b""),
    ("array", b"[1, 2]"),
    ("bad-utf8", b'{"hook_event_name": "\xff"}'),
    ("nan", json.dumps(GOOD).replace('"default"', "NaN").encode()),
    ("no-event", {k: v for k, v in GOOD.items() if k != "hook_event_name"}),
    ("no-session", {k: v for k, v in GOOD.items() if k != "session_id"}),
    ("empty-session", GOOD | {"session_id": ""}),
    ("tool-name-number", GOOD | {"tool_name": 3}),
    ("no-tool-input", {k: v for k, v in GOOD.items() if k != "tool_input"}),
    ("tool-input-string", GOOD | {"tool_input": "ls -la"}),
    ("tool-use-id-number", GOOD | {"tool_use_id": 17}),
    ("deep-tool-input", GOOD | {"tool_input": _deep(40)}),
]


@pytest.mark.parametrize(("case", "data"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_payload_is_a_typed_error(case: str, data: Any) -> None:
    with pytest.raises(HookPayloadError):
        parse_payload(Harness.CLAUDE_CODE, data, USER)


def test_payload_error_names_the_field() -> None:
    with pytest.raises(HookPayloadError) as info:
        parse_payload(Harness.CODEX, GOOD | {"tool_input": []}, USER)
    assert info.value.field == "tool_input"


def test_other_events_are_unsupported_not_malformed() -> None:
    stop = {"session_id": "s", "hook_event_name": "Stop", "stop_hook_active": False}
    with pytest.raises(UnsupportedEvent):
        parse_payload(Harness.CLAUDE_CODE, stop, USER)


def _no_log() -> AbstractAsyncContextManager[LogAPI]:
    raise AssertionError("a malformed payload must be answered without touching the log")


@pytest.mark.parametrize("harness", list(Harness))
@pytest.mark.parametrize(("case", "data"), MALFORMED, ids=[c for c, _ in MALFORMED])
async def test_run_hook_denies_malformed_payloads(harness: Harness, case: str, data: Any) -> None:
    stdin = data if isinstance(data, bytes) else json.dumps(data)
    response = await run_hook(harness, stdin, _no_log, decision_timeout=5, user=USER)
    decision = decision_of(response)
    assert decision["permissionDecision"] == "deny"
    assert "fail closed" in decision["permissionDecisionReason"]


async def test_run_hook_ignores_other_events() -> None:
    stop = json.dumps({"session_id": "s", "hook_event_name": "Stop"})
    response = await run_hook(Harness.CODEX, stop, _no_log, decision_timeout=5, user=USER)
    assert response.stdout == "" and response.exit_code == 0 and "Stop" in response.stderr


# --- finding the intent a Post answers ----------------------------------------------------------


def _state(*entries: tuple[str, Any]) -> BusState:
    state = BusState("b")
    for pos, (etype, body) in enumerate(entries):
        state.apply(Entry(pos, 0, etype, "hook", body))
    return state


def _intent(payload: HookPayload, call_id: str | None = "same") -> tuple[str, Any]:
    call = e.ToolCall(payload.tool_name, payload.tool_input, call_id)
    return e.Intent(action=call).to_entry()


def test_find_intent_by_tool_use_id_prefers_the_open_committed_one() -> None:
    post = load(Harness.CLAUDE_CODE, "post_bash")
    state = _state(
        _intent(post, post.tool_use_id),  # 0: appended, never decided
        _intent(post, post.tool_use_id),  # 1: committed (a retried append)
        e.Commit(1, "ok").to_entry(),
        _intent(post, "toolu_other"),  # 3
        e.Commit(3, "ok").to_entry(),
    )
    record = find_intent(state, post)
    assert record is not None and record.position == 1


def test_find_intent_without_id_matches_tool_and_arguments() -> None:
    data = raw(Harness.CLAUDE_CODE, "post_bash")
    del data["tool_use_id"]
    post = parse_payload(Harness.CLAUDE_CODE, data, USER)
    other = parse_payload(Harness.CLAUDE_CODE, data | {"tool_input": {"command": "ls"}}, USER)
    state = _state(
        _intent(post, None),  # 0: committed, already has a result
        e.Commit(0, "ok").to_entry(),
        e.Result(0, True, "done").to_entry(),
        _intent(post, None),  # 3: committed, open  <- the match
        e.Commit(3, "ok").to_entry(),
        _intent(other, None),  # 5: other arguments
        e.Commit(5, "ok").to_entry(),
        _intent(post, None),  # 7: aborted
        e.Abort(7, "no").to_entry(),
    )
    record = find_intent(state, post)
    assert record is not None and record.position == 3


def test_find_intent_none_when_nothing_matches() -> None:
    post = load(Harness.CODEX, "post_bash")
    assert find_intent(_state(_intent(post, "call_someone_else")), post) is None
    assert find_intent(_state(), post) is None


# --- bus ids ------------------------------------------------------------------------------------

text = st.text(max_size=300)


@given(harness=st.sampled_from(list(Harness)), user=text, session=text, agent=st.none() | text)
def test_bus_id_always_fits_the_grammar(
    harness: Harness, user: str, session: str, agent: str | None
) -> None:
    bus = bus_id(harness, user, session, agent)
    assert BUS_ID.fullmatch(bus)
    assert bus.startswith(harness.value + ".")
    assert bus == bus_id(harness, user, session, agent)


safe = st.text(
    alphabet=st.characters(whitelist_categories=(), whitelist_characters="abcXYZ019_-"),
    min_size=1,
    max_size=40,
)


@given(user=safe, session=safe)
def test_clean_ids_pass_through_unchanged(user: str, session: str) -> None:
    assert bus_id(Harness.CODEX, user, session) == f"codex.{user}.{session}"


@given(
    user=st.sampled_from(["u", "u.v", "u_v", ""]),
    a=st.text(max_size=400),
    b=st.text(max_size=400),
    agent=st.none() | st.text(max_size=20),
)
def test_distinct_sessions_never_share_a_bus(user: str, a: str, b: str, agent: str | None) -> None:
    if a != b:
        assert bus_id(Harness.CLAUDE_CODE, user, a, agent) != bus_id(
            Harness.CLAUDE_CODE, user, b, agent
        )


def test_unsafe_characters_cannot_forge_components() -> None:
    bus = bus_id(Harness.CLAUDE_CODE, "eve.agent.x", "../s id")
    assert bus.startswith("claude_code.eve_agent_x-") and bus.count(".") == 2
    assert "___s_id-" in bus
    assert bus_id(Harness.CODEX, "u.v", "s") != bus_id(Harness.CODEX, "u_v", "s")
    assert bus_id(Harness.CODEX, "", "_") != bus_id(Harness.CODEX, "_", "_")
    assert BUS_ID.fullmatch(bus_id(Harness.CODEX, "", "\udcff"))
