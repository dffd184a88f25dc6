"""A readable account of a bus: intent → votes → decision → result, and a summary.

Pure: it turns a :class:`BusState` into rows of text; the CLI prints them (with rich).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.core.text import clip


def describe_action(action: e.ToolCall | e.CodeBlock) -> str:
    if isinstance(action, e.CodeBlock):
        return f"```{action.language} {action.code}```"
    if set(action.arguments) == {"command"}:
        return f"{action.tool}: {action.arguments['command']}"
    return f"{action.tool}({json.dumps(action.arguments, ensure_ascii=False)})"


def _vote_text(vote: e.Vote) -> str:
    if vote.approve is not None:
        mark = "approve" if vote.approve else "REJECT"
    else:
        mark = f"p={vote.probability:g}"
    return f"{vote.voter_id} ({vote.kind}): {mark} — {vote.reason}"


def status(record: IntentRecord) -> str:
    """One word for where an intent stands."""
    if record.decision is None:
        return "undecided"
    if record.aborted:
        return "aborted"
    if record.result is None:
        return "running" if record.exec_start is not None else "committed"
    if record.result.in_doubt:
        return "in doubt"
    return "ok" if record.result.ok else "failed"


def _outcome(record: IntentRecord) -> str:
    if record.aborted:
        assert record.decision is not None
        return f"ABORT — {record.decision.reason}"
    if record.decision is None:
        return "undecided"
    lines = [f"commit — {record.decision.reason}"]
    result = record.result
    if result is None:
        lines.append("running" if record.exec_start is not None else "not started")
    elif result.in_doubt:
        lines.append("IN DOUBT (interrupted)")
    else:
        took = f" in {result.duration_ms} ms" if result.duration_ms is not None else ""
        text = result.output if result.ok else f"error: {result.error}"
        lines.append(f"{'ok' if result.ok else 'FAILED'}{took}: {clip(text, 70)}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Row:
    position: int
    kind: str  # task, model, intent, mail, output, policy
    what: str
    votes: str = ""
    outcome: str = ""


def timeline(state: BusState) -> list[Row]:
    rows: list[Row] = []
    for raw, entry in state.entries:
        match entry:
            case e.AgentInput():
                rows.append(Row(raw.pos, "task", clip(entry.text)))
            case e.InfOut():
                used = entry.usage
                tokens = f"{used.prompt_tokens}+{used.completion_tokens} tokens" if used else ""
                text = entry.message.get("content") or ""
                rows.append(Row(raw.pos, "model", f"{entry.model}: {clip(text, 60)}", "", tokens))
            case e.Intent():
                record = state.intents[raw.pos]
                votes = "\n".join(_vote_text(v) for _, v in record.votes)
                rows.append(
                    Row(
                        raw.pos,
                        "intent",
                        clip(describe_action(entry.action)),
                        votes,
                        _outcome(record),
                    )
                )
            case e.Mail():
                rows.append(
                    Row(raw.pos, "mail", clip(f"{entry.sender} → {entry.to}: {entry.text}"))
                )
            case e.AgentOutput():
                rows.append(Row(raw.pos, "output", clip(entry.text)))
            case e.DeciderPolicy() | e.VoterPolicy():
                rows.append(
                    Row(
                        raw.pos,
                        "policy",
                        clip(f"{entry.TYPE} v{entry.version}: {json.dumps(entry.policy)}"),
                    )
                )
    return rows


def summary(state: BusState) -> dict[str, int]:
    """Counts a reader checks first: actions proposed, committed, vetoed, run, failed, in doubt."""
    records = list(state.intents.values())
    tokens = Counter[str]()
    for _, out in state.of_type(e.InfOut):
        if out.usage is not None:
            tokens["prompt"] += out.usage.prompt_tokens
            tokens["completion"] += out.usage.completion_tokens
    return {
        "entries": state.next,
        "model_calls": len(state.of_type(e.InfOut)),
        "prompt_tokens": tokens["prompt"],
        "completion_tokens": tokens["completion"],
        "intents": len(records),
        "committed": sum(r.committed for r in records),
        "aborted": sum(r.aborted for r in records),
        "executed_ok": sum(bool(r.result and r.result.ok) for r in records),
        "failed": sum(
            bool(r.result and not r.result.ok and not r.result.in_doubt) for r in records
        ),
        "in_doubt": sum(bool(r.result and r.result.in_doubt) for r in records),
        "undecided": len(state.undecided),
        # Entries skipped: malformed bodies, and votes/decisions from principals the bus's
        # policies do not accept (agent/core/bus.py).
        "invalid": len(state.invalid),
        "forged": len(state.forged),
    }
