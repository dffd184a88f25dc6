"""Decision latency: an intent appended -> its commit seen by the executor, with the gate running.

The gate is the agent's own (agent/components/assembly.py ``gate``): the rule voter and the
decider under a ``veto`` policy over the rule voter, each with its role's principal, in one
helper process against a fresh 3-node cluster (as ``logact hook serve`` runs it). This process
plays the driver (appends intents as ``driver``) and the executor (a subscription as
``executor`` that takes the decisions). Every intent calls a tool the rules allow, so each
decision is a commit that needs three appends, each pushed to the next reader: the intent to the
voter, the vote to the decider, the commit to the executor.

The baseline, interleaved with the intents so both see the same machine: one bare append
round trip (``append`` acknowledged) and one hop (an append seen by a subscriber), on another
bus of the same cluster. A decision is about three hops plus the gate's own work.
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

from logact.agent.components.assembly import gate
from logact.agent.components.runner import Component, run_component
from logact.agent.core import entries as e
from logact.agent.core.policy import Policy
from logact.agent.integrations.mailbox import give_task
from logact.agent.judgement.rules import RuleSet
from logact.benchmarks.processes import helper_process, logact_cluster
from logact.benchmarks.stats import ratio, summarize_us
from logact.client.client import Client
from logact.ops.test_config import ADMIN_TOKEN, agent_token
from logact.protocol.codec import Entry

BUS = "bench-decision"
BASELINE_BUS = "bench-decision-baseline"
RULES = {
    "default": "deny",
    "rules": [{"effect": "allow", "reason": "the benchmark's harmless call", "tool": "echo"}],
}
POLICY = Policy("veto", {"kinds": ["rule"]})
#: Intents (and baseline appends) before the timed ones: connections, caches, the gate's replay.
WARMUP = 10
#: Bound on one intent's decision, and on the whole phase.
DECISION_TIMEOUT_S = 10.0
MAX_SECONDS = 180.0


def intent(index: int) -> e.Intent:
    """An intent of about the size a model's tool call has."""
    return e.Intent(
        e.ToolCall("echo", {"text": f"decision benchmark {index}", "pad": "x" * 64}, f"c{index}")
    )


def shape(
    decisions: list[tuple[float, float, float]],
    baseline: list[tuple[float, float, float]],
    aborted: int,
    timeouts: int,
) -> dict[str, Any]:
    """Figures from (began, acknowledged, seen) monotonic times of each timed intent and each
    baseline append."""
    decision = summarize_us([(seen - began) * 1e6 for began, _, seen in decisions])
    append = summarize_us([(ack - began) * 1e6 for began, ack, _ in baseline])
    hop = summarize_us([(seen - began) * 1e6 for began, _, seen in baseline])
    return {
        "decision": decision,
        "decision_after_intent_ack": summarize_us([(s - a) * 1e6 for _, a, s in decisions]),
        "baseline_append": append,
        "baseline_hop": hop,
        "decision_over_append_p50": ratio(decision["p50_ms"], append["p50_ms"]),
        "decision_over_hop_p50": ratio(decision["p50_ms"], hop["p50_ms"]),
        "aborted": aborted,
        "timeouts": timeouts,
    }


# ---------------------------------------------------------------------------- the gate process
async def _serve_gate(spec: dict[str, Any]) -> None:
    """Run the rule voter and the decider on the bus until killed; one line once both have
    replayed it."""
    addresses = spec["addresses"]
    async with (
        Client(addresses, agent_token("rule-voter")) as voter_log,
        Client(addresses, agent_token("decider")) as decider_log,
    ):
        logs = {"rule-voter": voter_log, "decider": decider_log}
        parts = gate(logs, spec["bus"], RuleSet.from_doc(RULES), POLICY, None)
        ready: list[Component] = []

        def on_ready(part: Component) -> None:
            ready.append(part)
            if len(ready) == len(parts):
                sys.stdout.write(json.dumps({"ready": [type(p).__name__ for p in parts]}) + "\n")
                sys.stdout.flush()

        async with trio.open_nursery() as nursery:
            for part in parts:
                nursery.start_soon(run_component, part, on_ready)


