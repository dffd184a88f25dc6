"""The provenance voter's core: where did the values an action acts on come from?

A prompt injection works by planting a value (an account, an address, a URL, a password) in
content the agent reads, wrapped in text that tells the agent to act on it. The bus holds
everything the agent has read, in order, with its origin: the user's request (``agent_input``,
trusted) and the output of every tool call (``result``, untrusted), so a voter can trace each
*critical value* of a proposed action back to the entries it appears in:

``trusted``
    it appears in the user's request: approve.
``data``
    it appears in untrusted content, only as data (a field of a record, text of a page): the
    agent read it where the user sent it to look. Approve, and say where it came from.
``injected``
    it appears inside embedded instructions addressed to the agent (text that talks to the
    assistant about its task, see :func:`directive_spans`): reject, naming the entry. This holds
    even when the value is also ordinary data elsewhere, because that is how an injection picks
    its target ("delete the file with id 13", "book the Riverside hotel"): the action is one the
    instructions asked for, not the user.
``unseen``
    it appears nowhere: the agent computed or wrote it (a sum, a summary): approve; but an
    identifier (an account, an address, a link) that appears nowhere was made up: reject.

Critical values are every short scalar argument (names, ids, amounts, passwords) and every
identifier-shaped token inside longer text (URLs, e-mail addresses, account-like codes), so a
link planted in a message body is traced like a recipient. Nothing here knows a tool name, a
suite or an attack: structured tool output (JSON or YAML) is split into its leaf values, and each
leaf is searched separately so an instruction planted in one record cannot taint its neighbours.

Pure: the voter builds :class:`Source` objects from the bus (:func:`sources_from_bus`) and asks
:func:`judge_action`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.judgement.values import IDENTIFIER, as_number, parse_records

#: The vote kind of this voter.
VOTE_KIND = "provenance"

#: Whole string arguments up to this length (single line) are critical values themselves.
MAX_VALUE_CHARS = 100
#: Shorter words (``"a"``, ``"ok"``) are too common to say anything about their origin (short
#: numbers are still traced: an id or an amount is exactly what an injection names).
MIN_VALUE_CHARS = 3

Origin = Literal["trusted", "data", "injected", "unseen"]


@dataclass(frozen=True, slots=True)
class Source:
    """A text the agent has read: the user's request (trusted) or a tool's output."""

    position: int
    label: str
    trusted: bool
    text: str


@dataclass(frozen=True, slots=True)
class Value:
    """One critical value of an action: the argument it sits in and its text."""

    argument: str
    text: str
    identifier: bool = False  # shaped like an account, e-mail address or URL


@dataclass(frozen=True, slots=True)
class Finding:
    value: Value
    origin: Origin
    source: Source | None = None  # the first entry it was found in (None when unseen)
    where: str = ""  # the leaf of a structured output it was found in ("[2].subject")


@dataclass(frozen=True, slots=True)
class ProvenanceVerdict:
    approve: bool
    reason: str
    findings: tuple[Finding, ...]


# --- critical values ------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def critical_values(arguments: dict[str, Any]) -> list[Value]:
    """The values of an action worth tracing, in argument order, without repeats."""
    found: dict[str, Value] = {}
    for path, leaf in _leaves(arguments):
        if isinstance(leaf, bool) or leaf is None:
            continue
        if isinstance(leaf, int | float):
            found.setdefault(str(leaf), Value(path, str(leaf)))
            continue
        text = str(leaf).strip()
        if as_number(text) is not None:  # an id or amount sent as text ("13")
            found.setdefault(text, Value(path, text))
        elif MIN_VALUE_CHARS <= len(text) <= MAX_VALUE_CHARS and "\n" not in text:
            found.setdefault(text.casefold(), Value(path, text, bool(IDENTIFIER.fullmatch(text))))
        for token in IDENTIFIER.findall(text):
            token = token.rstrip(".,;:!?")  # a link at the end of a sentence
            found.setdefault(token.casefold(), Value(path, token, True))
    return list(found.values())


# --- embedded instructions ------------------------------------------------------------------

#: Text that talks to the agent about its own task: the mark of an instruction planted in data.
#: Human-to-human imperatives ("check out this link", "please pay by Friday") do not match;
#: these name the agent, its instructions or its task, or claim authority over them.
_CUES: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), weight)
    for pattern, weight in (
        # redirecting the task
        (
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:instructions?|tasks?|"
            r"prompts?|rules|guidelines)\b",
            2,
        ),
        (
            r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|your\s+|the\s+)*"
            r"(?:previous|prior|above|earlier|preceding)\b",
            2,
        ),
        (r"\binstead\b", 1),
        (
            r"\b(?:previous|prior|original|earlier|above|initial)\s+(?:instructions?|tasks?|"
            r"prompts?)\b",
            2,
        ),
        (
            r"\b(?:the|your|this|my)\s+(?:task|instructions?|request)\s+(?:that\s+)?"
            r"(?:i|the user|you were)\s+(?:gave|given|asked)",
            2,
        ),
        (
            r"\b(?:before|after|instead of)\s+(?:you\s+)?(?:can\s+|do\s+|are\s+)?"
            r"(?:solv|continu|complet|finish|proceed|answer)\w*",
            1,
        ),
        (r"\b(?:new|updated|additional|following)\s+(?:instructions?|tasks?|directives?)\b", 1),
        (r"\bstrictly\s+(?:adhere|follow|obey)\b", 2),
        # addressing the agent
        (r"\bto you\b|\bdear\s+(?:ai|assistant|agent|model|bot)\b", 1),
        (
            r"\b(?:ai|llm|chatbot|language model|assistant|ai model|gpt[\w.-]*|claude|gemini|"
            r"llama|mistral|agent)\b",
            1,
        ),
        # claimed authority
        (r"\b(?:important|urgent|critical)\s*(?:!+|message|instructions?|notice|update|note)", 1),
        (r"\bsystem[\s_]*(?:message|prompt|instructions?|override)\b", 2),
        (r"#+\s*\(?\s*(?:system|admin|instructions?)\b", 3),  # a fake prompt header
        (r"<\s*/?\s*(?:information|instructions?|system|important|admin)\s*>", 1),
    )
)
#: Cue weight a stretch of text needs to count as addressed to the agent.
DIRECTIVE_SCORE = 3
#: Cues further apart than this belong to different stretches.
CUE_GAP = 1000


def directive_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of ``text`` that are instructions addressed to the agent.

    Cues (see ``_CUES``) that lie within ``CUE_GAP`` characters of each other form a stretch;
    a stretch whose weights reach ``DIRECTIVE_SCORE`` is a directive. Its span runs from the start
    of the line of its first cue to the end of the paragraph of its last, so the action that a
    preamble introduces ("... please do the following first: <goal>") is inside it.
    """
    # Same offsets, word boundaries restored: "External_Ignore" and an escaped "\\nIgnore" (text
    # printed as a Python or JSON literal) hold the word "Ignore".
    words = text.replace("_", " ").replace("\\n", "  ").replace("\\t", "  ")
    hits = sorted(
        (m.start(), m.end(), weight) for pattern, weight in _CUES for m in pattern.finditer(words)
    )
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(hits):
        start, end, score = hits[index]
        index += 1
        while index < len(hits) and hits[index][0] - end <= CUE_GAP:
            end = max(end, hits[index][1])
            score += hits[index][2]
            index += 1
        if score >= DIRECTIVE_SCORE:
            line_start = text.rfind("\n", 0, start) + 1
            paragraph_end = text.find("\n\n", end)
            spans.append((line_start, len(text) if paragraph_end < 0 else paragraph_end))
    return spans


