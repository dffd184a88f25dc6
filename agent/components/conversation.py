"""The driver's pure core: from the bus to the conversation and the driver's next move.

The conversation *is* the log: each inf_in holds the messages added since the previous
inference (the first one starts with the system prompt) and each inf_out the model's reply, so
the chat history is their concatenation in log order and a restarted driver rebuilds it
exactly. :func:`plan` reads the bus and says what the driver does next:

- ``Infer``: call the model with ``conversation`` (after appending ``new`` as an inf_in, unless
  ``new`` is empty: that inference was already logged and its reply lost, so it is redone);
- ``Propose``: append the intent for the next tool call of the last reply (one in flight);
- ``Finish``: append agent_output;
- ``Wait``: an intent is in flight (votes, decision or execution pending);
- ``Idle``: no task; mail or agent_input will wake it.

Results, aborts (with their reason) and in-doubt interruptions become tool messages; an
interruption also adds a recovery brief (agent/introspection/recovery.py) after them. agent_input
and mail
that arrive while busy are buffered into the next inference.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.introspection.recovery import recovery_brief, restart_brief

Message = dict[str, Any]

_CODE_BLOCK = re.compile(r"```([A-Za-z0-9_+-]+)\n(.*?)```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Idle:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    intent_id: int


@dataclass(frozen=True, slots=True)
class Infer:
    conversation: list[Message]  # everything to send, ``new`` included
    new: list[Message]  # to log as inf_in first; empty when redoing a logged inference


@dataclass(frozen=True, slots=True)
class Propose:
    intent: e.Intent


@dataclass(frozen=True, slots=True)
class Finish:
    text: str
    input_id: int | None


Move = Idle | Wait | Infer | Propose | Finish


@dataclass(frozen=True, slots=True)
class Settings:
    system_prompt: str
    max_steps: int = 30  # model replies per task before the driver gives up
    code_actions: bool = False  # also run fenced code blocks in replies without tool calls
    #: Make every reply call this tool (for small models that will not call tools on their
    #: own); the task then ends at the step limit.
    force_tool: str | None = None


def parse_arguments(raw: Any) -> dict[str, Any]:
    """A tool call's JSON arguments; unparsable ones are kept visibly so the executor rejects
    them and the model sees why."""
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except json.JSONDecodeError:
        return {"_unparsed_arguments": str(raw)}
    return value if isinstance(value, dict) else {"_unparsed_arguments": str(raw)}


def actions_of(message: Message, code_actions: bool) -> list[e.ToolCall | e.CodeBlock]:
    """The actions a model reply proposes, in order."""
    calls = message.get("tool_calls") or []
    if calls:
        return [
            e.ToolCall(
                str(call.get("function", {}).get("name") or "?"),
                parse_arguments(call.get("function", {}).get("arguments")),
                str(call.get("id") or f"call_{index}"),
            )
            for index, call in enumerate(calls)
        ]
    if code_actions and (match := _CODE_BLOCK.search(message.get("content") or "")):
        return [e.CodeBlock(match.group(1), match.group(2))]
    return []


def observation(record: IntentRecord) -> str:
    """What the model is told about one of its actions."""
    if record.aborted:
        assert record.decision is not None
        return f"ABORTED, not run: {record.decision.reason}"
    result = record.result
    assert result is not None
    if result.in_doubt:
        return f"IN DOUBT: {result.error}"
    if result.ok:
        return result.output or "(no output)"
    return f"ERROR: {result.error}" + (f"\n{result.output}" if result.output else "")


def inbound_message(entry: e.AgentInput | e.Mail) -> Message:
    if isinstance(entry, e.AgentInput):
        return {"role": "user", "content": entry.text}
    subject = f" [{entry.subject}]" if entry.subject else ""
    return {"role": "user", "content": f"Mail from {entry.sender}{subject}: {entry.text}"}


@dataclass
class _Fold:
    """The driver-relevant part of the bus, in one pass."""

    conversation: list[Message] = field(default_factory=list)
    last_in: int = -1
    last_out: int = -1
    reply: Message | None = None  # the last reply not yet followed by an inf_in (unanswered)
    reply_loop_ended: bool = False  # an agent_output came after that reply
    intents: list[IntentRecord] = field(default_factory=list)  # since the last inf_out
    pending: list[tuple[int, e.AgentInput | e.Mail]] = field(default_factory=list)
    active: bool = False  # a loop is open (no agent_output since it started)
    input_id: int | None = None
    steps: int = 0  # model replies in the current loop

    def wake(self, position: int) -> None:
        self.active, self.input_id, self.steps = True, position, 0


def _inbound(entry: e.AgentInput | e.Mail, bus: str) -> bool:
    return not isinstance(entry, e.Mail) or entry.to == bus


def _fold(state: BusState) -> _Fold:
    fold = _Fold()
    for raw, entry in state.entries:
        match entry:
            case e.AgentInput() | e.Mail() if _inbound(entry, state.bus):
                fold.pending.append((raw.pos, entry))
                if not fold.active:
                    fold.wake(raw.pos)
            case e.InfIn():
                fold.conversation.extend(entry.messages)
                fold.pending = [(p, m) for p, m in fold.pending if p > raw.pos]
                fold.last_in, fold.reply = raw.pos, None
            case e.InfOut():
                fold.conversation.append(entry.message)
                fold.last_out, fold.reply, fold.intents = raw.pos, entry.message, []
                fold.reply_loop_ended = False
                fold.steps += 1
            case e.Intent():
                if fold.reply is not None:
                    fold.intents.append(state.intents[raw.pos])
            case e.AgentOutput():
                # Ends the loop, and any inference it gave up on.
                fold.active, fold.reply_loop_ended, fold.last_in = False, True, fold.last_out
    if not fold.active and fold.pending:  # input that arrived as the last loop ended
        fold.wake(fold.pending[0][0])
    return fold


def _answers(
    fold: _Fold, actions: list[e.ToolCall | e.CodeBlock], closing: bool
) -> list[Message] | Move:
    """Tool messages answering every action of the last reply, or the move still needed.

    ``closing``: the reply's loop has ended, so actions never proposed are answered as not run.
    """
    messages: list[Message] = []
    skip = ""
    for index, action in enumerate(actions):
        record = fold.intents[index] if index < len(fold.intents) else None
        if record is not None and record.closed:
            text = observation(record)
            if record.aborted or (record.result is not None and record.result.in_doubt):
                skip = (
                    skip or "NOT RUN: an earlier action of this reply was aborted or is in doubt."
                )
        elif closing:
            text = "NOT RUN: the task ended before this action ran."
        elif record is not None:
            return Wait(record.position)
        elif not skip:
            return Propose(e.Intent(action))
        else:
            text = skip
        if isinstance(action, e.ToolCall):
            messages.append({"role": "tool", "tool_call_id": action.call_id, "content": text})
        else:
            messages.append({"role": "user", "content": f"Output of your code block:\n{text}"})
    return messages


def plan(state: BusState, settings: Settings, *, resumed: bool = False) -> Move:
    """The driver's next move, from the bus alone.

    ``resumed``: the driver has just restarted; if it had already replied in the open loop,
    its next inference carries a restart brief (what is in flight, the task's digest).
    """
    fold = _fold(state)
    brief: list[Message] = []
    if resumed and fold.active and fold.steps > 0 and fold.input_id is not None:
        brief = [{"role": "user", "content": restart_brief(state, fold.input_id)}]
    if fold.last_in > fold.last_out:
        # Logged, reply lost: ask again (with the brief, which is then logged first).
        return Infer([*fold.conversation, *brief], brief)
    if not fold.active:
        return Idle()
    new: list[Message] = []
    if not fold.conversation:
        new.append({"role": "system", "content": settings.system_prompt})
    if fold.reply is not None:
        actions = actions_of(fold.reply, settings.code_actions)
        if actions:
            answers = _answers(fold, actions, closing=fold.reply_loop_ended)
            if not isinstance(answers, list):
                return answers
            new.extend(answers)
            interrupted = [r for r in fold.intents if r.result is not None and r.result.in_doubt]
            if interrupted and not fold.reply_loop_ended:
                new.append({"role": "user", "content": recovery_brief(state, interrupted)})
                brief = []  # the recovery brief already tells what the log holds
        elif not fold.reply_loop_ended and not fold.pending:
            return Finish(fold.reply.get("content") or "", fold.input_id)
    if fold.steps >= settings.max_steps:
        text = f"stopped: step limit of {settings.max_steps} model replies reached"
        return Finish(text, fold.input_id)
    new.extend(inbound_message(entry) for _, entry in fold.pending)
    new.extend(brief)
    return Infer([*fold.conversation, *new], new)
