"""The bus digest (agent/introspection/digest.py): faithful, bounded, and never losing what went
wrong."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.introspection.digest import TokenUse, digest, swarm_token_use, token_use
from logact.protocol.codec import Entry


class Bus:
    def __init__(self, bus: str = "agent/digest") -> None:
        self.state = BusState(bus)

    def add(self, entry: e.AgentEntry, ts: int | None = None) -> int:
        position = self.state.next
        body = entry.to_body()
        self.state.apply(Entry(position, ts or 1000 * (position + 1), entry.TYPE, "t", body))
        return position

    def model(self, prompt: int | None = 10, completion: int = 5) -> None:
        usage = e.Usage(prompt, completion) if prompt is not None else None
        self.add(e.InfOut("m", {"role": "assistant", "content": "x"}, usage))

    def action(self, tool: str, outcome: str, duration_ms: int = 7, **arguments: Any) -> int:
        """An intent and its fate: ok, failed, aborted, in doubt, running or undecided."""
        position = self.add(e.Intent(e.ToolCall(tool, arguments or {"command": tool})))
        if outcome == "undecided":
            return position
        if outcome == "aborted":
            self.add(e.Abort(position, "vetoed by rules: no"))
            return position
        self.add(e.Commit(position, "ok"))
        if outcome == "committed":
            return position
        self.add(e.ExecStart(position))
        if outcome == "ok":
            self.add(e.Result(position, ok=True, output=f"{tool} done", duration_ms=duration_ms))
        elif outcome == "failed":
            self.add(e.Result(position, ok=False, error="exit 1", duration_ms=3))
        elif outcome == "in doubt":
            self.add(e.Result(position, ok=False, error="interrupted", in_doubt=True))
        return position


def test_a_digest_lists_the_task_every_action_and_what_became_of_it() -> None:
    bus = Bus()
    bus.add(e.AgentInput("checksum data/"))
    bus.model(100, 20)
    ok = bus.action("shell", "ok")
    bus.model(150, 30)
    failed = bus.action("write_file", "failed", path="x")
    bus.model(None)
    aborted = bus.action("rm", "aborted")
    doubt = bus.action("shell", "in doubt")
    bus.add(e.Mail("alice", "agent", "hurry up"))
    bus.add(e.AgentOutput("done"))
    d = digest(bus.state)
    assert d.tasks == ("checksum data/",) and d.outputs == ("done",)
    assert [(s.position, s.status) for s in d.steps] == [
        (ok, "ok"),
        (failed, "failed"),
        (aborted, "aborted"),
        (doubt, "in doubt"),
    ]
    assert [s.tokens for s in d.steps] == [120, 180, 0, 0]  # each call's tokens count once
    assert d.steps[0].duration_ms == 7 and d.steps[1].detail == "exit 1"
    assert d.steps[2].detail == "vetoed by rules: no"
    assert d.tokens == TokenUse(calls=3, prompt=250, completion=50, unreported=1)
    text = d.render()
    for word in ("checksum data/", "FAILED", "ABORTED", "IN DOUBT", "hurry up", "answer: done"):
        assert word in text


def test_a_range_reads_only_its_entries() -> None:
    bus = Bus()
    bus.add(e.AgentInput("first"))
    bus.action("a", "ok")
    middle = bus.state.next
    bus.add(e.AgentInput("second"))
    bus.model()
    bus.action("b", "failed")
    d = digest(bus.state, start=middle)
    assert d.tasks == ("second",) and [s.tool for s in d.steps] == ["b"]
    assert d.tokens.calls == 1
    assert digest(bus.state, end=middle).tasks == ("first",)


def test_shrinking_folds_older_successes_and_keeps_every_problem() -> None:
    bus = Bus()
    bus.add(e.AgentInput("long task"))
    problems = []
    for index in range(60):
        outcome = "failed" if index % 15 == 7 else "ok"
        position = bus.action(f"tool{index % 3}", outcome)
        if outcome != "ok":
            problems.append(position)
    problems.append(bus.action("shell", "in doubt"))
    full = digest(bus.state).render(100_000)
    short = digest(bus.state).render(1500)
    assert len(short) <= 1500 < len(full)
    assert "earlier:" in short and "actions succeeded" in short
    for position in problems:
        assert f"#{position} " in short


statuses = st.sampled_from(["ok", "failed", "aborted", "in doubt", "committed", "undecided"])


@settings(max_examples=100, deadline=None)
@given(st.lists(statuses, max_size=40), st.integers(min_value=200, max_value=4000))
def test_a_render_fits_or_holds_only_what_must_stay(outcomes: list[str], limit: int) -> None:
    bus = Bus()
    bus.add(e.AgentInput("task"))
    for index, outcome in enumerate(outcomes):
        bus.action(f"t{index % 4}", outcome)
    d = digest(bus.state)
    text = d.render(limit)
    assert len(text) <= limit
    shown = [s for s in d.steps if f"#{s.position} " in text]
    folded = len(d.steps) - len(shown)
    if folded:
        assert all(s.status == "ok" for s in d.steps if s not in shown) or len(text) == limit


def test_tokens_add_up_per_bus_and_per_swarm() -> None:
    one, two = Bus("a"), Bus("b")
    one.model(10, 1)
    one.model(20, 2)
    two.model(5, 5)
    two.model(None)
    assert token_use(one.state) == TokenUse(2, 30, 3)
    use = swarm_token_use([one.state, two.state])
    assert use["b"] == TokenUse(2, 5, 5, 1)
    assert use["*"] == TokenUse(4, 35, 8, 1) and use["*"].total == 43
