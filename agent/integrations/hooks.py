"""Claude Code and Codex tool hooks: each tool call becomes an intent the decider rules on.

The harness runs ``logact hook claude-code`` (or ``codex``) as a command hook. On PreToolUse
the hook appends the call as an :class:`~logact.agent.core.entries.Intent` on the session's bus,
waits for the first commit/abort, and answers in the harness's own protocol; on PostToolUse it
appends the tool's :class:`~logact.agent.core.entries.Result` against the *real* intent id (the
reference implementation records results with intent id -1, which loses the link).

Both harnesses treat a hook that crashes, exits with an unexpected code or times out as a
*non-blocking* failure: the tool runs anyway. Failing closed is therefore this module's job:
every PreToolUse path that is not a commit — malformed payload, log unavailable, no decision in
time, any bug — must still produce an explicit deny. A PostToolUse can never block (the tool
already ran), so its failures are reported on stderr with exit code 0.

Layout: the pure core (payload parsing, bus ids, tool outcomes, rendering, intent matching)
does no I/O and is unit-tested over recorded sample payloads; ``handle_pre``/``handle_post``
talk to one :class:`~logact.protocol.api.LogAPI`; ``run_hook`` is the whole invocation with every
fail-closed catch, which ``cli/hook.py`` wraps in stdin/stdout.

Protocol facts and their sources are in ``docs/hooks.md``. In short:

- Claude Code (code.claude.com/docs/en/hooks): stdin has ``session_id``, ``transcript_path``,
  ``cwd``, ``permission_mode``, ``hook_event_name``, ``tool_name``, ``tool_input``,
  ``tool_use_id`` (+ ``agent_id``/``agent_type`` in subagents); PostToolUse adds
  ``tool_response``, PostToolUseFailure adds ``error``/``is_interrupt``. A decision is
  ``{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
  "allow"|"deny"|"ask", "permissionDecisionReason": ...}}`` on stdout with exit code 0.
- Codex (openai/codex ``codex-rs/hooks``): the same field names plus ``model`` and ``turn_id``;
  the shell tool is reported as ``Bash`` with ``{"command": str}``, patches as ``apply_patch``
  with the patch text in ``command``; ``tool_response`` is a string. Codex accepts only
  ``deny`` (with a non-empty reason): ``allow`` without ``updatedInput`` and ``ask`` are
  rejected as unsupported (and then fail open), so approval is an empty stdout.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.integrations.commit import wait_for_decision
from logact.protocol.api import LogAPI
from logact.protocol.codec import BUS_ID

#: Result output kept per tool call: enough to audit, small enough to keep sessions lean.
OUTPUT_LIMIT = 16384
#: Cap on a reason shown to the model (it lands in the model's context).
REASON_LIMIT = 2000
#: Entry types a Post needs to find the intent it answers.
_POST_TYPES = ("intent", "commit", "abort", "result")
#: A bus id component: anything else becomes "_" so the dots we add stay unambiguous.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_BUS = 256


class Harness(Enum):
    """An outside harness and the bus-id prefix of its sessions (as in the reference)."""

    CLAUDE_CODE = "claude_code"
    CODEX = "codex"

    @property
    def label(self) -> str:
        return "Claude Code" if self is Harness.CLAUDE_CODE else "Codex"


class HookEvent(Enum):
    """The hook events this module handles; others are not tool calls and pass untouched."""

    PRE_TOOL_USE = "PreToolUse"
    POST_TOOL_USE = "PostToolUse"
    POST_TOOL_USE_FAILURE = "PostToolUseFailure"  # Claude Code only: the tool call failed


class HookPayloadError(ValueError):
    """The hook's stdin is not a payload we can act on; a Pre answers it with a deny."""

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"field {field!r}: {problem}" if field else problem)


class UnsupportedEvent(Exception):
    """A well-formed payload for an event that is not a tool call (e.g. a Stop hook)."""

    def __init__(self, event: str) -> None:
        self.event = event
        super().__init__(f"event {event!r} is not handled by the LogAct hook; ignored")


@dataclass(frozen=True, slots=True)
class HookPayload:
    """The parts of one hook invocation LogAct uses; ``raw`` keeps the rest."""

    harness: Harness
    event: HookEvent
    bus: str
    session_id: str
    tool_name: str
    tool_input: dict[str, Any]
    tool_use_id: str | None
    agent_id: str | None
    cwd: str | None
    tool_response: Any  # Post only: the tool's own result (shape varies by tool and harness)
    error: str | None  # PostToolUseFailure only
    is_interrupt: bool
    raw: dict[str, Any]

    def tool_call(self) -> e.ToolCall:
        """The intent's action: the call id is the harness's tool-use id, to match the Post."""
        return e.ToolCall(tool=self.tool_name, arguments=self.tool_input, call_id=self.tool_use_id)


