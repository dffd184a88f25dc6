"""The typed entry vocabulary of an agent bus.

Every component of an agent talks only through the log, so the entry bodies are its whole
protocol. Each entry type is a frozen dataclass whose fields are checked on construction: a
component cannot append a malformed body, and a reader decoding a body from the log with
``from_body`` (or ``parse``) gets either a valid object or one ``EntryError`` naming the entry
type and the field. Bodies are plain CBOR-able dicts (str/int/float/bool/None/list/dict);
optional fields that are ``None`` are left out of the body.

An intent's id is its log position: votes, decisions, exec_start and results carry it as
``intent_id``. Entry headers (position, timestamp, author principal) come from the log itself
and are not part of the body.

Policy entries are versioned (``version`` >= 1; version 0 is the built-in default). Several
policy changes that must take effect together are appended as one atomic batch:
``log.append_batch(bus, [p.to_entry() for p in policies])``.

``ROLE_TYPES`` says which entry types each component role may append; it must match the
``[auth.roles.*]`` tables of the server configuration, which is what the server enforces.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, NoReturn, Self

from logact.protocol.codec import BUS_ID

#: Hard ceiling on a result's output (and error) text; executors should cap lower.
MAX_OUTPUT_CHARS = 65536
#: Nesting bound of free-form documents (tool arguments, messages, policies).
MAX_DEPTH = 32


class EntryError(ValueError):
    """An entry body (or constructor argument) is invalid; names the entry type and field."""

    def __init__(self, entry_type: str, field: str | None, problem: str) -> None:
        self.entry_type = entry_type
        self.field = field
        where = f"field {field!r} " if field else ""
        super().__init__(f"invalid {entry_type} entry: {where}{problem}")


# --- field checks: each reads the attribute of a body object and raises EntryError -----------


def _fail(obj: _Body, name: str, problem: str) -> NoReturn:
    raise EntryError(obj.TYPE, obj.PREFIX + obj.KEYS.get(name, name), problem)


#: Largest integer an entry may carry: log positions and counts fit in 63 bits.
MAX_INT = 2**63 - 1


def _check_int(obj: _Body, name: str, lo: int = 0, optional: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= MAX_INT:
        _fail(obj, name, f"must be an integer in [{lo}, 2^63), got {value!r}")


def _check_str(
    obj: _Body, name: str, *, empty: bool = False, optional: bool = False, max_len: int = 0
) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not isinstance(value, str):
        _fail(obj, name, f"must be a string, got {type(value).__name__}")
    if not value and not empty:
        _fail(obj, name, "must not be empty")
    if max_len and len(value) > max_len:
        _fail(obj, name, f"is {len(value)} characters, more than the cap of {max_len}")


def _check_bool(obj: _Body, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        _fail(obj, name, f"must be true or false, got {value!r}")


def _plain_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not a plain JSON-like document, or None if it is."""
    if depth > MAX_DEPTH:
        return f"nests deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"holds a non-finite number {value!r}"
    if isinstance(value, list):
        return next((p for v in value if (p := _plain_problem(v, depth + 1))), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "has a non-string key"
        return next((p for v in value.values() if (p := _plain_problem(v, depth + 1))), None)
    return f"holds a {type(value).__name__} (only null/bool/int/float/str/list/map allowed)"


def _check_doc(obj: _Body, name: str, value: Any = MISSING) -> None:
    value = getattr(obj, name) if value is MISSING else value
    if not isinstance(value, dict):
        _fail(obj, name, f"must be a map, got {type(value).__name__}")
    if problem := _plain_problem(value):
        _fail(obj, name, problem)


# --- the generic body machinery ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    """Fields are body keys (see ``KEYS`` for renames); defaults make a field optional."""

    TYPE: ClassVar[str]  # the entry type (for nested parts: the entry they belong to)
    PREFIX: ClassVar[str] = ""  # field-name prefix of a nested part in error messages
    KEYS: ClassVar[dict[str, str]] = {}  # python field name -> body key, where they differ

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Validate every field; raise EntryError on the first bad one."""

    @classmethod
    def _decode(cls, name: str, value: Any) -> Any:
        """Turn a decoded body value into the field's value (nested parts, lists to tuples)."""
        return value

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, _Body):
                value = value.to_body()
            elif isinstance(value, tuple):
                value = list(value)
            body[self.KEYS.get(f.name, f.name)] = value
        return body

    @classmethod
    def from_body(cls, body: Any) -> Self:
        if not isinstance(body, dict):
            got = type(body).__name__
            if cls.PREFIX:
                raise EntryError(cls.TYPE, cls.PREFIX.rstrip("."), f"must be a map, got {got}")
            raise EntryError(cls.TYPE, None, f"body must be a map, got {got}")
        known = {cls.KEYS.get(f.name, f.name): f for f in fields(cls)}
        for key in body:
            if key not in known:
                raise EntryError(cls.TYPE, cls.PREFIX + str(key), f"is not a field of {cls.TYPE}")
        kwargs: dict[str, Any] = {}
        for key, f in known.items():
            value = body.get(key)
            if value is not None:
                kwargs[f.name] = cls._decode(f.name, value)
            elif f.default is MISSING:
                raise EntryError(cls.TYPE, cls.PREFIX + key, "is required")
        return cls(**kwargs)

    def to_entry(self) -> tuple[str, dict[str, Any]]:
        """``(type, body)``, as ``LogAPI.append_batch`` takes them."""
        return self.TYPE, self.to_body()


