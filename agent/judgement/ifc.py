"""Information-flow labels from the log: trust a value by where it came from, not by its wording.

The bus records every text the agent read, in order, with its origin: the user's request
(``agent_input``), each tool's output (``result``, with the intent that names the tool) and mail.
A deployment's **labels** (a TOML file, :func:`load_labels`) say, per tool and per field of its
output, who can write that content:

``trusted``
    only the user, or systems acting for the user (their own balance, their own files, listings
    from a booking service);
``untrusted``
    others too (e-mail bodies, messages, web pages, reviews, a transaction's subject);
``{author = "FIELD"}``
    trusted exactly when the record's ``FIELD`` names the user (mail the user sent);
    ``{author = "FIELD", editors = "SHARING", edit = "ACCESS"}`` also requires that nobody else
    holds ``ACCESS`` in the record's ``SHARING`` mapping (a file the user shared for editing).
``{named_by = ["FIELD", ...]}``
    trusted when the user's request names the record: one of its ``FIELD`` values is quoted in
    the request (or is an identifier written there), and no other record of the same output
    has that value (the participants
    of "the 'Introductory meeting' event"; a look-alike record makes the choice ambiguous, so
    neither is trusted). It combines with ``author``: either makes the field trusted.

Anything not labelled is untrusted. Each **sink** (a side-effecting tool) names its *critical*
arguments (who or what is affected: a recipient, an amount, a file id) and its *free-text* arguments
(a body, whose links, addresses and account numbers are critical). A critical value is trusted when
it appears in the user's request (or an action a person approved), or when the first output it
appears in holds it in a trusted field, or when it is one of the user's own ids; it is untrusted
when it first appears only in untrusted fields, or appears nowhere while untrusted content has been
read (the agent may have derived it from that content). A value shorter than four characters (an id
like ``7``) counts as appearing in an output only where it is a whole field. A call is **escalated**
to a person when a critical value is untrusted, or when it was proposed right after untrusted
content and the user's request names neither the action (the verb its tool's name starts with:
``delete_file`` and "delete the largest file", or the sink's ``verbs``) nor any of its critical
values. A sink's ``spoken`` names say how a person names an argument's values ("read" for the
permission ``r``): a value the request names that way is the user's. Tools listed as ``read_only``
are approved; a tool the labels do not know is a sink whose every argument is critical.

Nothing here knows a tool, a suite or an attack: all of that is in the labels. Whether the text
around a value reads like instructions is reported as extra evidence, never used to decide.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.text import clip
from logact.agent.judgement.provenance import directive_spans
from logact.agent.judgement.values import IDENTIFIER, as_number, parse_records

#: The vote kind of this voter.
VOTE_KIND = "ifc"
#: How much of the user's request, and of each value, an escalation quotes: the vote stays
#: small whatever the action holds.
REQUEST_QUOTE_CHARS = 300
VALUE_QUOTE_CHARS = 120
#: Most values a reason names; the rest are counted.
MAX_REASON_VALUES = 8
#: Identifiers shorter than this (once spaces and dashes are dropped) are only matched whole.
COMPACT_MIN_CHARS = 8
#: Values shorter than this match an output only as a whole field, never inside its text.
MIN_TEXT_MATCH_CHARS = 4
#: Longer values (a whole script as a shell command) are not searched for: each search builds a
#: pattern from the value, and a copy that long is not what labels can vouch for anyway.
MAX_TRACED_CHARS = 2000

Segment = str | int  # a key of a mapping, or an index of a list
Path_ = tuple[Segment, ...]


class LabelsError(ValueError):
    """The labels file is invalid; the message names the file and the entry."""


# --- the labels -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A label for the output fields ``pattern`` matches (a prefix of their path)."""

    pattern: tuple[str, ...]  # keys, "*" (any key) and "[*]" (any index); () is the whole output
    trusted: bool = False
    author: str | None = None  # trusted iff the enclosing record's field ``author`` is the user
    #: ... and no one else may edit it: the record's ``editors`` field maps people to their
    #: access, and ``edit`` is the access that lets them write (a file shared "rw").
    editors: str | None = None
    edit: str | None = None
    named_by: tuple[str, ...] = ()  # ... or iff the request names the record by these fields

    def matches(self, path: Path_) -> bool:
        if len(self.pattern) > len(path):
            return False
        for want, got in zip(self.pattern, path, strict=False):
            if want == "[*]":
                if not isinstance(got, int):
                    return False
            elif isinstance(got, int) or (want != "*" and want != got):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Sink:
    critical: tuple[str, ...]  # argument names; "*" for all
    free_text: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()  # how a request asks for the action, beside the tool's verb
    #: argument -> value -> the words a request names that value with ("r": "read")
    spoken: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)


