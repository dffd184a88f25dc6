"""The supervisor's core (agent/introspection/supervisor.py): when to advise, and gossip that tells
each
agent exactly its peers' completed work, once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_digest import Bus  # the hand-built bus of the digest tests

from logact.agent.core import entries as e
from logact.agent.introspection.supervisor import (
    ADVICE,
    GOSSIP,
    GOSSIP_HEADER,
    AdviceThresholds,
    costly_repetition,
    gossip,
    plain_advice,
    was_advised,
)

SLOW = AdviceThresholds(repeat=3, min_ms=500, share=0.5)


def slow_bus(durations: list[int], *, answered: bool = False) -> Bus:
    """A task (at 1 s) whose shell actions took ``durations``."""
    bus = Bus()
    bus.add(e.AgentInput("hash every folder"), ts=1000)
    for duration in durations:
        bus.model()
        bus.action("shell", "ok", duration_ms=duration, command="python3 slow_sha.py")
    if answered:
        bus.add(e.AgentOutput("done"))
    return bus


def test_costly_repetition_cites_the_slow_runs_of_one_tool() -> None:
    bus = slow_bus([900, 1100, 1000])
    finding = costly_repetition(bus.state, now_ms=1000 + 3500, t=SLOW)
    assert finding is not None and finding["signal"] == "costly_repetition"
    shell = sorted(r.position for r in bus.state.intents.values())
    assert finding["positions"] == shell
    assert "3 shell actions took a median of 1.0 s" in finding["detail"]
    assert "consider a faster method" in plain_advice(finding)
    e.Health("test", bus.state.next - 1, (finding,))  # a valid health finding


def test_costly_repetition_stays_quiet_otherwise() -> None:
    assert costly_repetition(slow_bus([900, 1100]).state, 3500, SLOW) is None  # too few
    assert costly_repetition(slow_bus([90, 110, 100]).state, 1400, SLOW) is None  # fast
    # Most of the task's time went elsewhere (e.g. thinking between the actions).
    assert costly_repetition(slow_bus([900, 1100, 1000]).state, 60_000, SLOW) is None
    answered = slow_bus([900, 1100, 1000], answered=True)
    assert costly_repetition(answered.state, 4500, SLOW) is None  # no open task


def test_advice_is_once_per_task() -> None:
    bus = slow_bus([900, 1100, 1000])
    assert not was_advised(bus.state)
    bus.add(e.Mail("supervisor", bus.state.bus, "use sha256sum", ADVICE))
    assert was_advised(bus.state)
    assert not was_advised(bus.state, sender="someone else")
    bus.add(e.AgentOutput("done"))
    bus.add(e.AgentInput("again"))
    assert not was_advised(bus.state)


def agent(name: str, files: list[str], failed: tuple[str, ...] = ()) -> Bus:
    bus = Bus(name)
    bus.add(e.AgentInput("process the tree"))
    for path in files:
        bus.action("process_file", "failed" if path in failed else "ok", path=path)
    bus.action("list_files", "ok", path="tree")
    return bus


def told(bus: Bus) -> list[str]:
    mails = [m for _, m in bus.state.of_type(e.Mail) if m.subject == GOSSIP]
    return [line for m in mails for line in m.text.splitlines()[1:]]


def deliver(buses: list[Bus], mail: dict[str, str]) -> None:
    for bus in buses:
        if bus.state.bus in mail:
            bus.add(e.Mail("supervisor", bus.state.bus, mail[bus.state.bus], GOSSIP))


def test_gossip_tells_each_agent_its_peers_completed_work_once() -> None:
    a, b = agent("a", ["x", "y"], failed=("y",)), agent("b", ["z"])
    c = agent("c", ["w"])
    c.add(e.AgentOutput("done"))  # a finished agent is not woken
    buses = [a, b, c]
    mail = gossip([bus.state for bus in buses], frozenset({"process_file"}))
    assert set(mail) == {"a", "b"}
    assert mail["a"].splitlines() == [
        GOSSIP_HEADER,
        '- b: process_file({"path": "z"})',
        '- c: process_file({"path": "w"})',
    ]
    assert mail["b"].splitlines()[1:] == [
        '- a: process_file({"path": "x"})',
        '- c: process_file({"path": "w"})',
    ]
    deliver(buses, mail)
    assert gossip([bus.state for bus in buses], frozenset({"process_file"})) == {}
    b.action("process_file", "ok", path="v")
    assert gossip([bus.state for bus in buses], frozenset({"process_file"})) == {
        "a": f'{GOSSIP_HEADER}\n- b: process_file({{"path": "v"}})'
    }
    # Without a tool filter, every completed action is news (here the listings).
    assert "list_files" in gossip([bus.state for bus in buses])["a"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 2), st.sampled_from("pqrs"), st.booleans()),
            st.just("round"),
        ),
        max_size=30,
    )
)
def test_gossip_invariants(events: list[tuple[int, str, bool] | str]) -> None:
    buses = [agent(f"agent{i}", []) for i in range(3)]
    done: dict[str, set[str]] = {bus.state.bus: set() for bus in buses}
    for event in [*events, "round"]:
        if event == "round":
            deliver(buses, gossip([b.state for b in buses], frozenset({"process_file"})))
            continue
        index, path, ok = event
        buses[index].action("process_file", "ok" if ok else "failed", path=path)
        if ok:
            done[buses[index].state.bus].add(path)
    for bus in buses:
        lines = told(bus)
        assert len(lines) == len(set(lines)), "a line was mailed twice"
        expected = {
            f'- {peer}: process_file({{"path": "{path}"}})'
            for peer, paths in done.items()
            if peer != bus.state.bus
            for path in paths
        }
        assert set(lines) == expected, "gossip is exactly the peers' completed work"
    assert gossip([b.state for b in buses], frozenset({"process_file"})) == {}
