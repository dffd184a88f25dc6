"""The supervisor's core (agent/introspection/supervisor.py): when to advise, and gossip that tells
each agent exactly its peers' completed work, once.

Advice is judged from the log's own timings: the logs here are built with explicit timestamps
and durations, and the same log on a machine 10x faster or slower (every duration and timestamp
scaled) must get the same decision."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

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
    listed_items,
    named,
    plain_advice,
    was_advised,
)


@dataclass(frozen=True, slots=True)
class Act:
    """One action of a synthetic log: proposed ``think`` ms after the previous one's result,
    ran ``run`` ms (0 < think, run), printed ``output``; ``vetoed`` ones never ran."""

    command: str
    think: int
    run: int
    output: str = ""
    tool: str = "shell"
    vetoed: bool = False


def timed_bus(acts: list[Act], idle: int = 0, scale: Fraction = Fraction(1)) -> tuple[Bus, int]:
    """A task at t=1000 ms and ``acts`` in turn, every timestamp and duration x ``scale``; the
    bus and "now", ``idle`` ms after the last result (a step in flight, or the model thinking)."""
    bus, now = Bus(), Fraction(1000)

    def at(ms: Fraction) -> int:
        scaled = ms * scale
        assert scaled.denominator == 1, "pick times the scale keeps whole"
        return int(scaled)

    bus.add(e.AgentInput("hash every folder"), ts=at(now))
    for act in acts:
        now += act.think
        arguments = {"command": act.command} if act.tool == "shell" else {"path": act.command}
        intent = bus.add(e.Intent(e.ToolCall(act.tool, arguments)), ts=at(now))
        if act.vetoed:
            bus.add(e.Abort(intent, "vetoed by rules: no"), ts=at(now))
            continue
        bus.add(e.Commit(intent, "ok"), ts=at(now))
        bus.add(e.ExecStart(intent), ts=at(now))
        now += act.run
        result = e.Result(intent, ok=True, output=act.output, duration_ms=at(Fraction(act.run)))
        bus.add(result, ts=at(now))
    return bus, at(now + idle)


def folders(n: int) -> str:
    return "\n".join(f"f{i:03d}" for i in range(n))


def listing(n: int, think: int = 100, run: int = 20) -> Act:
    return Act("ls data", think, run, folders(n))


def helper(*numbers: int, think: int = 100, run: int = 300) -> Act:
    paths = " ".join(f"data/f{i:03d}" for i in numbers)
    return Act(f"python3 slow_sha.py {paths} >> sums.txt", think, run)


def decide(acts: list[Act], idle: int = 0, scale: Fraction = Fraction(1)) -> dict | None:
    bus, now = timed_bus(acts, idle, scale)
    return costly_repetition(bus.state, now)


def test_a_walk_over_a_listing_is_advised_with_its_projection() -> None:
    acts = [listing(20), helper(0), helper(1), helper(2)]
    finding = decide(acts)
    assert finding is not None and finding["signal"] == "costly_repetition"
    # 0.40 s per folder (thinking and running), 17 folders left: 6.80 s more, against 1.32 s.
    assert finding["detail"] == (
        "3 shell actions each took new items of the 20 listed by #1 (shell: ls data), at a "
        "median of 0.40 s per item: 17 items are left, about 6.80 s more at this pace, against "
        "1.32 s for the task so far"
    )
    bus, _ = timed_bus(acts)
    assert finding["positions"] == sorted(bus.state.intents)  # the listing and the three runs
    assert "consider a faster method" in plain_advice(finding)
    e.Health("test", bus.state.next - 1, (finding,))  # a valid health finding
    # However fast the machine: a thousandth of every time, same advice, same citations.
    fast = decide([listing(20, 1, 1), *(helper(i, think=1, run=1) for i in range(3))])
    assert fast is not None and fast["positions"] == finding["positions"]
    assert "17 items are left" in fast["detail"]


def test_a_walk_is_judged_only_after_enough_runs() -> None:
    assert decide([listing(20), helper(0), helper(1)]) is None
    # Runs that name no new item (a folder hashed again) are not steps of the walk.
    assert decide([listing(20), helper(0), helper(1), helper(1)]) is None
    # Vetoed runs did no work.
    vetoed = Act("python3 slow_sha.py data/f002", 100, 300, vetoed=True)
    assert decide([listing(20), helper(0), helper(1), vetoed]) is None
    # A run in flight is not finished: it counts as taken, not as a measured step.
    bus, now = timed_bus([listing(20), helper(0), helper(1)])
    running = bus.add(e.Intent(e.ToolCall("shell", {"command": "python3 slow_sha.py data/f002"})))
    bus.add(e.Commit(running, "ok"), ts=now)
    bus.add(e.ExecStart(running), ts=now)
    assert costly_repetition(bus.state, now + 5000) is None


def test_nearly_finished_work_is_not_advised() -> None:
    # 5 folders, 4 done: one step left is small next to the task so far.
    assert decide([listing(5), *(helper(i) for i in range(4))]) is None
    # All folders taken (e.g. the rest in one batch): nothing is left to speed up.
    assert decide([listing(8), helper(0), helper(1), helper(2), helper(*range(3, 8))]) is None


def test_a_small_rest_next_to_a_long_task_is_not_advised() -> None:
    # An hour of work before the walk; 17 folders at 0.4 s each are not where the time goes.
    acts = [Act("make build", 10, 3_600_000), listing(20), helper(0), helper(1), helper(2)]
    assert decide(acts) is None


def test_batches_are_paced_per_item() -> None:
    # Two folders per run at 0.4 s a run: 0.2 s per folder, 14 left.
    finding = decide([listing(20), helper(0, 1), helper(2, 3), helper(4, 5)])
    assert finding is not None
    assert "median of 0.20 s per item: 14 items are left, about 2.80 s more" in finding["detail"]


def test_repetition_without_a_listing_is_judged_by_its_share_of_the_time() -> None:
    # No listing: three runs of one tool taking most of the task so far.
    slow = [helper(0, run=1000), helper(1, run=1000), helper(2, run=1000)]
    finding = decide(slow)
    assert finding is not None
    assert finding["detail"] == (
        "3 shell actions took a median of 1.00 s each (3 x 1.00 s = 3.00 s), against 3.30 s "
        "for the task so far"
    )
    # The same runs, while the model thinks 10x longer between them: not where the time goes.
    assert decide([helper(i, think=10_000, run=1000) for i in range(3)]) is None
    # A one-off slow action among quick ones is not repetition.
    one_off = [Act("make build", 10, 3_600_000), Act("cat a", 10, 10), Act("cat b", 10, 10)]
    assert decide(one_off) is None
    # Slow actions of different tools are not one repeated method.
    varied = [Act("x", 10, 5000, tool=tool) for tool in ("shell", "read_file", "write_file")]
    assert decide(varied) is None


def test_no_open_task_no_advice() -> None:
    bus, now = timed_bus([listing(20), helper(0), helper(1), helper(2)])
    bus.add(e.AgentOutput("done"), ts=now)
    assert costly_repetition(bus.state, now + 10) is None


def test_listings_and_names() -> None:
    assert listed_items("f000\nf001/\n./f002\n\n") == {"f000", "f001", "f002"}
    ls_l = "total 8\ndrwxr-xr-x 2 root root 4096 Jan 1 00:00 f000\n-rwxr-xr-x 1 a a 9 Jan 1 run.sh*"
    assert {"f000", "run.sh"} <= listed_items(ls_l)
    assert listed_items("data/f000/file0.bin\ndata/f001/file0.bin") == {
        "data/f000/file0.bin",
        "data/f001/file0.bin",
    }
    names = named(e.ToolCall("shell", {"command": "sha256sum data/f000/* './f001' >> sums.txt"}))
    assert {"data", "f000", "data/f000", "f001", "sums.txt"} <= names
    assert "f0" not in names
    assert "f002" in named(e.CodeBlock("python", "open('data/f002/x')"))
    assert "f003" in named(e.ToolCall("read_file", {"path": "data/f003/file0.bin"}))


def test_a_huge_action_names_a_bounded_set() -> None:
    # An agent's action is untrusted: 1.6 MB of deep paths cost 5 s and 219 MiB per round.
    deep = " ".join("/".join(f"q{k}_{i}" for i in range(16)) for k in range(12000))
    names = named(e.ToolCall("shell", {"command": f"cat data/f000 {deep} data/f999"}))
    assert "data/f000" in names and "q0_0/q0_1" in names
    assert "data/f999" not in names  # past the words looked at
    assert len(names) <= 1024 * 8 * 9 // 2


# 10 ms to about 1.5 h, spread evenly over the orders of magnitude, so that a fixed threshold in
# that range is crossed by some log scaled 0.1x..10x; multiples of 10: whole ms at any scale k/10.
times = st.builds(lambda m, k: 10 * m * 2**k, st.integers(1, 9), st.integers(0, 9))


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[Act], int]:
    """A listing (or not) and runs over its folders one or two at a time, at a pace of their own
    give or take 3x; half the logs also have earlier work, other tools between the runs, runs
    repeated and runs vetoed. Then now, maybe with a step in flight."""
    n = draw(st.integers(2, 40))
    noisy = draw(st.booleans())
    acts = [Act("make build", draw(times), draw(times))] if noisy and draw(st.booleans()) else []
    if draw(st.integers(0, 3)):
        acts.append(listing(n, draw(times), draw(times)))
    kinds = ["run", "run", "run", "again", "veto", "other"] if noisy else ["run"]
    think, run = draw(times), draw(times)
    folder = 0
    for _ in range(draw(st.integers(0, n + 2))):
        kind = draw(st.sampled_from(kinds))
        jitter = draw(st.integers(1, 3))
        if kind == "other":
            path = f"notes/{draw(st.integers(0, 3))}"
            acts.append(Act(path, draw(times), draw(times), tool="read_file"))
        elif kind == "veto":
            command = f"python3 slow_sha.py data/f{folder:03d}"
            acts.append(Act(command, think * jitter, run, vetoed=True))
        else:
            start = max(folder - 1, 0) if kind == "again" else folder
            numbers = range(start, min(start + draw(st.integers(1, 2)), n))
            acts.append(helper(*numbers, think=think * jitter, run=run * jitter))
            folder = max(folder, max(numbers, default=folder) + 1)
    return acts, draw(st.one_of(st.just(0), times))


@settings(max_examples=300, deadline=None)
@given(logs(), st.integers(1, 100), st.sampled_from([0.25, 0.5, 0.75]))
def test_the_decision_does_not_depend_on_the_speed_of_the_machine(
    log: tuple[list[Act], int], tenths: int, share: float
) -> None:
    acts, idle = log
    t = AdviceThresholds(repeat=3, share=share)
    decisions = []
    # Every timestamp and duration x 0.1, x 10 and x a scale in between: the same decision,
    # citing the same actions.
    for scale in (Fraction(1, 10), Fraction(10), Fraction(tenths, 10)):
        bus, now = timed_bus(acts, idle, scale)
        finding = costly_repetition(bus.state, now, t)
        decisions.append(None if finding is None else finding["positions"])
    assert decisions[0] == decisions[1] == decisions[2]


def test_advice_is_once_per_task() -> None:
    bus, _ = timed_bus([listing(20), helper(0), helper(1), helper(2)])
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
