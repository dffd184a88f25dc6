"""History records and files (jepsen_tests/history.py): shape checks, writer and reader."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from logact.jepsen_tests.history import (
    HistoryError,
    HistoryWriter,
    fault_window,
    make_op,
    now_ns,
    parse_ledger_line,
    read_history,
    validate_history,
    validate_op,
)

GOOD: list[dict[str, Any]] = [
    {"process": "append-3", "op": "append", "id": 17, "payload": "a3-17", "invoke": 123,
     "complete": 456, "outcome": "ok", "position": 41},
    {"process": "append-3", "op": "append", "id": 18, "payload": "a3-18", "invoke": 460,
     "complete": 9000, "outcome": "info", "error": "timeout"},
    {"process": "read-1", "op": "read", "id": 4, "invoke": 1, "complete": 2, "outcome": "ok",
     "start": 0, "entries": [[0, "a1-0"], [1, "a2-0"]], "next": 2, "tail": 2},
    {"process": "tail-1", "op": "check_tail", "id": 9, "invoke": 1, "complete": 2,
     "outcome": "ok", "tail": 57},
    {"process": "sub-1", "op": "subscribe", "id": 1, "invoke": 1, "complete": 99, "outcome": "ok",
     "start": 0, "deliveries": [[0, "a1-0", 5], [1, "a2-0", 6]]},
    {"process": "nemesis", "op": "fault", "id": 3, "invoke": 10, "complete": 11, "outcome": "ok",
     "fault": "kill", "targets": ["n2"], "window": [10, 500]},
    {"process": "final", "op": "final_read", "id": 0, "invoke": 1, "complete": 2,
     "outcome": "ok", "entries": [[0, "a1-0"]]},
    {"process": "final", "op": "final_bus", "id": 1, "invoke": 1, "complete": 2, "outcome": "ok",
     "bus": "agent/a", "entries": [[0, "agent_input", {"text": "hi"}]]},
    {"process": "final", "op": "ledger", "id": 2, "invoke": 1, "complete": 2, "outcome": "ok",
     "lines": ["agent/a 3 tok-1"]},
    {"process": "w", "op": "something_new", "id": 2, "invoke": 1, "complete": 2, "outcome": "fail"},
]  # fmt: skip


def test_the_documented_records_are_valid() -> None:
    validate_history(GOOD)


@pytest.mark.parametrize(
    ("index", "change", "problem"),
    [
        (0, {"outcome": "maybe"}, "'outcome' must be ok, fail or info"),
        (0, {"position": None}, "'position' must be an integer"),
        (0, {"position": -1}, "'position' must be >= 0"),
        (0, {"invoke": True}, "'invoke' must be an integer"),
        (0, {"complete": 100}, "completes (100) before it is invoked (123)"),
        (0, {"payload": 5}, "'payload' must be a string"),
        (2, {"entries": [[0, "a"], [1]]}, "entries[1] must be a list of 2 items"),
        (2, {"entries": [[0, 7]]}, "entries[0] must be [int, str]"),
        (2, {"tail": "2"}, "'tail' must be an integer"),
        (3, {"tail": None}, "'tail' must be an integer"),
        (4, {"deliveries": [[0, "a"]]}, "deliveries[0] must be a list of 3 items"),
        (5, {"targets": "n2"}, "'targets' must be a list"),
        (5, {"window": [500, 10]}, "'window' must be [start, end]"),
        (7, {"bus": None}, "'bus' must be a string"),
        (8, {"lines": ["agent/a x tok"]}, "is not '<bus> <intent_id> <token>'"),
    ],
)
def test_a_malformed_record_names_its_problem(
    index: int, change: dict[str, Any], problem: str
) -> None:
    record = {**GOOD[index], **change}
    with pytest.raises(HistoryError, match="malformed") as info:
        validate_op(record)
    assert problem in str(info.value)
    assert f"of {record['process']!r}" in str(info.value)


def test_an_outcome_other_than_ok_needs_no_result_fields() -> None:
    validate_op(make_op("r", "read", 1, 0, 1, "info"))
    validate_op(make_op("a", "append", 1, 0, 1, "fail", payload="x"))
    with pytest.raises(HistoryError, match="JSON object"):
        validate_op(["not", "a", "dict"])
    with pytest.raises(HistoryError, match=r"history\[1\]"):
        validate_history([GOOD[0], {**GOOD[0], "id": "x"}])


def test_make_op_orders_the_common_fields_first() -> None:
    record = make_op("a", "append", 1, 2, 3, "ok", payload="x", position=0)
    assert list(record) == [
        "process", "op", "id", "invoke", "complete", "outcome", "payload", "position"
    ]  # fmt: skip


def test_ledger_lines_and_fault_windows() -> None:
    assert parse_ledger_line("agent/a 12 tok with spaces") == ("agent/a", 12, "tok with spaces")
    with pytest.raises(HistoryError):
        parse_ledger_line("agent/a 12")
    assert fault_window(GOOD[5]) == (10, 500)
    assert fault_window({**GOOD[5], "window": None}) == (10, 11)


def test_the_clock_is_monotonic() -> None:
    assert now_ns() <= now_ns()


def test_a_history_round_trips_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as writer:
        for record in GOOD:
            writer.write(record)
        assert writer.count == len(GOOD)
        assert len(path.read_text().splitlines()) == len(GOOD)  # flushed per record
    assert read_history(path) == GOOD
    with pytest.raises(HistoryError, match="closed"):
        writer.write(GOOD[0])


def test_the_writer_refuses_a_malformed_record(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl") as writer, pytest.raises(HistoryError):
        writer.write({**GOOD[0], "outcome": "?"})
    assert (tmp_path / "h.jsonl").read_text() == ""


def test_a_torn_last_line_is_dropped_but_a_bad_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = [json.dumps(GOOD[0]), "", json.dumps(GOOD[3])]
    path.write_text("\n".join(lines) + "\n" + json.dumps(GOOD[2])[:30])
    assert read_history(path) == [GOOD[0], GOOD[3]]
    path.write_text(json.dumps(GOOD[0]) + "\n{oops\n" + json.dumps(GOOD[3]) + "\n")
    with pytest.raises(HistoryError, match=r"h\.jsonl:2: not JSON"):
        read_history(path)
    path.write_text(json.dumps({**GOOD[0], "position": "x"}) + "\n")
    with pytest.raises(HistoryError, match=r"h\.jsonl:1: malformed"):
        read_history(path)
    assert read_history(path, validate=False)[0]["position"] == "x"


def test_threads_share_one_writer_without_interleaving_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:

        def work(n: int) -> None:
            for k in range(300):
                writer.write(make_op(f"p{n}", "append", k, k, k + 1, "ok", payload="x" * 500,
                                     position=k))  # fmt: skip

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    history = read_history(path)
    assert len(history) == 1200
    assert {op["process"] for op in history} == {"p0", "p1", "p2", "p3"}
