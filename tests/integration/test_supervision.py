"""The supervision scenarios (scenarios/) with scripted models: the mechanism, asserted from the
log. A supervisor reads an agent's bus, mails it, and the mail reaches the agent's next
inference; in a swarm, gossip keeps agents off work their peers have done.

The supervisor runs its own polling loop, as in production. So that the outcome does not
depend on timing, each scripted model waits (in its thread, bounded) before answering until a
supervision round that started after the request has finished: by then the supervisor has seen
everything the agent saw. The CLI runs on the shared 3-node cluster are not gated and assert
only what holds whatever the timing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.replay import read_state
from logact.agent.introspection.supervisor import ADVICE, GOSSIP, AdviceThresholds
from logact.agent.models.llm import ScriptedModel
from logact.cli.main import main
from logact.ops.local_cluster import LocalCluster
from logact.scenarios import checksum as cs
from logact.scenarios import swarm as sw
from logact.scenarios.rig import ROLES, Model
from logact.server.local import open_memory

from .test_cli_truth import LOGACT, said

DEADLINE = 120.0
GATE_TIMEOUT = 20.0
#: A checksum scenario small enough for a test: 20 folders of one 16 KB file. The supervisor's
#: rounds come with the agent's results, so even rounds 5 s apart (longer than the whole run)
#: do not delay its advice.
SMALL = ["--folders", "20", "--files", "1", "--size", "16384", "--interval", "5"]
NAMED = re.compile(r'"path": "([^"]+)"|taking: (\S+)')  # files named by gossip or peer mail
Responder = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], dict]


class Gate:
    """Counts supervision rounds; a gated responder waits for a full round after its request."""

    def __init__(self) -> None:
        self._rounds = 0
        self._cond = threading.Condition()

    def on_round(self) -> None:
        with self._cond:
            self._rounds += 1
            self._cond.notify_all()

    def wrap(self, respond: Responder, from_turn: int = 1) -> Responder:
        def gated(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            if turn >= from_turn:
                with self._cond:
                    start = self._rounds
                    # The round in progress may predate the request: wait for the next one.
                    if not self._cond.wait_for(lambda: self._rounds >= start + 2, GATE_TIMEOUT):
                        raise RuntimeError("no supervision round within the gate timeout")
            return respond(messages, request)

        return gated


def shell_commands(state: BusState) -> list[tuple[int, str]]:
    return [
        (raw.pos, str(entry.action.arguments.get("command")))
        for raw, entry in state.of_type(e.Intent)
        if isinstance(entry.action, e.ToolCall)
    ]


def mails(state: BusState, subject: str) -> list[tuple[int, e.Mail]]:
    return [(raw.pos, m) for raw, m in state.of_type(e.Mail) if m.subject == subject]


async def test_a_supervisor_reads_the_time_per_step_and_the_agent_takes_its_advice(
    tmp_path: Path,
) -> None:
    layout = cs.Layout(folders=8, files=2, size=64 * 1024)
    gate = Gate()
    advisor_requests: list[str] = []

    def advisor(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> dict:
        advisor_requests.append(str(messages[-1]["content"]))
        return cs.scripted_advice(messages, request)

    agent = Model(ScriptedModel(gate.wrap(cs.scripted_agent)).client(), "scripted")
    adviser = Model(ScriptedModel(advisor).client(), "scripted")
    # Count-based only (share 0): whether the rest dominates depends on the machine's load (the
    # unit tests of costly_repetition cover it); here advice is due once three helper runs over
    # the listed folders have results.
    thresholds = AdviceThresholds(repeat=3, share=0.0)
    with trio.fail_after(DEADLINE):
        async with open_memory() as log:
            logs = dict.fromkeys(ROLES, log)
            supervised = await cs.run_once(
                logs, "checksum/supervised", tmp_path / "a", layout, agent, adviser,
                supervised=True, interval=0.05, thresholds=thresholds, on_round=gate.on_round,
            )  # fmt: skip
            plain = Model(ScriptedModel(cs.scripted_agent).client(), "scripted")
            alone = await cs.run_once(
                logs, "checksum/alone", tmp_path / "b", layout, plain, adviser, supervised=False
            )
            state = await read_state(log, "checksum/supervised")
            alone_state = await read_state(log, "checksum/alone")
    assert supervised.correct and alone.correct
    # Alone: the helper, folder by folder.
    assert [c for _, c in shell_commands(alone_state)][1:] == [
        f"python3 slow_sha.py data/f{f:03d} >> sums.txt" for f in range(8)
    ]
    assert not mails(alone_state, ADVICE)
    # Supervised: advice once, as soon as three helper runs over the listed folders have
    # results; it states the projection. Every inference before the mail used the helper; the
    # first one after it hashes all remaining folders in one command.
    (advice_pos, advice), *more = mails(state, ADVICE)
    assert not more and advice.sender == "supervisor" and cs.ADVICE_TEXT in advice.text
    assert re.search(
        r"3 shell actions each took new items of the 8 listed by #\d+ \(shell: ls data\), at a "
        r"median of [\d.]+ s per item: 5 items are left",
        advice.text,
    ), advice.text
    commands = shell_commands(state)
    slow = [pos for pos, c in commands if "slow_sha.py" in c]
    assert len(slow) >= 3
    third = next(raw.pos for raw, r in state.of_type(e.Result) if r.intent_id == slow[2])
    assert third < advice_pos
    inferences = [raw.pos for raw, _ in state.of_type(e.InfIn)]

    def inferred_at(intent_pos: int) -> int:
        return max(pos for pos in inferences if pos < intent_pos)

    assert all(inferred_at(pos) < advice_pos for pos in slow)
    batch_pos, batch = commands[-1]
    remaining = " ".join(f"data/f{f:03d}/*" for f in range(len(slow), 8))
    assert batch == f"sha256sum {remaining} >> sums.txt"
    assert inferred_at(batch_pos) > advice_pos
    # The supervisor's model saw the agent's time per step.
    assert len(advisor_requests) == 1 and re.search(
        r"slow_sha\.py.* in \d+ ms", advisor_requests[0]
    )


async def test_gossip_keeps_a_swarm_off_work_its_peers_did(tmp_path: Path) -> None:
    tree = sw.Tree(dirs=2, files=4, agents=3)
    gate = Gate()
    buses = [f"swarm/gossip/a{i}" for i in range(3)]
    models = {
        bus: Model(ScriptedModel(gate.wrap(sw.scripted_agent(bus, 0.0))).client(), "scripted")
        for bus in buses
    }
    alone_buses = [f"swarm/alone/a{i}" for i in range(3)]
    with trio.fail_after(DEADLINE):
        async with open_memory() as log:
            logs = dict.fromkeys(ROLES, log)
            gossiping = await sw.run_swarm(
                logs, tmp_path / "g", tree, models, coordination="hub", interval=0.02,
                on_round=gate.on_round,
            )  # fmt: skip
            alone = await sw.run_swarm(
                logs, tmp_path / "a", tree, sw.scripted_models(alone_buses, 0.0, "none"),
                coordination="none",
            )  # fmt: skip
            states = [await read_state(log, bus) for bus in buses]
    files = tree.dirs * tree.files
    assert (alone.unique, alone.processed) == (files, 3 * files)  # everyone did everything
    assert gossiping.unique == files and gossiping.processed < alone.processed
    assert gossiping.tokens > 0 and set(gossiping.tokens_per_agent) == set(buses)
    assert sorted(p.name for p in (tmp_path / "g" / "out" / "tree").rglob("*.json")) == sorted(
        f"file{f}.txt.json" for _ in range(tree.dirs) for f in range(tree.files)
    )
    for state in states:
        assert mails(state, GOSSIP), f"{state.bus} got no gossip"
        assert_never_redoes_what_mail_named(state)


def assert_never_redoes_what_mail_named(state: BusState) -> None:
    """No file is processed by an inference that carried mail naming it (done or taken)."""
    told: set[str] = set()
    pending: list[e.Mail] = []
    for raw, entry in state.entries:
        if isinstance(entry, e.Mail):
            pending.append(entry)
        elif isinstance(entry, e.InfIn):
            for mail in pending:
                told |= {a or b for a, b in NAMED.findall(mail.text)}
            pending = []
        elif isinstance(entry, e.Intent) and entry.action.tool == sw.PROCESS:
            path = entry.action.arguments["path"]
            assert path not in told, f"{state.bus} redid {path} at #{raw.pos} after mail named it"


async def test_agents_that_mail_each_other_what_they_take(tmp_path: Path) -> None:
    tree = sw.Tree(dirs=2, files=4, agents=3)
    buses = [f"swarm/peers/a{i}" for i in range(3)]
    with trio.fail_after(DEADLINE):
        async with open_memory() as log:
            logs = dict.fromkeys(ROLES, log)
            run = await sw.run_swarm(
                logs, tmp_path, tree, sw.scripted_models(buses, 0.0, "peers"),
                coordination="peers",
            )  # fmt: skip
            states = [await read_state(log, bus) for bus in buses]
    assert run.unique == tree.dirs * tree.files and not run.gossip_mail
    assert run.peer_mails == 2 * run.processed  # every file taken is mailed to both peers
    for state in states:
        assert_never_redoes_what_mail_named(state)


async def test_a_checksum_comparison_without_advice_reports_no_speed_up() -> None:
    # Two folders: the supervisor never sees three helper runs, so there is nothing to compare.
    progress: list[tuple[str, int, int, bool]] = []
    with trio.fail_after(DEADLINE):
        async with open_memory() as log:
            report = await cs.compare(
                dict.fromkeys(ROLES, log), "agent/compare", cs.Layout(2, 1, 1024), interval=0.05,
                on_progress=lambda run, hashed, total, _, over: progress.append(
                    (run, hashed, total, over)
                ),
            )  # fmt: skip
    assert [(row["run"], row["sums correct"], row["advice"]) for row in report.rows] == [
        ("alone", True, "-"),
        ("supervised", True, "none"),
    ]
    assert report.problem and "the supervised run got no advice" in report.problem
    assert report.doc["problem"] == report.problem and report.doc["speedup"] is None
    assert not any("speed-up with" in note for note in report.notes)
    alone, supervised = report.doc["runs"]
    assert [run["bus"] for run in (alone, supervised)] == [
        "agent/compare/checksum-alone",
        "agent/compare/checksum-supervised",
    ]
    # Each run's steps as the log has them: the listing, then the helper per folder.
    assert [step["action"] for step in alone["steps"]] == [
        "shell: ls data",
        "shell: python3 slow_sha.py data/f000 >> sums.txt",
        "shell: python3 slow_sha.py data/f001 >> sums.txt",
    ]
    for step in alone["steps"]:
        assert step["ok"] and step["duration_ms"] >= 0 and step["at_ms"] >= step["duration_ms"]
    assert [s["at_ms"] for s in alone["steps"]] == sorted(s["at_ms"] for s in alone["steps"])
    # The progress reached every folder, and said when each run was over.
    assert [p for p in progress if p[3]] == [("alone", 2, 2, True), ("supervised", 2, 2, True)]
    assert report.doc["model"] == "scripted" and "Scripted models" in report.notes[-1]


@pytest.mark.parametrize("as_json", [False, True])
def test_the_checksum_command_fails_when_the_supervisor_had_nothing_to_advise(
    tmp_path: Path, as_json: bool
) -> None:
    # Two folders: never three helper runs to judge, whatever the machine.
    out = tmp_path / "out"
    done = subprocess.run(
        [*LOGACT, "scenario", "checksum", "--folders", "2", "--files", "1", "--size", "1024",
         "--interval", "0.05", "--out", str(out), *(["--json"] if as_json else [])],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert done.returncode == 1, said(done)
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "the supervised run got no advice" in error and "with 2 folders" in error
    assert str(out / "results.json") in error and "Traceback" not in done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["problem"] in error and results["speedup"] is None
    assert "speed-up with" not in done.stdout + done.stderr  # no figure
    if as_json:  # the results first, as every command that fails after doing something
        assert json.loads(done.stdout)["results"] == results
    else:
        assert "No speed-up: the supervised run got no advice" in done.stdout
    assert "supervised: 2/2 folders hashed" in done.stderr  # the progress, for people


async def test_the_swarm_comparison_reports_every_coordination() -> None:
    tree = sw.Tree(dirs=1, files=3, agents=2)
    with trio.fail_after(DEADLINE):
        async with open_memory() as log:
            report = await sw.compare(
                dict.fromkeys(ROLES, log), "agent/compare", tree, think=0.0, interval=0.05
            )
    assert [row["coordination"] for row in report.rows] == list(sw.COORDINATIONS)
    assert all(row["unique work"] == "3" for row in report.rows)
    (none,) = report.doc["runs"]["none"]
    assert none["buses"] == ("agent/compare/swarm-0-none/a0", "agent/compare/swarm-0-none/a1")
    assert none["processed"] == 6  # uncoordinated: both agents did every file
    assert report.notes[0].startswith("2 agents, 3 files, budget until done; model: scripted")


@pytest.mark.cluster
def test_the_scenario_commands_run_on_the_cluster(cluster: LocalCluster, tmp_path: Path) -> None:
    config = str(cluster.config_path)
    out = tmp_path / "checksum"
    # Not gated: the supervisor judges at each result as it commits, and the rule holds from the
    # third helper result until the rest no longer dominates (about the ninth of 20 folders).
    done = subprocess.run(
        [*LOGACT, "scenario", "checksum", "--cluster", config, *SMALL, "--out", str(out)],
        capture_output=True, text=True, timeout=DEADLINE, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, said(done)
    data = json.loads((out / "results.json").read_text())
    alone, supervised = data["runs"]
    assert (alone["correct"], supervised["correct"]) == (True, True)
    assert not alone["advice"] and len(supervised["advice"]) == 1 and data["problem"] is None
    # The advice states the projection, and the agent batched the rest after it.
    (advice,) = supervised["advice"]
    assert re.search(r"\d+ items are left, about [\d.]+ s more at this pace", advice["text"])
    assert len(supervised["steps"]) < len(alone["steps"]) == 21
    assert supervised["steps"][-1]["action"].startswith("shell: sha256sum ")
    assert all(step["duration_ms"] is not None for step in alone["steps"])
    assert f"{data['speedup']:.1f}x" in done.stdout and "Checksum scenario" in done.stdout
    assert "alone: 20/20 folders hashed" in done.stderr and "done" in done.stderr
    runner = CliRunner()
    out = tmp_path / "swarm"
    result = runner.invoke(
        main,
        ["scenario", "swarm", "--cluster", config, "--agents", "2", "--dirs", "1", "--files",
         "3", "--think", "0", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "results.json").read_text())["runs"]
    (none,), (peers,), (hub,) = runs["none"], runs["peers"], runs["hub"]
    assert [r["unique"] for r in (none, peers, hub)] == [3, 3, 3] and none["processed"] == 6
    assert none["peer_mails"] == 0 == hub["peer_mails"] and peers["peer_mails"] > 0


def test_scenario_arguments_are_checked(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (
        ["scenario", "checksum", "--folders", "0"],
        ["scenario", "swarm", "--agents", "1"],
        ["scenario", "swarm", "--budget", "0"],
        ["scenario", "swarm", "--seeds", "0"],
    ):
        result = runner.invoke(main, [*args, "--out", str(tmp_path)])
        assert result.exit_code != 0 and "must be" in result.output, args
    result = runner.invoke(
        main,
        ["scenario", "swarm", "--llm", "env", "--out", str(tmp_path)],
        env={"OPENAI_BASE_URL": ""},
    )
    assert result.exit_code != 0 and "no model endpoint" in result.output
