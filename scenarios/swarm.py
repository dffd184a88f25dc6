"""The swarm scenario: several agents, each on its own bus, process the files of one directory
tree, coordinated three ways: not at all (``none``), by mailing each other what they take
(``peers``), or by a supervisor that gossips what each has done to the others (``hub``).

Every agent is told to process every file of ``tree/`` that nobody has processed yet, knowing
others work on the same tree. ``process_file`` really reads the file and writes its word count
and hash to ``out/``; ``mail`` lets an agent mail a peer. Unique work (distinct files
processed) and total work are read back from the buses' results, and tokens from their inf_out
usage (per agent and for the swarm).

``scripted_agent`` stands in for a model: it lists the tree, then processes files in its own
random order, skipping what it did and what mail told it others did or took, and stops when
nothing is left. With ``peers`` each reply that processes a file also mails every peer
"taking: <path>" (the tool calls of one reply run in order, so no extra inference). ``think``
seconds of latency per reply stand in for a model's inference time (without it scripted
agents finish before any supervisor round).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.replay import read_state
from logact.agent.integrations.mailbox import send_mail
from logact.agent.introspection.digest import swarm_token_use
from logact.agent.introspection.supervisor import Sent, Supervisor, completed
from logact.agent.models.llm import ScriptedModel, tool_call
from logact.agent.tools.registry import ToolError, ToolRegistry
from logact.protocol.api import LogAPI
from logact.scenarios.report import Report
from logact.scenarios.rig import Model, run_task, supervise_until

SYSTEM = (
    "You are one agent of a swarm. You act through tools. Other agents share your task; mail "
    "from them or from a supervisor may arrive between your steps: consider it."
)
TASK = (
    "Process every file under tree/ with process_file, once across the whole swarm: other "
    "agents ({peers}) work on the same tree, and work done twice is wasted. You can mail them "
    "with the mail tool. Answer 'done' when no file is left for you."
)
PEERS_TASK = " Mail each of them every file you take, as 'taking: <path>', when you take it."
WORDS = ("log", "raft", "vote", "agent", "intent", "commit", "abort", "result", "mail", "swarm")
PROCESS = "process_file"


@dataclass(frozen=True, slots=True)
class Tree:
    dirs: int = 4
    files: int = 6  # per directory
    agents: int = 3
    seed: int = 11
    budget: int | None = None  # files per agent, told in the task (default: until none is left)


def make_tree(root: Path, tree: Tree) -> list[str]:
    """The files under ``root/tree`` (relative paths, sorted)."""
    rng = random.Random(tree.seed)
    paths = []
    for d in range(tree.dirs):
        for f in range(tree.files):
            rel = f"tree/d{d}/file{f}.txt"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(" ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 500))))
            paths.append(rel)
    return sorted(paths)


def agent_tools(root: Path, mailer: LogAPI, bus: str) -> ToolRegistry:
    registry = ToolRegistry()

    def list_files() -> str:
        return "\n".join(sorted(str(p.relative_to(root)) for p in root.glob("tree/**/*.txt")))

    def process_file(path: str) -> str:
        source = (root / path).resolve()
        if not source.is_relative_to((root / "tree").resolve()) or not source.is_file():
            raise ToolError(f"no such file under tree/: {path}")
        text = source.read_text()
        summary = {"words": len(text.split()), "sha256": hashlib.sha256(text.encode()).hexdigest()}
        target = root / "out" / f"{path}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(summary))
        return f"{path}: {summary['words']} words"

    async def mail(to: str, text: str) -> str:
        position = await send_mail(mailer, to, bus, text)
        return f"mailed {to} (#{position})"

    registry.register("list_files", list_files, description="List every file under tree/.")
    registry.register(PROCESS, process_file, description="Process one file (path from list).")
    registry.register("mail", mail, description="Mail another agent (its bus id) a message.")
    return registry


# ---- the scripted agent ---------------------------------------------------------------------

_PATH = re.compile(r'"path": "([^"]+)"')
_TAKING = re.compile(r"taking: (\S+)")
COORDINATIONS = ("none", "peers", "hub")


def scripted_agent(
    seed: str, think: float, peers: Sequence[str] = (), budget: int | None = None
) -> Any:
    """The responder for one agent (its file order comes from ``seed``); it mails ``peers``
    each file it takes, and stops after ``budget`` files (over all its loops: mail from a peer
    can wake it again after it answered)."""

    def respond(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
        time.sleep(think)  # stands in for inference time (see the module docstring)
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        if turn == 0:
            return {"tool_calls": [tool_call("list_files", {}, "call_0")]}
        listing = next(str(m.get("content")) for m in messages if m.get("role") == "tool")
        files = sorted(listing.split())
        random.Random(seed).shuffle(files)
        mine = {
            json.loads(call["function"]["arguments"])["path"]
            for m in messages
            if m.get("role") == "assistant"
            for call in m.get("tool_calls") or []
            if call["function"]["name"] == PROCESS
        }
        mail = [
            str(m.get("content"))
            for m in messages
            if m.get("role") == "user" and str(m.get("content")).startswith("Mail from")
        ]
        told = {path for text in mail for path in _PATH.findall(text) + _TAKING.findall(text)}
        left = [f for f in files if f not in mine | told]
        if not left or (budget is not None and len(mine) >= budget):
            return {"content": f"done: processed {len(mine)} files"}
        calls = [tool_call(PROCESS, {"path": left[0]}, f"call_{turn}")]
        calls += [
            tool_call("mail", {"to": peer, "text": f"taking: {left[0]}"}, f"call_{turn}_{k}")
            for k, peer in enumerate(peers)
        ]
        return {"tool_calls": calls}

    return respond


def scripted_models(
    buses: Sequence[str],
    think: float,
    coordination: str,
    budget: int | None = None,
    seed: int = 0,
) -> dict[str, Model]:
    """A scripted model per agent; with ``peers`` coordination they mail each other. The n-th
    agent's file order depends only on ``seed`` and n, so runs compare like with like."""

    def peers_of(bus: str) -> list[str]:
        return [b for b in buses if b != bus] if coordination == "peers" else []

    return {
        bus: Model(
            ScriptedModel(scripted_agent(f"{seed}-{n}", think, peers_of(bus), budget)).client(),
            "scripted",
        )
        for n, bus in enumerate(buses)
    }


