"""The pure parts of the bench's phases: statistics, result shaping, targets and the report.

The phases themselves run against real clusters in tests/integration/test_bench_phases.py;
here every input is a plain value and every assertion is about what is computed from it.
"""

from __future__ import annotations

import io
import tomllib
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from logact.agent.core import entries
from logact.agent.judgement.rules import RuleSet
from logact.benchmarks import phase_decision, phase_failover, phase_fanout, phase_restart
from logact.benchmarks.loadgen import Payloads, paced, stamp_of
from logact.benchmarks.phase_report import phase_line, phase_rows, phase_targets, print_phases
from logact.benchmarks.runner import SYSTEM_PHASES, Settings, median_doc
from logact.benchmarks.stats import median_tree, summarize_s


# ---------------------------------------------------------------------------- statistics
def test_summarize_s_counts_missed_events_apart() -> None:
    summary = summarize_s([1.5, None, 0.5, 2.0])
    assert summary == {"samples": 3, "missed": 1, "p50_s": 1.5, "max_s": 2.0}
    assert summarize_s([None]) == {"samples": 0, "missed": 1, "p50_s": None, "max_s": None}


def test_median_tree_takes_medians_and_pools_samples() -> None:
    rounds = [
        {"p50": 1.0, "label": "a", "kills": [{"s": 1}]},
        {"p50": 3.0, "label": "b", "kills": [{"s": 2}]},
        {"p50": 2.0, "label": "c", "kills": [{"s": 3}, {"s": 4}]},
    ]
    assert median_tree(rounds) == {
        "p50": 2.0,
        "label": "a",
        "kills": [{"s": 1}, {"s": 2}, {"s": 3}, {"s": 4}],
    }


def test_median_doc_of_phase_rounds_keeps_failed_rounds_apart() -> None:
    merged = median_doc([{"x": 1.0}, {"error": "boom"}, {"x": 3.0}])
    assert merged["x"] == 2.0
    assert merged["rounds"] == 2
    assert merged["failed_rounds"] == ["boom"]


def test_settings_run_the_system_phases_by_default() -> None:
    assert Settings().phases == SYSTEM_PHASES


# ---------------------------------------------------------------------------- load generator
def test_stamped_payloads_carry_their_send_time() -> None:
    body = Payloads(100, 1, stamped=True).next()
    assert len(body) == 100
    stamp = stamp_of(body)
    assert stamp is not None and stamp > 0
    assert stamp_of(b"ready") is None  # the marker
    assert len(Payloads(100, 1).next()) == 100


async def test_paced_load_reports_each_ack_and_counts_errors_until_stopped() -> None:
    stop = trio.Event()
    acks: list[tuple[float, float]] = []
    calls = 0

    async def append(_payload: bytes) -> object:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise RuntimeError("leader gone")
        return calls

    def on_ack(began: float, ended: float) -> None:
        acks.append((began, ended))
        if len(acks) == 5:
            stop.set()

    with trio.fail_after(10):
        result = await paced(append, Payloads(10, 1), 2, 0.001, 30.0, stop, on_ack)
    assert result["errors"] == {"RuntimeError": 2}
    assert result["acks"] == len(acks) >= 5
    assert all(began <= ended for began, ended in acks)


# ---------------------------------------------------------------------------- decision
def test_decision_shape_compares_with_the_append_and_the_hop() -> None:
    decisions = [(0.0, 0.002, 0.006), (1.0, 1.002, 1.008), (2.0, 2.002, 2.007)]
    baseline = [(0.0, 0.002, 0.0021), (1.0, 1.002, 1.0021), (2.0, 2.002, 2.0021)]
    shaped = phase_decision.shape(decisions, baseline, aborted=0, timeouts=1)
    assert shaped["decision"]["samples"] == 3
    assert shaped["decision"]["p50_ms"] == 7.0
    assert shaped["decision_after_intent_ack"]["p50_ms"] == 5.0
    assert shaped["baseline_append"]["p50_ms"] == 2.0
    assert shaped["baseline_hop"]["p50_ms"] == 2.1
    assert shaped["decision_over_append_p50"] == 3.5
    assert shaped["decision_over_hop_p50"] == 3.33
    assert shaped["timeouts"] == 1


def test_decision_intents_are_valid_agent_entries_the_rules_allow() -> None:
    entry_type, body = phase_decision.intent(3).to_entry()
    assert entry_type == "intent"
    parsed = entries.parse(entry_type, body)
    assert isinstance(parsed, entries.Intent)
    rules = RuleSet.from_doc(phase_decision.RULES)
    assert rules.evaluate(parsed.action, phase_decision.BUS).approve


# ---------------------------------------------------------------------------- failover
def test_first_ack_counts_only_appends_begun_after_the_leader_died() -> None:
    acks = [(1.0, 2.5), (3.0, 5.0), (4.0, 4.5), (0.5, 3.2)]
    assert phase_failover.first_ack_after(acks, 3.0) == 4.5
    assert phase_failover.first_ack_after(acks, 4.1) is None


def test_failover_shape_times_from_the_kill_and_counts_missed_kills() -> None:
    kills = [
        {"killed": "n1", "kill_at": 10.0, "new_leader": "n2", "leader_at": 11.0, "ack_at": 11.2},
        {"killed": "n2", "kill_at": 20.0, "new_leader": "n3", "leader_at": 21.5, "ack_at": None},
    ]
    shaped = phase_failover.shape(kills)
    assert shaped["per_kill"][0] == {
        "killed": "n1",
        "new_leader": "n2",
        "leader_s": 1.0,
        "first_ack_s": 1.2,
    }
    assert shaped["first_ack"] == {"samples": 1, "missed": 1, "p50_s": 1.2, "max_s": 1.2}
    assert shaped["new_leader"]["max_s"] == 1.5


