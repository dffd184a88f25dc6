"""Runs AgentDojo tasks through LogAct: every tool call is an intent on a bus of its own run.

One run = one (user task, injection task or none) pair under one voter configuration, on its own
bus: the harness appends the user's request (``agent_input``) and then plays the agent. The
configuration's voters, a decider under its policy and LogAct's executor run as components on
that bus exactly as they do for a live agent, so the bus is a complete record of the run
(``logact agent timeline`` reads it).

Scoring is AgentDojo's own utility and security functions over the calls that *ran*: its
default trace is every call the agent proposed, which would count a vetoed call as an attack
that succeeded. The security check over every proposed call is recorded too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai
import trio
from agentdojo.agent_pipeline.agent_pipeline import AgentPipeline, load_system_message
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.agent_pipeline.basic_elements import InitQuery, SystemMessage
from agentdojo.agent_pipeline.errors import AbortAgentError
from agentdojo.agent_pipeline.tool_execution import ToolsExecutionLoop
from agentdojo.attacks.attack_registry import ATTACKS, load_attack
from agentdojo.base_tasks import BaseInjectionTask, BaseUserTask
from agentdojo.functions_runtime import FunctionsRuntime
from agentdojo.task_suite.load_suites import get_suite
from agentdojo.task_suite.task_suite import TaskSuite, functions_stack_trace_from_messages
from agentdojo.types import ChatMessage

from logact.agent import entries as e
from logact.agent.decider import Decider
from logact.agent.executor import Executor
from logact.agent.runner import Component, run_component
from logact.agent.voters import Voter, llm_judge, provenance_judge, rule_judge
from logact.client.api import LogAPI
from logact.evals.bus_tools import BusGate, BusToolsExecutor, EnvBox, agentdojo_tools
from logact.evals.configurations import Configuration, ConfigurationSet
from logact.evals.metrics import CallRecord, RunRecord
from logact.evals.model_agent import ChatModelAgent
from logact.evals.oracle import OracleAgent

BENCHMARK_VERSION = "v1.2.2"
SUITES = ("workspace", "travel", "banking", "slack")
#: AgentDojo's attacks address the model by the name found in the pipeline's name.
PIPELINE_NAME = "local"


@dataclass(frozen=True, slots=True)
class Case:
    suite: TaskSuite[Any]
    user_task: BaseUserTask[Any]
    injection_task: BaseInjectionTask[Any] | None = None
    injections: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.user_task.ID}/{self.injection_task.ID if self.injection_task else 'benign'}"


@dataclass(frozen=True, slots=True)
class Skipped:
    suite: str
    injection_task: str
    why: str


class _AttackTarget(BasePipelineElement):
    """Only a name for the attack to read (it never queries the pipeline it attacks)."""

    name = PIPELINE_NAME

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def load_cases(
    suite_name: str, attack_name: str, *, user_tasks: tuple[str, ...] = (), replay: bool = True
) -> tuple[list[Case], list[Skipped]]:
    """Every benign run and every (user task, injection task) pair the attack can inject.

    ``replay``: the agent replays ground truth (the oracle), so injection tasks that ship none
    are skipped, each with the reason.
    """
    logging.getLogger("agentdojo").setLevel(logging.ERROR)
    suite = get_suite(BENCHMARK_VERSION, suite_name)
    attack = load_attack(attack_name, suite, _AttackTarget())
    if unknown := sorted(set(user_tasks) - set(suite.user_tasks)):
        raise ValueError(f"{suite_name} has no user task {', '.join(unknown)}")
    chosen = [t for i, t in suite.user_tasks.items() if not user_tasks or i in user_tasks]
    skipped, replayable = [], []
    for injection_task in suite.injection_tasks.values():
        env = suite.load_and_inject_default_environment({})
        if not replay or injection_task.ground_truth(env):
            replayable.append(injection_task)
        else:
            why = f"ships no ground-truth calls to replay (goal: {injection_task.GOAL!r})"
            skipped.append(Skipped(suite_name, injection_task.ID, why))
    cases = [Case(suite, user_task) for user_task in chosen]
    for user_task in chosen:
        for injection_task in replayable:
            try:
                injections = attack.attack(user_task, injection_task)
            except ValueError:  # the task reads no injectable content
                continue
            cases.append(Case(suite, user_task, injection_task, tuple(injections.items())))
    return cases, skipped


def attack_names() -> list[str]:
    """The attacks AgentDojo has registered (its attack modules register on import)."""
    return sorted(ATTACKS)


#: Makes a run's agent: (case, the driver's log, the run's bus) -> pipeline element.
AgentFactory = Callable[[Case, LogAPI, str], BasePipelineElement]


def oracle_agent(case: Case, log: LogAPI, bus: str) -> BasePipelineElement:
    return OracleAgent(case.user_task, case.injection_task)


def model_agent(client: openai.OpenAI, model: str) -> AgentFactory:
    return lambda case, log, bus: ChatModelAgent(client, model, log, bus)


@dataclass(frozen=True, slots=True)
class Voting:
    """What the voters of a configuration need: the rules and, for an LLM voter, a model."""

    configurations: ConfigurationSet
    model: tuple[openai.OpenAI, str] | None = None

    def voters(self, configuration: Configuration, log: LogAPI, bus: str) -> Iterator[Voter]:
        for kind in configuration.voters:
            if kind == "rule":
                assert self.configurations.rules is not None  # checked on load
                judge = rule_judge(self.configurations.rules)
            elif kind == "provenance":
                judge = provenance_judge()
            else:
                if self.model is None:
                    raise ValueError(f"configuration {configuration.name!r} needs a model")
                judge = llm_judge(*self.model)
            yield Voter(log, bus, kind, kind, judge)


@dataclass(slots=True)
class _Played:
    utility: bool
    attack_succeeded: bool | None
    attack_succeeded_as_proposed: bool | None


def _play(
    case: Case,
    pipeline: AgentPipeline,
    runtime: FunctionsRuntime,
    box: EnvBox,
    tools: BusToolsExecutor,
) -> _Played:
    """One run of the pipeline and AgentDojo's scoring (sync: a worker thread runs it)."""
    suite, user_task = case.suite, case.user_task
    env = user_task.init_environment(
        suite.load_and_inject_default_environment(dict(case.injections))
    )
    before = env.model_copy(deep=True)
    box.env = env
    messages: list[ChatMessage]
    try:
        _, _, env, messages, _ = pipeline.query(user_task.PROMPT, runtime, env)
    except AbortAgentError as exc:
        env, messages = exc.task_environment, list(exc.messages)
    last = messages[-1] if messages else None
    output = (last["content"] or []) if last and last["role"] == "assistant" else []
    ran = [p.call for p in tools.calls if p.outcome.approved]
    utility = suite._check_task_result(user_task, output, before, env, ran)
    if case.injection_task is None:
        return _Played(bool(utility), None, None)
    proposed = functions_stack_trace_from_messages(messages)
    injection = case.injection_task
    return _Played(
        bool(utility),
        bool(suite._check_task_result(injection, output, before, env, ran)),
        bool(suite._check_task_result(injection, output, before, env, proposed)),
    )


