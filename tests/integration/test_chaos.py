"""The bounded chaos pass CI runs: every nemesis against the real cluster, both workloads, and
deliberately broken server modes that the checkers must catch.

Runs are short (tens of seconds of faults each); the long runs (20 seeds x 60 s per nemesis)
are done locally with ``logact chaos --seeds 20`` and reported in the issue notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from logact.jepsen_tests.partition import netns_unavailable
from logact.jepsen_tests.runner import ChaosOptions, ChaosResult, run_chaos
from logact.jepsen_tests.schedule import Fault, unscheduled

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def checkers_that_fired(result: ChaosResult) -> set[str]:
    return {anomaly["checker"] for anomaly in result.anomalies}


async def test_every_nemesis_against_the_log_finds_no_anomaly(tmp_path: Path) -> None:
    result = await run_chaos(
        ChaosOptions(nemeses=["all"], workload="log", time_s=60, seed=11, out=tmp_path)
    )
    assert result.anomalies == []
    assert result.faults_applied >= 4
    # 60 s cannot hold all seven kinds: the run names the ones it left out.
    left_out = unscheduled([Fault(**f) for f in result.schedule], ["all"])
    assert left_out and set(left_out) <= set(result.not_exercised)
    assert result.operations["append:ok"] > 100
    assert result.operations["final_read:ok"] == 1
    # Every node's own copy was compared with the final log (the node_state checker).
    assert result.operations["node_state:ok"] == 3 and result.operations["final_state:ok"] == 2
    assert set(result.raft) == {"n1", "n2", "n3"}
    assert (tmp_path / "history.jsonl").exists() and (tmp_path / "result.json").exists()


async def test_agents_under_node_and_component_kills_stay_safe(tmp_path: Path) -> None:
    result = await run_chaos(
        ChaosOptions(
            nemeses=["kill", "pause"],
            workload="agent",
            time_s=30,
            seed=12,
            out=tmp_path,
            agents=2,
        )
    )
    assert result.anomalies == [], result.anomalies[:3]
    assert result.notes == []  # every agent finished
    assert result.operations["node_state:ok"] == 3 and result.operations["final_state:ok"] == 2
    ledgers = sorted((tmp_path / "agents").glob("ws-*/ledger.txt"))  # written in the sandbox
    assert [len(path.read_text().splitlines()) for path in ledgers] == [4, 4]  # 2 of 6 vetoed


async def test_stale_reads_are_caught(tmp_path: Path) -> None:
    result = await run_chaos(
        ChaosOptions(
            nemeses=["partition:isolate-leader", "pause:follower"],
            workload="log",
            time_s=25,
            seed=13,
            out=tmp_path,
            unsafe="stale-reads",
        )
    )
    assert "linearizable_reads" in checkers_that_fired(result)


async def test_appends_without_dedup_are_caught_duplicating(tmp_path: Path) -> None:
    """A duplicate needs an append committed by a leader killed before it answered: likely in
    one run, not certain (seen missing once on a loaded machine), so up to three seeds run."""
    fired: set[str] = set()
    for seed in (14, 17, 18):
        result = await run_chaos(
            ChaosOptions(
                nemeses=["kill:leader"],
                workload="log",
                time_s=35,
                seed=seed,
                out=tmp_path / str(seed),
                unsafe="no-dedup",
            )
        )
        fired = checkers_that_fired(result) & {"total_order", "lost_writes"}
        if fired:
            break
    assert fired


@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
async def test_partitions_through_network_namespaces(tmp_path: Path) -> None:
    result = await run_chaos(
        ChaosOptions(
            nemeses=["partition"], workload="log", time_s=25, seed=15, out=tmp_path, net="netns"
        )
    )
    assert result.anomalies == []
    assert result.faults_applied >= 1


def test_the_cli_writes_the_report_and_fails_on_anomalies(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "logact.cli.main",
        "chaos",
        "--nemesis",
        "pause:follower",
        "--time",
        "15",
        "--seed",
        "16",
        "--out",
        str(tmp_path),
        "--unsafe",
        "stale-reads",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    folder = tmp_path / "log-seed16"
    result = json.loads((folder / "result.json").read_text())
    assert (folder / "timeline.png").stat().st_size > 10_000
    assert (folder / "history.jsonl").exists() and (tmp_path / "log-seed16").is_dir()
    assert done.returncode == (1 if result["anomalies"] else 0), done.stdout[-2000:]
    assert "anomalies by checker" in done.stdout


def test_the_cli_says_what_it_did_and_fails_strict_runs_that_left_kinds_out(
    tmp_path: Path,
) -> None:
    """Each fault is printed as it is applied; a run too short for every requested kind says
    which it left out and, with --strict, exits 1 although nothing is wrong with the log."""
    command = [sys.executable, "-m", "logact.cli.main", "chaos", "--nemesis", "kill,pause"]
    command += ["--time", "16", "--seed", "4", "--out", str(tmp_path), "--strict"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    result = json.loads((tmp_path / "log-seed4" / "result.json").read_text())
    assert result["anomalies"] == [] and result["faults_applied"] == 1, done.stdout[-2000:]
    assert result["not_exercised"] and done.returncode == 1
    applied = next(f for f in result["schedule"])
    assert f"fault 1/1: {applied['kind']} ({applied['target']})" in done.stdout
    assert f"not scheduled, the run is too short: {result['not_exercised'][0]}" in done.stdout
    assert "not exercised:" in done.stdout


def test_an_unknown_nemesis_is_a_usage_error(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "logact.cli.main", "chaos", "--nemesis", "kill,flood"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown nemesis 'flood'" in done.stderr and "Traceback" not in done.stderr
