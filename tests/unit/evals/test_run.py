"""One AgentDojo evaluation as a library call (evals/run.py): suites and attacks chosen, the model
opened only when needed, and the results it writes and the violations it reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from logact.config import shipped
from logact.evals.configurations import load_configurations
from logact.evals.harness import Evaluation, Skipped, goal_attacks
from logact.evals.metrics import RunRecord
from logact.evals.run import (
    DEFAULT_ATTACK,
    AgentDojoOptions,
    Results,
    choose_attacks,
    parse_suites,
    run_agentdojo,
)
from logact.server.local import LocalLog

PROVENANCE = load_configurations(shipped("agentdojo-voters.toml"), ("provenance",))
LLM = load_configurations(shipped("agentdojo-voters-llm.toml"), ("llm",))


def test_suites_are_named_from_agentdojos() -> None:
    assert parse_suites("banking, slack") == ("banking", "slack")
    for bad in ("", "banking,chess"):
        with pytest.raises(ValueError, match="choose from workspace, travel, banking, slack"):
            parse_suites(bad)


def test_attacks_default_expand_and_are_checked() -> None:
    assert choose_attacks(()) == (DEFAULT_ATTACK,)
    assert choose_attacks(("all",)) == tuple(goal_attacks())
    assert choose_attacks((DEFAULT_ATTACK, DEFAULT_ATTACK)) == (DEFAULT_ATTACK,)
    with pytest.raises(ValueError, match="unknown attack 'no_such_attack'"):
        choose_attacks((DEFAULT_ATTACK, "no_such_attack"))


def test_a_model_is_needed_by_an_llm_voter_or_a_model_agent() -> None:
    assert not AgentDojoOptions(("banking",), (DEFAULT_ATTACK,), PROVENANCE).needs_model
    assert AgentDojoOptions(("banking",), (DEFAULT_ATTACK,), PROVENANCE, "model").needs_model
    assert AgentDojoOptions(("banking",), (DEFAULT_ATTACK,), LLM).needs_model


@pytest.mark.parametrize(("agent", "opened"), [("oracle", 0), ("model", 1)])
async def test_the_model_is_opened_only_when_needed_and_no_run_is_an_error(
    memory_log: LocalLog, agent: str, opened: int
) -> None:
    entered: list[str] = []

    @asynccontextmanager
    async def fake_model() -> AsyncIterator[tuple[Any, str]]:
        entered.append("model")
        yield object(), "fake"

    options = AgentDojoOptions((), (DEFAULT_ATTACK,), PROVENANCE, agent)  # no suite: no case
    with pytest.raises(ValueError, match="no run was made: no task matched"):
        await run_agentdojo(
            {"user": memory_log}, options, prefix="agent/t", where="memory", open_model=fake_model
        )
    assert len(entered) == opened


def record(bus: str, injection: str | None, unsafe: tuple[str, ...] = ()) -> RunRecord:
    attack = DEFAULT_ATTACK if injection else None
    return RunRecord(
        "banking", "provenance", "user_task_0", injection, bus, True, False, False,
        attack=attack, unsafe=unsafe,
    )  # fmt: skip


def test_results_are_written_with_the_figures_the_runs_and_what_was_skipped(
    tmp_path: Path,
) -> None:
    runs = [record("b/0", None), record("b/1", "injection_task_1", ("ran twice: #3",))]
    skipped = [Skipped("banking", "injection_task_9", "no replayable goal")]
    options = AgentDojoOptions(("banking",), (DEFAULT_ATTACK,), PROVENANCE)
    results = Results(options, Evaluation(runs, skipped), "agent/t", "embedded log", 12.34)

    summary_path, results_path = results.write(tmp_path)
    summary = summary_path.read_text()
    assert summary.startswith("# AgentDojo (banking), oracle agent")
    assert "- banking injection_task_9: no replayable goal" in summary
    doc = json.loads(results_path.read_text())
    assert doc == json.loads(json.dumps(results.to_doc()))
    assert (doc["log"], doc["prefix"], doc["seconds"]) == ("embedded log", "agent/t", 12.3)
    assert [r["bus"] for r in doc["runs"]] == ["b/0", "b/1"]
    assert doc["skipped"] == [
        {"suite": "banking", "injection_task": "injection_task_9", "why": "no replayable goal"}
    ]
    assert list(doc["summary"]) == [DEFAULT_ATTACK]
    assert results.unsafe() == [("b/1", "ran twice: #3")]