#: A sink for tools the labels do not know: every argument is critical.
UNKNOWN_SINK = Sink(("*",))


@dataclass(frozen=True, slots=True)
class Labels:
    """One deployment's labels (see the module doc)."""

    user_ids: frozenset[str] = frozenset()  # casefolded names the tools' data uses for the user
    read_only: frozenset[str] = frozenset()
    outputs: Mapping[str, tuple[FieldRule, ...]] = field(default_factory=dict)
    sinks: Mapping[str, Sink] = field(default_factory=dict)

    def sink(self, tool: str) -> Sink | None:
        """The tool's sink, or None for a read-only tool."""
        if tool in self.read_only:
            return None
        return self.sinks.get(tool, UNKNOWN_SINK)

    def rule(self, tool: str, path: Path_) -> FieldRule | None:
        """The most specific rule for ``path`` of the tool's output (the first of the longest)."""
        best: FieldRule | None = None
        for candidate in self.outputs.get(tool, ()):
            if candidate.matches(path) and (
                best is None or len(candidate.pattern) > len(best.pattern)
            ):
                best = candidate
        return best


_SEGMENT = re.compile(r"\[\*\]|[^.\[\]]+")


def _pattern(text: str, where: str) -> tuple[str, ...]:
    """``"$"`` (the whole output), or segments: ``[*].subject``, ``hotels.*``."""
    if text == "$":
        return ()
    parts = _SEGMENT.findall(text)
    rebuilt = "".join(p if p == "[*]" or i == 0 else "." + p for i, p in enumerate(parts))
    if not parts or rebuilt != text:
        raise LabelsError(f"{where}: bad field pattern {text!r} (e.g. '[*].subject', 'hotels.*')")
    return tuple(parts)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise LabelsError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def _rule(pattern: str, value: Any, where: str) -> FieldRule:
    path = _pattern(pattern, where)
    if value in ("trusted", "untrusted"):
        return FieldRule(path, trusted=value == "trusted")
    if isinstance(value, dict):
        named = value.get("named_by")
        author = {k: v for k, v in value.items() if k != "named_by"}
        if (
            set(author) in (set(), {"author"}, {"author", "editors", "edit"})
            and all(isinstance(v, str) and v for v in author.values())
            and (author or named is not None)
        ):
            return FieldRule(
                path,
                author=author.get("author"),
                editors=author.get("editors"),
                edit=author.get("edit"),
                named_by=_names(named, f"{where}: {pattern!r} named_by") if named else (),
            )
    raise LabelsError(
        f'{where}: {pattern!r} must be "trusted", "untrusted", {{author = F}}, '
        "{author = F, editors = G, edit = ACCESS} and/or {named_by = [F, ...]}"
    )


