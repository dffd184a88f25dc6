"""The checksum scenario: an agent hashes many folders with a slow method; a supervisor that
reads its log sees where the time goes and mails it a faster approach.

The workspace holds ``data/fNNN/`` folders of random files and ``slow_sha.py``, a helper that
prints ``<sha256>  <path>`` for one folder, reading a byte at a time (correct, and slow). The
task asks for those lines for every file in ``sums.txt``. The run is measured end to end (task
to answer) without and with the supervisor, on separate buses and fresh workspaces, and both
``sums.txt`` are checked against hashes computed here.

``scripted_agent`` is the scripted stand-in for a model: it uses the helper folder by folder
until it reads the supervisor's advice, then hashes every remaining folder with one
``sha256sum`` command. It shows the mechanism (the log shows the cost, the supervisor mails,
the agent's next inference carries the mail); whether a real model would take the advice is
what a run against a real endpoint measures.

The supervisor advises by the log alone (:func:`~logact.agent.introspection.supervisor.
costly_repetition`): the listing of ``data/``, then helper runs folder after folder, the time
each took and the folders left, whatever the machine's speed. A comparison whose supervised run
got no advice, or whose sums are wrong, did not show the mechanism: its report says why
(``Report.problem``) instead of giving a speed-up.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.replay import read_state
from logact.agent.introspection.supervisor import (
    ADVICE,
    AdviceThresholds,
    Sent,
    Supervisor,
    first_results,
)
from logact.agent.introspection.timeline import describe_action
from logact.agent.models.llm import ScriptedModel, tool_call
from logact.agent.tools.registry import standard_tools
from logact.protocol.api import LogAPI
from logact.scenarios.report import Report
from logact.scenarios.rig import Model, run_task, supervise_until

SYSTEM = (
    "You are a careful engineering agent. You act through tools; the shell runs in your "
    "workspace. Mail from your supervisor may arrive between your steps: consider it."
)
TASK = (
    "Compute the SHA-256 of every file in every folder under data/ and append one line "
    "'<sha256>  <path>' per file to sums.txt (paths like data/f000/file0.bin). The helper "
    "`python3 slow_sha.py FOLDER` prints those lines for one folder. Answer 'done' at the end."
)
SLOW_SHA = '''"""Print '<sha256>  <path>' for each file of a folder (reads one byte at a time)."""
import hashlib
import pathlib
import sys

for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while byte := handle.read(1):
            digest.update(byte)
    print(f"{digest.hexdigest()}  {path}")
'''
ADVICE_TEXT = (
    "Most of your time goes into slow_sha.py, which reads its files one byte at a time. Hash all "
    "the remaining folders in one command with the native tool, e.g. "
    "`sha256sum data/fNNN/* ... >> sums.txt`: the output format is the same."
)

#: When to advise: the supervisor's own defaults, which hold on any machine (no time constants).
THRESHOLDS = AdviceThresholds()
#: Called as the runs go: (run, folders hashed so far, folders, seconds since the run started,
#: whether the run is over).
OnProgress = Callable[[str, int, int, float, bool], None]


@dataclass(frozen=True, slots=True)
class Layout:
    folders: int = 40
    files: int = 4
    size: int = 128 * 1024  # bytes per file
    seed: int = 7

    def folder(self, index: int) -> str:
        """The name of folder ``index``: ``f000``, or wider when there are 1000 or more."""
        return f"f{index:0{max(3, len(str(self.folders - 1)))}d}"


def make_workspace(root: Path, layout: Layout) -> dict[str, str]:
    """Create the folders and the helper under ``root``; the expected ``path -> sha256``."""
    rng = random.Random(layout.seed)
    expected: dict[str, str] = {}
    for f in range(layout.folders):
        folder = root / "data" / layout.folder(f)
        folder.mkdir(parents=True)
        for k in range(layout.files):
            data = rng.randbytes(layout.size)
            (folder / f"file{k}.bin").write_bytes(data)
            expected[f"data/{layout.folder(f)}/file{k}.bin"] = hashlib.sha256(data).hexdigest()
    (root / "slow_sha.py").write_text(SLOW_SHA)
    return expected


def read_sums(path: Path) -> dict[str, str]:
    """``sums.txt`` as ``path -> sha256`` (a path listed twice with different hashes is kept
    as the last, and caught by the comparison)."""
    sums: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            sums[name.strip()] = digest.strip()
    return sums


# ---- the scripted agent ---------------------------------------------------------------------

_FOLDER = re.compile(r"data/(f\d+)")


def _commands(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        str(call["function"]["arguments"])
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or []
    ]


def scripted_agent(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
    """List the folders, then hash them one by one with the helper, or all remaining ones in
    one sha256sum command once a supervisor's advice is in the conversation."""
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    if turn == 0:
        return {"tool_calls": [tool_call("shell", {"command": "ls data"}, "call_0")]}
    listing = next(str(m.get("content")) for m in messages if m.get("role") == "tool")
    folders = re.findall(r"\bf\d+\b", listing)
    done = {name for command in _commands(messages) for name in _FOLDER.findall(command)}
    remaining = [f for f in folders if f not in done]
    if not remaining:
        return {"content": f"done: {len(folders)} folders hashed into sums.txt"}
    advised = any(
        m.get("role") == "user" and f"[{ADVICE}]" in str(m.get("content")) for m in messages
    )
    if advised:
        paths = " ".join(f"data/{f}/*" for f in remaining)
        command = f"sha256sum {paths} >> sums.txt"
    else:
        command = f"python3 slow_sha.py data/{remaining[0]} >> sums.txt"
    return {"tool_calls": [tool_call("shell", {"command": command}, f"call_{turn}")]}


