"""Model access through the real openai client (agent/models/llm.py), with a scripted model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from logact.agent.models.llm import (
    SCRIPTED_MODEL,
    LLMConfig,
    ModelError,
    ScriptedModel,
    chat,
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