def _spoken(value: Any, where: str) -> dict[str, dict[str, tuple[str, ...]]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise LabelsError(f"{where} must map each argument to {{VALUE = [words]}}")
    return {
        argument: {str(v): _names(words, f"{where}.{argument}.{v}") for v, words in names.items()}
        for argument, names in value.items()
    }


def parse_labels(doc: Mapping[str, Any], where: str = "labels") -> Labels:
    unknown = sorted(set(doc) - {"user", "read_only", "outputs", "sinks"})
    if unknown:
        raise LabelsError(f"{where}: unknown keys {unknown}")
    user = doc.get("user", {})
    if not isinstance(user, dict) or set(user) - {"ids"}:
        raise LabelsError(f"{where}: [user] takes ids = [...]")
    user_ids = frozenset(i.casefold() for i in _names(user.get("ids", []), f"{where}: user.ids"))
    read_only = frozenset(_names(doc.get("read_only", []), f"{where}: read_only"))
    outputs: dict[str, tuple[FieldRule, ...]] = {}
    raw_outputs = doc.get("outputs", {})
    if not isinstance(raw_outputs, dict):
        raise LabelsError(f"{where}: [outputs] must be a table")
    for tool, rules in raw_outputs.items():
        if not isinstance(rules, dict):
            raise LabelsError(f"{where}: outputs.{tool} must be a table of field patterns")
        outputs[tool] = tuple(_rule(p, v, f"{where}: outputs.{tool}") for p, v in rules.items())
    sinks: dict[str, Sink] = {}
    raw_sinks = doc.get("sinks", {})
    if not isinstance(raw_sinks, dict):
        raise LabelsError(f"{where}: [sinks] must be a table")
    for tool, spec in raw_sinks.items():
        if not isinstance(spec, dict) or set(spec) - {"critical", "free_text", "verbs", "spoken"}:
            raise LabelsError(f"{where}: sinks.{tool} takes critical, free_text, verbs, spoken")
        if tool in read_only:
            raise LabelsError(f"{where}: {tool} is both read_only and a sink")
        sinks[tool] = Sink(
            _names(spec.get("critical", []), f"{where}: sinks.{tool}.critical"),
            _names(spec.get("free_text", []), f"{where}: sinks.{tool}.free_text"),
            _names(spec.get("verbs", []), f"{where}: sinks.{tool}.verbs"),
            _spoken(spec.get("spoken", {}), f"{where}: sinks.{tool}.spoken"),
        )
    return Labels(user_ids, read_only, outputs, sinks)


def load_labels(path: str | Path) -> Labels:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LabelsError(f"{path}: not valid TOML: {exc}") from None
    return parse_labels(doc, str(path))


# --- what the agent read ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leaf:
    """One field of an output (or the whole text), with its label."""

    path: Path_
    text: str
    trusted: bool


@dataclass(frozen=True, slots=True)
class Source:
    """An entry the agent read: the user's request, a tool's output or mail."""

    position: int
    label: str  # how a person would name it: "the result #12 of read_file"
    from_user: bool  # the user's request, or an action a person approved
    leaves: tuple[Leaf, ...]
    request: bool = False  # the user's request itself

    @property
    def untrusted(self) -> bool:
        return any(not leaf.trusted and leaf.text.strip() for leaf in self.leaves)


Records = tuple[Mapping[str, Any], ...]


def _walk(value: Any, path: Path_, records: Records) -> Iterator[tuple[Path_, Any, Records]]:
    """(path, leaf, the enclosing mappings, innermost first); a mapping's keys are leaves too."""
    if isinstance(value, Mapping):
        inner = (value, *records)
        for key, item in value.items():
            yield (*path, str(key)), str(key), inner
            yield from _walk(item, (*path, str(key)), inner)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index), records)
    else:
        yield path, value, records


def output_leaves(labels: Labels, tool: str, output: str, request: str = "") -> tuple[Leaf, ...]:
    """The labelled fields of one tool output (unparseable or unlabelled: untrusted);
    ``request`` is the user's latest request, which may name records (``named_by``)."""
    parsed = parse_records(output) if labels.outputs.get(tool) else None
    walked = [((), output, ())] if parsed is None else list(_walk(parsed, (), ()))
    distinct = {id(record): record for _, _, records in walked for record in records}
    naming = Counter(
        (key, str(value).casefold())
        for record in distinct.values()
        for key, value in record.items()
        if isinstance(value, str | int)
    )
    leaves = []
    for path, value, records in walked:
        text = "" if value is None else str(value)
        rule = labels.rule(tool, path)
        trusted = False
        if rule is not None and rule.author is None and not rule.named_by:
            trusted = rule.trusted
        elif rule is not None:
            # The innermost record naming an author: a file's owner covers its sharing list.
            record = next((r for r in records if rule.author in r), None) if rule.author else None
            trusted = record is not None and _written_by_user(labels, rule, record)
            trusted = trusted or _named(rule, records, naming, request)
        leaves.append(Leaf(path, text, trusted))
    return tuple(leaves)


