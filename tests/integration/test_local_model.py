"""The real path to a real model: a llama.cpp server on loopback, reached by the ``openai`` client.

Never skipped: CI installs the model (scripts/test), so a missing model is a broken setup, and a
server that crashes (a llama.cpp built for another CPU dies with SIGSEGV on its first request)
is a broken build; either fails the test with the reason and the end of the server's log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import openai
import pytest
import trio

from logact.agent.models.local_llm import LocalModel, LocalModelError, serve_local_model

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


@asynccontextmanager
async def _served() -> AsyncIterator[LocalModel]:
    """The local model, for the block; if it is missing, will not start or dies in use, the test
    fails saying so, with the end of the server's log."""
    try:
        async with serve_local_model() as local:
            yield local
    except LocalModelError as exc:
        pytest.fail(f"{exc}\n{exc.log_tail}")


@pytest.mark.timeout(600)
async def test_local_model_forced_tool_call_and_json_schema() -> None:
    async with _served() as local:
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
        assert local.exited() is None


@pytest.mark.timeout(300)
async def test_a_server_that_dies_in_use_is_an_error_saying_how() -> None:
    with pytest.raises(LocalModelError, match="was killed by SIGSEGV while in use") as raised:
        async with serve_local_model() as local:
            log_path = local.log_path
            os.kill(local.pid, signal.SIGSEGV)  # what a build for another CPU did
            with trio.fail_after(60):
                while local.exited() is None:
                    await trio.sleep(0.05)
            client = openai.OpenAI(
                base_url=local.base_url, api_key=local.api_key, timeout=60, max_retries=0
            )
            await _create(client, model=local.model, messages=[{"role": "user", "content": "Hi."}])
    assert isinstance(raised.value.__context__, openai.APIConnectionError)
    assert str(raised.value).endswith(f"log: {log_path}")
    assert log_path.exists()  # kept, since the server failed


@pytest.mark.timeout(360)
def test_the_install_check_asks_the_model_one_question() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logact.agent.models.local_llm"],
        capture_output=True,
        text=True,
        timeout=330,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("the local model answers: "), done.stdout
