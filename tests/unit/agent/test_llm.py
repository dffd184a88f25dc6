"""Model access through the real openai client (agent/models/llm.py), with a scripted model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from logact.agent.models.choice import load_script
from logact.agent.models.llm import (
    SCRIPTED_MODEL,
    LLMConfig,
    ModelError,
    ScriptedModel,
    chat,
    parse_script,
    replay_script,
    tool_call,
)


async def test_a_null_content_beside_tool_calls_is_sent_as_empty_text() -> None:
    """OpenAI allows ``content: null`` next to tool calls; llama-cpp's server rejects it."""
    seen: list[Sequence[Mapping[str, Any]]] = []

    def respond(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
        seen.append(messages)
        return {"content": "ok"}

    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call("shell", {}, "c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    message, usage = await chat(ScriptedModel(respond).client(), "m", history)
    assert message == {"role": "assistant", "content": "ok"}
    assert seen[0][1]["content"] == "" and history[1]["content"] is None  # the log is untouched
    assert usage is not None and usage.prompt_tokens > 0


async def test_replayed_scripts_answer_by_turn_and_say_when_they_end() -> None:
    model = ScriptedModel(replay_script([{"content": "first"}])).client()
    first, _ = await chat(model, SCRIPTED_MODEL, [{"role": "user", "content": "a"}])
    assert first["content"] == "first"
    later = [{"role": "user", "content": "a"}, first, {"role": "user", "content": "b"}]
    second, _ = await chat(model, SCRIPTED_MODEL, later)
    assert second["content"] == "scripted: end of script"


def test_endpoint_configuration_comes_from_arguments_then_environment() -> None:
    env = {"OPENAI_BASE_URL": "http://x/v1", "LOGACT_MODEL": "m", "OPENAI_API_KEY": "k"}
    assert LLMConfig.from_env(env=env) == LLMConfig("http://x/v1", "k", "m")
    assert LLMConfig.from_env(model="other", env=env).model == "other"
    with pytest.raises(ModelError, match="OPENAI_BASE_URL"):
        LLMConfig.from_env(env={})


def test_a_script_is_a_list_of_assistant_messages() -> None:
    replies = [
        {"content": "first", "tool_calls": [tool_call("shell", {"command": "ls"}, "c1")]},
        {"role": "assistant", "content": "done"},
    ]
    assert parse_script(replies) == replies


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"content": "x"}, "must be a non-empty JSON list of replies, got a dict"),
        ([], "got an empty list"),
        (["hello"], "reply 0 is a str, not an object"),
        ([{"content": "a"}, {"text": "b"}], "reply 1 has unknown key(s) 'text'"),
        ([{"role": "user", "content": "a"}], "reply 0 has role 'user'"),
        ([{"content": 3}], "reply 0 has a content that is not a string"),
        ([{"content": None}], "reply 0 has neither content nor tool_calls"),
        ([{"tool_calls": []}], "reply 0 has tool_calls that is not a non-empty list"),
        ([{"tool_calls": [{"function": {"name": "x"}}]}], "tool_calls[0] is not {id, type"),
        (
            [{"tool_calls": [{"id": 1, "type": "function", "function": {"name": "x"}}]}],
            "tool_calls[0] needs a string id and function.name",
        ),
        (
            [{"tool_calls": [{**tool_call("x", {}, "c"), "function": {"name": "x"}}]}],
            "arguments is not a JSON object in a string",
        ),
        (
            [
                {
                    "tool_calls": [
                        {**tool_call("x", {}, "c"), "function": {"name": "x", "arguments": "[1]"}}
                    ]
                }
            ],
            "arguments is not a JSON object in a string",
        ),
    ],
)
def test_a_bad_script_is_one_clear_error(doc: object, problem: str) -> None:
    with pytest.raises(ModelError) as raised:
        parse_script(doc)
    assert problem in str(raised.value) and "\n" not in str(raised.value)


def test_a_script_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("[{")
    with pytest.raises(ModelError, match=rf"^script {path}: not JSON: "):
        load_script(str(path))
    path.write_text('[{"content": null}]')
    with pytest.raises(ModelError, match=rf"^script {path}: reply 0 has neither"):
        load_script(str(path))
    with pytest.raises(ModelError, match=r"No such file"):
        load_script(str(tmp_path / "missing.json"))
