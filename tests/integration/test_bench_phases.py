"""``logact bench --phase ...``: each of LogAct's own phases, run by the real CLI with tiny sizes
against the real clusters it starts, measures something and writes it to the JSON results.

Smoke tests only: they assert that a phase produced samples and the keys a reader of the JSON
relies on, never how fast anything was (performance lives in the bench, not in tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logact.benchmarks import etcd as etcd_mod

pytestmark = pytest.mark.cluster

#: Bound on one bench run (fresh clusters, etcd included); the bench is then stopped with
#: SIGTERM, on which it kills every process it started.
COMMAND_TIMEOUT = 600.0

_SCRIPT = Path(sys.executable).with_name("logact")
LOGACT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "logact.cli.main"]
#: The etcd baselines run where etcd is installed (they are skipped, and say so, elsewhere).
WITH_ETCD = ["--only", "etcd"] if etcd_mod.unavailable_reason() is None else []


def bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run ``logact bench --only logact ARGS``; the JSON results and the text output."""
    results = tmp_path / "bench.json"
    proc = subprocess.Popen(
        [*LOGACT, "bench", "--only", "logact", *args, "--json", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"bench took over {COMMAND_TIMEOUT:g} s:\n{out}\n{err}")
    assert proc.returncode == 0, f"{out}\n{err}"
    return json.loads(results.read_text()), out


def test_decision_phase_times_intents_through_the_gate(tmp_path: Path) -> None:
    doc, out = bench(tmp_path, "--phase", "decision", "--decision-intents", "3")
    assert doc["systems"] == {}  # the system phases were not asked for
    result = doc["phases"]["decision"]
    assert result["decision"]["samples"] == 3
    assert result["timeouts"] == 0 and result["aborted"] == 0
    assert result["baseline_append"]["samples"] == 3
    assert result["baseline_hop"]["samples"] == 3
    assert result["decision_over_append_p50"] is not None
    assert doc["targets"]["decision_p50_ms"]["measured"] == result["decision"]["p50_ms"]
    assert "decision p50/p99" in out


def test_fanout_phase_delivers_to_every_subscriber(tmp_path: Path) -> None:
    doc, out = bench(
        tmp_path,
        "--phase",
        "fanout",
        "--fanout-subscribers",
        "3",
        "--fanout-messages",
        "5",
        *WITH_ETCD,
    )
    result = doc["phases"]["fanout"]
    for name, subscribers in (("logact", 3), ("logact_single", 1)):
        run = result[name]
        assert run["subscribers"] == subscribers
        assert run["sent"] == 5
        assert run["delivered"] == run["expected"] == 5 * subscribers
        assert run["delivery"]["samples"] == 5 * subscribers
        assert run["delivered_per_s"] is not None
    if WITH_ETCD:
        assert result["etcd"]["delivered"] == 15
    assert "fan-out to 3" in out


def test_failover_phase_times_the_first_ack_after_a_leader_kill(tmp_path: Path) -> None:
    doc, out = bench(tmp_path, "--phase", "failover", "--failover-kills", "1", *WITH_ETCD)
    result = doc["phases"]["failover"]
    ours = result["logact"]
    assert ours["election_timeout_s"] == [0.4, 1.2]
    assert ours["first_ack"]["samples"] == 1 and ours["first_ack"]["missed"] == 0
    assert ours["new_leader"]["samples"] == 1
    [kill] = ours["per_kill"]
    assert kill["killed"] != kill["new_leader"]
    if WITH_ETCD:
        assert result["etcd"]["new_leader"]["samples"] == 1
    assert doc["targets"]["failover_first_ack_max_s"]["measured"] == ours["first_ack"]["max_s"]
    assert "failover first ack" in out


def test_restart_phase_times_serving_after_a_full_restart(tmp_path: Path) -> None:
    doc, out = bench(
        tmp_path, "--phase", "restart", "--restart-entries", "300", "--restart-entry-bytes", "100"
    )
    result = doc["phases"]["restart"]
    assert result["built"]["entries"] == 300 and result["built"]["complete"]
    assert all(held["entries"] >= 300 for held in result["log_held"].values())
    assert result["serving_s"] is not None
    assert result["first_ack_s"] is not None and result["first_read_last_s"] is not None
    assert result["empty_log"]["serving_s"] is not None
    assert all(node["bytes"] > 30_000 for node in result["physical"]["per_node"].values())
    assert doc["targets"]["restart_serving_s"]["met"] is None  # far below the size
    assert "restart of 300 entries" in out


def test_a_logact_phase_without_logact_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [*LOGACT, "bench", "--only", "etcd", "--phase", "failover"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--phase failover measures LogAct: add --only logact" in done.stderr
    assert "Traceback" not in done.stderr