def scripted_advice(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
    """The scripted supervisor model's advice (fixed text, labelled scripted by the client)."""
    return {"content": ADVICE_TEXT}


# ---- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    supervised: bool
    bus: str
    seconds: float
    correct: bool
    advice: tuple[Sent, ...]
    #: Each action of the task, in log order: position, action, ok, duration_ms and at_ms (its
    #: result's time since the task was given).
    steps: tuple[dict[str, Any], ...]


def steps(state: BusState) -> tuple[dict[str, Any], ...]:
    """The actions of the bus's last task with their timings, as the log records them."""
    tasks = [raw for raw, _ in state.of_type(e.AgentInput)]
    if not tasks:
        return ()
    task = tasks[-1]
    results = first_results(state)
    return tuple(
        {
            "position": record.position,
            "action": describe_action(record.intent.action),
            "ok": record.result.ok if record.result else None,
            "duration_ms": record.result.duration_ms if record.result else None,
            "at_ms": results[record.position].ts - task.ts if record.result else None,
        }
        for record in sorted(state.intents.values(), key=lambda r: r.position)
        if record.position > task.pos
    )


def folders_hashed(workspace: Path) -> int:
    """Folders with at least one line in ``sums.txt`` so far (the progress of a run)."""
    return len({path.split("/")[1] for path in read_sums(workspace / "sums.txt") if "/" in path})


async def run_once(
    logs: Mapping[str, LogAPI],
    bus: str,
    workspace: Path,
    layout: Layout,
    agent: Model,
    advisor: Model | None,
    *,
    supervised: bool,
    interval: float = 0.2,
    thresholds: AdviceThresholds = THRESHOLDS,
    on_round: Callable[[], None] = lambda: None,
    on_progress: OnProgress | None = None,
) -> Run:
    """One agent on ``bus`` doing the task in ``workspace``, with or without a supervisor."""
    expected = make_workspace(workspace, layout)
    tools = standard_tools(workspace, shell_timeout=600)
    supervisor = Supervisor(
        logs["reader"],
        logs["mailer"],
        model=(advisor.client, advisor.name) if advisor else None,
        thresholds=thresholds,
    )
    done = trio.Event()
    sent: list[Sent] = []
    seconds = 0.0

    async def agent_run() -> None:
        nonlocal seconds
        try:
            seconds = await run_task(
                logs, bus, agent, tools, SYSTEM, TASK, max_steps=layout.folders + 5
            )
        finally:
            done.set()

    async def supervision() -> None:
        sent.extend(
            await supervise_until(supervisor, [bus], done, interval, on_round, on_results=True)
        )

    async def progress(report: OnProgress) -> None:
        label, started, shown = "supervised" if supervised else "alone", trio.current_time(), -1
        while True:
            hashed, over = folders_hashed(workspace), done.is_set()
            if hashed != shown or over:
                shown = hashed
                report(label, hashed, layout.folders, trio.current_time() - started, over)
            if over:
                return
            with trio.move_on_after(0.5):  # a display's refresh, not a synchronisation
                await done.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent_run)
        if supervised:
            nursery.start_soon(supervision)
        if on_progress is not None:
            nursery.start_soon(progress, on_progress)
    correct = read_sums(workspace / "sums.txt") == expected
    state = await read_state(logs["reader"], bus)
    return Run(supervised, bus, seconds, correct, tuple(sent), steps(state))


