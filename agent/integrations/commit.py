"""The commit API for outside harnesses: propose an action, block until the decider rules.

This is the reference's "commit service" made a library call: ``commit_intention`` appends the
intent and waits for its first decision on the bus, which the voters and decider running
against that bus produce. The harness itself runs the action (when approved) and may then
``record_result`` against the real intent id.
"""

from __future__ import annotations

import math
from contextlib import aclosing

import trio

from logact.agent.core import entries as e
from logact.protocol.api import LogAPI


async def _first_about(
    log: LogAPI, bus: str, intent_id: int, kinds: tuple[type[e.AgentEntry], ...], timeout: float
) -> e.AgentEntry | None:
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
) -> e.Commit | e.Abort | None:
    """The first commit/abort for ``intent_id``; None if none is logged within ``timeout``."""
    decision = await _first_about(log, bus, intent_id, (e.Commit, e.Abort), timeout)
    assert decision is None or isinstance(decision, e.Commit | e.Abort)
    return decision


async def commit_intention(
    log: LogAPI, bus: str, intent: e.Intent, timeout: float, *, fence: tuple[str, int] | None = None
) -> e.Commit | e.Abort:
    """Append ``intent`` and wait for its decision (its ``intent_id`` is the intent's position).

    No decision within ``timeout`` means "do not run it": an abort with reason ``timeout`` that
    is not on the log; the intent stays there undecided unless a decider deadline aborts it, so
    set a decider deadline no longer than harness timeouts to keep the log and the harness in
    agreement.
    """
    position = await log.append(bus, *intent.to_entry(), fence=fence)
    decision = await wait_for_decision(log, bus, position, timeout)
    if decision is None:
        return e.Abort(position, f"timeout: no decision within {timeout:g} s")
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
