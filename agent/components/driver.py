"""The driver component: the model loop, playing the bus (see agent/components/conversation.py).

It never runs anything: it appends inf_in before each model call, then the reply (inf_out)
together with the first intent (or the agent_output) in one atomic batch, so a crash can never
leave a reply whose action was not proposed. One driver per bus: it claims the fencing epoch
"driver" on start and a stale driver's appends are rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai
import trio

from logact.agent.components.conversation import (
    Finish,
    Idle,
    Infer,
    Propose,
    Settings,
    actions_of,
    plan,
)
from logact.agent.components.runner import Component
from logact.agent.core import entries as e
from logact.agent.models.llm import ModelError, chat
from logact.protocol.api import LogAPI
from logact.protocol.errors import ConditionFailed

MODEL_ATTEMPTS = 3


class Driver(Component):
    fencing_name = "driver"

    def __init__(
        self,
        log: LogAPI,
        bus: str,
        client: openai.OpenAI,
        model: str,
        tools: Sequence[dict[str, Any]],
        settings: Settings,
        *,
        exit_when_idle: bool = False,
    ) -> None:
        super().__init__(log, bus)
        self.client = client
        self.model = model
        self.tools = list(tools)
        self.settings = settings
        self.exit_when_idle = exit_when_idle
        self._resumed = False  # restarted mid-task: the next inference gets a restart brief

    async def _infer(self, move: Infer) -> None:
        if move.new:
            # Only if the bus is still what the plan saw: input that arrived meanwhile must not
            # count as delivered with this inference.
            try:
                await self.append_batch(
                    [e.InfIn(self.model, tuple(move.new)).to_entry()],
                    expect_tail=self.state.next,
                )
            except ConditionFailed:
                return  # re-plan once the new entries are folded in
        self._resumed = False  # any restart brief is in the log now
        options: dict[str, Any] = {"tools": self.tools} if self.tools else {}
        if self.settings.force_tool is not None:
            options["tool_choice"] = {
                "type": "function",
                "function": {"name": self.settings.force_tool},
            }
        for attempt in range(MODEL_ATTEMPTS):
            try:
                message, usage = await chat(self.client, self.model, move.conversation, **options)
                break
            except ModelError as exc:
                if attempt + 1 == MODEL_ATTEMPTS:
                    text = f"stopped: the model failed {MODEL_ATTEMPTS} times: {exc}"
                    await self.append_batch([e.AgentOutput(text).to_entry()])
                    return
                await trio.sleep(2**attempt)  # back off before asking the endpoint again
        reply = e.InfOut(self.model, message, usage).to_entry()
        actions = actions_of(message, self.settings.code_actions)
        if actions:
            await self.append_batch([reply, e.Intent(actions[0]).to_entry()])
        else:
            await self.append_batch([reply])

    async def recovered(self) -> None:
        self._resumed = True  # plan() briefs only if a loop was under way

    async def step(self, now: int) -> int | None:
        move = plan(self.state, self.settings, resumed=self._resumed)
        if isinstance(move, Finish | Idle):
            self._resumed = False  # nothing under way to brief about
        match move:
            case Infer():
                await self._infer(move)
            case Propose():
                await self.append_batch([move.intent.to_entry()])
            case Finish():
                await self.append_batch([e.AgentOutput(move.text, move.input_id).to_entry()])
            case Idle():
                self.finished = self.exit_when_idle and bool(self.state.of_type(e.AgentOutput))
        return None
