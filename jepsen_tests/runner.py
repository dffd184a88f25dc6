"""One chaos run: a cluster, a workload, a seeded fault schedule, a history, the checkers.

The run is: start the cluster (proxy or netns network), start the workload, apply each fault of
the schedule at its time (each healed at its end), stop the load at ``time_s``, wait for the
cluster to be whole, take the final reads (the workload's, then every node's own copy of the
log between two linearizable reads of every bus), then check the history offline. Everything the
checkers and the report need is written to ``out``: ``schedule.json``, ``history.jsonl``,
``result.json`` and ``timeline.png``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from logact.jepsen_tests import checkers
from logact.jepsen_tests.agent_workload import AgentWorkload, script
from logact.jepsen_tests.chaos_cluster import ChaosCluster
from logact.jepsen_tests.history import HistoryWriter, read_history
from logact.jepsen_tests.log_workload import LogWorkload, final_read, run_log_workload
from logact.jepsen_tests.model_endpoint import serve
from logact.jepsen_tests.nemesis import apply
from logact.jepsen_tests.node_state import record_node_states
from logact.jepsen_tests.schedule import (
    Fault,
    make_schedule,
    needed_s,
    parse_nemeses,
    unscheduled,
)
from logact.ops.test_config import WRITER_TOKEN

WORKLOADS = ("log", "agent")
#: Deliberately broken server modes, to show the checkers catch them (config [unsafe]).
UNSAFE_MODES = {"stale-reads": "stale_reads", "no-dedup": "no_dedup"}
#: After the load stops: how long the cluster may take to be whole, agents to finish.
SETTLE_S = 60.0
AGENT_FINISH_S = 180.0
#: The agent-side nemesis: one component of one agent killed and restarted this often.
AGENT_KILL_EVERY_S = (2.0, 6.0)
#: How often a run says how far it has got while the load runs.
PROGRESS_EVERY_S = 10.0

#: Where a run says what it is doing (a line at a time); silent by default.
Progress = Callable[[str], None]


def _silent(line: str) -> None:
    return None


@dataclass(frozen=True)
class ChaosOptions:
    nemeses: list[str]
    workload: str
    time_s: float
    seed: int
    out: Path
    net: str = "proxy"
    agents: int = 3
    agent_steps: int = 6
    unsafe: str | None = None


@dataclass
class ChaosResult:
    options: dict[str, Any]
    schedule: list[dict[str, Any]]
    operations: dict[str, int]
    anomalies: list[dict[str, Any]]
    availability: list[dict[str, Any]]
    duration_s: float
    faults_applied: int = 0
    #: Requested fault kinds that were never applied (not scheduled in the time, or failed).
    not_exercised: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Per node, the Raft facts recorded with its final state (term, snapshots installed...).
    raft: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.anomalies


#: Compaction far more often than the default (20,000 Raft entries), so that nodes coming back
#: from a kill, a pause or a partition are often brought up to date by a snapshot install,
#: the path where a healed old leader once applied entries that were never committed.
CHAOS_RAFT = "[raft]\nlog_compaction_min_entries = 1000\n"


def _config(unsafe: str | None) -> str:
    """The run's additions to the cluster config: compaction, and an [unsafe] mode if asked."""
    if unsafe is None:
        return CHAOS_RAFT
    return f"{CHAOS_RAFT}[unsafe]\n{UNSAFE_MODES[unsafe]} = true\n"


def _clients(cluster: ChaosCluster) -> dict[str, str]:
    return {node: cluster.client_address(node) for node in cluster.node_ids}


async def _faults(
    cluster: ChaosCluster,
    schedule: list[Fault],
    start: float,
    history: HistoryWriter,
    progress: Progress,
) -> list[str]:
    """Apply the schedule; the kinds of the faults that took effect, one per fault."""
    applied: list[str] = []
    for number, fault in enumerate(schedule, 1):
        await trio.sleep_until(start + fault.at_s)
        progress(
            f"t={fault.at_s:5.1f}s fault {number}/{len(schedule)}: {fault.kind} "
            f"({fault.target}) for {fault.duration_s:.1f} s"
        )
        op = await apply(fault, cluster, history.write)
        targets = ",".join(op.get("targets", [])) or "-"
        said = op.get("error") or op.get("settle_error") or ""
        progress(f"          {op.get('outcome')}: on {targets}" + (f" ({said})" if said else ""))
        if op.get("outcome") == "ok":
            applied.append(fault.kind)
    return applied


