"""The model-driven agent: one chat completion per step through LogAct's own model access.

AgentDojo's OpenAI element speaks the newest OpenAI dialect (a ``developer`` role, content as
lists of parts), which other OpenAI-compatible servers reject (llama.cpp's does). This element
sends plain chat messages through :func:`logact.agent.models.llm.chat` (the real ``openai`` client),
so it works against any such endpoint. It runs in the pipeline's worker thread and calls the
model on the trio side. Like LogAct's driver, it logs each call on the run's bus (``inf_in``
with the messages new since the previous call, ``inf_out`` with the reply and token usage), so
the bus holds the whole conversation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
import trio
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.types import ChatAssistantMessage, ChatMessage, get_text_content_as_str
from agentdojo.types import text_content_block_from_string as text_block

from logact.agent.core import entries as e
from logact.agent.models.llm import Message, ModelError, chat
from logact.protocol.api import LogAPI


def _text(message: ChatMessage) -> str:
    content = message["content"]
    return "" if content is None else get_text_content_as_str(content)


def to_wire(message: ChatMessage) -> Message:
    """An AgentDojo message as a plain chat-completions message."""
    match message["role"]:
        case "assistant":
            wire: Message = {"role": "assistant", "content": _text(message) or None}
            if message["tool_calls"]:
                wire["tool_calls"] = [
                    {
                        "id": call.id or f"call-{index}",
                        "type": "function",
                        "function": {"name": call.function, "arguments": json.dumps(call.args)},
                    }
                    for index, call in enumerate(message["tool_calls"])
                ]
            return wire
        case "tool":
            error = message["error"]
            content = f"Error: {error}" if error else _text(message)
            return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": content}
        case role:
            return {"role": role, "content": _text(message)}


def from_wire(reply: Message) -> ChatAssistantMessage:
    """The model's reply as an AgentDojo message; unparsable arguments become no arguments."""
    calls = []
    for index, call in enumerate(reply.get("tool_calls") or []):
        try:
            args = json.loads(call["function"].get("arguments") or "{}")
        except json.JSONDecodeError:
            args = {}
        calls.append(
            FunctionCall(
                function=call["function"]["name"],
                args=args if isinstance(args, dict) else {},
                id=call.get("id") or f"call-{index}",
            )
        )
    return ChatAssistantMessage(
        role="assistant", content=[text_block(reply.get("content") or "")], tool_calls=calls or None
    )


class ChatModelAgent(BasePipelineElement):
    def __init__(self, client: openai.OpenAI, model: str, log: LogAPI, bus: str) -> None:
        self.client = client
        self.model = model
        self.log = log
        self.bus = bus
        self._logged = 0  # messages already in an inf_in

    async def _ask(self, wire: list[Message], tools: list[dict[str, Any]]) -> Message:
        await self.log.append(
            self.bus, *e.InfIn(self.model, tuple(wire[self._logged :])).to_entry()
        )
        self._logged = len(wire) + 1  # the reply comes back as the next message
        try:
            reply, usage = await chat(self.client, self.model, wire, tools=tools, temperature=0)
        except ModelError as exc:  # the run ends; AgentDojo scores what happened so far
            reply, usage = {"role": "assistant", "content": f"model error: {exc}"}, None
        await self.log.append(self.bus, *e.InfOut(self.model, reply, usage).to_entry())
        return reply

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - AgentDojo's signature
        messages: Sequence[ChatMessage] = (),
        extra_args: dict[str, Any] = {},  # noqa: B006 - AgentDojo's signature
    ) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict[str, Any]]:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": function.name,
                    "description": function.description,
                    "parameters": function.parameters.model_json_schema(),
                },
            }
            for function in runtime.functions.values()
        ]
        wire = [to_wire(message) for message in messages]
        reply = trio.from_thread.run(self._ask, wire, tools)
        return query, runtime, env, [*messages, from_wire(reply)], extra_args
