"""The health watcher (agent/introspection/health_watch.py) and bus rounds (rounds.py): findings
are recorded and mailed once per change, a read-only watcher appends nothing, and rounds pick up
buses that appear under the prefix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import aclosing
from typing import Any

import pytest
import trio
import trio.testing

from logact.agent.core import entries as e
from logact.agent.core.replay import bus_exists, read_state
from logact.agent.introspection.health import Status, Thresholds, unknown_bus
from logact.agent.introspection.health_watch import CHECKER, HealthWatcher, Report, watch
from logact.agent.introspection.rounds import watch_rounds
from logact.agent.models.llm import ScriptedModel
from logact.server.local import LocalLog

BUS = "agent/health-watch"


async def troubled(log: LocalLog, bus: str = BUS) -> list[int]:
    """An open task, then three actions that were vetoed: an error streak."""
    await log.append(bus, *e.AgentInput("tidy up").to_entry())
    streak = []
    for tool in ("a", "b", "c"):
        intent = await log.append(bus, *e.Intent(e.ToolCall(tool, {})).to_entry())
        await log.append(bus, *e.Abort(intent, "vetoed").to_entry())
        streak.append(intent)
    return streak


def signals(report: Report) -> dict[str, list[int]]:
    return {f["signal"]: f["positions"] for f in report.findings}


async def test_news_is_recorded_and_mailed_once(memory_log: LocalLog) -> None:
    streak = await troubled(memory_log)
    watcher = HealthWatcher(memory_log, recorder=memory_log, mailer=memory_log)
    first = await watcher.check(BUS)
    assert first.news and signals(first)["error_streak"] == streak
    assert (first.recorded, first.mailed) == (streak[-1] + 2, streak[-1] + 3)
    state = await read_state(memory_log, BUS)
    [(_, health)] = state.of_type(e.Health)
    assert (health.checker, health.through) == (CHECKER, streak[-1] + 1)
    assert list(health.findings) == first.findings
    [(_, mail)] = state.of_type(e.Mail)
    assert (mail.sender, mail.subject) == (CHECKER, "health")
    assert mail.text.startswith("error_streak: the last 3 actions failed or were vetoed")

    again = await watcher.check(BUS)
    assert not again.news and again.findings == first.findings
    assert (again.recorded, again.mailed) == (None, None)
    assert (await read_state(memory_log, BUS)).next == state.next


async def test_findings_that_clear_are_recorded_but_not_mailed(memory_log: LocalLog) -> None:
    await troubled(memory_log)
    watcher = HealthWatcher(memory_log, recorder=memory_log, mailer=memory_log)
    await watcher.check(BUS)
    intent = await memory_log.append(BUS, *e.Intent(e.ToolCall("d", {})).to_entry())
    await memory_log.append(BUS, *e.Commit(intent, "ok").to_entry())
    await memory_log.append(BUS, *e.ExecStart(intent).to_entry())
    await memory_log.append(BUS, *e.Result(intent, ok=True, duration_ms=5).to_entry())
    cleared = await watcher.check(BUS)
    assert cleared.news and cleared.findings == [] and cleared.recorded is not None
    assert cleared.mailed is None
    state = await read_state(memory_log, BUS)
    assert [list(h.findings) for _, h in state.of_type(e.Health)][-1] == []
    assert len(state.of_type(e.Mail)) == 1


async def test_a_read_only_watcher_appends_nothing(memory_log: LocalLog) -> None:
    await troubled(memory_log)
    tail = (await read_state(memory_log, BUS)).next
    watcher = HealthWatcher(memory_log)
    for _ in range(2):
        report = await watcher.check(BUS)
        assert report.news and (report.recorded, report.mailed) == (None, None)
    assert (await read_state(memory_log, BUS)).next == tail


async def test_a_missing_bus_is_unknown_and_never_created(memory_log: LocalLog) -> None:
    watcher = HealthWatcher(memory_log, recorder=memory_log, mailer=memory_log)
    report = await watcher.check("agent/nobody")
    assert report.status is Status.UNKNOWN
    assert report.findings == [unknown_bus("agent/nobody")]
    assert not report.news and (report.recorded, report.mailed) == (None, None)
    assert not await bus_exists(memory_log, "agent/nobody")


async def test_the_status_of_a_report_is_that_of_its_findings(memory_log: LocalLog) -> None:
    await troubled(memory_log)
    await memory_log.append("agent/fine", *e.AgentInput("t").to_entry())
    watcher = HealthWatcher(memory_log)
    assert (await watcher.check(BUS)).status is Status.CRITICAL  # an error streak
    assert (await watcher.check("agent/fine")).status is Status.OK


async def test_mail_without_a_recorder_is_refused(memory_log: LocalLog) -> None:
    with pytest.raises(ValueError, match="needs a recorder"):
        HealthWatcher(memory_log, mailer=memory_log)


async def test_a_stall_is_measured_on_the_watchers_clock(memory_log: LocalLog) -> None:
    task = await memory_log.append(BUS, *e.AgentInput("tidy up").to_entry())
    [(raw, _)] = (await read_state(memory_log, BUS)).entries
    soon = HealthWatcher(memory_log, thresholds=Thresholds(stall_s=60), clock=lambda: raw.ts)
    assert signals(await soon.check(BUS)) == {}
    later = HealthWatcher(
        memory_log, thresholds=Thresholds(stall_s=60), clock=lambda: raw.ts + 61_000
    )
    assert signals(await later.check(BUS)) == {"no_progress": [task, task]}


async def test_a_models_judgement_of_the_digest_is_recorded(memory_log: LocalLog) -> None:
    await troubled(memory_log)
    seen: list[str] = []

    def judge(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
        seen.append(messages[-1]["content"])
        return {"content": "stuck on vetoes; ask the user"}

    model = (ScriptedModel(judge).client(), "scripted")
    watcher = HealthWatcher(memory_log, recorder=memory_log, model=model)
    report = await watcher.check(BUS)
    assert report.judgement == "stuck on vetoes; ask the user"
    assert "tidy up" in seen[0]  # the model read the bus digest
    [(_, health)] = (await read_state(memory_log, BUS)).of_type(e.Health)
    assert health.judgement == report.judgement


async def test_watch_checks_every_bus_under_the_prefix_each_round(
    memory_log: LocalLog, autojump_clock: trio.testing.MockClock
) -> None:
    quiet, loud = "swarm/quiet", "swarm/troubled"
    await memory_log.append(quiet, *e.AgentInput("t").to_entry())
    await memory_log.append(quiet, *e.AgentOutput("done").to_entry())
    await troubled(memory_log, loud)
    watcher = HealthWatcher(memory_log, clock=lambda: 0)
    seen: list[tuple[str, float]] = []
    async with aclosing(watch(watcher, [], "swarm/", 2, 30.0)) as reports:
        async for report in reports:
            seen.append((report.bus, trio.current_time()))
            assert bool(report.findings) == (report.bus == loud)
    start = seen[0][1]
    assert [(bus, at - start) for bus, at in seen] == [
        (quiet, 0),
        (loud, 0),
        (quiet, 30),
        (loud, 30),
    ]


async def test_rounds_pick_up_buses_that_appear_under_the_prefix(
    memory_log: LocalLog, autojump_clock: trio.testing.MockClock
) -> None:
    await memory_log.append("team/a", *e.AgentInput("t").to_entry())
    rounds = []
    async with aclosing(watch_rounds(memory_log, ["solo"], "team/", 3, 5.0)) as each:
        async for targets in each:
            rounds.append(targets)
            await memory_log.append(f"team/{len(rounds)}", *e.AgentInput("t").to_entry())
    assert rounds == [
        ["solo", "team/a"],
        ["solo", "team/1", "team/a"],
        ["solo", "team/1", "team/2", "team/a"],
    ]
