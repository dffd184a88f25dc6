"""The executor component: runs committed intents, at most once each.

Before running it appends exec_start, after running the result. Only one executor is active per
bus (fencing epoch "executor"): a stale one's appends are rejected. On start, every intent with
an exec_start and no result was interrupted mid-run: it may or may not have taken effect, so it
is reported as an in-doubt result and never re-run; the driver's model decides what to do.
"""

from __future__ import annotations

import shlex

from logact.agent.components.runner import Component
from logact.agent.core import entries as e
from logact.agent.core.bus import IntentRecord
from logact.agent.tools.registry import ACTION_ENV, ToolOutcome, ToolRegistry
from logact.protocol.api import LogAPI

INTERRUPTED = (
    "interrupted: the executor stopped after starting this action and before recording its "
    "result. It may or may not have taken effect; it was not re-run. Examine the environment "
    "before deciding to undo or redo it."
)

#: How a code block runs: through the shell tool, so it gets its timeout, env and output cap.
CODE_RUNNERS = {
    "python": "python3 -c {code}",
    "py": "python3 -c {code}",
    "bash": "bash -c {code}",
    "sh": "sh -c {code}",
    "shell": "sh -c {code}",
}


def as_tool_call(action: e.ToolCall | e.CodeBlock) -> e.ToolCall:
    """Code blocks run as shell commands; unknown languages fail as an unknown tool."""
    if isinstance(action, e.ToolCall):
        return action
    template = CODE_RUNNERS.get(action.language.lower())
    if template is None:
        return e.ToolCall(f"code:{action.language}", {})
    return e.ToolCall("shell", {"command": template.format(code=shlex.quote(action.code))})


class Executor(Component):
    fencing_name = "executor"

    def __init__(self, log: LogAPI, bus: str, tools: ToolRegistry) -> None:
        super().__init__(log, bus)
        self.tools = tools
        self._started: set[int] = set()

    async def recovered(self) -> None:
        for record in self.state.in_doubt():
            result = e.Result(record.position, ok=False, error=INTERRUPTED, in_doubt=True)
            await self.append(*result.to_entry())

    async def _run(self, record: IntentRecord) -> ToolOutcome:
        token = ACTION_ENV.set(
            (("LOGACT_BUS", self.bus), ("LOGACT_INTENT_ID", str(record.position)))
        )
        try:
            return await self.tools.run(as_tool_call(record.intent.action))
        finally:
            ACTION_ENV.reset(token)

    async def step(self, now: int) -> int | None:
        for record in sorted(self.state.runnable.values(), key=lambda r: r.position):
            if record.position in self._started:
                continue
            await self.append(*e.ExecStart(record.position).to_entry())
            self._started.add(record.position)
            outcome = await self._run(record)
            await self.append(*outcome.to_result(record.position).to_entry())
        return None
