"""``--json``, the output for programs (docs/cli.md), of every command that gained it: each runs
as the real ``logact`` process against real node processes, its stdout is parsed with
``json.loads`` and held to what the log, the pid files or the results files say happened."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.introspection.supervisor import ADVICE
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN

from .test_agent_cli import RUN_TIMEOUT, append, cli, new_bus, read_bus, shell
from .test_agent_cli_truth import (  # noqa: F401 (start: a fixture)
    WRITE_THEN_ANSWER,
    assert_stopped_cleanly,
    start,
)
from .test_cli_truth import LOGACT, fresh, gone, logact, said  # noqa: F401 (a fixture)
from .test_supervise_cli import busy_bus
from .test_supervision import SMALL

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]

#: Bound on the commands that run a workload (chaos, eval, bench) and exit.
LONG_TIMEOUT = 240.0


def lines(stdout: str) -> list[Any]:
    """JSON lines: every line of stdout must be one JSON document."""
    return [json.loads(line) for line in stdout.splitlines()]


def test_cluster_up_and_down_tell_programs_the_leader_and_the_pids(
    fresh: tuple[str, str],  # noqa: F811 (the fixture imported above)
) -> None:
    config, run_dir = fresh
    where = ["--config", config, "--run-dir", run_dir]
    up = logact("cluster", "up", *where, "--json")
    assert up.returncode == 0, said(up)
    started = json.loads(up.stdout)
    local = LocalCluster(config, run_dir)
    pids = {node_id: local.pid(node_id) for node_id in local.node_ids}
    assert started == {
        "leader": started["leader"],
        "started": pids,
        "already_running": {},
        "run_dir": str(local.run_dir),
    }
    assert started["leader"] in pids

    again = json.loads(logact("cluster", "up", *where, "--json").stdout)
    assert (again["started"], again["already_running"]) == ({}, pids)

    down = logact("cluster", "down", *where, "--json")
    assert down.returncode == 0, said(down)
    assert json.loads(down.stdout) == {"stopped": pids, "run_dir": str(local.run_dir)}
    assert all(gone(pid) for pid in pids.values() if pid is not None)
    nothing = logact("cluster", "down", *where, "--json")
    assert json.loads(nothing.stdout) == {"stopped": {}, "run_dir": str(local.run_dir)}


def test_secrets_init_lists_the_files_it_created(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    shutil.copy(REPO / "config" / "cluster.toml", config)
    first = logact("secrets", "init", "--config", str(config), "--json")
    assert first.returncode == 0, said(first)
    created = json.loads(first.stdout)["created"]
    assert created and all(Path(path).is_file() for path in created)
    assert {Path(path).parent for path in created} == {tmp_path / "secrets"}
    second = logact("secrets", "init", "--config", str(config), "--json")
    assert json.loads(second.stdout) == {"created": []}


def test_mail_task_policy_vote_and_trim_say_what_they_appended(cluster: LocalCluster) -> None:
    bus = new_bus("json")
    mail = cli(cluster, "mail", "--to", bus, "--create", "--json", "hello")
    assert mail.code == 0, mail.text
    assert json.loads(mail.stdout) == {"bus": bus, "pos": 0}
    task = cli(cluster, "agent", "task", "--bus", bus, "--json", "tidy up")
    assert json.loads(task.stdout) == {"bus": bus, "pos": 1}

    decider = '{"kind": "all", "params": {"kinds": ["human"]}}'
    policy = cli(cluster, "policy", "--bus", bus, "--decider", decider, "--voter",
                 '{"kind": "llm", "prompt_extra": "be strict"}', "--json")  # fmt: skip
    assert policy.code == 0, policy.text
    appended = json.loads(policy.stdout)
    assert appended["bus"] == bus
    held = read_bus(cluster, bus)
    assert appended["appended"] == [
        {"pos": entry.pos, "type": entry.type, "body": entry.body} for entry in held[2:4]
    ]
    assert [(x["type"], x["body"]["version"]) for x in appended["appended"]] == [
        ("decider_policy", 1),
        ("voter_policy", 1),
    ]

    first, second = append(cluster, bus, "driver", shell("ls"), shell("rm -rf /"))
    one = cli(cluster, "vote", "--bus", bus, "--intent", str(first), "--approve", "--json")
    assert one.code == 0, one.text
    [vote] = lines(one.stdout)
    assert vote == {
        "bus": bus,
        "intent": first,
        "approve": True,
        "reason": "approved by a person",
        "voter": "human",
        "pos": second + 1,
        "counts": True,
    }
    # Asked on stderr, answered on stdin: stdout carries only the vote.
    asked = cli(cluster, "vote", "--bus", bus, "--json", stdin="n\nnot that\n")
    assert asked.code == 0, asked.text
    [vote] = lines(asked.stdout)
    assert (vote["intent"], vote["approve"], vote["reason"]) == (second, False, "not that")
    assert "approve? [y/n/skip]" in asked.stderr and "rm -rf /" in asked.stderr
    held = read_bus(cluster, bus)
    assert [(x.pos, x.type, x.author) for x in held[-2:]] == [
        (second + 1, "vote", "human"),
        (vote["pos"], "vote", "human"),
    ]

    trim = cli(cluster, "trim", "--bus", bus, "--before", "2", "--json", token=ADMIN_TOKEN)
    assert trim.code == 0, trim.text
    assert json.loads(trim.stdout) == {"bus": bus, "trim": 2}


def test_agent_parts_tell_programs_when_they_are_ready_and_what_they_append(
    cluster: LocalCluster,
    start: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    bus = new_bus("json-parts")
    prefix = bus.rsplit("/", 1)[0] + "/"
    veto = '{"kind": "veto", "params": {"kinds": ["rule"]}}'
    voter = start("voter", "agent", "voter", "--watch", prefix, "--kind", "rule", "--json")
    decider = start("decider", "agent", "decider", "--bus", bus, "--policy", veto, "--json")
    voter.wait_for(r'^\{"event": "watching"')
    _, intent = append(cluster, bus, "driver", e.AgentInput("list"), shell("ls"))
    decider.wait_for(r'"type": "commit"')
    voter.wait_for(r'"type": "vote"')

    held = {entry.pos: entry for entry in read_bus(cluster, bus)}
    for part, kind in ((voter, "vote"), (decider, "commit")):
        told = lines(part.stdout())
        ready = next(x for x in told if x["event"] == "ready")
        assert ready["component"] == part.name and ready["bus"] == bus
        [done] = [x for x in told if x["event"] == "appended"]
        assert (done["bus"], done["type"]) == (bus, kind)
        assert held[done["pos"]].type == kind and held[done["pos"]].body["intent_id"] == intent
        assert isinstance(done["ts"], int) and f"#{intent}" in done["text"]
    assert lines(voter.stdout())[0] == {"event": "watching", "prefix": prefix}
    assert_stopped_cleanly(voter, signal.SIGTERM)
    assert_stopped_cleanly(decider, signal.SIGINT)


def test_agent_run_tells_programs_what_runs_each_append_and_the_summary(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    bus = new_bus("json-run")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(WRITE_THEN_ANSWER))
    ran = cli(cluster, "agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"),
              "--task", "write notes", "--llm", "script", "--script", str(script), "--json",
              timeout=RUN_TIMEOUT)  # fmt: skip
    assert ran.code == 0, ran.text
    started, *appended, done = lines(ran.stdout)
    assert started["event"] == "started" and started["driver"] == "scripted"
    assert started["voters"][0] == "rule (no --rules: allows everything)"
    assert started["decider"].startswith("veto")
    held = {entry.pos: entry for entry in read_bus(cluster, bus)}
    assert {x["event"] for x in appended} == {"appended"}
    assert all(held[x["pos"]].type == x["type"] for x in appended)
    assert {"intent", "vote", "commit", "result", "agent_output"} <= {x["type"] for x in appended}
    assert done["event"] == "done" and done["bus"] == bus
    assert (done["summary"]["intents"], done["summary"]["executed_ok"]) == (1, 1)
    assert (tmp_path / "ws" / "notes.txt").read_text() == "hello"


def test_hook_serve_tells_programs_when_its_gate_is_ready(
    cluster: LocalCluster,
    start: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    gate = start("serve", "hook serve", "--harness", "codex", "--json")
    gate.wait_for(r"^\{")
    assert lines(gate.stdout()) == [
        {
            "event": "ready",
            "harness": "codex",
            "prefix": "codex.",
            "parts": ["rule-voter", "decider"],
            "policy": "veto",
        }
    ]
    code, stopped = gate.stop(signal.SIGTERM)
    assert code == 143 and stopped.endswith("hook serve: stopped on SIGTERM\n"), stopped


def test_supervise_tells_programs_each_mail_it_sent(cluster: LocalCluster) -> None:
    slow = new_bus("json-supervise")
    hour = 3_600_000
    trio.run(busy_bus, cluster, slow, [hour, hour, hour], "data/f000")
    ran = cli(cluster, "supervise", "--bus", slow, "--rounds", "2", "--interval", "0", "--json")
    assert ran.code == 0, ran.text
    [sent] = lines(ran.stdout)
    [mail] = [entry for entry in read_bus(cluster, slow) if entry.type == "mail"]
    assert sent == {
        "bus": slow,
        "pos": mail.pos,
        "subject": ADVICE,
        "text": mail.body["text"],
    }


def test_scenario_prints_its_report_for_programs(cluster: LocalCluster, tmp_path: Path) -> None:
    out = tmp_path / "checksum"
    done = run_logact("scenario", "checksum", "--cluster", str(cluster.config_path), *SMALL,
                      "--out", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, said(done)
    report = json.loads(done.stdout)
    assert set(report) == {"name", "notes", "rows", "results", "out"}
    assert report["name"] == "Checksum scenario" and report["out"] == str(out)
    assert report["results"] == json.loads((out / "results.json").read_text())
    assert [row["run"] for row in report["rows"]] == ["alone", "supervised"]
    assert all(row["sums correct"] for row in report["rows"])
    assert "supervised: 20/20 folders hashed" in done.stderr  # the progress, for people


def test_eval_prints_its_results_for_programs(cluster: LocalCluster, tmp_path: Path) -> None:
    done = run_logact("eval", "agentdojo", "--cluster", str(cluster.config_path),
                      "--suites", "banking", "--user-task", "user_task_0", "--only",
                      "provenance", "--out", str(tmp_path), "--json")  # fmt: skip
    assert done.returncode == 0, said(done)
    results = json.loads(done.stdout)
    assert results == {**json.loads((tmp_path / "results.json").read_text()), "out": str(tmp_path)}
    assert len(results["runs"]) == 10 and results["log"].startswith("cluster")
    assert "10 runs in" in done.stderr  # the progress, for people


def test_chaos_prints_every_run_and_the_totals_for_programs(tmp_path: Path) -> None:
    command = ["chaos", "--nemesis", "pause:follower", "--time", "8", "--seed", "3"]
    done = run_logact(*command, "--seeds", "2", "--out", str(tmp_path), "--json")
    report = json.loads(done.stdout)
    assert [run["seed"] for run in report["runs"]] == [3, 4]
    for run in report["runs"]:
        folder = Path(run["folder"])
        assert folder == tmp_path / f"log-seed{run['seed']}"
        assert run["result"] == json.loads((folder / "result.json").read_text())
    totals = report["totals"]
    assert totals["runs"] == 2
    assert totals["anomalies"] == sum(len(run["result"]["anomalies"]) for run in report["runs"])
    assert totals["faults"] == sum(run["result"]["faults_applied"] for run in report["runs"])
    assert report["ok"] is (done.returncode == 0) and report["ok"] is (totals["anomalies"] == 0)
    assert "chaos: log workload" in done.stderr  # the progress, for people


def test_bench_prints_its_results_on_stdout_with_json_dash(tmp_path: Path) -> None:
    done = run_logact("bench", "--json", "-", "--entries-100b", "10", "--entries-10kb", "10",
                      "--duration", "0.5", "--warmup", "0", "--concurrency", "2", "--procs", "1",
                      "--baseline", "none", "--only", "logact", "--run-dir",
                      str(tmp_path / "run"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, said(done)
    results = json.loads(done.stdout)
    assert results["settings"]["systems"] == ["logact"]
    assert results["settings"]["entries_100b"] == 10
    assert not (tmp_path / "bench-results").exists()  # - is stdout, not a file
    assert "logact bench: durability" in done.stderr


def test_bench_snapshots_prints_what_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "snapshots.json"
    done = run_logact("bench-snapshots", "--state-mb", "1", "--seconds", "3", "--out", str(out),
                      "--json")  # fmt: skip
    results = json.loads(done.stdout)
    assert results == json.loads(out.read_text())
    assert (results["state_mb"], results["seconds"]) == (1, 3.0)
    every_node_snapshotted = all(results["snapshots"]["snapshots_written"].values())
    # Too little load for a snapshot on a slow machine is a failure, said in one line.
    assert done.returncode == (0 if every_node_snapshotted else 1), said(done)
    if not every_node_snapshotted:
        assert done.stderr.splitlines()[-1].startswith("error: a node wrote no snapshot")


def run_logact(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A command that runs a workload of its own, to completion; fails past LONG_TIMEOUT."""
    done = subprocess.run(
        [*LOGACT, *args], capture_output=True, text=True, timeout=LONG_TIMEOUT, cwd=cwd
    )
    assert "Traceback" not in done.stderr, said(done)
    return done
