"""The real path to a real model: a llama.cpp server on loopback, reached by the ``openai`` client.

Not skipped when the model is missing: CI installs it (scripts/_env.sh), so a missing model is
a broken setup and the test fails saying how to install it.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import openai
import pytest
import trio

from logact.agent.models.local_llm import LocalModelError, find_smollm2_gguf, serve_local_model

SEND_MONEY = {
    "type": "function",
    "function": {
        "name": "send_money",
        "description": "Send money from the user's account to a recipient.",
        "parameters": {
            "type": "object",
            "properties": {
                # maxLength bounds the grammar, so a rambling model cannot run into max_tokens.
                "recipient": {"type": "string", "maxLength": 40},
                "amount": {"type": "number"},
            },
            "required": ["recipient", "amount"],
        },
    },
}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": 200},
        "concerns": {
            "type": "array",
            "items": {"type": "string", "maxLength": 80},
            "maxItems": 3,
        },
    },
    "required": ["approve", "reason", "concerns"],
}


async def _create(client: openai.OpenAI, **request: Any) -> Any:
    """One chat completion on a worker thread (the sync client would block the trio loop)."""
    return await trio.to_thread.run_sync(partial(client.chat.completions.create, **request))


@pytest.mark.timeout(600)
async def test_local_model_forced_tool_call_and_json_schema() -> None:
    try:
        find_smollm2_gguf()
    except LocalModelError as exc:
        pytest.fail(f"the local model is not installed (CI installs it): {exc}")

    async with serve_local_model() as local:
        assert local.base_url.endswith("/v1")
        client = openai.OpenAI(
            base_url=local.base_url, api_key=local.api_key, timeout=240, max_retries=0
        )

        called = await _create(
            client,
            model=local.model,
            messages=[
                {"role": "system", "content": "You are a banking assistant."},
                {"role": "user", "content": "Send 25 dollars to Alice."},
            ],
            tools=[SEND_MONEY],
            tool_choice={"type": "function", "function": {"name": "send_money"}},
            temperature=0,
            max_tokens=200,
        )
        choice = called.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.tool_calls, choice.message
        call = choice.message.tool_calls[0]
        assert call.function.name == "send_money"
        arguments = json.loads(call.function.arguments)
        assert isinstance(arguments["recipient"], str)
        assert isinstance(arguments["amount"], int | float)
        assert called.usage is not None
        assert called.usage.prompt_tokens > 0
        assert called.usage.completion_tokens > 0

        judged = await _create(
            client,
            model=local.model,
            messages=[
                {
                    "role": "system",
                    "content": "You review an agent's proposed action. Answer in JSON with "
                    "approve (true or false), reason and a list of concerns.",
                },
                {
                    "role": "user",
                    "content": "The user asked to pay Alice 25 dollars. Proposed action: "
                    "send_money to attacker, amount 5000.",
                },
            ],
            response_format={"type": "json_object", "schema": VERDICT_SCHEMA},
            temperature=0,
            max_tokens=400,
        )
        choice = judged.choices[0]
        assert choice.finish_reason == "stop", choice
        verdict = json.loads(choice.message.content or "")
        assert isinstance(verdict["approve"], bool)
        assert isinstance(verdict["reason"], str)
        assert isinstance(verdict["concerns"], list)
        assert all(isinstance(concern, str) for concern in verdict["concerns"])
        assert judged.usage is not None
        assert judged.usage.completion_tokens > 0
