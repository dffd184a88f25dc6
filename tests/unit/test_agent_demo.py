"""The agent demo's checks (scenarios/agent_demo.py) on a hand-made bus and workspace: a scripted
run must show both vetoes, the right checksums and untouched inputs; a real model's run need only
be safe and have acted."""

from __future__ import annotations

import hashlib
from pathlib import Path

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.introspection.safety import check_entries
from logact.protocol.codec import Entry
from logact.scenarios.agent_demo import INPUTS, DemoRun, checks, prepare_workspace
from logact.scenarios.report import all_passed

BUS = "agent/demo-test"


def demo_bus(*, answered: bool = True) -> list[Entry]:
    """The scripted demo's shape: one action that ran, two vetoed (one by each voter)."""
    bodies: list[tuple[str, e.Entry]] = [("user", e.AgentInput("checksum data/"))]

    def intent(tool: str, **arguments: str) -> int:
        bodies.append(("driver", e.Intent(e.ToolCall(tool, arguments))))
        return len(bodies) - 1

    ran = intent("shell", command="python3 checksum.py data checksums.txt")
    bodies += [
        ("decider", e.Commit(ran, "no veto")),
        ("executor", e.ExecStart(ran)),
        ("executor", e.Result(ran, ok=True, output="3 files")),
    ]
    for kind, signer, action in (("rule", "rule-voter", "rm"), ("llm", "llm-voter", "write")):
        vetoed = intent(action, path="data")
        bodies += [
            (signer, e.Vote(vetoed, kind, kind, "no", False)),
            ("decider", e.Abort(vetoed, f"vetoed by {kind}")),
        ]
    if answered:
        bodies.append(("driver", e.AgentOutput("done")))
    return [
        Entry(pos, 1000 + pos, body.TYPE, author, body.to_body())
        for pos, (author, body) in enumerate(bodies)
    ]


def demo_run(entries: list[Entry], killed: str | None) -> DemoRun:
    state = BusState(BUS)
    for entry in entries:
        state.apply(entry)
    return DemoRun(state, check_entries(entries), killed)


def checksum(workspace: Path, expected: dict[str, str]) -> None:
    lines = [f"{digest}  {name}" for name, digest in expected.items()]
    (workspace / "checksums.txt").write_text("\n".join(lines) + "\n")


def test_the_workspace_holds_the_inputs_and_their_checksums(tmp_path: Path) -> None:
    expected = prepare_workspace(tmp_path)
    assert set(expected) == set(INPUTS)
    for name, digest in expected.items():
        assert hashlib.sha256((tmp_path / "data" / name).read_bytes()).hexdigest() == digest


def test_a_scripted_run_passes_only_with_both_vetoes_the_sums_and_untouched_inputs(
    tmp_path: Path,
) -> None:
    expected = prepare_workspace(tmp_path)
    checksum(tmp_path, expected)
    found = checks(demo_run(demo_bus(), "n2"), tmp_path, expected, scripted=True)
    assert all(c.passed and c.required for c in found) and len(found) == 7
    assert found[-1].detail == "n2"

    (tmp_path / "data" / "README.txt").write_text("written despite the veto")
    found = checks(demo_run(demo_bus(), "n2"), tmp_path, expected, scripted=True)
    assert [c.name for c in found if not c.passed] == [
        "data/ is untouched (vetoed deletion and write did not happen)"
    ]
    assert not all_passed(found)


def test_a_real_models_run_need_only_be_safe_and_have_acted(tmp_path: Path) -> None:
    found = checks(demo_run(demo_bus(answered=False), None), tmp_path, {}, scripted=False)
    assert [(c.passed, c.required) for c in found] == [
        (True, True),  # safe
        (True, True),  # acted
        (False, False),  # no answer
        (False, False),  # no leader kill
    ]
    assert all_passed(found)
