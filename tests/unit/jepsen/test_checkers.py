"""The history checkers (jepsen_tests/checkers.py) on hand-made and generated histories.

Hand-made histories plant one fault each and assert exactly which checkers see it (a few faults
are, by design, seen by two: see the module docstring). Generated histories come from a correct
sequential model run by concurrent simulated clients, so they must pass every checker; one
planted fault must then always be caught by the checker responsible for it.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from logact.agent.core import entries as e
from logact.jepsen_tests.checkers import (
    AGENT_CHECKERS,
    LOG_CHECKERS,
    Anomaly,
    WindowStats,
    at_most_once,
    availability,
    check_agent,
    check_log,
    in_doubt_surfaced,
    linearizable_reads,
    lost_writes,
    no_vetoed_execution,
    real_time,
    subscriptions,
    tasks_finished,
    total_order,
)
from logact.jepsen_tests.history import HistoryError, Op, make_op

_ids = itertools.count()


def op(process: str, kind: str, invoke: int, complete: int, outcome: str = "ok", **f: Any) -> Op:
    return make_op(process, kind, next(_ids), invoke, complete, outcome, **f)  # type: ignore[arg-type]


def append(p: str, payload: str, pos: int | None, t0: int, t1: int, outcome: str = "ok") -> Op:
    fields: dict[str, Any] = {"payload": payload}
    if pos is not None:
        fields["position"] = pos
    return op(p, "append", t0, t1, outcome, **fields)


def read(p: str, start: int, payloads: list[str], t0: int, t1: int, tail: int | None = None) -> Op:
    entries = [[start + k, v] for k, v in enumerate(payloads)]
    fields: dict[str, Any] = {"start": start, "entries": entries, "next": start + len(entries)}
    if tail is not None:
        fields["tail"] = tail
    return op(p, "read", t0, t1, **fields)


def tail(p: str, n: int, t0: int, t1: int) -> Op:
    return op(p, "check_tail", t0, t1, tail=n)


def sub(p: str, start: int, deliveries: list[tuple[int, str, int]], t1: int = 1000) -> Op:
    return op(p, "subscribe", 0, t1, "info", start=start, deliveries=[list(d) for d in deliveries])


def final(payloads: list[str], t: int = 2000) -> Op:
    return op("final", "final_read", t, t + 1, entries=[[k, v] for k, v in enumerate(payloads)])


def fired(history: list[Op], checkers: dict[str, Any] | None = None) -> set[str]:
    checkers = checkers or {**LOG_CHECKERS, **AGENT_CHECKERS}
    return {a.checker for check in checkers.values() for a in check(history)}


def only(anomalies: list[Anomaly]) -> Anomaly:
    assert len(anomalies) == 1, anomalies
    return anomalies[0]


# --- the log: hand-made ------------------------------------------------------------------------


def clean_log() -> list[Op]:
    """Concurrent appends, reads, a subscription, an info append that landed, one that did not,
    and a failed one; every property holds."""
    return [
        append("a1", "a", 0, 0, 10),
        append("a2", "b", 1, 5, 20),
        append("a1", "c", 2, 30, 40),
        read("r1", 0, ["a", "b", "c"], 45, 50, tail=3),
        tail("t1", 3, 41, 55),
        sub("s1", 0, [(0, "a", 11), (1, "b", 21), (2, "c", 41), (3, "e", 70)]),
        append("a2", "d", None, 60, 200, "info"),
        append("a3", "e", None, 61, 200, "info"),
        append("a4", "f", None, 62, 63, "fail"),
        read("r1", 1, ["b", "c", "e"], 80, 90, tail=4),
        tail("t1", 4, 91, 92),
        final(["a", "b", "c", "e"]),
    ]


def test_a_clean_history_passes_every_log_checker() -> None:
    assert check_log(clean_log()) == []


def test_an_empty_history_passes() -> None:
    assert check_log([]) == [] and check_agent([]) == []


def test_a_lost_write_is_flagged_with_the_append_and_the_final_read() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a1", "y", 1, 2, 3), final(["x"])]
    assert fired(h, LOG_CHECKERS) == {"lost_writes"}
    anomaly = only(lost_writes(h))
    assert anomaly.ops == (1, 2) and "'y'" in anomaly.message and "missing" in anomaly.message


def test_an_ok_append_at_another_position_than_acknowledged() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a2", "y", 0, 0, 1), final(["x", "y"])]
    assert "acknowledged at position 0 is at 1" in only(lost_writes(h)).message


def test_a_duplicate_payload_at_two_positions() -> None:
    h = [*clean_log()[:-1], final(["a", "b", "c", "e", "b"])]
    assert fired(h, LOG_CHECKERS) == {"total_order", "lost_writes"}
    anomaly = only(total_order(h))
    assert "payload 'b'" in anomaly.message and "2 positions" in anomaly.message
    assert "applied 2 times" in only(lost_writes(h)).message


def test_two_payloads_at_one_position() -> None:
    """A reader saw one payload where every other observation sees another (a bit flip)."""
    h = clean_log()
    h[9] = read("r1", 1, ["b", "c", "z"], 80, 90, tail=4)
    assert fired(h, LOG_CHECKERS) == {"total_order"}
    anomaly = only(total_order(h))
    assert "position 3 holds 2 payloads" in anomaly.message
    assert anomaly.ops == (5, 9)  # the subscription saw 'e' first, the read saw 'z'


def test_a_read_that_is_not_a_gap_free_slice() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a1", "y", 1, 2, 3), final(["x", "y"])]
    gappy = op("r1", "read", 4, 5, start=0, entries=[[1, "y"]], next=2, tail=2)
    assert fired([*h, gappy], LOG_CHECKERS) == {"total_order"}
    assert "not gap-free" in only(total_order([*h, gappy])).message
    empty = op("r1", "read", 4, 5, start=1, entries=[], next=1, tail=2)
    assert (
        "returned nothing from 1 although its tail is 2" in only(total_order([*h, empty])).message
    )
    holey = op("final", "final_read", 9, 10, entries=[[0, "x"], [2, "y"]])
    assert "total_order" in fired([*h[:2], holey], LOG_CHECKERS)


def test_a_read_with_a_type_filter_may_skip_positions() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a1", "y", 1, 2, 3), final(["x", "y"])]
    filtered = op("r1", "read", 4, 5, start=0, entries=[[1, "y"]], next=2, tail=2, types=["t"])
    assert check_log([*h, filtered]) == []


def test_a_fail_append_that_appears() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a2", "f", None, 2, 3, "fail"), final(["x", "f"])]
    assert fired(h, LOG_CHECKERS) == {"lost_writes"}
    anomaly = only(lost_writes(h))
    assert "failed append 'f'" in anomaly.message and anomaly.ops == (1, 2)


def test_an_info_append_that_appears_twice() -> None:
    h = [append("a1", "x", 0, 0, 1), append("a2", "i", None, 2, 30, "info"), final(["x", "i", "i"])]
    assert fired(h, LOG_CHECKERS) == {"lost_writes", "total_order"}
    assert "info append 'i' was applied 2 times" in only(lost_writes(h)).message


def test_an_entry_no_append_wrote() -> None:
    h = [append("a1", "x", 0, 0, 1), final(["x", "ghost"])]
    assert fired(h, LOG_CHECKERS) == {"lost_writes"}
    assert "'ghost'" in only(lost_writes(h)).message


def test_appends_without_a_final_read_cannot_be_checked() -> None:
    h = [append("a1", "x", 0, 0, 1)]
    assert "no ok final_read" in only(lost_writes(h)).message


def test_a_reordering_violates_real_time() -> None:
    h = [append("a1", "x", 1, 0, 10), append("a2", "y", 0, 20, 30), final(["y", "x"])]
    assert fired(h, LOG_CHECKERS) == {"real_time"}
    anomaly = only(real_time(h))
    assert anomaly.ops == (0, 1) and "'x' completed at position 1" in anomaly.message


def test_concurrent_appends_may_land_in_either_order() -> None:
    h = [append("a1", "x", 1, 0, 10), append("a2", "y", 0, 10, 30), final(["y", "x"])]
    assert check_log(h) == []  # equal stamps are concurrent


def test_an_info_append_that_landed_is_held_to_real_time() -> None:
    h = [append("a1", "x", 1, 0, 10), append("a2", "y", None, 20, 900, "info"), final(["y", "x"])]
    assert only(real_time(h)).ops == (0, 1)


def test_a_stale_read_misses_an_acknowledged_append() -> None:
    h = [append("a1", "x", 0, 0, 10), read("r1", 0, [], 20, 30, tail=0), final(["x"])]
    assert fired(h, LOG_CHECKERS) == {"linearizable_reads"}
    anomaly = only(linearizable_reads(h))
    assert anomaly.ops == (0, 1) and "stale read" in anomaly.message


def test_a_stale_check_tail_and_an_explicitly_stale_read() -> None:
    h = [append("a1", "x", 0, 0, 10), tail("t1", 0, 20, 30), final(["x"])]
    assert "stale check_tail" in only(linearizable_reads(h)).message
    opted_in = op("r1", "read", 20, 30, start=0, entries=[], tail=0, stale=True)
    assert linearizable_reads([*h[:1], opted_in, h[2]]) == []


def test_a_read_seeing_what_another_reader_saw_is_required() -> None:
    h = [
        append("a1", "x", 0, 0, 100),  # concurrent with both reads
        tail("t1", 1, 10, 20),
        tail("t2", 0, 30, 40),
        final(["x"]),
    ]
    assert "had seen 1 entries" in only(linearizable_reads(h)).message


def test_a_tail_going_backwards() -> None:
    h = [append("a1", "x", 0, 0, 100), tail("t1", 1, 10, 20), tail("t1", 0, 30, 40), final(["x"])]
    assert fired(h, LOG_CHECKERS) == {"linearizable_reads"}
    anomaly = only(linearizable_reads(h))
    assert "tail went backwards for 't1'" in anomaly.message and anomaly.ops == (1, 2)


def test_a_read_entry_that_disappears() -> None:
    h = [
        append("a1", "x", 0, 0, 1),
        append("a2", "y", None, 2, 500, "info"),
        read("r1", 0, ["x", "y"], 10, 20, tail=2),
        final(["x"]),
    ]
    assert fired(h, LOG_CHECKERS) == {"linearizable_reads"}
    assert "not in the final read" in only(linearizable_reads(h)).message
    shrunk = [*h[:2], tail("t1", 2, 10, 20), h[3]]
    assert "entries disappeared" in only(linearizable_reads(shrunk)).message


def test_a_gap_in_a_subscription() -> None:
    h = clean_log()
    h[5] = sub("s1", 0, [(0, "a", 11), (2, "c", 41), (3, "e", 70)])
    assert fired(h, LOG_CHECKERS) == {"subscriptions"}
    assert "gap: skipped 1" in only(subscriptions(h)).message
    late = sub("s1", 1, [(2, "c", 41)])
    assert "skipped 1" in only(subscriptions([*h[:5], late, *h[6:]])).message


def test_a_duplicate_delivery() -> None:
    h = clean_log()
    h[5] = sub("s1", 0, [(0, "a", 11), (1, "b", 21), (1, "b", 22), (2, "c", 41)])
    assert fired(h, LOG_CHECKERS) == {"subscriptions"}
    assert "delivered 1 twice" in only(subscriptions(h)).message


def test_deliveries_out_of_order_and_disagreeing_with_the_final_read() -> None:
    h = clean_log()
    h[5] = sub("s1", 0, [(1, "b", 21), (0, "a", 22)])
    assert "out of order" in only(subscriptions(h)).message
    h[5] = sub("s1", 3, [(3, "q", 80)])
    assert fired(h, LOG_CHECKERS) == {"subscriptions", "total_order"}
    assert "delivered 'q' at 3" in only(subscriptions(h)).message


def test_buses_are_checked_separately() -> None:
    h = [
        op("a1", "append", 0, 1, payload="x", position=0, bus="one"),
        op("a1", "append", 2, 3, payload="y", position=0, bus="two"),
        op("final", "final_read", 4, 5, entries=[[0, "x"]], bus="one"),
        op("final", "final_read", 4, 5, entries=[[0, "y"]], bus="two"),
    ]
    assert check_log(h) == []


def test_a_malformed_record_is_a_history_error_not_an_anomaly() -> None:
    bad = {"process": "a1", "op": "append", "id": 1, "invoke": 0, "complete": 1, "outcome": "ok"}
    with pytest.raises(HistoryError, match=r"history\[0\].*'payload' must be a string"):
        check_log([bad])


# --- availability ------------------------------------------------------------------------------


def test_availability_per_fault_window() -> None:
    h = [
        op("nemesis", "fault", 100, 101, fault="kill", targets=["n2"], window=[100, 200]),
        append("a1", "x", 0, 50, 60),  # before the window
        append("a1", "y", 1, 110, 150),
        append("a2", "z", None, 120, 121, "fail"),
        append("a3", "w", None, 150, 400, "info"),
        tail("t1", 2, 190, 260),  # invoked in the window, the first ok after it
        sub("s1", 0, [(0, "x", 60)]),  # lives the whole run: not counted
        op("nemesis", "fault", 300, 310, fault="pause", targets=["n1"]),  # window = its op
        op("nemesis", "fault", 320, 330, "fail", fault="kill", targets=["n3"]),  # not applied
        final(["x", "y"], t=500),
    ]
    assert availability(h) == [
        WindowStats(0, "kill", ("n2",), 100, 200, ok=2, fail=1, info=1, recovery_ns=60),
        WindowStats(7, "pause", ("n1",), 300, 310, ok=0, fail=0, info=0, recovery_ns=None),
    ]
    assert availability(h)[0].total == 4


# --- agent buses: hand-made --------------------------------------------------------------------

BUS = "agent/chaos-1"
KILL = {"fault": "kill-agent", "targets": [f"{BUS}:executor"]}


@dataclass
class Bus:
    """A hand-built agent bus: typed entries at consecutive positions."""

    name: str = BUS
    entries: list[list[Any]] = field(default_factory=list)

    def add(self, entry: e.AgentEntry) -> int:
        kind, body = entry.to_entry()
        self.entries.append([len(self.entries), kind, body])
        return len(self.entries) - 1

    def intent(self, n: int = 0) -> int:
        return self.add(e.Intent(e.ToolCall("shell", {"command": f"echo {n}"}, call_id=f"c{n}")))

    def step(self, text: str = "go") -> None:
        self.add(e.InfIn("m", ({"role": "user", "content": text},)))
        self.add(e.InfOut("m", {"role": "assistant", "content": text}))

    def record(self, t: int = 5000) -> Op:
        return op("final", "final_bus", t, t + 1, bus=self.name, entries=self.entries)


def ledger(*lines: str, t: int = 5000) -> Op:
    return op("final", "ledger", t, t + 1, lines=list(lines))


def fault(t: int = 100, **kwargs: Any) -> Op:
    return op("nemesis", "fault", t, t + 1, **{**KILL, **kwargs})


@dataclass
class Run:
    """A finished agent run: ran intent i1, vetoed i2, i3 in doubt after an executor kill."""

    bus: Bus
    i1: int
    i2: int
    i3: int
    input: int
    lines: list[str]

    def history(self, *extra_lines: str, kills: int = 1) -> list[Op]:
        return [
            *[fault(t=100 + k) for k in range(kills)],
            self.bus.record(),
            ledger(*self.lines, *extra_lines),
        ]


def agent_run(*, finish: bool = True, surface: bool = True) -> Run:
    b = Bus()
    task = b.add(e.AgentInput("keep a ledger"))
    b.step()
    i1 = b.intent(1)
    b.add(e.Vote(i1, "rules", "rule", "fine", approve=True))
    b.add(e.Commit(i1, "approved"))
    b.add(e.ExecStart(i1))
    b.add(e.Result(i1, ok=True, output="one"))
    b.step()
    b.add(e.AgentInput("and another thing"))  # arrives mid-loop: answered by the same loop
    i2 = b.intent(2)
    b.add(e.Abort(i2, "vetoed"))
    b.step()
    i3 = b.intent(3)
    b.add(e.Commit(i3, "approved"))
    b.add(e.ExecStart(i3))  # the executor is killed here
    if surface:
        b.add(e.Result(i3, ok=False, error="interrupted", in_doubt=True))
    b.step()
    if finish:
        b.add(e.AgentOutput("done", input_id=task))
    return Run(b, i1, i2, i3, task, [f"{BUS} {i1} t1", f"{BUS} {i3} t3"])


def test_a_clean_agent_run_passes_every_agent_checker() -> None:
    assert check_agent(agent_run().history()) == []


def test_a_vetoed_intent_executed() -> None:
    run = agent_run()
    start = run.bus.add(e.ExecStart(run.i2))
    run.bus.add(e.Result(run.i2, ok=True))
    h = run.history()
    assert fired(h, AGENT_CHECKERS) == {"no_vetoed_execution"}
    ran, result = no_vetoed_execution(h)  # the start and the result are both reported
    assert f"exec_start at {start}" in ran.message and "aborted" in ran.message
    assert f"result at {start + 1}" in result.message
    assert ran.ops == result.ops == (1,)


def test_a_vetoed_intent_in_the_ledger() -> None:
    run = agent_run()
    h = run.history(f"{BUS} {run.i2} t2")
    assert fired(h, AGENT_CHECKERS) == {"no_vetoed_execution", "at_most_once"}
    assert f"ledger line {BUS} {run.i2} t2: ran, but" in only(no_vetoed_execution(h)).message
    assert "without an exec_start" in only(at_most_once(h)).message


def test_an_undecided_intent_executed() -> None:
    run = agent_run()
    i4 = run.bus.intent(4)
    run.bus.add(e.ExecStart(i4))
    run.bus.add(e.Result(i4, ok=True))
    anomalies = no_vetoed_execution(run.history())
    assert len(anomalies) == 2 and all("not decided before it" in a.message for a in anomalies)
    run.bus.add(e.Commit(i4, "too late"))
    h = run.history()
    assert fired(h, AGENT_CHECKERS) == {"no_vetoed_execution"}
    assert all("not decided before it" in a.message for a in no_vetoed_execution(h))


def test_an_unreadable_execution_entry_is_reported() -> None:
    run = agent_run()
    run.bus.entries.append([len(run.bus.entries), "exec_start", {"intent_id": "x"}])
    assert "exec_start at" in only(no_vetoed_execution(run.history())).message
    assert "names no intent" in only(no_vetoed_execution(run.history())).message


def test_a_ledger_line_of_a_bus_never_read() -> None:
    run = agent_run()
    h = run.history("agent/other 3 t9")
    assert "no final_bus record" in only(no_vetoed_execution(h)).message


def test_a_double_execution() -> None:
    run = agent_run()
    run.bus.add(e.ExecStart(run.i1))
    h = run.history()
    assert fired(h, AGENT_CHECKERS) == {"at_most_once"}
    assert f"intent {run.i1} started 2 times" in only(at_most_once(h)).message
    h = agent_run().history(f"{BUS} {run.i1} t1-again")
    assert fired(h, AGENT_CHECKERS) == {"at_most_once"}
    assert f"intent {run.i1} ran 2 times" in only(at_most_once(h)).message


def test_two_results_for_one_intent() -> None:
    run = agent_run()
    run.bus.add(e.Result(run.i1, ok=True, output="again"))
    assert "has 2 results" in only(at_most_once(run.history())).message


def test_an_in_doubt_action_not_surfaced() -> None:
    run = agent_run(surface=False)
    h = run.history()
    assert fired(h, AGENT_CHECKERS) == {"in_doubt_surfaced"}
    anomaly = only(in_doubt_surfaced(h))
    assert f"intent {run.i3} started at" in anomaly.message and "never reported" in anomaly.message
    assert anomaly.ops == (0, 1)  # the kill and the bus


def test_an_in_doubt_result_without_a_kill() -> None:
    h = agent_run().history(kills=0)
    assert fired(h, AGENT_CHECKERS) == {"in_doubt_surfaced"}
    assert "but only 0 executor kill(s)" in only(in_doubt_surfaced(h)).message


def test_a_kill_that_failed_or_hit_another_component_does_not_count() -> None:
    run = agent_run()
    h = [
        op("nemesis", "fault", 1, 2, "fail", **KILL),
        fault(targets=[f"{BUS}:driver", "agent/other:executor"]),
        *run.history(kills=0),
    ]
    assert "but only 0 executor kill(s)" in only(in_doubt_surfaced(h)).message
    assert in_doubt_surfaced([fault(targets=[BUS]), *run.history(kills=0)]) == []


def test_an_in_doubt_result_for_an_action_never_started() -> None:
    run = agent_run()
    i4 = run.bus.intent(4)
    run.bus.add(e.Commit(i4, "ok"))
    run.bus.add(e.Result(i4, ok=False, error="interrupted", in_doubt=True))
    anomalies = in_doubt_surfaced(run.history(kills=2))
    assert "no exec_start before it" in only(anomalies).message


def test_an_unfinished_task() -> None:
    run = agent_run(finish=False)
    h = run.history()
    assert fired(h, AGENT_CHECKERS) == {"tasks_finished"}
    messages = [a.message for a in tasks_finished(h)]
    assert len(messages) == 2  # the task, and the input buffered into its unfinished loop
    assert f"agent_input at {run.input} has no agent_output" in messages[0]


def test_input_after_the_last_inference_needs_its_own_loop() -> None:
    run = agent_run()
    late = run.bus.add(e.AgentInput("one more"))
    assert f"at {late}" in only(tasks_finished(run.history())).message
    run.bus.step()
    run.bus.add(e.AgentOutput("done too", input_id=late))
    assert tasks_finished(run.history()) == []


# --- generated log histories -------------------------------------------------------------------


@dataclass
class _Pending:
    kind: str
    invoke: int
    fields: dict[str, Any]
    applied: bool = False
    outcome: str = "ok"


@st.composite
def log_histories(draw: st.DrawFn) -> list[Op]:
    """Clients running concurrently against one correct in-memory log.

    Each step either invokes an op, applies it to the log (its linearization point: the state
    is read or changed there), or completes it; a subscriber delivers the next entry. Appends
    may fail (never applied) or lose their acknowledgement (info). Ops pending at the end are
    info. Every history produced is correct by construction.
    """
    log: list[str] = []
    clients = [f"c{k}" for k in range(draw(st.integers(1, 4)))]
    pending: dict[str, _Pending | None] = dict.fromkeys(clients)
    history: list[Op] = []
    sub_start = draw(st.integers(0, 2))
    deliveries: list[list[Any]] = []
    serial = itertools.count()
    clock = itertools.count(1)
    for _ in range(draw(st.integers(5, 60))):
        who = draw(st.sampled_from([*clients, "sub"]))
        now = next(clock)
        if who == "sub":
            pos = sub_start + len(deliveries)
            if pos < len(log):
                deliveries.append([pos, log[pos], now])
            continue
        p = pending[who]
        if p is None:
            kind = draw(st.sampled_from(["append", "append", "read", "check_tail"]))
            fields = {"payload": f"{who}-{next(serial)}"} if kind == "append" else {}
            pending[who] = _Pending(kind, now, fields)
        elif not p.applied:
            p.applied = True
            if p.kind == "append":
                if draw(st.integers(0, 9)) == 0:
                    p.applied, p.outcome = False, "fail"
                    _complete(history, who, p, now)
                    pending[who] = None
                    continue
                p.fields["position"] = len(log)
                log.append(p.fields["payload"])
            elif p.kind == "read":
                start = draw(st.integers(0, len(log)))
                entries = [[q, log[q]] for q in range(start, min(len(log), start + 4))]
                p.fields.update(start=start, entries=entries, tail=len(log))
                p.fields["next"] = start + len(entries)
            else:
                p.fields["tail"] = len(log)
        else:
            if p.kind == "append" and draw(st.integers(0, 9)) == 0:
                p.outcome = "info"  # the acknowledgement was lost
            _complete(history, who, p, now)
            pending[who] = None
    end = next(clock)
    for who, p in pending.items():
        if p is not None:
            p.outcome = "info"
            _complete(history, who, p, end)
    history.append(
        make_op("sub", "subscribe", 0, 0, end, "info", start=sub_start, deliveries=deliveries)
    )
    history.append(
        make_op(
            "final",
            "final_read",
            0,
            end + 1,
            end + 2,
            "ok",
            entries=list(map(list, enumerate(log))),
        )
    )
    return history


def _complete(history: list[Op], who: str, p: _Pending, now: int) -> None:
    fields = dict(p.fields)
    if p.outcome != "ok":
        fields = {"payload": fields["payload"]} if p.kind == "append" else {}
    history.append(make_op(who, p.kind, len(history), p.invoke, now, p.outcome, **fields))  # type: ignore[arg-type]


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FAST, max_examples=100)
@given(log_histories())
def test_histories_of_a_correct_log_pass_every_checker(history: list[Op]) -> None:
    assert check_log(history) == []
    assert len(availability(history)) == 0


def _ok_appends(h: list[Op]) -> list[int]:
    return [i for i, o in enumerate(h) if o["op"] == "append" and o["outcome"] == "ok"]


def _final(h: list[Op]) -> Op:
    return next(o for o in h if o["op"] == "final_read")


def _lose_last(h: list[Op], data: st.DataObject) -> bool:
    entries = _final(h)["entries"]
    acked = {h[i]["payload"] for i in _ok_appends(h)}
    if not entries or entries[-1][1] not in acked:
        return False
    entries.pop()
    return True


def _duplicate(h: list[Op], data: st.DataObject) -> bool:
    entries = _final(h)["entries"]
    if not entries:
        return False
    entries.append([len(entries), data.draw(st.sampled_from(entries))[1]])
    return True


def _fail_appears(h: list[Op], data: st.DataObject) -> bool:
    acked = _ok_appends(h)
    if not acked:
        return False
    target = h[data.draw(st.sampled_from(acked))]
    target["outcome"] = "fail"
    del target["position"]
    return True


def _info_twice(h: list[Op], data: st.DataObject) -> bool:
    info = [o for o in h if o["op"] == "append" and o["outcome"] == "info"]
    if not info:
        return False
    payload = data.draw(st.sampled_from(info))["payload"]
    entries = _final(h)["entries"]
    entries.extend([len(entries) + k, payload] for k in range(2))
    return True


def _stale(h: list[Op], data: st.DataObject) -> bool:
    acked = [h[i]["complete"] for i in _ok_appends(h)]
    victims = [
        o
        for o in h
        if o["op"] in ("read", "check_tail")
        and o["outcome"] == "ok"
        and any(t < o["invoke"] for t in acked)
    ]
    if not victims:
        return False
    victim = data.draw(st.sampled_from(victims))
    victim["tail"] = 0
    if victim["op"] == "read":
        victim["entries"], victim["next"] = [], victim["start"]
    return True


def _reorder(h: list[Op], data: st.DataObject) -> bool:
    acked = [h[i] for i in _ok_appends(h)]
    pairs = [(a, b) for a in acked for b in acked if a["complete"] < b["invoke"]]
    if not pairs:
        return False
    a, b = data.draw(st.sampled_from(pairs))
    a["position"], b["position"] = b["position"], a["position"]
    swap = {a["payload"]: b["payload"], b["payload"]: a["payload"]}
    for o in h:
        for entry in o.get("entries", o.get("deliveries", ())):
            entry[1] = swap.get(entry[1], entry[1])
    return True


def _overwrite(h: list[Op], data: st.DataObject) -> bool:
    reads = [o for o in h if o["op"] == "read" and o["outcome"] == "ok" and o["entries"]]
    if not reads:
        return False
    entry = data.draw(st.sampled_from(data.draw(st.sampled_from(reads))["entries"]))
    entry[1] = "flipped"
    return True


def _backwards(h: list[Op], data: st.DataObject) -> bool:
    last: dict[str, Op] = {}
    pairs = []
    for o in h:
        if o["op"] in ("read", "check_tail") and o["outcome"] == "ok":
            before = last.get(o["process"])
            if before is not None and before["tail"] >= 1:
                pairs.append((before, o))
            last[o["process"]] = o
    if not pairs:
        return False
    before, after = data.draw(st.sampled_from(pairs))
    after["tail"] = before["tail"] - 1
    if after["op"] == "read":
        after["entries"] = [x for x in after["entries"] if x[0] < after["tail"]]
        after["next"] = after["start"] + len(after["entries"])
    return True


def _sub_gap(h: list[Op], data: st.DataObject) -> bool:
    deliveries = next(o for o in h if o["op"] == "subscribe")["deliveries"]
    if len(deliveries) < 2:
        return False
    del deliveries[data.draw(st.integers(0, len(deliveries) - 2))]
    return True


def _sub_dup(h: list[Op], data: st.DataObject) -> bool:
    deliveries = next(o for o in h if o["op"] == "subscribe")["deliveries"]
    if not deliveries:
        return False
    k = data.draw(st.integers(0, len(deliveries) - 1))
    deliveries.insert(k, list(deliveries[k]))
    return True


MUTATIONS: dict[str, tuple[Callable[[list[Op], st.DataObject], bool], str]] = {
    "lost write": (_lose_last, "lost_writes"),
    "duplicate": (_duplicate, "total_order"),
    "fail appears": (_fail_appears, "lost_writes"),
    "info twice": (_info_twice, "lost_writes"),
    "stale read": (_stale, "linearizable_reads"),
    "reorder": (_reorder, "real_time"),
    "overwrite": (_overwrite, "total_order"),
    "tail backwards": (_backwards, "linearizable_reads"),
    "subscription gap": (_sub_gap, "subscriptions"),
    "duplicate delivery": (_sub_dup, "subscriptions"),
}


@pytest.mark.parametrize("name", MUTATIONS)
@FAST
@given(history=log_histories(), data=st.data())
def test_a_planted_fault_is_caught_by_its_checker(
    name: str, history: list[Op], data: st.DataObject
) -> None:
    mutate, checker = MUTATIONS[name]
    history = copy.deepcopy(history)
    if not mutate(history, data):
        return  # not applicable to this history (counted below)
    note(f"{name}: {history}")
    anomalies = check_log(history)
    assert checker in {a.checker for a in anomalies}, anomalies


@pytest.mark.parametrize("name", MUTATIONS)
def test_every_planted_fault_applies_to_some_generated_history(name: str) -> None:
    """Guards the test above against vacuous passes: each mutation is exercised."""
    applied = []

    @settings(max_examples=20, deadline=None, database=None)
    @given(history=log_histories(), data=st.data())
    def probe(history: list[Op], data: st.DataObject) -> None:
        applied.append(MUTATIONS[name][0](copy.deepcopy(history), data))

    probe()
    assert any(applied)


# --- generated agent runs ----------------------------------------------------------------------


@st.composite
def agent_runs(draw: st.DrawFn) -> tuple[list[Op], dict[str, Any]]:
    """One agent bus as a correct runtime writes it: each intent committed or aborted; a
    committed one started, then either finished or interrupted by an executor kill (reported
    in doubt by the restarted executor; its ledger line may or may not have been written).
    Extra tasks may arrive mid-loop. Returns the history and what was planted where."""
    b = Bus()
    kills: list[Op] = []
    lines: list[str] = []
    facts: dict[str, list[int]] = {"aborted": [], "started": [], "in_doubt": []}
    loops = draw(st.integers(1, 3))
    for loop in range(loops):
        task = b.add(e.AgentInput(f"task {loop}"))
        b.step()
        for n in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                b.add(e.AgentInput("more"))
            intent = b.intent(n)
            if not draw(st.booleans()):
                b.add(e.Abort(intent, "vetoed"))
                facts["aborted"].append(intent)
                b.step()
                continue
            b.add(e.Commit(intent, "ok"))
            b.add(e.ExecStart(intent))
            facts["started"].append(intent)
            outcome = draw(st.sampled_from(["ok", "error", "killed"]))
            if outcome == "killed":
                kills.append(fault(t=len(kills)))
                b.add(e.Result(intent, ok=False, error="interrupted", in_doubt=True))
                facts["in_doubt"].append(intent)
            else:
                error = None if outcome == "ok" else "boom"
                b.add(e.Result(intent, ok=error is None, error=error))
            if outcome != "killed" or draw(st.booleans()):
                lines.append(f"{BUS} {intent} tok{intent}")
            b.step()
        b.add(e.AgentOutput("done", input_id=task))
    facts["ledger"] = [int(line.split()[1]) for line in lines]
    return [*kills, b.record(), ledger(*lines)], facts


@FAST
@given(agent_runs())
def test_correct_agent_runs_pass_every_checker(run: tuple[list[Op], dict[str, Any]]) -> None:
    assert check_agent(run[0]) == []


def _bus_entries(h: list[Op]) -> list[list[Any]]:
    return next(o for o in h if o["op"] == "final_bus")["entries"]


def _add(h: list[Op], entry: e.AgentEntry) -> None:
    entries = _bus_entries(h)
    entries.append([len(entries), *entry.to_entry()])


@FAST
@given(agent_runs(), st.data())
def test_a_planted_agent_fault_is_caught_by_its_checker(
    run: tuple[list[Op], dict[str, Any]], data: st.DataObject
) -> None:
    history, facts = copy.deepcopy(run)
    choices = ["unfinished"]
    if facts["aborted"]:
        choices.append("vetoed")
    if facts["started"]:
        choices.append("twice")
    if facts["in_doubt"]:
        choices.append("not surfaced")
    if facts["ledger"]:
        choices.append("ledger twice")
    fault_kind = data.draw(st.sampled_from(choices))
    if fault_kind == "vetoed":
        intent = data.draw(st.sampled_from(facts["aborted"]))
        _add(history, e.ExecStart(intent))
        _add(history, e.Result(intent, ok=True))
        expected = "no_vetoed_execution"
    elif fault_kind == "twice":
        _add(history, e.ExecStart(data.draw(st.sampled_from(facts["started"]))))
        expected = "at_most_once"
    elif fault_kind == "ledger twice":
        intent = data.draw(st.sampled_from(facts["ledger"]))
        history[-1]["lines"].append(f"{BUS} {intent} again")
        expected = "at_most_once"
    elif fault_kind == "not surfaced":
        intent = data.draw(st.sampled_from(facts["in_doubt"]))
        entries = _bus_entries(history)
        entries[:] = [x for x in entries if not (x[1] == "result" and x[2]["intent_id"] == intent)]
        expected = "in_doubt_surfaced"
    else:
        entries = _bus_entries(history)
        entries[:] = [x for x in entries if x[1] != "agent_output"]
        expected = "tasks_finished"
    assert expected in {a.checker for a in check_agent(history)}


# --- scale -------------------------------------------------------------------------------------


def _big_history(n: int) -> list[Op]:
    """``n`` sequential appends, each followed by a check_tail (4 in 5) or a 10-entry read
    (1 in 5), one subscription delivering everything, and the final read: 2n + 2 ops."""
    h: list[Op] = []
    payloads = [f"p{k}" for k in range(n)]

    def record(process: str, kind: str, k: int, t0: int, t1: int, **fields: Any) -> Op:
        base = {"process": process, "op": kind, "id": k, "invoke": t0, "complete": t1}
        return {**base, "outcome": "ok", **fields}

    for k in range(n):
        t = 10 * k
        h.append(record(f"a{k % 8}", "append", k, t, t + 15, payload=payloads[k], position=k))
        if k % 5:
            h.append(record(f"t{k % 4}", "check_tail", k, t + 16, t + 17, tail=k + 1))
        else:
            start = max(0, k - 9)
            entries = [[q, payloads[q]] for q in range(start, k + 1)]
            h.append(
                record("r", "read", k, t + 16, t + 18, start=start, entries=entries, tail=k + 1)
            )
    deliveries = [[q, payloads[q], 10 * q + 15] for q in range(n)]
    h.append(record("s", "subscribe", 0, 0, 10 * n + 20, start=0, deliveries=deliveries))
    entries = [[q, payloads[q]] for q in range(n)]
    h.append(record("f", "final_read", 0, 10 * n + 30, 10 * n + 31, entries=entries))
    return h


@pytest.mark.timeout(60)  # a quadratic checker would take hours on this
def test_a_100k_op_history_is_checked_in_near_linear_time() -> None:
    h = _big_history(50_000)
    assert len(h) == 100_002
    began = time.perf_counter()
    assert check_log(h) == []
    print(f"check_log on {len(h)} ops: {time.perf_counter() - began:.2f}s")
    del h[-1]["entries"][1234]  # one lost write in the middle
    assert "position 1234" in only(lost_writes(h)).message
