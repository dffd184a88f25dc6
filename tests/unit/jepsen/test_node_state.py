"""The node_state checker: each node's own copy of the log against the final linearizable reads.

Generated runs come from a correct log: every node holds a prefix of the final log that is at
least as long as the first final read. One planted fault (an entry changed, a committed entry
missing, an entry beyond the final log, a node never read) must then always be caught.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from logact.jepsen_tests.checkers import LOG_CHECKERS, node_states
from logact.jepsen_tests.history import Op, make_op

NODES = ["n1", "n2", "n3"]
_ids = itertools.count()


def bus_state(digests: list[str], trim: int = 0) -> dict[str, Any]:
    entries = [[pos, digest] for pos, digest in enumerate(digests) if pos >= trim]
    return {"trim": trim, "tail": max(trim, len(digests)), "entries": entries}


def final_state(buses: dict[str, list[str]], t: int) -> Op:
    state = {bus: bus_state(digests) for bus, digests in buses.items()}
    return make_op("final", "final_state", next(_ids), t, t + 1, "ok", nodes=NODES, buses=state)


def node_state(node: str, buses: dict[str, list[str]], t: int) -> Op:
    state = {bus: bus_state(digests) for bus, digests in buses.items()}
    return make_op(
        f"state-{node}", "node_state", next(_ids), t, t + 1, "ok", node=node, buses=state
    )


def run(
    nodes: dict[str, dict[str, list[str]]], lower: dict[str, list[str]], upper=None
) -> list[Op]:
    """final_state(lower), one node_state per node, final_state(upper, default: lower)."""
    history = [final_state(lower, 10)]
    history += [node_state(node, buses, 20 + k) for k, (node, buses) in enumerate(nodes.items())]
    history.append(final_state(lower if upper is None else upper, 100))
    return history


LOG = {"b": ["d0", "d1", "d2"]}


def test_nodes_holding_exactly_the_final_log_pass() -> None:
    assert node_states(run({n: LOG for n in NODES}, LOG)) == []


def test_the_check_is_one_of_the_log_checkers() -> None:
    assert LOG_CHECKERS["node_state"] is node_states


def test_an_entry_the_final_log_does_not_have_there() -> None:
    """The issue-12 failure: a node applied its own uncommitted entry at position 1."""
    diverged = {"b": ["d0", "stale", "d2"]}
    (anomaly,) = node_states(run({"n1": LOG, "n2": diverged, "n3": LOG}, LOG))
    assert anomaly.checker == "node_state"
    assert "n2 holds entries of bus 'b' that differ from the final reads: at 1" in (anomaly.message)


def test_a_node_missing_a_committed_entry() -> None:
    behind = {"b": ["d0"]}
    (anomaly,) = node_states(run({"n1": LOG, "n2": LOG, "n3": behind}, LOG))
    assert "n3 lacks committed entries of bus 'b': 1, 2" in anomaly.message


def test_a_node_may_hold_what_was_appended_between_the_final_reads() -> None:
    longer = {"b": [*LOG["b"], "d3"]}
    assert node_states(run({"n1": LOG, "n2": longer, "n3": longer}, LOG, longer)) == []


def test_a_bus_only_one_node_has() -> None:
    phantom = {**LOG, "ghost": ["x"]}
    (anomaly,) = node_states(run({"n1": LOG, "n2": LOG, "n3": phantom}, LOG))
    assert "n3 holds entries of bus 'ghost'" in anomaly.message


def test_a_node_never_read_or_unreadable_is_an_anomaly() -> None:
    history = run({"n1": LOG, "n2": LOG}, LOG)
    failed = make_op("state-n3", "node_state", next(_ids), 30, 31, "info", node="n3", error="x")
    assert [a.message for a in node_states(history)] == ["n3's own copy of the log was not read"]
    assert [a.message for a in node_states([*history, failed])] == [
        "n3's own copy could not be read: x"
    ]


def test_no_final_read_that_succeeded() -> None:
    failed = make_op("final", "final_state", next(_ids), 1, 2, "info", nodes=NODES, error="t")
    (anomaly,) = node_states([failed])
    assert anomaly.message == "no final read of every bus succeeded"


def test_the_last_final_read_must_extend_the_first() -> None:
    rewritten = {"b": ["d0", "other", "d2"]}
    messages = [a.message for a in node_states(run({n: LOG for n in NODES}, LOG, rewritten))]
    assert any("the last final read holds entries of bus 'b'" in m for m in messages)


def test_a_history_without_final_state_is_not_judged() -> None:
    assert node_states([]) == []


@st.composite
def correct_runs(draw: st.DrawFn) -> tuple[dict[str, dict[str, list[str]]], dict, dict]:
    """Final logs per bus, an earlier (shorter) final read, and nodes holding prefixes between."""
    buses = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    upper = {bus: [f"{bus}{i}" for i in range(draw(st.integers(0, 8)))] for bus in buses}
    lower = {bus: log[: draw(st.integers(0, len(log)))] for bus, log in upper.items()}
    nodes = {
        node: {
            bus: log[: draw(st.integers(len(lower[bus]), len(log)))]
            for bus, log in upper.items()
            if lower[bus] or draw(st.booleans())
        }
        for node in NODES
    }
    return nodes, lower, upper


@given(correct_runs())
def test_correct_runs_pass(run_parts: tuple[dict, dict, dict]) -> None:
    nodes, lower, upper = run_parts
    assert node_states(run(nodes, lower, upper)) == []


@given(correct_runs(), st.sampled_from(["change", "drop", "extend"]), st.data())
def test_one_planted_fault_is_always_caught(
    run_parts: tuple[dict, dict, dict], fault: str, data: st.DataObject
) -> None:
    nodes, lower, upper = run_parts
    node = data.draw(st.sampled_from(NODES))
    held = nodes[node]
    if fault == "change":
        candidates = [(bus, pos) for bus, log in held.items() for pos in range(len(log))]
    elif fault == "drop":
        candidates = [(bus, pos) for bus, log in lower.items() for pos in range(len(log))]
    else:
        candidates = [(bus, len(upper[bus])) for bus in upper]
    if not candidates:
        return
    bus, pos = data.draw(st.sampled_from(candidates))
    log = list(held.get(bus, []))
    if fault == "change":
        log[pos] = "planted"
    elif fault == "drop":
        log = log[:pos]
    else:
        log = upper[bus] + ["planted"]
    planted = {**nodes, node: {**held, bus: log}}
    anomalies = node_states(run(planted, lower, upper))
    assert anomalies and {a.checker for a in anomalies} == {"node_state"}