# ---------------------------------------------------------------------------- restart
def test_restart_layout_stays_under_the_batch_and_bus_limits() -> None:
    batch, buses = phase_restart.layout(1_000_000, 1000)
    assert batch == 1000
    assert buses == 8  # 1 GB in buses of at most 128 MiB
    assert phase_restart.layout(100, 512 * 1024) == (2, 1)
    limits = tomllib.loads(phase_restart.limits_toml(1_000_000, 1000))["limits"]
    assert limits["max_principal_bytes"] >= 2 * 10**9


def test_physical_bound_reads_every_byte_of_each_data_dir(tmp_path: Path) -> None:
    for node, size in (("n1", 3000), ("n2", 5000)):
        (tmp_path / node / "sub").mkdir(parents=True)
        (tmp_path / node / "journal").write_bytes(b"j" * size)
        (tmp_path / node / "sub" / "snapshot").write_bytes(b"s" * 100)
    bound = phase_restart.physical_bound({n: tmp_path / n for n in ("n1", "n2")})
    assert bound["per_node"]["n1"]["bytes"] == 3100
    assert bound["per_node"]["n2"]["bytes"] == 5100
    assert bound["bound_s"] == bound["per_node"]["n2"]["read_s"]


# ---------------------------------------------------------------------------- fan-out
def _subscriber(count: int, latencies: list[int], first: int, last: int) -> dict[str, Any]:
    return {
        "subscribers": count,
        "complete": count,
        "received": len(latencies),
        "latencies_us": latencies,
        "first_stamp_ns": first,
        "last_receipt_ns": last,
        "errors": {},
    }


def test_fanout_shape_pools_subscribers_and_rates_deliveries() -> None:
    writer = {"ops": 2, "latencies_us": [1000, 3000], "errors": {}}
    subs = [
        _subscriber(2, [2000, 4000, 2000, 4000], 1_000_000_000, 1_500_000_000),
        _subscriber(1, [6000, 8000], 1_100_000_000, 2_000_000_000),
    ]
    shaped = phase_fanout.shape(writer, subs)
    assert shaped["subscribers"] == 3
    assert shaped["delivered"] == shaped["expected"] == 6
    assert shaped["delivery"]["p50_ms"] == 4.0
    assert shaped["delivered_per_s"] == 6.0  # 6 deliveries from 1.0 s to 2.0 s
    assert shaped["writer_append"]["samples"] == 2
    subs[1]["errors"] = {"deadline": 1}
    assert phase_fanout.shape(writer, subs)["errors"] == {"subscriber deadline": 1}


# ---------------------------------------------------------------------------- report
def _phases(restart_entries: int = 5000) -> dict[str, Any]:
    decision = phase_decision.shape(
        [(0.0, 0.002, 0.006)], [(0.0, 0.002, 0.0021)], aborted=0, timeouts=0
    )
    failover_kills = [
        {"killed": "n1", "kill_at": 0.0, "new_leader": "n2", "leader_at": 1.0, "ack_at": 1.1}
    ]
    fanout_run = phase_fanout.shape(
        {"ops": 1, "latencies_us": [1000], "errors": {}},
        [_subscriber(1, [2000], 0, 10**9)],
    )
    return {
        "decision": {"intents": 1, **decision},
        "failover": {
            "logact": {"election_timeout_s": [0.4, 1.2], **phase_failover.shape(failover_kills)},
            "etcd": {"skipped": "etcd not installed"},
        },
        "restart": {
            "built": {
                "entries": restart_entries,
                "bytes": restart_entries * 1000,
                "complete": True,
            },
            "physical": {"bound_s": 0.01, "read_mb_per_s": 500.0},
            "first_ack_s": 3.0,
            "first_read_last_s": 3.5,
            "serving_s": 3.5,
            "empty_log": {"serving_s": 3.0},
        },
        "fanout": {"logact": fanout_run, "logact_single": fanout_run},
    }


def test_targets_judge_what_the_issue_sets() -> None:
    targets = phase_targets(_phases())
    assert targets["decision_p50_ms"]["met"] is False  # 6 ms > 5 ms
    assert targets["failover_first_ack_max_s"]["met"] is True
    assert targets["restart_serving_s"]["met"] is None  # 5,000 entries: not the issue's size
    assert "1M" in targets["restart_serving_s"]["note"]
    assert phase_targets(_phases(1_000_000))["restart_serving_s"]["met"] is True
    missed = _phases()
    missed["failover"]["logact"]["first_ack"]["missed"] = 1
    assert phase_targets(missed)["failover_first_ack_max_s"]["met"] is False
    assert phase_targets({}) == {}


def test_each_phase_has_a_line_a_row_and_a_table_entry() -> None:
    phases = _phases()
    for name, result in phases.items():
        assert phase_line(name, result)
    assert phase_line("restart", {"error": "RuntimeError: x"}) == "restart failed: RuntimeError: x"
    metrics = [row[0] for row in phase_rows(phases)]
    assert any(m.startswith("decision") for m in metrics)
    assert any(m.startswith("failover") for m in metrics)
    assert any(m.startswith("restart") for m in metrics)
    assert any(m.startswith("fan-out") for m in metrics)
    out = io.StringIO()
    print_phases({"phases": phases}, Console(file=out, width=200))
    text = out.getvalue()
    assert "decision p50 / p99 ms" in text
    assert "etcd baseline skipped: etcd not installed" in text