# ---------------------------------------------------------------------------- measuring
async def _seen(log: Client, bus: str, start: int, send: trio.MemorySendChannel[Entry]) -> None:
    async with send, aclosing(log.subscribe(bus, start)) as entries:
        async for entry in entries:
            await send.send(entry)


async def _wait_for(
    receive: trio.MemoryReceiveChannel[Entry], matches: Any
) -> tuple[float, Entry] | None:
    """The arrival time of the first entry ``matches`` accepts (earlier ones are dropped)."""
    with trio.move_on_after(DECISION_TIMEOUT_S):
        while True:
            entry = await receive.receive()
            if matches(entry):
                return time.monotonic(), entry
    return None


def _decision_for(position: int) -> Any:
    def matches(entry: Entry) -> bool:
        try:
            parsed = e.parse(entry.type, entry.body)
        except e.EntryError:
            return False
        return isinstance(parsed, e.Commit | e.Abort) and parsed.intent_id == position

    return matches


async def _measure(addresses: list[str], intents: int) -> dict[str, Any]:
    decisions: list[tuple[float, float, float]] = []
    baseline: list[tuple[float, float, float]] = []
    aborted = timeouts = 0
    async with (
        Client(addresses, agent_token("driver")) as driver,
        Client(addresses, agent_token("executor")) as executor,
        Client(addresses, ADMIN_TOKEN) as admin,
        trio.open_nursery() as nursery,
    ):
        starts = [(await admin.check_tail(bus)).tail for bus in (BUS, BASELINE_BUS)]
        decided_send, decided = trio.open_memory_channel[Entry](math.inf)
        hop_send, hops = trio.open_memory_channel[Entry](math.inf)
        nursery.start_soon(_seen, executor, BUS, starts[0], decided_send)
        nursery.start_soon(_seen, admin, BASELINE_BUS, starts[1], hop_send)
        with trio.move_on_after(MAX_SECONDS):
            for index in range(WARMUP + intents):
                began = time.monotonic()
                position = await admin.append(BASELINE_BUS, "note", intent(index).to_entry()[1])
                acked = time.monotonic()
                hop = await _wait_for(hops, lambda entry, p=position: entry.pos == p)
                if hop is not None and index >= WARMUP:
                    baseline.append((began, acked, hop[0]))

                began = time.monotonic()
                position = await driver.append(BUS, *intent(index).to_entry())
                acked = time.monotonic()
                seen = await _wait_for(decided, _decision_for(position))
                if seen is None:
                    timeouts += 1
                elif index >= WARMUP:
                    decisions.append((began, acked, seen[0]))
                    aborted += seen[1].type == e.Abort.TYPE
        nursery.cancel_scope.cancel()
    return shape(decisions, baseline, aborted, timeouts)


async def measure(directory: Path, durability: str, intents: int) -> dict[str, Any]:
    """The decision-latency phase on a fresh cluster: ``intents`` timed intents."""
    async with logact_cluster(directory, durability) as (cluster, _leader):
        async with Client(cluster.addresses, ADMIN_TOKEN) as admin:
            await give_task(admin, BUS, "decision latency benchmark")  # the bus exists
            await admin.append(BASELINE_BUS, "note", "start")
        spec = {"addresses": cluster.addresses, "bus": BUS}
        argv = ["logact.benchmarks.phase_decision", json.dumps(spec)]
        async with helper_process(argv, directory / "logs" / "gate.log"):
            result = await _measure(cluster.addresses, intents)
    return {"intents": intents, "gate": "rule voter + decider (veto over rule)", **result}


if __name__ == "__main__":
    trio.run(_serve_gate, json.loads(sys.argv[1]))