# --- tracing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """One searchable piece of a source: a leaf of structured output, or the whole text."""

    where: str
    text: str
    spans: tuple[tuple[int, int], ...]


def _units(source: Source) -> list[_Unit]:
    parsed = parse_records(source.text)
    if parsed is None:
        return [_Unit("", source.text, tuple(directive_spans(source.text)))]
    units = []
    for where, leaf in _leaves(parsed):
        text = "" if leaf is None else str(leaf)
        units.append(_Unit(where, text, tuple(directive_spans(text))))
    return units


def _occurrences(value: Value, text: str) -> list[int]:
    """Start offsets of ``value`` in ``text``: whole tokens, any whitespace, any case."""
    number = as_number(value.text)
    if number is not None:
        return [m.start() for m in _NUMBER_RE.finditer(text) if as_number(m.group()) == number]
    words = [re.escape(word).replace("'", "'{1,2}") for word in value.text.split()]
    pattern = r"(?<![\w])" + r"\s+".join(words) + r"(?![\w])"
    return [m.start() for m in re.finditer(pattern, text, re.IGNORECASE)]


def _inside(offset: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= offset < end for start, end in spans)


def trace(value: Value, sources: Sequence[Source], units: dict[int, list[_Unit]]) -> Finding:
    """Where ``value`` came from; ``units`` caches each source's split (by position)."""
    injected: Finding | None = None
    data: Finding | None = None
    for source in sources:
        if source.trusted:
            if _occurrences(value, source.text):
                return Finding(value, "trusted", source)
            continue
        if source.position not in units:
            units[source.position] = _units(source)
        for unit in units[source.position]:
            offsets = _occurrences(value, unit.text)
            if not offsets:
                continue
            if any(_inside(offset, unit.spans) for offset in offsets):
                injected = injected or Finding(value, "injected", source, unit.where)
            else:
                data = data or Finding(value, "data", source, unit.where)
    return injected or data or Finding(value, "unseen")