def shortfall(runs: Sequence[Run], layout: Layout, t: AdviceThresholds = THRESHOLDS) -> str | None:
    """Why a comparison does not show the mechanism (wrong sums, or no advice), else None."""
    wrong = [("supervised" if r.supervised else "alone") for r in runs if not r.correct]
    if wrong:
        return f"the {' and the '.join(wrong)} run's sums.txt does not match the files' hashes"
    if not any(r.advice for r in runs if r.supervised):
        return (
            "the supervised run got no advice, so there is no speed-up to report: the "
            f"supervisor advises once the log shows {t.repeat} runs of one tool over listed "
            f"items with the rest projected to take {t.share:.0%} of the task or more, and with "
            f"{layout.folders} folders it never did"
        )
    return None


def _advice_cell(run: Run) -> str:
    if not run.supervised:
        return "-"
    if not run.advice:
        return "none"
    first = run.advice[0].position
    return f"at #{first}, after {sum(1 for s in run.steps if s['position'] < first)} actions"


async def compare(
    logs: Mapping[str, LogAPI],
    prefix: str,
    layout: Layout,
    model: Model | None = None,
    *,
    interval: float = 0.2,
    on_progress: OnProgress | None = None,
) -> Report:
    """The task alone, then supervised, each on its own bus under ``prefix`` and in a fresh
    workspace; ``model`` serves the agent and the advice, or the scripted ones do. The report's
    ``problem`` says why, when the runs did not show the mechanism."""
    agent = model or Model(ScriptedModel(scripted_agent).client(), "scripted")
    advisor = model or Model(ScriptedModel(scripted_advice).client(), "scripted")
    runs = []
    for supervised in (False, True):
        bus = f"{prefix}/checksum-{'supervised' if supervised else 'alone'}"
        with tempfile.TemporaryDirectory() as workspace:
            runs.append(
                await run_once(
                    logs,
                    bus,
                    Path(workspace),
                    layout,
                    agent,
                    advisor,
                    supervised=supervised,
                    interval=interval,
                    on_progress=on_progress,
                )
            )
    alone, supervised_run = runs
    rows = [
        {
            "run": "supervised" if r.supervised else "alone",
            "seconds": f"{r.seconds:.2f}",
            "actions": len(r.steps),
            "advice": _advice_cell(r),
            "sums correct": r.correct,
        }
        for r in runs
    ]
    problem = shortfall(runs, layout)
    speedup = None if problem else alone.seconds / supervised_run.seconds
    notes = [
        f"{layout.folders} folders x {layout.files} files x {layout.size} bytes; "
        f"model: {agent.name}; buses {alone.bus} and {supervised_run.bus}.",
        f"No speed-up: {problem}."
        if problem
        else f"End-to-end speed-up with the supervisor: {speedup:.1f}x "
        f"({alone.seconds:.2f} s -> {supervised_run.seconds:.2f} s).",
        *(f"Advice mailed at #{sent.position}: {sent.text}" for sent in supervised_run.advice),
    ]
    if model is None:
        notes.append(
            "Scripted models: the agent is scripted to take the advice; this measures "
            "the mechanism (log -> supervisor -> mail -> next inference), not a model."
        )
    doc = {
        "layout": asdict(layout),
        "model": agent.name,
        "speedup": speedup,
        "problem": problem,
        "runs": [asdict(r) for r in runs],
    }
    return Report("Checksum scenario", rows, notes, doc, problem)