# ---- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwarmRun:
    coordination: str
    buses: tuple[str, ...]
    seconds: float
    files: int
    processed: int  # process_file results, duplicates included
    unique: int
    tokens: int
    tokens_per_agent: dict[str, int]
    peer_mails: int  # mail actions the agents ran
    gossip_mail: tuple[Sent, ...]


def work_done(states: Sequence[BusState]) -> list[str]:
    """Every file processed, once per time it was processed, read from the buses' results."""
    return [
        str(action.arguments.get("path"))
        for state in states
        for record in completed(state, frozenset({PROCESS}))
        if isinstance(action := record.intent.action, e.ToolCall)
    ]


async def run_swarm(
    logs: Mapping[str, LogAPI],
    root: Path,
    tree: Tree,
    models: Mapping[str, Model],
    *,
    coordination: str,
    interval: float = 0.1,
    on_round: Callable[[], None] = lambda: None,
) -> SwarmRun:
    """``models`` maps each agent's bus to its model; all run at once in ``root``.

    ``coordination``: ``none`` and ``peers`` run no supervisor (``peers`` agents are told to
    mail each other what they take); ``hub`` runs the gossiping supervisor.
    """
    if coordination not in COORDINATIONS:
        raise ValueError(f"coordination must be one of {', '.join(COORDINATIONS)}")
    files = make_tree(root, tree)
    buses = tuple(models)
    supervisor = Supervisor(
        logs["reader"],
        logs["mailer"],
        advise=False,
        share_gossip=True,
        gossip_tools=frozenset({PROCESS}),
    )
    done = trio.Event()
    sent: list[Sent] = []
    started = time.perf_counter()

    async def agents() -> None:
        async with trio.open_nursery() as nursery:
            for bus in buses:
                peers = ", ".join(b for b in buses if b != bus)
                tools = agent_tools(root, logs["mailer"], bus)
                task = TASK.format(peers=peers)
                if coordination == "peers":
                    task += PEERS_TASK
                if tree.budget is not None:
                    task += f" Process at most {tree.budget} files yourself."
                # A safety net per loop: the listing, a reply per file, the answer.
                steps = len(files) + 2
                nursery.start_soon(
                    lambda b=bus, t=tools, k=task, s=steps: run_task(
                        logs, b, models[b], t, SYSTEM, k, max_steps=s
                    )
                )
        done.set()

    async def supervision() -> None:
        sent.extend(await supervise_until(supervisor, buses, done, interval, on_round))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(agents)
        if coordination == "hub":
            nursery.start_soon(supervision)
    seconds = time.perf_counter() - started
    states = [await read_state(logs["reader"], bus) for bus in buses]
    work = work_done(states)
    tokens = swarm_token_use(states)
    mails = sum(len(completed(state, frozenset({"mail"}))) for state in states)
    return SwarmRun(
        coordination,
        buses,
        seconds,
        len(files),
        len(work),
        len(set(work)),
        tokens["*"].total,
        {bus: tokens[bus].total for bus in buses},
        mails,
        tuple(sent),
    )