# --- driver ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentInput(_Body):
    """A task for the agent: starts a loop of the driver."""

    TYPE: ClassVar[str] = "agent_input"
    text: str

    def _check(self) -> None:
        _check_str(self, "text")


@dataclass(frozen=True, slots=True)
class AgentOutput(_Body):
    """The agent's final answer: ends the loop started by agent_input ``input_id``."""

    TYPE: ClassVar[str] = "agent_output"
    text: str
    input_id: int | None = None

    def _check(self) -> None:
        _check_str(self, "text", empty=True)
        _check_int(self, "input_id", optional=True)


@dataclass(frozen=True, slots=True)
class Usage(_Body):
    """Token usage reported by the model endpoint."""

    TYPE: ClassVar[str] = "inf_out"
    PREFIX: ClassVar[str] = "usage."
    prompt_tokens: int
    completion_tokens: int

    def _check(self) -> None:
        _check_int(self, "prompt_tokens")
        _check_int(self, "completion_tokens")


def _check_message(obj: _Body, name: str, message: Any) -> None:
    """A chat message: a plain map with a non-empty string 'role'."""
    _check_doc(obj, name, message)
    if not isinstance(message.get("role"), str) or not message["role"]:
        _fail(obj, name, "needs a non-empty string 'role'")


@dataclass(frozen=True, slots=True)
class InfIn(_Body):
    """What was sent to the model: chat messages in the OpenAI format (replayed on recovery)."""

    TYPE: ClassVar[str] = "inf_in"
    model: str
    messages: tuple[dict[str, Any], ...]

    def _check(self) -> None:
        _check_str(self, "model")
        if isinstance(self.messages, list):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not isinstance(self.messages, tuple) or not self.messages:
            _fail(self, "messages", "must be a non-empty list of messages")
        for index, message in enumerate(self.messages):
            _check_message(self, f"messages[{index}]", message)


@dataclass(frozen=True, slots=True)
class InfOut(_Body):
    """What the model answered: one assistant message (content and/or tool_calls)."""

    TYPE: ClassVar[str] = "inf_out"
    model: str
    message: dict[str, Any]
    usage: Usage | None = None  # None: the endpoint did not report usage

    @classmethod
    def _decode(cls, name: str, value: Any) -> Any:
        return Usage.from_body(value) if name == "usage" else value

    def _check(self) -> None:
        _check_str(self, "model")
        _check_message(self, "message", self.message)
        if self.usage is not None and not isinstance(self.usage, Usage):
            _fail(self, "usage", "must be a Usage")


@dataclass(frozen=True, slots=True)
class ToolCall(_Body):
    """A tool call action; ``call_id`` is the model's tool-call id, to answer it later."""

    TYPE: ClassVar[str] = "intent"
    PREFIX: ClassVar[str] = "action."
    tool: str
    arguments: dict[str, Any]
    call_id: str | None = None

    def _check(self) -> None:
        _check_str(self, "tool")
        _check_doc(self, "arguments")
        _check_str(self, "call_id", optional=True)

    def to_body(self) -> dict[str, Any]:
        return {"kind": "tool", **_Body.to_body(self)}