def _named(
    rule: FieldRule, records: Records, naming: Counter[tuple[str, str]], request: str
) -> bool:
    """Whether the request names the innermost record holding a ``named_by`` field, by a value
    no other record of the output shares."""
    record = next((r for r in records if any(key in r for key in rule.named_by)), None)
    if record is None or not request:
        return False
    for key in rule.named_by:
        value = record.get(key)
        if not isinstance(value, str | int) or len(str(value)) < MIN_TEXT_MATCH_CHARS:
            continue
        if naming[(key, str(value).casefold())] == 1 and _request_names(str(value), request):
            return True
    return False


_QUOTES = (("'", "'"), ('"', '"'), ("\u2018", "\u2019"), ("\u201c", "\u201d"))


def _request_names(value: str, request: str) -> bool:
    """Whether ``request`` names ``value`` on purpose: quoted whole ("the 'Budget review'
    event"), or an identifier (an account, an address). A plain word ("meeting") is not: a
    record with a title like that would be named by any request using the word."""
    if IDENTIFIER.fullmatch(value):
        return occurs(value, request)
    words = " ".join(value.split()).casefold()
    said = " ".join(request.split()).casefold()
    return any(f"{left}{words}{right}" in said for left, right in _QUOTES)


def _written_by_user(labels: Labels, rule: FieldRule, record: Mapping[str, Any]) -> bool:
    def user(name: Any) -> bool:
        return isinstance(name, str) and name.casefold() in labels.user_ids

    assert rule.author is not None
    if not user(record[rule.author]):
        return False
    if rule.editors is None:
        return True
    editors = record.get(rule.editors) or {}
    if not isinstance(editors, Mapping):
        return False  # sharing it cannot read: assume others can write
    return all(user(name) for name, access in editors.items() if str(access) == rule.edit)


def sources_from_bus(state: BusState, position: int, labels: Labels) -> list[Source]:
    """What the agent had read before ``position``, labelled."""
    sources: list[Source] = []
    request = ""
    for raw, entry in state.entries:
        if raw.pos >= position:
            break
        match entry:
            case e.AgentInput():
                request = entry.text
                leaf = Leaf((), entry.text, True)
                label = f"the user's request #{raw.pos}"
                sources.append(Source(raw.pos, label, True, (leaf,), request=True))
            case e.Result() if entry.output:
                record = state.intents.get(entry.intent_id)
                tool = ""
                if record is not None and isinstance(record.intent.action, e.ToolCall):
                    tool = record.intent.action.tool
                label = f"the result #{raw.pos} of {tool or 'intent #' + str(entry.intent_id)}"
                leaves = output_leaves(labels, tool, entry.output, request)
                sources.append(Source(raw.pos, label, False, leaves))
            case e.Mail():
                leaf = Leaf((), entry.text, False)
                sources.append(
                    Source(raw.pos, f"mail #{raw.pos} from {entry.sender}", False, (leaf,))
                )
            case e.Vote(kind="human", approve=True):
                confirmed = state.intents.get(entry.intent_id)
                if confirmed is not None and isinstance(confirmed.intent.action, e.ToolCall):
                    text = json.dumps(confirmed.intent.action.arguments, ensure_ascii=False)
                    label = f"the action #{entry.intent_id} a person approved"
                    sources.append(Source(raw.pos, label, True, (Leaf((), text, True),)))
    return sources


# --- critical values and matching --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    argument: str
    text: str


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif not isinstance(value, bool) and value is not None:
        text = str(value).strip()
        if text:
            yield text


def critical_values(sink: Sink, arguments: Mapping[str, Any]) -> list[Value]:
    """The values of a call the sink says must be trusted, in argument order, without repeats."""
    found: dict[str, Value] = {}
    for name, value in arguments.items():
        if "*" in sink.critical or name in sink.critical:
            for text in _scalars(value):
                found.setdefault(text.casefold(), Value(name, text))
        if name in sink.free_text:
            for text in _scalars(value):
                for token in IDENTIFIER.findall(text):
                    token = token.rstrip(".,;:!?")
                    found.setdefault(token.casefold(), Value(name, token))
    return list(found.values())


