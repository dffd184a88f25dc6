"""Serving every bus under a prefix (agent/components/watcher.py): the pure round plan, and the
gate (rule voter + decider) watching an in-process log with the principals of
config/cluster.toml, where session buses appear after the watch started, as hooks create them.

Every wait is for a condition on the log (a decision) or a report line, under ``fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.components.assembly import gate
from logact.agent.components.runner import Component
from logact.agent.components.watcher import Activity, WatchLimits, plan, watch
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import Policy
from logact.agent.integrations.hooks import Harness, HookResponse, run_hook
from logact.agent.judgement.rules import RuleSet
from logact.protocol.api import LogAPI
from logact.server.config import ClusterConfig
from logact.server.local import LocalLog, open_memory
from logact.server.node import load_validator

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hooks"
PREFIX = "claude_code."
#: Bound on every test; nothing here should come near it.
DEADLINE = 20.0
#: Quick rounds: these tests wait for conditions, never for a round to pass.
QUICK = WatchLimits(interval=0.02)
RULES = RuleSet.from_doc(
    {
        "default": "allow",
        "rules": [
            {
                "effect": "deny",
                "reason": "recursive delete",
                "tool": "Bash",
                "text": {"substring": "rm -rf"},
            }
        ],
    }
)
#: The hook gate's policy, signed as the shipped one is (votes count only from rule-voter).
VETO = Policy("veto", {"kinds": ["rule"]}, signers=e.VOTE_SIGNERS, deciders=e.DECIDERS)


# --- the plan ------------------------------------------------------------------------------------


def test_new_buses_take_the_free_slots_in_listing_order_and_the_rest_wait() -> None:
    limits = WatchLimits(max_buses=2)
    first = plan({"p.a": 1, "p.b": 1, "p.c": 1}, {}, {}, set(), limits, now=0.0)
    assert (first.start, first.waiting, first.newly_waiting) == (["p.a", "p.b"], ["p.c"], ["p.c"])
    busy = Activity(idle=False, next=1, since=0.0)
    again = plan(
        {"p.a": 1, "p.b": 1, "p.c": 1},
        dict.fromkeys(["p.a", "p.b"], busy),
        {},
        {"p.c"},
        limits,
        5.0,
    )
    assert (again.start, again.waiting, again.newly_waiting) == ([], ["p.c"], [])


def test_an_idle_bus_is_let_go_after_idle_after_with_nothing_unseen() -> None:
    limits = WatchLimits(max_buses=1, idle_after=10.0)
    idle = Activity(idle=True, next=4, since=100.0)
    listing = {"p.a": 4, "p.b": 2}
    assert plan(listing, {"p.a": idle}, {}, set(), limits, now=109.0).release == []
    behind = plan({"p.a": 5, "p.b": 2}, {"p.a": idle}, {}, set(), limits, now=200.0)
    assert behind.release == []  # an entry the component has not seen yet
    busy = Activity(idle=False, next=4, since=100.0)
    assert plan(listing, {"p.a": busy}, {}, set(), limits, now=200.0).release == []
    due = plan(listing, {"p.a": idle}, {}, {"p.b"}, limits, now=110.0)
    assert (due.release, due.start, due.waiting) == (["p.a"], ["p.b"], [])  # the slot is free


def test_a_bus_let_go_is_served_again_only_once_it_grows() -> None:
    limits = WatchLimits()
    assert plan({"p.a": 4}, {}, {"p.a": 4}, set(), limits, now=0.0).start == []
    assert plan({"p.a": 5}, {}, {"p.a": 4}, set(), limits, now=0.0).start == ["p.a"]


def test_limits_must_make_sense() -> None:
    for bad in ({"interval": 0}, {"max_buses": 0}, {"idle_after": -1}):
        with pytest.raises(ValueError, match="watch limits"):
            WatchLimits(**bad)


# --- the gate on an in-process log ---------------------------------------------------------------


@pytest.fixture
async def log(shipped_config: ClusterConfig) -> AsyncIterator[LocalLog]:
    validate = load_validator(shipped_config.validator)
    async with open_memory(fences=shipped_config.fences, validate=validate) as memory:
        yield memory


@pytest.fixture
def principals(shipped_config: ClusterConfig) -> dict[str, Any]:
    return {p.name: p for p in shipped_config.tokens.values()}


def as_(log: LocalLog, principals: dict[str, Any], name: str) -> LocalLog:
    return log.as_principal(principals[name])


def gate_maker(log: LocalLog, principals: dict[str, Any]) -> Callable[[str], list[Component]]:
    logs = {part: as_(log, principals, part) for part in ("rule-voter", "decider")}
    return lambda bus: gate(logs, bus, RULES, VETO, None)


@asynccontextmanager
async def watching(
    log: LocalLog,
    make: Callable[[str], Sequence[Component]],
    limits: WatchLimits = QUICK,
) -> AsyncIterator[list[str]]:
    """The watch running on ``PREFIX`` (started: the first listing is served); its reports."""
    reports: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch, limits=limits, report=reports.append), log, PREFIX, make)
        yield reports
        nursery.cancel_scope.cancel()


async def hook_call(log: LogAPI, session: str, command: str) -> HookResponse:
    """One Claude Code PreToolUse through the real hook code, as principal ``hook``."""
    data = json.loads((FIXTURES / "claude_code" / "pre_bash.json").read_text())
    data |= {"session_id": session, "tool_input": {"command": command}}

    @asynccontextmanager
    async def opener() -> AsyncIterator[LogAPI]:
        yield log

    return await run_hook(
        Harness.CLAUDE_CODE, json.dumps(data), opener, decision_timeout=DEADLINE, user="alice"
    )


def verdict(response: HookResponse) -> tuple[str, str]:
    out = json.loads(response.stdout)["hookSpecificOutput"]
    return out["permissionDecision"], out["permissionDecisionReason"]


async def decided(log: LogAPI, bus: str, count: int) -> BusState:
    """Follow ``bus`` until ``count`` of its intents are decided."""
    state = BusState(bus)
    async with aclosing(log.subscribe(bus, 0)) as entries:
        async for raw in entries:
            state.apply(raw)
            if sum(r.decision is not None for r in state.intents.values()) >= count:
                return state
    raise AssertionError("unreachable: a subscription never ends")


async def test_sessions_started_after_the_gate_get_their_calls_decided(
    log: LocalLog, principals: dict[str, Any]
) -> None:
    hook = as_(log, principals, "hook")
    elsewhere = "codex.alice.other-session"
    await hook.append(elsewhere, *e.Intent(e.ToolCall("Bash", {"command": "ls"})).to_entry())
    with trio.fail_after(DEADLINE):
        async with watching(log, gate_maker(log, principals)) as reports:
            allowed = await hook_call(hook, "s1", "ls -la")
            denied = await hook_call(hook, "s2", "rm -rf build")
            again = await hook_call(hook, "s1", "rm -rf /tmp/x")
    assert verdict(allowed)[0] == "allow"
    assert verdict(denied) == (
        "deny",
        "LogAct aborted intent 0 on bus claude_code.alice.s2: "
        "vetoed by rules (rule): recursive delete",
    )
    assert verdict(again)[0] == "deny" and verdict(again)[1].endswith("recursive delete")
    assert f"watch {PREFIX}: serving claude_code.alice.s1" in reports
    assert f"watch {PREFIX}: serving claude_code.alice.s2" in reports
    assert not any(elsewhere in line for line in reports)
    assert [r.type for r in await log.read_all(elsewhere)] == ["intent"]  # not under the prefix
    s1 = [(r.type, r.author) for r in await log.read_all("claude_code.alice.s1")]
    assert s1 == [
        ("intent", "hook"),
        ("vote", "rule-voter"),
        ("commit", "decider"),
        ("intent", "hook"),
        ("vote", "rule-voter"),
        ("abort", "decider"),
    ]


async def test_over_the_bound_a_bus_waits_until_an_idle_one_is_let_go(
    log: LocalLog, principals: dict[str, Any]
) -> None:
    hook = as_(log, principals, "hook")
    first, second = f"{PREFIX}alice.a", f"{PREFIX}alice.b"
    intent = e.Intent(e.ToolCall("Bash", {"command": "ls"})).to_entry()
    for bus in (first, second):
        await hook.append(bus, *intent)
    limits = WatchLimits(interval=0.02, max_buses=1, idle_after=0.0)
    with trio.fail_after(DEADLINE):
        async with watching(log, gate_maker(log, principals), limits) as reports:
            await decided(log, first, 1)
            await decided(log, second, 1)
            await hook.append(first, *intent)  # the first bus grows: served again, replayed
            state = await decided(log, first, 2)
    assert all(r.committed for r in state.intents.values())
    waited = [line for line in reports if line.startswith(f"watch {PREFIX}: not serving {second}")]
    assert len(waited) == 1 and "already serving 1 buses" in waited[0]
    assert reports.count(f"watch {PREFIX}: serving {first}") == 2
    assert any(line.startswith(f"watch {PREFIX}: let {first} go") for line in reports)
    # Replayed, the voter did not vote twice on the first intent.
    votes = [r for r in await log.read_all(first) if r.type == "vote"]
    assert [e.Vote.from_body(v.body).intent_id for v in votes] == [0, 3]


class Exploding(Component):
    """A component whose first step fails."""

    async def step(self, now: int) -> int | None:
        raise RuntimeError("boom")


async def test_a_failing_bus_is_reported_and_restarted(
    log: LocalLog, principals: dict[str, Any]
) -> None:
    hook = as_(log, principals, "hook")
    make_gate = gate_maker(log, principals)
    made: list[str] = []

    def make(bus: str) -> list[Component]:
        made.append(bus)
        if bus.endswith(".bad") and made.count(bus) == 1:
            return [Exploding(log, bus)]
        return make_gate(bus)

    with trio.fail_after(DEADLINE):
        async with watching(log, make) as reports:
            bad = await hook_call(hook, "bad", "ls")
            good = await hook_call(hook, "good", "ls")
    assert verdict(bad)[0] == "allow" and verdict(good)[0] == "allow"
    assert (
        f"watch {PREFIX}: claude_code.alice.bad failed (RuntimeError: boom); restarting in 1s"
        in reports
    )
    assert made.count("claude_code.alice.bad") == 2
