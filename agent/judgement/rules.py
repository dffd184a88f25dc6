"""The rule-based voter's verdict core: ordered allow/deny rules over an intent's action.

Pure: nothing here does I/O except :func:`load_rules`, which reads one TOML file. The voter
process feeds each intent's action (and the bus it came from) to :meth:`RuleSet.evaluate` and
appends a vote from the :class:`RuleVerdict`. A run-time update is a ``voter_policy`` entry whose
``policy`` document is (or holds) the same document :meth:`RuleSet.from_doc` reads.

Document shape (TOML shown; a voter_policy entry carries the same keys as a map)::

    default = "deny"                # "allow" | "deny"; optional, deny when absent

    [[rules]]
    effect = "deny"                 # "allow" | "deny"
    reason = "recursive delete"     # required: becomes the vote's reason
    tool = { glob = "shell*" }      # optional matcher on the tool name
    text = { regex = '\\brm\\s+-\\w*r' }  # optional matcher on the command text
    args = { path = { glob = "/etc/*" } }  # optional: argument name -> matcher
    buses = ["prod/*"]              # optional: glob patterns on the bus id

Matchers. A matcher is a one-key table ``{exact|substring|regex|glob = value}``, optionally with
``negate = true``; a bare string is short for ``{exact = string}``; a list of matchers matches if
any of them does. ``substring`` is ``value in text``; ``regex`` is :func:`re.search` (anchor with
``^``/``$`` for whole-text matches); ``glob`` is :func:`fnmatch.fnmatchcase` on the whole text
(``*`` also matches ``/``). All matching is case-sensitive. ``exact`` with a non-string value
(number, bool) compares values; every other comparison is on the text of the value: strings as
they are, numbers and booleans as in JSON, lists as their items' texts joined by single spaces
(an argv list reads like a command line), maps as compact sorted JSON.

What a rule looks at. A :class:`~logact.agent.core.entries.ToolCall` has its tool name and its
arguments; its *command text* is its ``command`` argument, else its ``cmd`` argument (absent
when it has neither). A :class:`~logact.agent.core.entries.CodeBlock` is seen as the tool ``"code"``
with arguments ``{"language": ..., "code": ...}``; its command text is the code. An ``args`` key
is an argument name or a dotted path into nested arguments (``"options.mode"``, ``"argv.0"``);
a key that exists literally wins over the dotted reading.

A rule matches when every condition it has holds (a rule with none matches every action on its
buses). A condition on a value the action does not have (a missing argument, no command text)
does not hold, with or without ``negate``. Evaluation: the first matching deny rule decides
(reject, with its reason) wherever it stands in the list, so deny overrides allow; otherwise the
first matching allow rule approves; otherwise the set's default applies.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from logact.agent.core.entries import CodeBlock, ToolCall

EFFECTS = ("allow", "deny")
MATCH_KINDS = ("exact", "substring", "regex", "glob")
#: The arguments of a ToolCall that hold its command text, in order of preference.
TEXT_ARGUMENTS = ("command", "cmd")
#: The tool name a CodeBlock is seen under.
CODE_TOOL = "code"

_RULE_KEYS = ("effect", "reason", "tool", "args", "text", "buses")
_DOC_KEYS = ("default", "rules")
_MISSING = object()


class RuleError(ValueError):
    """A rule document (or rule) is invalid; the message says where and why."""


def _where(path: str, problem: str) -> RuleError:
    return RuleError(f"{path}: {problem}" if path else problem)


# --- matchers ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """The text a substring/regex/glob matcher sees for an argument value."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return json.dumps(value, default=str)  # bool -> true/false, None -> null, numbers


