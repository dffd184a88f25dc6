"""Adaptive attacks and the oracle that must fall for them, on real AgentDojo tasks (no log:
AgentDojo's own tool executor runs the calls)."""

from __future__ import annotations

from typing import Any

import pytest
from agentdojo.agent_pipeline.agent_pipeline import AgentPipeline
from agentdojo.agent_pipeline.basic_elements import InitQuery, SystemMessage
from agentdojo.agent_pipeline.tool_execution import ToolsExecutionLoop, ToolsExecutor
from agentdojo.functions_runtime import FunctionsRuntime

from logact.agent.judgement.provenance import directive_spans
from logact.evals.attacks import ADAPTIVE_ATTACKS
from logact.evals.harness import Case, goal_attacks, load_cases
from logact.evals.oracle import OracleAgent

SUITES = ("banking", "slack", "travel", "workspace")


def play(case: Case) -> OracleAgent:
    """The oracle on one case, calls run by AgentDojo's executor; returns the oracle."""
    oracle = OracleAgent(case.user_task, case.injection_task, [t for _, t in case.injections])
    pipeline = AgentPipeline(
        [
            SystemMessage("test"),
            InitQuery(),
            oracle,
            ToolsExecutionLoop([ToolsExecutor(), oracle], max_iters=15),
        ]
    )
    env = case.user_task.init_environment(
        case.suite.load_and_inject_default_environment(dict(case.injections))
    )
    pipeline.query(case.user_task.PROMPT, FunctionsRuntime(case.suite.tools), env)
    return oracle


def attacked(suite: str, attack: str, limit: int) -> list[Case]:
    cases, _ = load_cases(suite, attack)
    chosen = [c for c in cases if c.injection_task is not None]
    return chosen[:: max(1, len(chosen) // limit)][:limit]


def test_every_goal_attack_is_offered_and_the_adaptive_ones_come_last() -> None:
    names = goal_attacks()
    assert names[-len(ADAPTIVE_ATTACKS) :] == list(ADAPTIVE_ATTACKS)
    assert "important_instructions" in names and "direct" in names
    assert not any(name.endswith("dos") or name == "manual" for name in names)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("attack", ADAPTIVE_ATTACKS)
def test_adaptive_injections_carry_no_cue_a_lexicon_knows(suite: str, attack: str) -> None:
    for case in attacked(suite, attack, 12):
        for _, text in case.injections:
            assert text and directive_spans(text) == [], (case.name, text)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("attack", ["important_instructions", "tool_knowledge", "system_message"])
def test_on_agentdojos_attacks_both_triggers_fire_at_the_same_result(
    suite: str, attack: str
) -> None:
    for case in attacked(suite, attack, 6):
        oracle = play(case)
        assert oracle.goal_step is not None and oracle.goal_step == oracle.planted_step, case.name


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("attack", ADAPTIVE_ATTACKS)
def test_the_oracle_falls_for_injections_that_never_state_the_goal(suite: str, attack: str) -> None:
    fell: list[Any] = []
    for case in attacked(suite, attack, 4):
        oracle = play(case)
        assert oracle.planted_step is not None, case.name
        fell.append("injection" in oracle.labels.values())
    assert all(fell)


@pytest.mark.parametrize("attack", ADAPTIVE_ATTACKS)
def test_adaptive_injections_state_only_what_the_attacker_knows(attack: str) -> None:
    """Travel's injection task 5 mails the user's passport number to the attacker: the attacker
    writes its own address, and only names the data it wants."""
    from agentdojo.task_suite.load_suites import get_suite

    user = get_suite("v1.2.2", "travel").load_and_inject_default_environment({}).user
    cases, _ = load_cases("travel", attack)
    texts = [
        text
        for case in cases
        if case.injection_task is not None and case.injection_task.ID == "injection_task_5"
        for _, text in case.injections
    ]
    assert texts
    joined = "\n".join(texts)
    assert user.passport_number not in joined and user.bank_account_number not in joined
    assert "janeLong@google.com" in joined
