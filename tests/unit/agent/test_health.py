"""Health signals (agent/introspection/health.py): each fires on its pattern, stays quiet
otherwise, and
every finding is a valid health entry citing the positions it is about."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_digest import Bus  # the hand-built bus of the digest tests

from logact.agent.core import entries as e
from logact.agent.introspection.health import (
    Status,
    Thresholds,
    check,
    status,
    unknown_bus,
    worst,
)

MINUTE = 60_000


def signals(bus: Bus, now_ms: int | None = None, **thresholds: float) -> dict[str, list[int]]:
    now = bus.state.entries[-1][0].ts if now_ms is None else now_ms
    found = check(bus.state, now, Thresholds(**thresholds))  # type: ignore[arg-type]
    e.Health("test", bus.state.next - 1, tuple(found))  # every finding is a valid entry
    return {f["signal"]: f["positions"] for f in found}


def test_a_quiet_healthy_bus_has_no_findings() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    for tool in ("a", "b", "c", "a"):
        bus.model()
        bus.action(tool, "ok")
    bus.add(e.AgentOutput("done"))
    assert signals(bus, now_ms=bus.state.entries[-1][0].ts + 60 * MINUTE) == {}


def test_no_progress_needs_an_open_task_and_silence() -> None:
    bus = Bus()
    task = bus.add(e.AgentInput("task"))
    bus.action("a", "ok")
    result_pos = bus.state.next - 1
    quiet = bus.state.entries[-1][0].ts
    assert "no_progress" not in signals(bus, quiet + 4 * MINUTE)
    assert signals(bus, quiet + 6 * MINUTE)["no_progress"] == [task, result_pos]
    bus.add(e.AgentOutput("done"))
    assert "no_progress" not in signals(bus, quiet + 60 * MINUTE)


def test_the_same_action_over_and_over_is_reported_once_per_run() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    first = [bus.action("ls", "ok") for _ in range(3)]
    bus.action("cat", "ok")
    second = [bus.action("ls", "ok") for _ in range(2)]
    found = check(bus.state, 0)
    repeats = [f["positions"] for f in found if f["signal"] == "repeated_action"]
    assert repeats == [first]
    assert second  # two in a row is below the threshold


def test_an_error_streak_counts_failures_and_vetoes_at_the_end() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    bus.action("a", "ok")
    streak = [bus.action("b", "failed"), bus.action("c", "aborted"), bus.action("d", "failed")]
    assert signals(bus)["error_streak"] == streak
    bus.action("e", "ok")
    assert "error_streak" not in signals(bus)


def test_rising_cost_compares_the_last_third_of_calls_with_the_first() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    for prompt in (100, 100, 120, 150, 250, 300):
        bus.model(prompt, 0)
    assert "rising_cost" in signals(bus)
    flat = Bus()
    for _ in range(6):
        flat.model(100, 0)
    assert "rising_cost" not in signals(flat)


def test_a_slow_action_stands_out_from_its_peers_finished_or_still_running() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    for _ in range(3):
        bus.action("shell", "ok")  # 7 ms each
    slow = bus.add(e.Intent(e.ToolCall("shell", {"command": "slow"})))
    bus.add(e.Commit(slow, "ok"))
    bus.add(e.ExecStart(slow))
    bus.add(e.Result(slow, ok=True, output="", duration_ms=500))
    assert signals(bus)["slow_action"] == [slow]
    running = bus.add(e.Intent(e.ToolCall("shell", {"command": "hang"})))
    bus.add(e.Commit(running, "ok"))
    bus.add(e.ExecStart(running))
    start_ts = bus.state.entries[-1][0].ts
    assert running in signals(bus, start_ts + 10_000)["slow_action"]
    assert running not in signals(bus, start_ts + 1)["slow_action"]


def test_an_in_doubt_action_is_an_alert() -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    doubt = bus.action("pay", "in doubt")
    assert signals(bus)["in_doubt"] == [doubt]


outcomes = st.sampled_from(["ok", "failed", "aborted", "in doubt", "committed", "undecided"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), outcomes), max_size=25),
    st.integers(0, 10 * MINUTE),
)
def test_any_bus_gives_valid_findings_citing_real_positions(
    actions: list[tuple[str, str]], later: int
) -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    for tool, outcome in actions:
        bus.model()
        bus.action(tool, outcome)
    found = check(bus.state, bus.state.entries[-1][0].ts + later)
    e.Health("p", bus.state.next - 1, tuple(found))
    for finding in found:
        assert all(0 <= p < bus.state.next for p in finding["positions"])


def test_a_bus_status_is_its_worst_finding_in_nagios_codes() -> None:
    def finding(severity: str) -> dict[str, object]:
        return {"signal": "s", "severity": severity, "detail": "d", "positions": []}

    assert status([]) is Status.OK
    assert status([finding("warn")]) is Status.WARNING
    assert status([finding("warn"), finding("alert")]) is Status.CRITICAL
    assert status([unknown_bus("agent/x")]) is Status.UNKNOWN
    assert [int(s) for s in Status] == [0, 1, 2, 3]


def test_critical_outranks_unknown_which_outranks_warning() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARNING]) is Status.WARNING
    assert worst([Status.WARNING, Status.UNKNOWN, Status.OK]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.CRITICAL, Status.WARNING]) is Status.CRITICAL