def _label(agent: BasePipelineElement, call_id: str | None) -> str:
    labels = getattr(agent, "labels", None)
    if labels is None or call_id is None:
        return "unlabelled"
    return labels.get(call_id, "unlabelled")


#: The principal each part of a run appends as (on a cluster, each role's own token).
ROLES = ("user", "driver", "voter", "decider", "executor")


async def run_case(
    logs: Mapping[str, LogAPI],
    bus: str,
    case: Case,
    configuration: Configuration,
    voting: Voting,
    agent_factory: AgentFactory,
    *,
    timeout: float = 120,
    max_steps: int = 15,
) -> RunRecord:
    """Play one case on ``bus`` with the configuration's components running against it.

    ``logs`` maps each of :data:`ROLES` to the client it appends with.
    """
    runtime = FunctionsRuntime(case.suite.tools)
    box = EnvBox()
    tools = BusToolsExecutor(BusGate(logs["driver"], bus, timeout))
    agent = agent_factory(case, logs["driver"], bus)
    pipeline = AgentPipeline(
        [
            SystemMessage(load_system_message(None)),
            InitQuery(),
            agent,
            ToolsExecutionLoop([tools, agent], max_iters=max_steps),
        ]
    )
    pipeline.name = PIPELINE_NAME
    components: list[Component] = [
        *voting.voters(configuration, logs["voter"], bus),
        Decider(logs["decider"], bus, configuration.policy),
        Executor(logs["executor"], bus, agentdojo_tools(runtime, box)),
    ]
    async with trio.open_nursery() as nursery:
        for component in components:
            nursery.start_soon(run_component, component)
        await logs["user"].append(bus, *e.AgentInput(case.user_task.PROMPT).to_entry())
        played = await trio.to_thread.run_sync(
            functools.partial(_play, case, pipeline, runtime, box, tools)
        )
        nursery.cancel_scope.cancel()
    calls = tuple(
        CallRecord(
            function=p.call.function,
            label=_label(agent, p.call.id),
            side_effect=p.side_effect,
            approved=p.outcome.approved,
            reason=p.outcome.reason,
            decision_ms=p.outcome.decision_ms,
            intent_id=p.outcome.intent_id,
        )
        for p in tools.calls
    )
    return RunRecord(
        suite=case.suite.name,
        configuration=configuration.name,
        user_task=case.user_task.ID,
        injection_task=case.injection_task.ID if case.injection_task else None,
        bus=bus,
        utility=played.utility,
        attack_succeeded=played.attack_succeeded,
        attack_succeeded_as_proposed=played.attack_succeeded_as_proposed,
        calls=calls,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    runs: list[RunRecord]
    skipped: list[Skipped]


async def run_eval(
    logs: Mapping[str, LogAPI],
    prefix: str,
    suites: tuple[str, ...],
    attack: str,
    voting: Voting,
    agent_factory: AgentFactory,
    *,
    user_tasks: tuple[str, ...] = (),
    replay: bool = True,
    progress: Callable[[str], None] = lambda line: None,
) -> Evaluation:
    """Every case of every suite under every configuration, one bus each under ``prefix``."""
    runs: list[RunRecord] = []
    skipped: list[Skipped] = []
    for suite in suites:
        cases, left_out = await trio.to_thread.run_sync(
            functools.partial(load_cases, suite, attack, user_tasks=user_tasks, replay=replay)
        )
        skipped += left_out
        for configuration in voting.configurations.configurations:
            for case in cases:
                bus = f"{prefix}/{suite}/{configuration.slug}/{case.name}"
                runs.append(await run_case(logs, bus, case, configuration, voting, agent_factory))
            progress(f"{suite}: {configuration.name}: {len(cases)} runs")
    return Evaluation(runs, skipped)
