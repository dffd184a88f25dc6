"""One line per thing an agent's part did (agent/introspection/activity.py): what each entry
type says, durations people read, and a log that tells each append once it is acknowledged."""

from __future__ import annotations

import re
from contextlib import aclosing

from logact.agent.core import entries as e
from logact.agent.core.replay import read_state
from logact.agent.introspection.activity import (
    ActivityLog,
    Appended,
    describe,
    duration,
    stamped,
)
from logact.server.local import LocalLog

BUS = "agent/activity"


def line(position: int, entry: e.AgentEntry) -> str | None:
    return describe(position, *entry.to_entry())


def test_votes_decisions_and_runs_each_get_a_line() -> None:
    assert line(5, e.Vote(3, "rules", "rule", "no rule matched", True)) == (
        "voted approve on #3 (rule: no rule matched)"
    )
    assert line(5, e.Vote(3, "llm", "llm", "sends\ndata   out", False)) == (
        "voted reject on #3 (llm: sends data out)"
    )
    assert line(5, e.Vote(3, "ifc", "ifc", "who wrote it?", False, escalate=True)) == (
        "voted escalate on #3 (ifc: who wrote it?)"
    )
    assert line(5, e.Vote(3, "sim", "sim", "likely fine", probability=0.8)) == (
        "voted p=0.8 on #3 (sim: likely fine)"
    )
    assert line(6, e.Commit(3, "no veto")) == "committed #3 (no veto)"
    assert line(6, e.Abort(3, "vetoed by rule")) == "aborted #3 (vetoed by rule)"
    assert line(8, e.Result(3, ok=True, output="x", duration_ms=1234)) == "ran #3: ok in 1.2 s"
    assert line(8, e.Result(3, ok=False, error="exit code 2\nmore")) == (
        "ran #3: failed: exit code 2 more"
    )
    assert line(8, e.Result(3, ok=False, error="interrupted", in_doubt=True)) == (
        "#3 in doubt: interrupted before its result, not re-run"
    )
    assert line(2, e.Intent(e.ToolCall("shell", {"command": "ls"}))) == "proposed #2: shell: ls"
    assert line(9, e.AgentOutput("all done")) == "answered: all done"


def test_bookkeeping_entries_are_not_told() -> None:
    assert line(1, e.ExecStart(3)) is None
    assert line(1, e.InfIn("m", ({"role": "user", "content": "hi"},))) is None
    assert line(1, e.AgentInput("task")) is None
    assert describe(1, "note", {"anything": 1}) is None  # not an agent entry at all


def test_durations_read_as_people_say_them() -> None:
    assert [duration(ms) for ms in (0, 340, 999, 1000, 1234, 59_949, 61_000, 185_400)] == [
        "0 ms",
        "340 ms",
        "999 ms",
        "1.0 s",
        "1.2 s",
        "59.9 s",
        "1 min 1 s",
        "3 min 5 s",
    ]


def test_a_line_is_stamped_with_the_local_time_and_the_bus() -> None:
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO agent/x: ran #1: ok", stamped("agent/x", "ran #1: ok")
    )


async def test_the_log_tells_each_acknowledged_append_and_is_otherwise_the_log(
    memory_log: LocalLog,
) -> None:
    told: list[Appended] = []
    log = ActivityLog(memory_log, told.append)
    await log.append(BUS, *e.AgentInput("tidy").to_entry())
    intents = [await log.append(BUS, *e.Intent(e.ToolCall(t, {})).to_entry()) for t in "ab"]
    decisions = await log.append_batch(
        BUS, [e.Commit(intents[0], "ok").to_entry(), e.Abort(intents[1], "no").to_entry()]
    )
    assert list(decisions) == [intents[1] + 1, intents[1] + 2]
    said = [re.sub(r"^\d\d:\d\d:\d\d INFO ", "", appended.line()) for appended in told]
    assert said == [
        f"{BUS}: proposed #{intents[0]}: a({{}})",
        f"{BUS}: proposed #{intents[1]}: b({{}})",
        f"{BUS}: committed #{intents[0]} (ok)",
        f"{BUS}: aborted #{intents[1]} (no)",
    ]
    assert [(a.bus, a.position, a.type) for a in told] == [
        (BUS, intents[0], "intent"),
        (BUS, intents[1], "intent"),
        (BUS, decisions[0], "commit"),
        (BUS, decisions[1], "abort"),
    ]
    state = await read_state(log, BUS)  # reads go through to the log
    assert state.next == decisions[-1] + 1 and state.intents[intents[0]].committed
    async with aclosing(log.subscribe(BUS, decisions[-1])) as entries:
        async for entry in entries:
            assert entry.type == "abort"
            break
    assert len(told) == 4  # reading tells nothing


def test_an_append_is_told_to_programs_as_json_with_the_same_facts() -> None:
    appended = Appended("agent/x", 7, "commit", "committed #3 (no veto)", at=1_700_000_000.25)
    assert appended.to_json() == {
        "event": "appended",
        "bus": "agent/x",
        "pos": 7,
        "type": "commit",
        "text": "committed #3 (no veto)",
        "ts": 1_700_000_000_250,
    }
    assert appended.line().endswith(" INFO agent/x: committed #3 (no veto)")