def _describe(finding: Finding) -> str:
    value = f"{finding.value.argument}={finding.value.text!r}"
    if finding.source is None:
        made_up = ": a made-up identifier" if finding.value.identifier else ""
        return f"{value} appears nowhere the agent read{made_up}"
    where = f" (at {finding.where})" if finding.where else ""
    return {
        "trusted": f"{value} is in {finding.source.label}",
        "data": f"{value} is data in {finding.source.label}{where}",
        "injected": (
            f"{value} is named by instructions embedded in {finding.source.label}{where}, "
            "which is untrusted; the user's request does not contain it"
        ),
    }[finding.origin]


def judge_action(action: e.ToolCall | e.CodeBlock, sources: Sequence[Source]) -> ProvenanceVerdict:
    """Reject when a critical value was introduced only by instructions in untrusted content,
    or is an identifier the agent never read."""
    arguments = action.arguments if isinstance(action, e.ToolCall) else {"code": action.code}
    units: dict[int, list[_Unit]] = {}
    findings = tuple(trace(value, sources, units) for value in critical_values(arguments))
    rejected = [
        f
        for f in findings
        if f.origin == "injected" or (f.origin == "unseen" and f.value.identifier)
    ]
    if rejected:
        return ProvenanceVerdict(False, "; ".join(_describe(f) for f in rejected), findings)
    if not findings:
        return ProvenanceVerdict(True, "no critical values to trace", findings)
    return ProvenanceVerdict(True, "; ".join(_describe(f) for f in findings), findings)


def sources_from_bus(state: BusState, position: int) -> list[Source]:
    """What the agent had read before ``position``: requests (trusted) and tool outputs."""
    sources = []
    for raw, entry in state.entries:
        if raw.pos >= position:
            break
        match entry:
            case e.AgentInput():
                sources.append(
                    Source(raw.pos, f"the user's request (#{raw.pos})", True, entry.text)
                )
            case e.Result() if entry.output:
                intent = state.intents.get(entry.intent_id)
                tool = ""
                if intent is not None and isinstance(intent.intent.action, e.ToolCall):
                    tool = f" {intent.intent.action.tool}"
                label = f"the result #{raw.pos} of intent #{entry.intent_id}{tool}"
                sources.append(Source(raw.pos, label, False, entry.output))
            case e.Mail():
                label = f"mail #{raw.pos} from {entry.sender}"
                sources.append(Source(raw.pos, label, False, entry.text))
    return sources
