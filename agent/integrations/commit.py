"""The commit API for outside harnesses: propose an action, block until the decider rules.

This is the reference's "commit service" made a library call: ``commit_intention`` appends the
intent and waits for its first decision on the bus, which the voters and decider running
against that bus produce. The harness itself runs the action (when approved) and may then
``record_result`` against the real intent id.
"""

from __future__ import annotations

import math
from contextlib import aclosing
from dataclasses import dataclass

import trio

from logact.agent.core import entries as e
from logact.protocol.api import LogAPI


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one intention: approved or not, why, and the intent's log position."""

    approved: bool
    reason: str
    position: int


async def _first_about(
    log: LogAPI, bus: str, intent_id: int, kinds: tuple[type[e.Entry], ...], timeout: float
) -> e.Entry | None:
    """The first valid entry of one of ``kinds`` about ``intent_id`` (None within ``timeout``)."""
    types = [kind.TYPE for kind in kinds]
    with trio.move_on_after(timeout):
        async with aclosing(log.subscribe(bus, intent_id, types)) as entries:
            async for raw in entries:
                try:
                    entry = e.parse(raw.type, raw.body)
                except e.EntryError:
                    continue  # an invalid entry says nothing about the intent
                if isinstance(entry, kinds) and entry.intent_id == intent_id:
                    return entry
    return None


async def wait_for_decision(
    log: LogAPI, bus: str, intent_id: int, timeout: float = math.inf
) -> Decision | None:
    """The first commit/abort for ``intent_id``; None if none is logged within ``timeout``."""
    decision = await _first_about(log, bus, intent_id, (e.Commit, e.Abort), timeout)
    if decision is None:
        return None
    assert isinstance(decision, e.Commit | e.Abort)
    return Decision(isinstance(decision, e.Commit), decision.reason, intent_id)


async def commit_intention(
    log: LogAPI, bus: str, intent: e.Intent, timeout: float, *, fence: tuple[str, int] | None = None
) -> Decision:
    """Append ``intent`` and wait for its decision.

    No decision within ``timeout`` means "do not run it" (reason ``timeout``); the intent stays
    on the bus undecided unless a decider deadline aborts it, so set a decider deadline no longer
    than harness timeouts to keep the log and the harness in agreement.
    """
    position = await log.append(bus, *intent.to_entry(), fence=fence)
    decision = await wait_for_decision(log, bus, position, timeout)
    if decision is None:
        return Decision(False, f"timeout: no decision within {timeout:g} s", position)
    return decision


async def record_result(log: LogAPI, bus: str, result: e.Result) -> int:
    """Append the outcome of an intent the harness ran itself; returns its position."""
    return await log.append(bus, *result.to_entry())


async def wait_for_result(
    log: LogAPI, bus: str, intent_id: int, timeout: float = math.inf
) -> e.Result | None:
    """The first result for ``intent_id`` (the executor's); None if none within ``timeout``."""
    result = await _first_about(log, bus, intent_id, (e.Result,), timeout)
    assert result is None or isinstance(result, e.Result)
    return result