@dataclass(frozen=True, slots=True)
class CodeBlock(_Body):
    """A code action (code-acting agents): a fenced block and its language."""

    TYPE: ClassVar[str] = "intent"
    PREFIX: ClassVar[str] = "action."
    language: str
    code: str

    def _check(self) -> None:
        _check_str(self, "language")
        _check_str(self, "code")

    def to_body(self) -> dict[str, Any]:
        return {"kind": "code", **_Body.to_body(self)}


ACTION_KINDS: dict[str, type[ToolCall] | type[CodeBlock]] = {"tool": ToolCall, "code": CodeBlock}


@dataclass(frozen=True, slots=True)
class Intent(_Body):
    """A proposed action; nothing runs it before a commit. Its id is its log position."""

    TYPE: ClassVar[str] = "intent"
    action: ToolCall | CodeBlock
    reasoning: str | None = None

    @classmethod
    def _decode(cls, name: str, value: Any) -> Any:
        if name != "action":
            return value
        if not isinstance(value, dict):
            raise EntryError(cls.TYPE, "action", "must be a map")
        kind = value.get("kind")
        if kind not in ACTION_KINDS:
            raise EntryError(cls.TYPE, "action.kind", f"must be 'tool' or 'code', got {kind!r}")
        return ACTION_KINDS[kind].from_body({k: v for k, v in value.items() if k != "kind"})

    def _check(self) -> None:
        if not isinstance(self.action, (ToolCall, CodeBlock)):
            _fail(self, "action", "must be a ToolCall or a CodeBlock")
        _check_str(self, "reasoning", empty=True, optional=True)


# --- voters and deciders -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vote(_Body):
    """One voter's verdict on intent ``intent_id``: boolean, a probability, or both.

    ``probability`` is the voter's confidence that the intent should run, in [0, 1]. A vote with
    only a probability approves or rejects by the decider policy's threshold
    (agent/core/policy.py);
    at least one of the two must be given.
    """

    TYPE: ClassVar[str] = "vote"
    intent_id: int
    voter_id: str  # unique per bus
    kind: str  # rule, llm, human, simulation, ...
    reason: str
    approve: bool | None = None
    probability: float | None = None
    #: True: the voter does not approve automatically and asks a person (a ``human`` vote) to
    #: decide; the reason says what the person is asked (agent/core/policy.py, "Escalation").
    escalate: bool | None = None

    def _check(self) -> None:
        _check_int(self, "intent_id")
        _check_str(self, "voter_id")
        _check_str(self, "kind")
        _check_str(self, "reason")
        if self.approve is not None:
            _check_bool(self, "approve")
        if self.escalate is not None:
            _check_bool(self, "escalate")
            if self.escalate and self.approve is not False:
                _fail(self, "escalate", "needs approve = false (an escalation does not approve)")
        p = self.probability
        # NaN fails the range test too.
        if p is not None and (
            not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1
        ):
            _fail(self, "probability", f"must be a number in [0, 1], got {p!r}")
        if self.approve is None and p is None:
            _fail(self, "approve", "or 'probability' is required")


@dataclass(frozen=True, slots=True)
class _Decision(_Body):
    """The decider's final word on an intent; the first decision for an intent wins."""

    intent_id: int
    reason: str
    policy_version: int | None = None  # the decider policy version applied (0: default)

    def _check(self) -> None:
        _check_int(self, "intent_id")
        _check_str(self, "reason")
        _check_int(self, "policy_version", optional=True)

    @property
    def commit(self) -> bool:
        """Whether the intent may run."""
        return isinstance(self, Commit)


@dataclass(frozen=True, slots=True)
class Commit(_Decision):
    """Intent ``intent_id`` may run."""

    TYPE: ClassVar[str] = "commit"


@dataclass(frozen=True, slots=True)
class Abort(_Decision):
    """Intent ``intent_id`` must not run; the reason goes back to the driver's model."""

    TYPE: ClassVar[str] = "abort"