# Numbers not inside dates, times or codes ("2024-05-20" holds no 5).
_NUMBER = re.compile(r"(?<![\w.\-/:])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w\-/:]|\.\d)")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = r"(" + "|".join(m[:3] + r"[a-z]*\.?" for m in _MONTHS) + r")"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_TO = r"\s*(?:-|\u2013|to|until|till|through|and)\s*(?:the\s+)?"
_TEXT_DATES = (
    re.compile(rf"\b{_MONTH}\s+{_DAY}(?:{_TO}{_DAY})?\b", re.IGNORECASE),  # May 1st (to 5th)
    re.compile(rf"\b{_DAY}(?:{_TO}{_DAY})?\s+(?:of\s+)?{_MONTH}", re.IGNORECASE),  # 1 to 5 May
)


def _month(name: str) -> int:
    return next(i for i, m in enumerate(_MONTHS, 1) if name.lower().startswith(m[:3]))


def _dates(text: str) -> set[tuple[int, int]]:
    """(month, day) of every date written in ``text``, ISO or in words."""
    found = {(int(m[2]), int(m[3])) for m in _ISO_DATE.finditer(text)}
    month_first, day_first = _TEXT_DATES
    for m in month_first.finditer(text):
        found |= {(_month(m[1]), int(day)) for day in (m[2], m[3]) if day}
    for m in day_first.finditer(text):
        found |= {(_month(m[3]), int(day)) for day in (m[1], m[2]) if day}
    return found


def _compact(text: str) -> str:
    return re.sub(r"[\s\-]", "", text).casefold()


def occurs(value: str, text: str) -> bool:
    """Whether ``value`` is written in ``text``: numbers by value, dates in any common form,
    identifiers with or without spaces, words whole and in any case. A value longer than
    ``MAX_TRACED_CHARS`` is never found (so it counts as derived: fail closed)."""
    if len(value) > MAX_TRACED_CHARS:
        return False
    number = as_number(value)
    if number is not None:
        return any(as_number(m.group()) == number for m in _NUMBER.finditer(text))
    date = _ISO_DATE.match(value)
    if date is not None:
        return (int(date[2]), int(date[3])) in _dates(text)
    words = [re.escape(word) for word in value.split()]
    if words and re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", text, re.IGNORECASE):
        return True
    compact = _compact(value)
    return (
        len(compact) >= COMPACT_MIN_CHARS
        and IDENTIFIER.fullmatch(value) is not None
        and (compact in _compact(text))
    )


# --- judging a call ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flow:
    """Where one critical value came from."""

    value: Value
    trusted: bool
    source: Source | None = None  # the entry deciding its label
    path: Path_ = ()
    from_user: bool = False
    seen: bool = True  # False: it appears nowhere; ``source`` is then untrusted content read
    user_id: bool = False  # one of the user's own ids (the labels' [user] ids)


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    approve: bool
    escalate: bool
    reason: str
    flows: tuple[Flow, ...] = ()


