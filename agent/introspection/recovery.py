"""Semantic recovery: what the model is told when one of its actions was interrupted.

The executor never re-runs an action that started and has no result (it may have taken effect
fully, partly or not at all); it records it as in doubt. Blind replay is what must not happen
next, so the driver's next inference carries a recovery brief built from the log: what was in
flight, what ran before it (the digest), and what to do: examine, then undo, redo or continue,
each proposed as an ordinary intent that the voters judge like any other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.introspection.digest import digest
from logact.agent.introspection.timeline import describe_action

#: The brief's bound for the history part (characters).
HISTORY_CHARS = 2000


def recovery_brief(state: BusState, interrupted: Sequence[IntentRecord]) -> str:
    """The brief for the in-doubt actions ``interrupted`` (at least one)."""
    first = min(record.position for record in interrupted)
    lines = ["RECOVERY BRIEF (written by LogAct from the log, not by the user)."]
    for record in interrupted:
        started = next(
            (raw.ts for raw, _ in state.entries if raw.pos == record.exec_start), record.ts
        )
        when = time.strftime("%H:%M:%S", time.gmtime(started / 1000))
        lines.append(
            f"Interrupted: #{record.position} {describe_action(record.intent.action)[:300]} "
            f"(started {when} UTC). The executor stopped before recording its result: it may "
            "have taken effect fully, partly or not at all. It was NOT re-run."
        )
    lines += [
        "What happened before it:",
        digest(state, end=first).render(HISTORY_CHARS),
        "What to do now: first examine the environment with read-only actions to learn what "
        "state the interrupted action left behind. Then propose to undo it, redo it or continue "
        "without it. Do not repeat it blindly: it may not be safe to run twice. Every action "
        "you propose is voted on as usual.",
    ]
    return "\n".join(lines)


def _in_flight(record: IntentRecord) -> str | None:
    if record.closed:
        return None
    if record.decision is None:
        return "waiting for its votes and decision"
    return "running" if record.exec_start is not None else "committed, not started yet"


def restart_brief(state: BusState, task_position: int) -> str:
    """The brief for a driver that restarted in the middle of the task at ``task_position``."""
    lines = [
        "RESUMED (written by LogAct from the log, not by the user). Your driver restarted; "
        "this conversation was rebuilt from the log, and the log goes on below.",
    ]
    for record in sorted(state.intents.values(), key=lambda r: r.position):
        status = _in_flight(record)
        if record.position > task_position and status is not None:
            lines.append(
                f"In flight: #{record.position} {describe_action(record.intent.action)[:300]} "
                f"({status}); its result will come to you. Do not propose it again."
            )
    lines += [
        "The task so far:",
        digest(state, start=task_position).render(HISTORY_CHARS),
        "Carry on from where the log shows the task stands; do not redo what has a result.",
    ]
    return "\n".join(lines)
