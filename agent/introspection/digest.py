"""A bus read back for a model: a compact, faithful digest of what an agent did.

Pure: a :class:`BusState` (or a range of its positions) goes in, a :class:`Digest` comes out;
:meth:`Digest.render` bounds it in characters for a prompt. Faithful means nothing is invented
and nothing that matters for recovery or health is dropped: every failed, aborted, in-doubt,
running or undecided action is always listed; only older successful actions are folded into a
count per tool when the digest must shrink.

Token accounting (:class:`TokenUse`) comes from the ``usage`` of ``inf_out`` entries: per bus
(one bus per agent) and, summed over buses, per swarm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.core.text import clip
from logact.agent.introspection.timeline import describe_action, status

#: Statuses a digest never folds away.
KEPT = frozenset({"failed", "aborted", "in doubt", "running", "undecided", "committed"})


@dataclass(frozen=True, slots=True)
class TokenUse:
    calls: int = 0
    prompt: int = 0
    completion: int = 0
    unreported: int = 0  # model calls whose endpoint gave no usage

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: TokenUse) -> TokenUse:
        return TokenUse(
            self.calls + other.calls,
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.unreported + other.unreported,
        )


def token_use(state: BusState, start: int = 0, end: int | None = None) -> TokenUse:
    """The model spend recorded on one bus (between positions ``start`` and ``end``)."""
    use = TokenUse()
    for raw, out in state.of_type(e.InfOut):
        if raw.pos < start or (end is not None and raw.pos >= end):
            continue
        if out.usage is None:
            use += TokenUse(calls=1, unreported=1)
        else:
            use += TokenUse(1, out.usage.prompt_tokens, out.usage.completion_tokens)
    return use


def swarm_token_use(states: Iterable[BusState]) -> dict[str, TokenUse]:
    """Per bus, plus the total under the key ``"*"``."""
    per_bus = {state.bus: token_use(state) for state in states}
    return {**per_bus, "*": sum(per_bus.values(), TokenUse())}


@dataclass(frozen=True, slots=True)
class Step:
    """One action and what became of it."""

    position: int
    action: str
    tool: str
    status: str
    detail: str  # output, error or abort reason (clipped)
    proposed_ms: int  # the intent's timestamp
    duration_ms: int | None  # how long it ran, when it has a result
    tokens: int  # tokens of the model call that proposed it (0: none on record)


@dataclass(frozen=True, slots=True)
class Digest:
    bus: str
    start: int
    end: int
    tasks: tuple[str, ...]
    steps: tuple[Step, ...]
    outputs: tuple[str, ...]
    mail: tuple[str, ...]
    tokens: TokenUse
    first_ms: int | None
    last_ms: int | None
    folded: dict[str, int] = field(default_factory=dict)  # tool -> older ok steps folded away

    def render(self, max_chars: int = 6000) -> str:
        """The digest as prompt text of at most ``max_chars`` (folding older ok steps first)."""
        steps = list(self.steps)
        folded = Counter(self.folded)
        while True:
            text = self._text(steps, folded)
            if len(text) <= max_chars:
                return text
            oldest_ok = next((s for s in steps if s.status not in KEPT), None)
            if oldest_ok is None:
                return text[: max_chars - 1] + "…"  # only kept steps left: cut the tail
            steps.remove(oldest_ok)
            folded[oldest_ok.tool] += 1

    def _text(self, steps: list[Step], folded: Counter[str]) -> str:
        span = ""
        if self.first_ms is not None and self.last_ms is not None:
            span = f", {(self.last_ms - self.first_ms) / 1000:.1f} s"
        lines = [
            f"bus {self.bus}, entries {self.start}..{self.end - 1}{span}; model calls "
            f"{self.tokens.calls}, tokens {self.tokens.prompt}+{self.tokens.completion}",
        ]
        lines += [f"task: {clip(task, 300)}" for task in self.tasks]
        if folded:
            counts = ", ".join(f"{tool} x{n}" for tool, n in sorted(folded.items()))
            lines.append(f"earlier: {sum(folded.values())} actions succeeded ({counts})")
        for step in steps:
            took = f" in {step.duration_ms} ms" if step.duration_ms is not None else ""
            cost = f", {step.tokens} tokens" if step.tokens else ""
            detail = f": {step.detail}" if step.detail else ""
            lines.append(
                f"#{step.position} {step.action} -> {step.status.upper()}{took}{cost}{detail}"
            )
        lines += [f"mail: {clip(m, 200)}" for m in self.mail]
        lines += [f"answer: {clip(o, 300)}" for o in self.outputs]
        return "\n".join(lines)


def _detail(record: IntentRecord) -> str:
    if record.aborted:
        assert record.decision is not None
        return clip(record.decision.reason, 160)
    result = record.result
    if result is None:
        return ""
    if result.in_doubt or not result.ok:
        return clip(result.error or "", 160)
    return clip(result.output, 120)


def digest(state: BusState, start: int = 0, end: int | None = None) -> Digest:
    """Everything between positions ``start`` and ``end`` (default: the whole bus so far)."""
    end = state.next if end is None else min(end, state.next)
    tasks: list[str] = []
    outputs: list[str] = []
    mail: list[str] = []
    steps: list[Step] = []
    first_ms = last_ms = None
    tokens_of_call = 0
    for raw, entry in state.entries:
        if raw.pos < start or raw.pos >= end:
            continue
        first_ms = raw.ts if first_ms is None else first_ms
        last_ms = raw.ts
        match entry:
            case e.AgentInput():
                tasks.append(entry.text)
            case e.AgentOutput():
                outputs.append(entry.text)
            case e.Mail():
                mail.append(f"from {entry.sender}: {entry.text}")
            case e.InfOut():
                usage = entry.usage
                tokens_of_call = usage.prompt_tokens + usage.completion_tokens if usage else 0
            case e.Intent():
                record = state.intents[raw.pos]
                action = entry.action
                tool = action.tool if isinstance(action, e.ToolCall) else f"code:{action.language}"
                duration = record.result.duration_ms if record.result is not None else None
                steps.append(
                    Step(
                        raw.pos,
                        clip(describe_action(action), 160),
                        tool,
                        status(record),
                        _detail(record),
                        raw.ts,
                        duration,
                        tokens_of_call,
                    )
                )
                tokens_of_call = 0  # one model call's tokens count once
    return Digest(
        state.bus,
        start,
        end,
        tuple(tasks),
        tuple(steps),
        tuple(outputs),
        tuple(mail),
        token_use(state, start, end),
        first_ms,
        last_ms,
    )