# --- executor ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecStart(_Body):
    """Appended before running: an exec_start without a result means the run was interrupted."""

    TYPE: ClassVar[str] = "exec_start"
    intent_id: int

    def _check(self) -> None:
        _check_int(self, "intent_id")


def cap_output(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, keeping its head and tail."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    keep = max(limit - len(marker), 0)
    return (text[: keep - keep // 2] + marker + text[len(text) - keep // 2 :])[:limit]


@dataclass(frozen=True, slots=True)
class Result(_Body):
    """The outcome of running intent ``intent_id``.

    ``ok`` is true exactly when ``error`` is None. ``in_doubt`` marks an action that was
    interrupted (exec_start without result): it may or may not have taken effect, so it is
    reported instead of re-run; it is never ok. ``duration_ms`` is None when unknown.
    """

    TYPE: ClassVar[str] = "result"
    intent_id: int
    ok: bool
    output: str = ""
    error: str | None = None
    duration_ms: int | None = None
    in_doubt: bool = False

    def _check(self) -> None:
        _check_int(self, "intent_id")
        _check_bool(self, "ok")
        _check_str(self, "output", empty=True, max_len=MAX_OUTPUT_CHARS)
        _check_str(self, "error", optional=True, max_len=MAX_OUTPUT_CHARS)
        _check_int(self, "duration_ms", optional=True)
        _check_bool(self, "in_doubt")
        if self.ok and self.error is not None:
            _fail(self, "error", "must be absent when ok is true")
        if not self.ok and self.error is None:
            _fail(self, "error", "is required when ok is false")
        if self.ok and self.in_doubt:
            _fail(self, "in_doubt", "an in-doubt result cannot be ok")


# --- mailbox -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail(_Body):
    """A message to the agent of bus ``to``, from another agent or a person."""

    TYPE: ClassVar[str] = "mail"
    KEYS: ClassVar[dict[str, str]] = {"sender": "from"}
    sender: str  # body key "from"
    to: str
    text: str
    subject: str | None = None

    def _check(self) -> None:
        _check_str(self, "sender")
        _check_str(self, "to")
        if not BUS_ID.fullmatch(self.to):
            _fail(self, "to", f"is not a bus id: {self.to!r}")
        _check_str(self, "text")
        _check_str(self, "subject", empty=True, optional=True)


# --- supervision -------------------------------------------------------------------------------

#: How bad a health finding is: worth a look, or worth acting on.
SEVERITIES = ("warn", "alert")
_FINDING_KEYS = frozenset({"signal", "severity", "detail", "positions"})


@dataclass(frozen=True, slots=True)
class Health(_Body):
    """A health check of the bus up to position ``through``: what a checker found.

    Each finding is ``{signal, severity, detail, positions}``: a signal name (``no_progress``,
    ``repeated_action``, ...), a severity from :data:`SEVERITIES`, a sentence, and the positions
    of the entries it is about. ``judgement`` is an optional model's reading of the digest.
    """

    TYPE: ClassVar[str] = "health"
    checker: str
    through: int
    findings: tuple[dict[str, Any], ...]
    judgement: str | None = None

    def _check(self) -> None:
        _check_str(self, "checker")
        _check_int(self, "through")
        _check_str(self, "judgement", empty=True, optional=True, max_len=MAX_OUTPUT_CHARS)
        if isinstance(self.findings, list):
            object.__setattr__(self, "findings", tuple(self.findings))
        if not isinstance(self.findings, tuple):
            _fail(self, "findings", "must be a list of findings")
        for index, finding in enumerate(self.findings):
            name = f"findings[{index}]"
            _check_doc(self, name, finding)
            if set(finding) != _FINDING_KEYS:
                _fail(self, name, f"must have exactly the keys {sorted(_FINDING_KEYS)}")
            if not isinstance(finding["signal"], str) or not finding["signal"]:
                _fail(self, name, "signal must be a non-empty string")
            if finding["severity"] not in SEVERITIES:
                _fail(self, name, f"severity must be one of {SEVERITIES}")
            if not isinstance(finding["detail"], str):
                _fail(self, name, "detail must be a string")
            positions = finding["positions"]
            if not isinstance(positions, list) or not all(
                isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in positions
            ):
                _fail(self, name, "positions must be a list of log positions")


# --- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Policy(_Body):
    """A versioned policy document; a new version applies only to later intents."""

    version: int
    policy: dict[str, Any]

    def _check(self) -> None:
        _check_int(self, "version", lo=1)
        _check_doc(self, "policy")


@dataclass(frozen=True, slots=True)
class DeciderPolicy(_Policy):
    TYPE: ClassVar[str] = "decider_policy"


@dataclass(frozen=True, slots=True)
class VoterPolicy(_Policy):
    TYPE: ClassVar[str] = "voter_policy"


# --- registry and roles ------------------------------------------------------------------------

AgentEntry = (
    AgentInput
    | AgentOutput
    | InfIn
    | InfOut
    | Intent
    | Vote
    | Commit
    | Abort
    | ExecStart
    | Result
    | Mail
    | Health
    | DeciderPolicy
    | VoterPolicy
)

ENTRY_TYPES: dict[str, type[AgentEntry]] = {
    cls.TYPE: cls
    for cls in (
        AgentInput,
        AgentOutput,
        InfIn,
        InfOut,
        Intent,
        Vote,
        Commit,
        Abort,
        ExecStart,
        Result,
        Mail,
        Health,
        DeciderPolicy,
        VoterPolicy,
    )
}

#: Entry types each role may append (the server enforces the same sets from
#: ``[auth.roles.<role>]``): a driver cannot write a commit, an executor cannot write a vote.
#: ``user`` is a person giving tasks and mail; ``hook`` an outside harness (Claude Code, Codex)
#: that proposes its own tool calls and records their results.
ROLE_TYPES: dict[str, frozenset[str]] = {
    "driver": frozenset({"agent_input", "inf_in", "inf_out", "intent", "agent_output"}),
    "voter": frozenset({"vote"}),
    "decider": frozenset({"commit", "abort"}),
    "executor": frozenset({"exec_start", "result"}),
    "mailer": frozenset({"mail"}),
    "policy": frozenset({"decider_policy", "voter_policy"}),
    "supervisor": frozenset({"health"}),
    "user": frozenset({"agent_input", "mail"}),
    "hook": frozenset({"intent", "result"}),
    "human": frozenset({"vote"}),
}

#: Who signs each voter kind, and who decides, in the shipped configurations: each voter kind
#: is its own principal (all with the ``voter`` role), so one voter's token cannot vote as
#: another. These are the ``signers`` and ``deciders`` of the default decider policies: a vote
#: or decision from anyone else is ignored and reported (agent/core/policy.py).
VOTE_SIGNERS: dict[str, str] = {
    "rule": "rule-voter",
    "llm": "llm-voter",
    "provenance": "provenance-voter",
    "ifc": "ifc-voter",
    "human": "human",
}
DECIDERS: tuple[str, ...] = ("decider",)

#: Fencing names each role may claim: one active driver and one active executor per bus.
ROLE_CLAIMS: dict[str, frozenset[str]] = {
    "driver": frozenset({"driver"}),
    "executor": frozenset({"executor"}),
}

#: What each fencing name guards (``[auth.fences]``): once a driver or executor has claimed a
#: bus, only appends carrying its current fence may add these types there, so neither a stale
#: instance nor another principal with the same rights can write them past it.
FENCED_TYPES: dict[str, frozenset[str]] = {
    "driver": frozenset({"inf_in", "inf_out", "intent", "agent_output"}),
    "executor": frozenset({"exec_start", "result"}),
}


def validate(entry_type: str, body: Any) -> str | None:
    """Why ``body`` is not a valid entry of ``entry_type`` (None if it is, or if the type is
    not an agent entry): the server's edge check (``[auth] validator``), so no writer can
    append an agent entry its readers would have to skip."""
    if entry_type not in ENTRY_TYPES:
        return None
    try:
        parse(entry_type, body)
    except EntryError as exc:
        return str(exc)
    return None


def parse(entry_type: str, body: Any) -> AgentEntry:
    """The typed entry for a body read from the log; EntryError if it is not valid."""
    cls = ENTRY_TYPES.get(entry_type)
    if cls is None:
        raise EntryError(str(entry_type), None, "unknown entry type")
    return cls.from_body(body)
