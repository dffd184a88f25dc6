"""Model access for the driver and the LLM voter: always the real ``openai`` client.

Any OpenAI-compatible endpoint works (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``LOGACT_MODEL``).
Without a model, a :class:`ScriptedModel` answers through an in-process HTTP transport: the
``openai`` client, its request encoding and its response parsing are still the real ones, and
the model name it reports is ``scripted`` so no one mistakes its replies for a model's.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx2
import openai
import trio
from openai.types.chat import ChatCompletion

from logact.agent.core.entries import Usage

SCRIPTED_MODEL = "scripted"
DEFAULT_TIMEOUT = 120.0

Message = dict[str, Any]


class ModelError(Exception):
    """The model endpoint failed or answered something unusable."""


@dataclass(frozen=True, slots=True)
class LLMConfig:
    base_url: str
    api_key: str
    model: str

    @classmethod
    def from_env(
        cls,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> LLMConfig:
        """Explicit values first, then OPENAI_BASE_URL / OPENAI_API_KEY / LOGACT_MODEL."""
        base_url = base_url or env.get("OPENAI_BASE_URL")
        model = model or env.get("LOGACT_MODEL")
        if not base_url or not model:
            raise ModelError(
                "no model endpoint: set OPENAI_BASE_URL and LOGACT_MODEL "
                "(and OPENAI_API_KEY if the endpoint needs one)"
            )
        return cls(base_url, api_key or env.get("OPENAI_API_KEY") or "unused", model)


Responder = Callable[[Sequence[Message], Mapping[str, Any]], Message]


def _rough_tokens(value: Any) -> int:
    """A word count standing in for tokens: scripted usage is labelled, never measured."""
    return len(json.dumps(value, default=str).split())


class ScriptedModel:
    """A deterministic stand-in for a model: ``respond(messages, request) -> assistant message``.

    ``respond`` sees the request's messages and the rest of the request (tools, response_format),
    so the same conversation always gets the same reply: a restarted driver replaying its log
    asks again and gets what the first run got.
    """

    def __init__(self, respond: Responder) -> None:
        self._respond = respond
        self._ids = itertools.count(1)
        self.requests = 0

    def complete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The chat.completion document answering request ``body``."""
        self.requests += 1
        message = {"role": "assistant", "content": None, **self._respond(body["messages"], body)}
        prompt, completion = _rough_tokens(body["messages"]), _rough_tokens(message)
        return {
            "id": f"scripted-{next(self._ids)}",
            "object": "chat.completion",
            "created": 0,
            "model": SCRIPTED_MODEL,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    "message": message,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=self.complete(json.loads(request.content)))

    def client(self) -> openai.OpenAI:
        transport = httpx2.MockTransport(self._handle)
        return openai.OpenAI(
            base_url="http://scripted.invalid/v1",
            api_key="scripted",
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )


#: The keys a scripted reply may have (an assistant message of the OpenAI wire format).
REPLY_KEYS = frozenset({"role", "content", "tool_calls"})


def _script_problem(reply: Any) -> str | None:
    """Why ``reply`` is not an assistant message a script may hold, or None if it is one."""
    if not isinstance(reply, dict):
        return f"is a {type(reply).__name__}, not an object"
    if unknown := sorted(set(reply) - REPLY_KEYS):
        keys = ", ".join(map(repr, unknown))
        return f"has unknown key(s) {keys} (allowed: role, content, tool_calls)"
    if reply.get("role", "assistant") != "assistant":
        return f"has role {reply['role']!r}; a reply is the assistant's"
    content, calls = reply.get("content"), reply.get("tool_calls")
    if content is not None and not isinstance(content, str):
        return "has a content that is not a string"
    if calls is None:
        return None if content is not None else "has neither content nor tool_calls"
    if not isinstance(calls, list) or not calls:
        return "has tool_calls that is not a non-empty list"
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type") != "function":
            return f"tool_calls[{index}] is not {{id, type: function, function: {{...}}}}"
        if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
            return f"tool_calls[{index}] needs a string id and function.name"
        text = function.get("arguments")
        try:
            arguments = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return f"tool_calls[{index}].function.arguments is not a JSON object in a string"
    return None


def parse_script(doc: Any) -> list[Message]:
    """A script's replies, checked: a non-empty JSON list of assistant messages, each with a
    ``content`` string and/or ``tool_calls`` in the OpenAI wire format (:func:`tool_call`
    makes one). ModelError (one line) names the first bad reply."""
    if not isinstance(doc, list) or not doc:
        got = "an empty list" if doc == [] else f"a {type(doc).__name__}"
        raise ModelError(f"must be a non-empty JSON list of replies, got {got}")
    for index, reply in enumerate(doc):
        if (problem := _script_problem(reply)) is not None:
            raise ModelError(f"reply {index} {problem}")
    return [dict(reply) for reply in doc]


def replay_script(replies: Sequence[Message]) -> Responder:
    """A responder giving ``replies[n]`` to a conversation holding n assistant messages, so a
    replayed conversation gets the same answer; past the end it says the script is over."""

    def respond(messages: Sequence[Message], request: Mapping[str, Any]) -> Message:
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        if turn < len(replies):
            return dict(replies[turn])
        return {"content": "scripted: end of script"}

    return respond


def make_client(config: LLMConfig, *, timeout: float = DEFAULT_TIMEOUT) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=config.base_url, api_key=config.api_key, timeout=timeout, max_retries=2
    )


def tool_call(name: str, arguments: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    """One tool call in the OpenAI wire format (arguments JSON-encoded)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def _plain_message(message: Any) -> Message:
    plain: Message = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        plain["tool_calls"] = [
            call.model_dump(include={"id", "type", "function"}) for call in message.tool_calls
        ]
    return plain


async def chat(
    client: openai.OpenAI,
    model: str,
    messages: Sequence[Message],
    **options: Any,
) -> tuple[Message, Usage | None]:
    """One chat completion, off the trio thread: (assistant message as plain data, usage)."""

    # Some servers (llama-cpp) reject a null content, which OpenAI allows beside tool calls.
    sent = [m if m.get("content") is not None else {**m, "content": ""} for m in messages]

    def call() -> Any:
        # Messages are plain dicts of the wire format; the SDK types them as TypedDicts.
        return client.chat.completions.create(model=model, messages=cast(Any, sent), **options)

    try:
        response = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
    except openai.OpenAIError as exc:
        raise ModelError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(response, ChatCompletion):  # e.g. a 200 whose body is not JSON
        raise ModelError(
            f"the endpoint answered something else than a chat completion: {response!r:.200}"
        )
    if not response.choices:
        raise ModelError("the endpoint returned no choices")
    usage = response.usage
    return _plain_message(response.choices[0].message), (
        Usage(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None
    )
