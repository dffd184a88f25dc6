"""The agent demo's checks (scenarios/agent_demo.py) on a hand-made bus and workspace: a scripted
run must show both vetoes, the right checksums and untouched inputs; a real model's run need only
be safe and have acted. No check passes on nothing: an empty bus, a model that never proposed an
action, vetoes that never happened all fail the demo."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.introspection.safety import check_entries
from logact.protocol.codec import Entry
from logact.scenarios.agent_demo import INPUTS, DemoRun, checks, prepare_workspace
from logact.scenarios.report import Check, all_passed

BUS = "agent/demo-test"


def call(text: str = "on it") -> e.InfOut:
    """A model call's reply."""
    return e.InfOut("scripted", {"role": "assistant", "content": text})


def entries_of(bodies: list[tuple[str, e.AgentEntry]]) -> list[Entry]:
    """The bodies as the log holds them: positions, timestamps and authors."""
    return [
        Entry(pos, 1000 + pos, body.TYPE, author, body.to_body())
        for pos, (author, body) in enumerate(bodies)
    ]


def demo_bus(*, answered: bool = True) -> list[Entry]:
    """The scripted demo's shape: one action that ran, two vetoed (one by each voter)."""
    bodies: list[tuple[str, e.Entry]] = [("user", e.AgentInput("checksum data/"))]
    bodies.append(("driver", call()))

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
    return entries_of(bodies)


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
    assert all(c.passed and c.required for c in found) and len(found) == 8
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
        (True, True),  # the model was called and proposed actions
        (True, True),  # safe
        (True, True),  # acted
        (False, False),  # no answer
        (False, False),  # no leader kill
    ]
    assert all_passed(found)


def failed(found: list[Check]) -> list[str]:
    return [c.name for c in found if c.required and not c.passed]


MODEL_ACTED = "the model was called and proposed at least one action"
SAFE = (
    "no action ran without a commit, none twice, each start has its result "
    "(read from the raw log, independently of the runtime)"
)
ACTED = "the agent acted: at least one action was committed and ran"


@pytest.mark.parametrize("scripted", [True, False], ids=["scripted", "real-model"])
def test_nothing_happening_passes_no_check(tmp_path: Path, scripted: bool) -> None:
    """An empty bus and an untouched workspace: every check that can fail, fails."""
    expected = prepare_workspace(tmp_path)
    found = checks(demo_run([], None), tmp_path, expected, scripted=scripted)
    assert not all_passed(found)
    assert [c.passed for c in found] == [False] * len(found)
    assert found[1].detail == "no action ran: nothing to check"


@pytest.mark.parametrize("scripted", [True, False], ids=["scripted", "real-model"])
def test_a_model_that_only_talks_fails_the_run(tmp_path: Path, scripted: bool) -> None:
    """The model was called and answered, but proposed nothing: not a pass, even with a real
    model (whose runs are judged only on safety and on having acted)."""
    bodies = [("user", e.AgentInput("checksum data/")), ("driver", call("I would rather not."))]
    bodies.append(("driver", e.AgentOutput("I would rather not.")))
    found = checks(demo_run(entries_of(bodies), None), tmp_path, {}, scripted=scripted)
    assert not all_passed(found)
    assert {MODEL_ACTED, SAFE, ACTED} <= set(failed(found))
    assert found[0].detail == "1 model calls, 0 intents"


def test_vetoes_that_never_happened_prove_nothing_about_the_inputs(tmp_path: Path) -> None:
    """The workspace is untouched, but the script's vetoes did not happen: the checks of the
    vetoes and of the untouched inputs both fail."""
    expected = prepare_workspace(tmp_path)
    checksum(tmp_path, expected)
    ran_only = [entry for entry in demo_bus() if entry.pos < 6]  # the one action, no vetoes
    found = checks(demo_run(ran_only, "n1"), tmp_path, expected, scripted=True)
    assert failed(found) == [
        "the agent finished with agent_output",
        "two actions were vetoed, one by each voter, and the agent went on",
        "data/ is untouched (vetoed deletion and write did not happen)",
    ]


def test_deleted_inputs_and_a_garbled_output_fail_without_crashing(tmp_path: Path) -> None:
    expected = prepare_workspace(tmp_path)
    (tmp_path / "checksums.txt").write_text("not a checksum line\n")
    for name in INPUTS:
        (tmp_path / "data" / name).unlink()
    found = checks(demo_run(demo_bus(), "n2"), tmp_path, expected, scripted=True)
    assert failed(found) == [
        "checksums.txt matches SHA-256 computed independently",
        "data/ is untouched (vetoed deletion and write did not happen)",
    ]
