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
from logact.agent.core.bus import BusState, IntentRecord
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


def in_doubt_results(state: BusState) -> list[e.Result]:
    """What to report, on start, for every action an earlier executor left unfinished."""
    return [
        e.Result(record.position, ok=False, error=INTERRUPTED, in_doubt=True)
        for record in state.in_doubt()
    ]


def plan(state: BusState) -> list[IntentRecord]:
    """The committed intents not started yet, in log order."""
    return sorted(state.runnable.values(), key=lambda record: record.position)


class Executor(Component):
    fencing_name = "executor"

    def __init__(self, log: LogAPI, bus: str, tools: ToolRegistry) -> None:
        super().__init__(log, bus)
        self.tools = tools

    async def recovered(self) -> None:
        results = in_doubt_results(self.state)
        if results:
            await self.append_batch([result.to_entry() for result in results])

    async def _run(self, record: IntentRecord) -> ToolOutcome:
        token = ACTION_ENV.set(
            (("LOGACT_BUS", self.bus), ("LOGACT_INTENT_ID", str(record.position)))
        )
        try:
            return await self.tools.run(as_tool_call(record.intent.action))
        finally:
            ACTION_ENV.reset(token)

    async def step(self, now: int) -> int | None:
        for record in plan(self.state):
            await self.append(*e.ExecStart(record.position).to_entry())
            outcome = await self._run(record)
            await self.append(*outcome.to_result(record.position).to_entry())
        return None