@dataclass(frozen=True, slots=True)
class Matcher:
    """One test of a value: ``kind`` in exact/substring/regex/glob, optionally negated."""

    kind: str
    value: Any
    negate: bool = False
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in MATCH_KINDS:
            raise RuleError(f"unknown matcher kind {self.kind!r} (one of {', '.join(MATCH_KINDS)})")
        if not isinstance(self.negate, bool):
            raise RuleError(f"matcher 'negate' must be true or false, got {self.negate!r}")
        if self.kind == "exact":
            ok = isinstance(self.value, str | int | float | bool)
            if not ok:
                raise RuleError(
                    f"exact matcher value must be a string, number or boolean, got {self.value!r}"
                )
            return
        if not isinstance(self.value, str):
            raise RuleError(f"{self.kind} matcher value must be a string, got {self.value!r}")
        if self.kind == "substring" and not self.value:
            raise RuleError("substring matcher value must not be empty (it would match anything)")
        if self.kind == "regex":
            try:
                compiled = re.compile(self.value)
            except re.error as exc:
                raise RuleError(f"invalid regex {self.value!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    def _test(self, actual: Any) -> bool:
        if self.kind == "exact":
            if isinstance(self.value, str):
                return _text(actual) == self.value
            # Non-string value: compare values, but never let True equal 1.
            return isinstance(actual, bool) == isinstance(self.value, bool) and actual == self.value
        text = _text(actual)
        if self.kind == "substring":
            return self.value in text
        if self.kind == "regex":
            assert self._regex is not None
            return self._regex.search(text) is not None
        return fnmatch.fnmatchcase(text, self.value)

    def matches(self, actual: Any) -> bool:
        """Whether ``actual`` passes; a missing value (``_MISSING``) never does."""
        if actual is _MISSING:
            return False
        return self._test(actual) != self.negate

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {self.kind: self.value}
        if self.negate:
            doc["negate"] = True
        return doc

    @classmethod
    def from_doc(cls, doc: Any, path: str = "") -> Matcher:
        if isinstance(doc, str):
            return cls("exact", doc)
        if not isinstance(doc, Mapping):
            raise _where(path, f"a matcher must be a string or a table, got {doc!r}")
        kinds = [k for k in doc if k in MATCH_KINDS]
        extra = [k for k in doc if k not in MATCH_KINDS and k != "negate"]
        if extra:
            raise _where(
                path,
                f"unknown matcher key(s) {', '.join(map(repr, extra))} "
                f"(one of {', '.join(MATCH_KINDS)}, plus optional negate)",
            )
        if len(kinds) != 1:
            raise _where(path, f"a matcher needs exactly one of {', '.join(MATCH_KINDS)}")
        try:
            return cls(kinds[0], doc[kinds[0]], doc.get("negate", False))
        except RuleError as exc:
            raise _where(path, str(exc)) from None


#: A condition: any of its matchers must match (a non-empty tuple).
Condition = tuple[Matcher, ...]


def _condition(spec: Any, path: str) -> Condition:
    """A condition from a Matcher, a matcher document, or a list of either."""
    items = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not items:
        raise _where(path, "an empty list of matchers would never match")
    return tuple(
        m
        if isinstance(m, Matcher)
        else Matcher.from_doc(m, f"{path}[{i}]" if len(items) > 1 else path)
        for i, m in enumerate(items)
    )


def _condition_doc(cond: Condition) -> Any:
    docs = [m.to_doc() for m in cond]
    return docs[0] if len(docs) == 1 else docs


def _holds(cond: Condition | None, actual: Any) -> bool:
    return cond is None or any(m.matches(actual) for m in cond)


# --- what a rule looks at ------------------------------------------------------------------------


def _view(action: ToolCall | CodeBlock) -> tuple[str, Mapping[str, Any], Any]:
    """(tool name, arguments, command text or _MISSING) of an action."""
    if isinstance(action, CodeBlock):
        return CODE_TOOL, {"language": action.language, "code": action.code}, action.code
    if isinstance(action, ToolCall):
        text = next(
            (action.arguments[k] for k in TEXT_ARGUMENTS if k in action.arguments), _MISSING
        )
        return action.tool, action.arguments, text
    raise TypeError(f"an action must be a ToolCall or a CodeBlock, got {type(action).__name__}")


def _lookup(arguments: Mapping[str, Any], key: str) -> Any:
    """The argument named ``key``, else the dotted path ``key``; ``_MISSING`` when absent."""
    if key in arguments:
        return arguments[key]
    value: Any = arguments
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow/deny rule. ``tool``, ``text`` and each ``args`` value are conditions: a Matcher,
    a matcher document, or a list of those (any-of); they are normalised to tuples of Matchers.
    ``args`` is normalised to a tuple of (name, condition) pairs; ``buses`` to a tuple of globs.
    """

    effect: str
    reason: str
    tool: Any = None
    args: Any = ()
    text: Any = None
    buses: Any = None

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise RuleError(f"effect must be 'allow' or 'deny', got {self.effect!r}")
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise RuleError(f"reason must be a non-empty string, got {self.reason!r}")
        if self.tool is not None:
            object.__setattr__(self, "tool", _condition(self.tool, "tool"))
        if self.text is not None:
            object.__setattr__(self, "text", _condition(self.text, "text"))
        args = self.args.items() if isinstance(self.args, Mapping) else self.args
        pairs = []
        for pair in args:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise RuleError(f"args must be a table of argument name -> matcher, got {pair!r}")
            name, spec = pair
            if not isinstance(name, str) or not name or any(not p for p in name.split(".")):
                raise RuleError(f"args: bad argument name {name!r}")
            pairs.append((name, _condition(spec, f"args.{name}")))
        object.__setattr__(self, "args", tuple(pairs))
        if self.buses is not None:
            buses = self.buses
            if isinstance(buses, str) or not isinstance(buses, Iterable):
                raise RuleError(f"buses must be a list of glob patterns, got {buses!r}")
            buses = tuple(buses)
            if not buses:
                raise RuleError("buses: an empty list would scope the rule to no bus at all")
            if not all(isinstance(b, str) and b for b in buses):
                raise RuleError(f"buses must be non-empty strings, got {list(buses)!r}")
            object.__setattr__(self, "buses", buses)

    def applies_to(self, bus: str) -> bool:
        return self.buses is None or any(fnmatch.fnmatchcase(bus, b) for b in self.buses)

    def matches(self, action: ToolCall | CodeBlock, bus: str) -> bool:
        return self._matches(_view(action), bus)

    def _matches(self, view: tuple[str, Mapping[str, Any], Any], bus: str) -> bool:
        if not self.applies_to(bus):
            return False
        tool, arguments, text = view
        return (
            _holds(self.tool, tool)
            and _holds(self.text, text)
            and all(_holds(cond, _lookup(arguments, name)) for name, cond in self.args)
        )

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"effect": self.effect, "reason": self.reason}
        if self.tool is not None:
            doc["tool"] = _condition_doc(self.tool)
        if self.args:
            doc["args"] = {name: _condition_doc(cond) for name, cond in self.args}
        if self.text is not None:
            doc["text"] = _condition_doc(self.text)
        if self.buses is not None:
            doc["buses"] = list(self.buses)
        return doc

    @classmethod
    def from_doc(cls, doc: Any, path: str = "rule") -> Rule:
        if not isinstance(doc, Mapping):
            raise _where(path, f"a rule must be a table, got {type(doc).__name__}")
        unknown = [k for k in doc if k not in _RULE_KEYS]
        if unknown:
            raise _where(
                path,
                f"unknown key(s) {', '.join(map(repr, unknown))} "
                f"(allowed: {', '.join(_RULE_KEYS)})",
            )
        for key in ("effect", "reason"):
            if key not in doc:
                raise _where(path, f"'{key}' is required")
        args = doc.get("args", {})
        if not isinstance(args, Mapping):
            raise _where(
                f"{path}.args", f"must be a table of argument name -> matcher, got {args!r}"
            )
        buses = doc.get("buses")
        if buses is not None and not isinstance(buses, list | tuple):
            raise _where(f"{path}.buses", f"must be a list of glob patterns, got {buses!r}")
        try:
            return cls(
                effect=doc["effect"],
                reason=doc["reason"],
                tool=doc.get("tool"),
                args=dict(args),
                text=doc.get("text"),
                buses=buses,
            )
        except RuleError as exc:
            raise _where(path, str(exc)) from None


# --- rule sets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """The rule voter's answer; ``rule_index`` is the deciding rule's index, None for default."""

    approve: bool
    reason: str
    rule_index: int | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Ordered rules plus a default effect. Deny overrides allow; see the module docstring."""

    rules: tuple[Rule, ...] = ()
    default: str = "deny"

    def __post_init__(self) -> None:
        if self.default not in EFFECTS:
            raise RuleError(f"default must be 'allow' or 'deny', got {self.default!r}")
        rules = tuple(self.rules)
        if not all(isinstance(r, Rule) for r in rules):
            raise RuleError("rules must all be Rule objects")
        object.__setattr__(self, "rules", rules)

    def evaluate(self, action: ToolCall | CodeBlock, bus: str) -> RuleVerdict:
        view = _view(action)
        first_allow: int | None = None
        for index, rule in enumerate(self.rules):
            if rule.effect == "allow" and first_allow is not None:
                continue  # an allow is already found; only a deny can still change the answer
            if rule._matches(view, bus):
                if rule.effect == "deny":
                    return RuleVerdict(False, rule.reason, index)
                first_allow = index
        if first_allow is not None:
            return RuleVerdict(True, self.rules[first_allow].reason, first_allow)
        return RuleVerdict(
            self.default == "allow", f"no rule matched (default {self.default})", None
        )

    def to_doc(self) -> dict[str, Any]:
        return {"default": self.default, "rules": [r.to_doc() for r in self.rules]}

    @classmethod
    def from_doc(cls, doc: Any) -> RuleSet:
        if not isinstance(doc, Mapping):
            raise RuleError(f"a rule set document must be a table, got {type(doc).__name__}")
        unknown = [k for k in doc if k not in _DOC_KEYS]
        if unknown:
            raise RuleError(
                f"unknown top-level key(s) {', '.join(map(repr, unknown))} "
                f"(allowed: {', '.join(_DOC_KEYS)})"
            )
        rules = doc.get("rules", [])
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            raise RuleError(f"rules: must be a list of rule tables, got {type(rules).__name__}")
        parsed = tuple(Rule.from_doc(r, f"rules[{i}]") for i, r in enumerate(rules))
        return cls(parsed, doc.get("default", "deny"))


#: The rule set of a voter with no configuration: reject everything.
DENY_ALL = RuleSet()


def load_rules(path: str | PathLike[str]) -> RuleSet:
    """Read a rule set from a TOML file (``default = ...`` plus ``[[rules]]`` tables)."""
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"{path}: not valid TOML: {exc}") from None
    try:
        return RuleSet.from_doc(doc)
    except RuleError as exc:
        raise RuleError(f"{path}: {exc}") from None
