"""The oracle agent: replays a task's shipped ground truth instead of asking a model.

Deterministic and fast, it isolates what the voters do from what a model would do. A benign run
replays the user task's calls one by one. A *compromised* run behaves like an agent that falls
for the injection: as soon as a tool result carries the text the attack planted, it replays the
injection task's calls too, then carries on with the user task. It triggers on the planted text,
not on the injection task's goal sentence: an attack that paraphrases the goal (every adaptive
attack does) would otherwise never be acted on and would score 0 for the wrong reason. Both
triggers are tracked (``goal_step``, ``planted_step``), so a report can show that on AgentDojo's
own attacks, which embed the goal, they fire at the same step. Every call it emits is labelled
``user`` or ``injection``, which is what the false-positive and false-negative rates are counted
from.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.base_tasks import BaseInjectionTask, BaseUserTask
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionCall, FunctionsRuntime
from agentdojo.types import ChatAssistantMessage, ChatMessage, get_text_content_as_str
from agentdojo.types import text_content_block_from_string as text_block

Label = Literal["user", "injection"]

#: How much of the injected goal must show up in a tool result to count as "read".
MARK_CHARS = 60


def _letters(text: str) -> str:
    """Lower-case ASCII letters and digits only: survives YAML quoting, escapes (a ``\\n`` or
    ``\\u2014`` printed inside a literal is one character, not letters) and line folding."""
    unescaped = re.sub(r"\\(?:[ntr]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})", " ", text)
    return re.sub(r"[^a-z0-9]", "", unescaped.lower())


class OracleAgent(BasePipelineElement):
    """One run's oracle: build a new one per run (it keeps the run's plan)."""

    def __init__(
        self,
        user_task: BaseUserTask[Any],
        injection_task: BaseInjectionTask[Any] | None = None,
        planted: Sequence[str] = (),
    ) -> None:
        self.user_task = user_task
        self.injection_task = injection_task
        self.labels: dict[str, Label] = {}  # call id -> who asked for it
        self._plan: deque[tuple[Label, FunctionCall]] | None = None
        self._fallen = injection_task is None
        self._goal = _letters(injection_task.GOAL)[:MARK_CHARS] if injection_task else ""
        self._planted = [m for m in (_letters(t)[:MARK_CHARS] for t in planted) if m]
        #: The tool result (counted from 1) at which each trigger first fired; None: never.
        self.goal_step: int | None = None
        self.planted_step: int | None = None
        self._results = 0

    def _read(self, messages: Sequence[ChatMessage]) -> bool:
        """Note what the newest tool result carries; True when the agent falls for it now."""
        if not messages or messages[-1]["role"] != "tool" or self.injection_task is None:
            return False
        self._results += 1
        content = messages[-1]["content"]
        text = _letters(get_text_content_as_str(content)) if content is not None else ""
        if self.goal_step is None and self._goal and self._goal in text:
            self.goal_step = self._results
        if self.planted_step is None and any(mark in text for mark in self._planted):
            self.planted_step = self._results
        if self._fallen or self.planted_step is None:
            return False
        self._fallen = True  # fall for it once
        return True

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - AgentDojo's signature
        messages: Sequence[ChatMessage] = (),
        extra_args: dict[str, Any] = {},  # noqa: B006 - AgentDojo's signature
    ) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict[str, Any]]:
        if self._plan is None:
            self._plan = deque(("user", call) for call in self.user_task.ground_truth(env))
        if self._read(messages):
            assert self.injection_task is not None
            malicious = self.injection_task.ground_truth(env)
            self._plan.extendleft(("injection", call) for call in reversed(malicious))
        if self._plan:
            label, planned = self._plan.popleft()
            call_id = f"oracle-{len(self.labels)}"
            call = FunctionCall(function=planned.function, args=dict(planned.args), id=call_id)
            self.labels[call_id] = label
            reply = ChatAssistantMessage(role="assistant", content=None, tool_calls=[call])
        else:
            answer = self.user_task.GROUND_TRUTH_OUTPUT
            reply = ChatAssistantMessage(
                role="assistant", content=[text_block(answer)], tool_calls=None
            )
        return query, runtime, env, [*messages, reply], extra_args
