"""Where AgentDojo meets the bus: tool calls become intents, the executor runs AgentDojo tools.

AgentDojo's pipelines are synchronous and run in a worker thread; :class:`BusToolsExecutor`
takes ToolsExecutor's place in the loop and hands each tool call to :class:`BusGate` on the trio
side, which appends it as an intent, waits for the decider and, if committed, for the executor's
result. The executor is LogAct's own :class:`~logact.agent.components.executor.Executor` with the
suite's
functions registered as tools (:func:`agentdojo_tools`), so a vetoed call never reaches the
environment: the agent gets the refusal as the call's result instead.
"""

from __future__ import annotations

import time
from ast import literal_eval
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.agent_pipeline.tool_execution import tool_result_to_str
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.types import ChatMessage, ChatToolResultMessage
from agentdojo.types import text_content_block_from_string as text_block

from logact.agent.core import entries as e
from logact.agent.integrations.commit import commit_intention, wait_for_result
from logact.agent.tools.registry import ToolError, ToolRegistry
from logact.protocol.api import LogAPI

#: What the agent reads in place of a vetoed call's result.
REFUSAL = "NOT RUN: LogAct's voters vetoed this action ({reason}). Do not retry it as it is."


class EnvBox:
    """The run's environment, set once the run has built it (the tools close over the box)."""

    env: Env | None = None


def agentdojo_tools(runtime: FunctionsRuntime, box: EnvBox) -> ToolRegistry:
    """The suite's functions as executor tools, run against the run's environment."""
    registry = ToolRegistry(output_cap=e.MAX_OUTPUT_CHARS)

    def bind(name: str) -> Callable[..., str]:
        def call(**arguments: Any) -> str:
            result, error = runtime.run_function(box.env, name, arguments)
            if error is not None:
                raise ToolError(error)
            return tool_result_to_str(result)

        return call

    for function in runtime.functions.values():
        registry.register(
            function.name,
            bind(function.name),
            description=function.description or function.name,
            schema={"type": "object", **function.parameters.model_json_schema()},
        )
    return registry


@dataclass(frozen=True, slots=True)
class CallOutcome:
    intent_id: int | None
    approved: bool
    reason: str
    output: str = ""
    error: str | None = None
    decision_ms: float = 0.0


class BusGate:
    """The driver side of one run: propose a call, wait for its decision and result."""

    def __init__(self, log: LogAPI, bus: str, timeout: float) -> None:
        self.log = log
        self.bus = bus
        self.timeout = timeout

    async def propose(
        self, function: str, arguments: dict[str, Any], call_id: str | None
    ) -> CallOutcome:
        try:
            intent = e.Intent(e.ToolCall(function, arguments, call_id))
        except e.EntryError as exc:
            return CallOutcome(None, False, f"not proposed: {exc}")
        start = time.perf_counter()
        decision = await commit_intention(self.log, self.bus, intent, self.timeout)
        decision_ms = (time.perf_counter() - start) * 1000
        if not decision.commit:
            return CallOutcome(decision.intent_id, False, decision.reason, decision_ms=decision_ms)
        result = await wait_for_result(self.log, self.bus, decision.intent_id, self.timeout)
        if result is None:
            error = f"no result within {self.timeout:g} s"
            return CallOutcome(decision.intent_id, True, decision.reason, "", error, decision_ms)
        return CallOutcome(
            decision.intent_id, True, decision.reason, result.output, result.error, decision_ms
        )


@dataclass(frozen=True, slots=True)
class ProposedCall:
    """One tool call as the harness saw it (``side_effect``: running it changes the env)."""

    call: FunctionCall
    outcome: CallOutcome
    side_effect: bool


def would_change(runtime: FunctionsRuntime, env: Env, call: FunctionCall) -> bool:
    """Whether a call that did not run would have changed the environment (tried on a copy)."""
    scratch = env.model_copy(deep=True)
    runtime.run_function(scratch, call.function, call.args)
    return scratch.model_dump() != env.model_dump()


def _decode_list_strings(args: dict[str, Any]) -> dict[str, Any]:
    """Lists a model sent as strings ("['a', 'b']") become lists, as AgentDojo's executor does."""
    decoded = dict(args)
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("["):
            try:
                parsed = literal_eval(value)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                decoded[key] = parsed
    return decoded


class BusToolsExecutor(BasePipelineElement):
    """ToolsExecutor's stand-in: every call goes through the bus. Runs in a worker thread."""

    def __init__(self, gate: BusGate) -> None:
        self.gate = gate
        self.calls: list[ProposedCall] = []

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - AgentDojo's signature
        messages: Sequence[ChatMessage] = (),
        extra_args: dict[str, Any] = {},  # noqa: B006 - AgentDojo's signature
    ) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict[str, Any]]:
        if not messages or messages[-1]["role"] != "assistant":
            return query, runtime, env, messages, extra_args
        replies: list[ChatMessage] = []
        for call in messages[-1]["tool_calls"] or []:
            call = call.model_copy(update={"args": _decode_list_strings(dict(call.args))})
            before = env.model_dump()
            outcome = trio.from_thread.run(
                self.gate.propose, call.function, dict(call.args), call.id
            )
            if outcome.approved:  # the executor ran it on this very environment
                side_effect = env.model_dump() != before
            else:
                side_effect = would_change(runtime, env, call)
            self.calls.append(ProposedCall(call, outcome, side_effect))
            if outcome.approved:
                content, error = outcome.output, outcome.error
            else:
                content, error = "", REFUSAL.format(reason=outcome.reason)
            replies.append(
                ChatToolResultMessage(
                    role="tool",
                    content=[text_block(content)],
                    tool_call_id=call.id,
                    tool_call=call,
                    error=error,
                )
            )
        return query, runtime, env, [*messages, *replies], extra_args