def _change(value: float, base: float) -> str:
    return f"{value / base - 1:+.0%}" if base else "n/a"


async def compare(
    logs: Mapping[str, LogAPI],
    prefix: str,
    tree: Tree,
    model: Model | None = None,
    *,
    seeds: int = 1,
    think: float = 0.1,
    interval: float = 0.2,
) -> Report:
    """The swarm under every coordination, ``seeds`` times each (agent orders), each run on its
    own buses under ``prefix`` and in a fresh tree; figures are medians over the seeds.
    ``model`` serves every agent, or scripted agents do (``think`` s per reply)."""
    runs: dict[str, list[SwarmRun]] = {c: [] for c in COORDINATIONS}
    for seed in range(seeds):
        for coordination in COORDINATIONS:
            buses = [f"{prefix}/swarm-{seed}-{coordination}/a{i}" for i in range(tree.agents)]
            models = (
                scripted_models(buses, think, coordination, tree.budget, seed)
                if model is None
                else dict.fromkeys(buses, model)
            )
            with tempfile.TemporaryDirectory() as root:
                runs[coordination].append(
                    await run_swarm(
                        logs, Path(root), tree, models, coordination=coordination,
                        interval=interval,
                    )
                )  # fmt: skip
    medians = {
        c: {
            "unique": median(r.unique for r in rs),
            "total": median(r.processed for r in rs),
            "tokens": median(r.tokens for r in rs),
        }
        for c, rs in runs.items()
    }
    rows = [
        {
            "coordination": c,
            "files": tree.dirs * tree.files,
            "unique work": f"{medians[c]['unique']:g}",
            "total work": f"{medians[c]['total']:g}",
            "duplicated": f"{median(r.processed - r.unique for r in rs):g}",
            "tokens": f"{medians[c]['tokens']:g}",
            "peer mails": f"{median(r.peer_mails for r in rs):g}",
            "gossip mails": f"{median(len(r.gossip_mail) for r in rs):g}",
            "seconds": f"{median(r.seconds for r in rs):.2f}",
        }
        for c, rs in runs.items()
    ]
    name = "scripted" if model is None else model.name
    budget = tree.budget if tree.budget is not None else "until done"
    notes = [
        f"{tree.agents} agents, {tree.dirs * tree.files} files, budget {budget}; model: {name}; "
        f"medians of {seeds} run(s) each.",
        "none: no coordination; peers: agents mail each other what they take; hub: a "
        "supervisor gossips what each has done.",
    ]
    base = medians["none"]
    for c in COORDINATIONS[1:]:
        notes.append(
            f"{c} vs none: unique work {_change(medians[c]['unique'], base['unique'])}, "
            f"tokens {_change(medians[c]['tokens'], base['tokens'])}."
        )
    if model is None:
        notes.append(
            "Scripted agents skip what mail reports; token counts are the scripted "
            "client's word counts. Mechanism, not model quality."
        )
    doc = {
        "tree": asdict(tree),
        "model": name,
        "seeds": seeds,
        "runs": {c: [asdict(r) for r in rs] for c, rs in runs.items()},
    }
    return Report("Swarm scenario", rows, notes, doc)