@dataclass(frozen=True, slots=True)
class HookResponse:
    """What the hook process prints and how it exits: exactly what the harness reads."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


# --- bus ids ------------------------------------------------------------------------------------


def current_user() -> str:
    """The user part of bus ids: ``$USER`` as in the reference, else the login name."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no passwd entry (containers)
            user = ""
    return user or "unknown"


def _component(text: str) -> str:
    """``text`` if it is already safe; else its safe form tagged with a hash of the original,
    so ``a.b`` and ``a_b`` (or an empty id and ``_``) never share a bus."""
    safe = _UNSAFE.sub("_", text)
    if safe and safe == text:
        return text
    return f"{safe or '_'}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def bus_id(harness: Harness, user: str, session_id: str, agent_id: str | None = None) -> str:
    """``<harness>.<user>.<session>[.agent.<agent_id>]`` within the bus id grammar.

    Each component is reduced to ``[A-Za-z0-9_-]`` (anything else becomes ``_``, plus a short
    hash of the original) so the dots are always separators and distinct ids stay distinct. An
    id longer than the grammar's 256 characters keeps its head and gets a hash of the full
    input, so two long sessions never share a bus either.
    """
    parts = [harness.value, _component(user), _component(session_id)]
    if agent_id:
        parts += ["agent", _component(agent_id)]
    bus = ".".join(parts)
    if len(bus) > _MAX_BUS:
        digest = hashlib.sha256(
            "\0".join([harness.value, user, session_id, agent_id or ""]).encode(
                "utf-8", "surrogatepass"
            )
        ).hexdigest()[:16]
        bus = f"{bus[: _MAX_BUS - len(digest) - 1]}-{digest}"
    assert BUS_ID.fullmatch(bus), bus
    return bus


# --- parsing ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise HookPayloadError(f"payload holds the non-JSON number {name}")


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HookPayloadError(f"must be a string, got {type(value).__name__}", key)
    return value or None


def _req_str(data: dict[str, Any], key: str) -> str:
    value = _opt_str(data, key)
    if value is None:
        raise HookPayloadError("is required (a non-empty string)", key)
    return value