def _field(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _in_field(value: str, leaf: Leaf) -> bool:
    """Whether an output field holds ``value``; a short value (an id like ``7``) only when it is
    the whole field, as it would turn up inside any text."""
    if len(value) >= MIN_TEXT_MATCH_CHARS:
        return occurs(value, leaf.text)
    number = as_number(value)
    field_text = leaf.text.strip()
    if number is not None:
        return as_number(field_text) == number
    return field_text.casefold() == value.casefold()


def trace(
    value: Value,
    sources: Sequence[Source],
    user_ids: frozenset[str] = frozenset(),
    spoken: Sequence[str] = (),
) -> Flow:
    """The label of one critical value (see the module doc); ``spoken`` are the words a request
    names it with."""
    if value.text.casefold() in user_ids:
        return Flow(value, True, user_id=True)
    for source in sources:
        if source.from_user and any(
            occurs(name, leaf.text) for name in (value.text, *spoken) for leaf in source.leaves
        ):
            return Flow(value, True, source, from_user=True)
    for source in sources:
        if source.from_user:
            continue
        hits = [leaf for leaf in source.leaves if _in_field(value.text, leaf)]
        if hits:
            trusted = next((leaf for leaf in hits if leaf.trusted), None)
            leaf = trusted or hits[0]
            return Flow(value, trusted is not None, source, leaf.path)
    read_untrusted = next((s for s in sources if not s.from_user and s.untrusted), None)
    return Flow(value, read_untrusted is None, read_untrusted, seen=False)


def _describe(flow: Flow) -> str:
    value = f"{flow.value.argument}={clip(flow.value.text, VALUE_QUOTE_CHARS)!r}"
    if flow.user_id:
        return f"{value} is the user's own id"
    if flow.from_user and flow.source is not None:
        return f"{value} is in {flow.source.label}"
    if flow.source is None:
        return f"{value} appears nowhere the agent read, and it read nothing untrusted"
    if not flow.seen:
        return (
            f"{value} appears nowhere the agent read, but it read untrusted content "
            f"({flow.source.label}) it may come from"
        )
    at = f" at {_field(flow.path)}" if flow.path else ""
    if flow.trusted:
        return f"{value} comes from {flow.source.label}{at} (trusted)"
    leaf = next((x for x in flow.source.leaves if x.path == flow.path), None)
    addressed = leaf is not None and any(
        start <= leaf.text.casefold().find(flow.value.text.casefold()) < end
        for start, end in directive_spans(leaf.text)
    )
    evidence = "; the text around it is addressed to the agent" if addressed else ""
    return f"{value} first appears in {flow.source.label}{at}, which others can write{evidence}"


def _request(sources: Sequence[Source]) -> str:
    requests = [s.leaves[0].text for s in sources if s.request]
    return clip(requests[-1], REQUEST_QUOTE_CHARS) if requests else "(no request)"


#: Verbs longer than this are matched on their stem ("delet" for "delete"); shorter ones whole.
VERB_STEM_CHARS = 5


def _verb_pattern(verb: str) -> str:
    verb = verb.casefold()
    if len(verb) > VERB_STEM_CHARS:  # "delete" -> "delet": deleting, deleted
        return rf"\b{re.escape(verb[: len(verb) - 1])}"
    return rf"\b{re.escape(verb)}(?:s|ed|ing)?\b"  # "add" must not match "address"


def _asked_for(tool: str, sink: Sink, sources: Sequence[Source]) -> bool:
    """Whether the user's request names the action: the verb a tool's name starts with
    (``delete_file``: "delete") or one of the sink's ``verbs``, compared on their first few
    letters."""
    verbs = (tool.split("_", 1)[0], *sink.verbs)
    pattern = re.compile("|".join(_verb_pattern(v) for v in verbs), re.IGNORECASE)
    return any(s.request and pattern.search(s.leaves[0].text) for s in sources)


def judge_call(
    labels: Labels, action: e.ToolCall | e.CodeBlock, sources: Sequence[Source]
) -> FlowVerdict:
    """Approve, or escalate to a person, one proposed action."""
    if isinstance(action, e.CodeBlock):
        tool, arguments = "code", {"code": action.code}
    else:
        tool, arguments = action.tool, action.arguments
    sink = labels.sink(tool) if isinstance(action, e.ToolCall) else UNKNOWN_SINK
    if sink is None:
        return FlowVerdict(True, False, f"{tool} only reads")
    flows = tuple(
        trace(
            value, sources, labels.user_ids, sink.spoken.get(value.argument, {}).get(value.text, ())
        )
        for value in critical_values(sink, arguments)
    )
    untrusted = [f for f in flows if not f.trusted]
    asked = f"; the user asked: {_request(sources)!r}"
    if untrusted:
        why = "; ".join(_describe(f) for f in untrusted[:MAX_REASON_VALUES])
        if len(untrusted) > MAX_REASON_VALUES:
            why += f"; and {len(untrusted) - MAX_REASON_VALUES} more values"
        return FlowVerdict(False, True, f"escalated: {why}{asked}", flows)
    last = sources[-1] if sources else None
    if (
        last is not None
        and not last.from_user
        and last.untrusted
        and not any(f.from_user for f in flows)
        and not _asked_for(tool, sink, sources)
    ):
        why = (
            f"{tool} was proposed right after {last.label}, which others can write, and the "
            "user's request names neither this action nor any of its critical values"
        )
        return FlowVerdict(False, True, f"escalated: {why}{asked}", flows)
    if not flows:
        return FlowVerdict(True, False, f"{tool}: no critical values")
    shown = "; ".join(_describe(f) for f in flows[:MAX_REASON_VALUES])
    more = f"; and {len(flows) - MAX_REASON_VALUES} more" if len(flows) > MAX_REASON_VALUES else ""
    return FlowVerdict(True, False, shown + more, flows)