async def _report_progress(
    history: HistoryWriter, start: float, time_s: float, progress: Progress
) -> None:
    """A line every PROGRESS_EVERY_S while the load runs: time and operations recorded."""
    while (elapsed := trio.current_time() - start) < time_s:
        await trio.sleep(min(PROGRESS_EVERY_S, time_s - elapsed))
        elapsed = trio.current_time() - start
        progress(f"t={elapsed:5.1f}s of {time_s:g} s: {history.count} operations recorded")


async def _log_run(
    options: ChaosOptions,
    cluster: ChaosCluster,
    schedule: list[Fault],
    history: HistoryWriter,
    progress: Progress,
) -> list[str]:
    workload = LogWorkload(cluster.addresses, WRITER_TOKEN, f"chaos/{options.seed}")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_log_workload, workload, history.write, options.time_s)
        nursery.start_soon(_report_progress, history, start, options.time_s, progress)
        applied = await _faults(cluster, schedule, start, history, progress)
    progress("load stopped: waiting for the cluster to be whole, then the final reads")
    await cluster.wait_healthy(SETTLE_S)
    await final_read(workload, history.write)
    await record_node_states(_clients(cluster), cluster.admin_token(), history.write)
    return applied


async def _agent_killer(
    workload: AgentWorkload, rng: random.Random, history: HistoryWriter, until: float
) -> None:
    while trio.current_time() < until:
        await trio.sleep(rng.uniform(*AGENT_KILL_EVERY_S))
        await workload.kill_random_component(rng, history.write)


async def _agent_run(
    options: ChaosOptions,
    cluster: ChaosCluster,
    schedule: list[Fault],
    history: HistoryWriter,
    progress: Progress,
) -> tuple[list[str], list[str]]:
    directory = options.out / "agents"
    directory.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with serve(script(options.agent_steps)) as endpoint:
        workload = AgentWorkload(
            cluster.cluster, directory, endpoint.env(), options.agents, f"s{options.seed}"
        )
        try:
            await workload.start(history.write)
            start = trio.current_time()
            rng = random.Random(f"agents/{options.seed}")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_agent_killer, workload, rng, history, start + options.time_s)
                nursery.start_soon(_report_progress, history, start, options.time_s, progress)
                applied = await _faults(cluster, schedule, start, history, progress)
            progress("faults over: waiting for the cluster to be whole and the agents to finish")
            await cluster.wait_healthy(SETTLE_S)
            if not await workload.wait_finished(AGENT_FINISH_S):
                notes.append(f"agents still running after {AGENT_FINISH_S:g} s")
            await workload.record_outcome(history.write)
            await record_node_states(_clients(cluster), cluster.admin_token(), history.write)
        finally:
            workload.stop()
    return applied, notes


async def run_chaos(options: ChaosOptions, progress: Progress = _silent) -> ChaosResult:
    """Run, record and check one chaos run (see the module docstring); ``progress`` hears
    the schedule, each fault as it is applied and how far the load has got."""
    if options.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    schedule = make_schedule(options.seed, options.nemeses, options.time_s)
    (out / "schedule.json").write_text(json.dumps([f.to_json() for f in schedule], indent=1))
    left_out = unscheduled(schedule, options.nemeses)
    progress(f"schedule: {len(schedule)} faults in {options.time_s:g} s")
    if left_out:
        progress(
            f"not scheduled, the run is too short: {', '.join(left_out)} "
            f"(every kind fits in --time {needed_s(options.nemeses):.0f})"
        )
    began = time.monotonic()
    notes: list[str] = []
    with HistoryWriter(out / "history.jsonl") as history:
        async with ChaosCluster(
            out / f"cluster-{uuid.uuid4().hex[:6]}",
            net=options.net,
            extra=_config(options.unsafe),
        ) as cluster:
            if options.workload == "log":
                applied = await _log_run(options, cluster, schedule, history, progress)
            else:
                applied, notes = await _agent_run(options, cluster, schedule, history, progress)
    progress("checking the history")
    ops = read_history(out / "history.jsonl")
    check = checkers.check_log if options.workload == "log" else checkers.check_agent
    anomalies = check(ops)
    counts: dict[str, int] = {}
    for op in ops:
        key = f"{op['op']}:{op['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    result = ChaosResult(
        options={**asdict(options), "out": str(out)},
        schedule=[f.to_json() for f in schedule],
        operations=counts,
        anomalies=[a.to_dict() for a in anomalies],
        availability=[asdict(w) for w in checkers.availability(ops)],
        duration_s=round(time.monotonic() - began, 1),
        faults_applied=len(applied),
        not_exercised=sorted({kind for kind, _ in parse_nemeses(options.nemeses)} - set(applied)),
        notes=notes,
        raft={op["node"]: op["raft"] for op in ops if op["op"] == "node_state" and "raft" in op},
    )
    (out / "result.json").write_text(json.dumps(asdict(result), indent=1, default=str))
    return result