def parse_payload(harness: Harness, data: str | bytes | dict[str, Any], user: str) -> HookPayload:
    """Parse one hook stdin (JSON text or an already decoded object) for ``harness``.

    Raises :class:`HookPayloadError` for anything malformed and :class:`UnsupportedEvent` for a
    well-formed payload of an event that is not a tool call.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data, parse_constant=_reject_constant)
        except HookPayloadError:
            raise
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise HookPayloadError(f"stdin is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HookPayloadError(f"payload must be a JSON object, got {type(data).__name__}")
    name = _req_str(data, "hook_event_name")
    try:
        event = HookEvent(name)
    except ValueError:
        raise UnsupportedEvent(name) from None
    session_id = _req_str(data, "session_id")
    tool_name = _req_str(data, "tool_name")
    tool_input = data.get("tool_input")
    if not isinstance(tool_input, dict):
        raise HookPayloadError(
            f"must be a JSON object, got {type(tool_input).__name__}", "tool_input"
        )
    tool_use_id = _opt_str(data, "tool_use_id")
    agent_id = _opt_str(data, "agent_id")
    cwd = _opt_str(data, "cwd")
    error = _opt_str(data, "error") if event is HookEvent.POST_TOOL_USE_FAILURE else None
    is_interrupt = data.get("is_interrupt") is True
    payload = HookPayload(
        harness=harness,
        event=event,
        bus=bus_id(harness, user, session_id, agent_id),
        session_id=session_id,
        tool_name=tool_name,
        tool_input=tool_input,
        tool_use_id=tool_use_id,
        agent_id=agent_id,
        cwd=cwd,
        tool_response=data.get("tool_response"),
        error=error,
        is_interrupt=is_interrupt,
        raw=data,
    )
    try:
        payload.tool_call()  # the same checks the log's readers apply (depth, plain values)
    except e.EntryError as exc:
        raise HookPayloadError(str(exc), "tool_input") from None
    return payload


# --- tool outcomes ------------------------------------------------------------------------------

_EXIT_KEYS = ("exit_code", "exitCode", "returncode", "returnCode")
#: Response keys left out of a recorded output: the whole file before an Edit/Write.
_BULKY = ("originalFile",)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _exit_code(response: dict[str, Any]) -> int | None:
    for holder in (response, response.get("metadata")):
        if isinstance(holder, dict):
            for key in _EXIT_KEYS:
                code = holder.get(key)
                if isinstance(code, int) and not isinstance(code, bool):
                    return code
    return None


def _from_mapping(response: dict[str, Any]) -> tuple[str, str | None]:
    """(output, error) of a structured tool response; error None when it looks successful."""
    if "stdout" in response or "stderr" in response:
        stdout, stderr = _text(response.get("stdout")), _text(response.get("stderr"))
        output = stdout + (("\n" if stdout and not stdout.endswith("\n") else "") + stderr)
    elif isinstance(response.get("output"), str):
        output = response["output"]
    else:
        output = _text({k: v for k, v in response.items() if k not in _BULKY})
    error = None
    code = _exit_code(response)
    if response.get("interrupted") is True:
        error = "interrupted"
    elif code is not None and code != 0:
        error = f"exit code {code}"
    elif response.get("is_error") is True or response.get("isError") is True:
        error = "the tool reported an error"
    elif response.get("success") is False:
        error = "the tool reported failure"
    return output, error


def tool_outcome(payload: HookPayload) -> tuple[str, str | None]:
    """The (output, error) a Post reports; error is None for a success.

    Claude Code sends PostToolUse only for successes (structured ``tool_response``, e.g. Bash's
    ``{stdout, stderr, interrupted, isImage}``) and PostToolUseFailure with an ``error`` text.
    Codex sends a string: the command output for Bash (no exit code), a JSON text with
    ``metadata.exit_code`` for apply_patch. Exit codes and interruption flags are honoured
    where the response carries them.
    """
    if payload.event is HookEvent.POST_TOOL_USE_FAILURE:
        fallback = "interrupted" if payload.is_interrupt else "the tool call failed"
        return "", payload.error or fallback
    response = payload.tool_response
    if isinstance(response, str):
        stripped = response.strip()
        if stripped.startswith("{"):
            try:
                decoded = json.loads(stripped)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                return _from_mapping(decoded)
        return response, None
    if isinstance(response, dict):
        return _from_mapping(response)
    return _text(response), None


def result_for(payload: HookPayload, intent_id: int, limit: int = OUTPUT_LIMIT) -> e.Result:
    """The Result entry for a Post, its texts capped (head and tail kept)."""
    output, error = tool_outcome(payload)
    duration = payload.raw.get("duration_ms")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        duration = None
    return e.Result(
        intent_id=intent_id,
        ok=error is None,
        output=e.cap_output(output, limit),
        error=None if error is None else e.cap_output(error, limit),
        duration_ms=duration,
    )


# --- rendering ----------------------------------------------------------------------------------


def _reason(text: str) -> str:
    text = " ".join(text.split()) or "LogAct denied this tool call"
    return e.cap_output(text, REASON_LIMIT)


def _pre_json(decision: str, reason: str) -> str:
    return json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": decision,
                "permissionDecisionReason": reason,
            }
        }
    )


def render_allow(harness: Harness, reason: str, *, native_prompt: bool = False) -> HookResponse:
    """A committed intent: let the tool run.

    Claude Code: ``allow`` skips its permission prompt (its own deny/ask rules still apply);
    with ``native_prompt`` nothing is printed and Claude's usual permission flow decides too.
    Codex: always empty stdout (Codex rejects ``allow`` without ``updatedInput``).
    """
    if harness is Harness.CODEX or native_prompt:
        return HookResponse()
    return HookResponse(stdout=_pre_json("allow", _reason(reason)))


def render_deny(harness: Harness, reason: str) -> HookResponse:
    """Block the tool; the (non-empty) reason is shown to the model. Same JSON for both."""
    del harness  # both harnesses read the same hookSpecificOutput deny
    return HookResponse(stdout=_pre_json("deny", _reason(reason)))


def render_post(note: str = "") -> HookResponse:
    """A Post never blocks: exit 0, nothing on stdout, an optional note on stderr."""
    return HookResponse(stderr=f"logact hook: {note}\n" if note else "")


def deny_malformed(harness: Harness, exc: Exception) -> HookResponse:
    return render_deny(
        harness, f"LogAct cannot read this {harness.label} hook payload ({exc}); fail closed."
    )


def deny_unavailable(harness: Harness, exc: BaseException) -> HookResponse:
    detail = str(exc) or type(exc).__name__
    return render_deny(
        harness, f"LogAct could not use its log ({detail}); not running this tool (fail closed)."
    )


# --- intent matching ----------------------------------------------------------------------------


def _preference(record: IntentRecord) -> tuple[bool, bool, int]:
    """Committed and still open first, then the latest."""
    return (record.result is None, record.committed, record.position)


def find_intent(state: BusState, payload: HookPayload) -> IntentRecord | None:
    """The intent a Post answers.

    With a tool-use id: the intent whose ``call_id`` is that id (if it was appended more than
    once, the latest committed one without a result). Without one: the most recent committed
    intent with the same tool name and arguments that has no result yet.
    """
    calls = [
        (r, r.intent.action)
        for r in state.intents.values()
        if isinstance(r.intent.action, e.ToolCall)
    ]
    if payload.tool_use_id is not None:
        matches = [r for r, call in calls if call.call_id == payload.tool_use_id]
        return max(matches, key=_preference, default=None)
    matches = [
        r
        for r, call in calls
        if r.committed
        and r.result is None
        and call.tool == payload.tool_name
        and call.arguments == payload.tool_input
    ]
    return max(matches, key=lambda r: r.position, default=None)


# --- I/O: one log -------------------------------------------------------------------------------


async def handle_pre(
    log: LogAPI, payload: HookPayload, timeout: float, *, native_prompt: bool = False
) -> HookResponse:
    """Append the call as an intent, wait up to ``timeout`` s in all for its decision, answer.

    The timeout covers the append too: a log too slow to take the intent is as undecided as a
    decider that never answers, and both are denied. Errors from the log propagate;
    ``run_hook`` turns them into a deny.
    """
    harness = payload.harness
    position: int | None = None
    decision: e.Commit | e.Abort | None = None
    with trio.move_on_after(timeout):
        position = await log.append(payload.bus, *e.Intent(action=payload.tool_call()).to_entry())
        decision = await wait_for_decision(log, payload.bus, position)
    if position is None:
        return render_deny(
            harness,
            f"LogAct: the log did not take the intent within {timeout:g} s (bus {payload.bus}); "
            "not running this tool (fail closed).",
        )
    where = f"intent {position} on bus {payload.bus}"
    if decision is None:
        return render_deny(
            harness,
            f"LogAct: no decision for {where} within {timeout:g} s; not running this tool "
            "(fail closed).",
        )
    if decision.commit:
        return render_allow(
            harness, f"LogAct committed {where}: {decision.reason}", native_prompt=native_prompt
        )
    return render_deny(harness, f"LogAct aborted {where}: {decision.reason}")


async def handle_post(log: LogAPI, payload: HookPayload) -> HookResponse:
    """Record the tool's result against the intent it ran as; never against id -1.

    No matching intent, or one that already has a result: nothing is appended and stderr says
    why. A matching intent that was never committed (the harness ran the tool anyway, e.g.
    after killing a slow hook) still gets its result, with a warning: the log should show it.
    """
    state = BusState(payload.bus)
    for raw in await log.read_all(payload.bus, types=_POST_TYPES):
        state.apply(raw)
    record = find_intent(state, payload)
    key = (
        f"tool_use_id {payload.tool_use_id!r}"
        if payload.tool_use_id
        else f"a committed open {payload.tool_name!r} call with these arguments"
    )
    if record is None:
        return render_post(f"no intent for {key} on bus {payload.bus}; result not recorded")
    if record.result is not None:
        return render_post(
            f"intent {record.position} on bus {payload.bus} already has a result; not recorded"
        )
    position = await log.append(payload.bus, *result_for(payload, record.position).to_entry())
    note = "" if record.committed else f"warning: intent {record.position} ran without a commit; "
    return render_post(f"{note}result {position} recorded for intent {record.position}")


# --- one invocation, every fail-closed catch ------------------------------------------------------

LogOpener = Callable[[], AbstractAsyncContextManager[LogAPI]]
#: Time allowed beyond the decision timeout to close the log connection.
CLOSE_GRACE = 5.0


async def run_hook(
    harness: Harness,
    stdin: str | bytes,
    open_log: LogOpener,
    *,
    decision_timeout: float,
    user: str | None = None,
    native_prompt: bool = False,
) -> HookResponse:
    """Handle one hook invocation end to end; never raises for anything but cancellation.

    A PreToolUse that is not committed — for any reason, including a bug here — is denied.
    """
    try:
        payload = parse_payload(harness, stdin, user or current_user())
    except UnsupportedEvent as exc:
        return render_post(str(exc))
    except Exception as exc:  # HookPayloadError, or anything unforeseen: fail closed
        return deny_malformed(harness, exc)
    if payload.event is HookEvent.PRE_TOOL_USE:
        if not (decision_timeout > 0 and math.isfinite(decision_timeout)):
            return render_deny(harness, "LogAct: the decision timeout must be a positive number.")
        try:
            with trio.fail_after(decision_timeout + CLOSE_GRACE):
                async with open_log() as log:
                    return await handle_pre(
                        log, payload, decision_timeout, native_prompt=native_prompt
                    )
        except Exception as exc:  # LogError, OSError, TooSlowError, ExceptionGroup, bugs
            return deny_unavailable(harness, exc)
    try:
        with trio.fail_after(decision_timeout + CLOSE_GRACE):
            async with open_log() as log:
                return await handle_post(log, payload)
    except Exception as exc:
        return render_post(f"result not recorded: {str(exc) or type(exc).__name__}")
