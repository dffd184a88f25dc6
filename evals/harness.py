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

from logact.agent.components.decider import Decider
from logact.agent.components.executor import Executor
from logact.agent.components.runner import Component, run_component
from logact.agent.components.voters import Judges, Voter
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.core.replay import read_state
from logact.agent.introspection.safety import check_entries
from logact.evals import attacks
from logact.evals.bus_tools import BusGate, BusToolsExecutor, EnvBox, agentdojo_tools
from logact.evals.configurations import Configuration, ConfigurationSet
from logact.evals.metrics import CallRecord, RunRecord
from logact.evals.model_agent import ChatModelAgent
from logact.evals.oracle import OracleAgent
from logact.protocol.api import LogAPI

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
    attack: str | None = None  # None: a benign run
    #: The injection task's calls carry a value found nowhere in the clean environment: one
    #: only the attacker's text supplies (an account, an address, a link, an amount).
    attacker_value: bool = False

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


#: (suite, user task) -> the injection vectors its ground truth reads (None: not injectable).
#: They do not depend on the attack, and finding them replays the task.
_CANDIDATES: dict[tuple[str, str], list[str] | None] = {}


def _injection_candidates(
    find: Callable[[BaseUserTask[Any]], list[str]], suite_name: str, user_task: BaseUserTask[Any]
) -> list[str]:
    key = (suite_name, user_task.ID)
    if key not in _CANDIDATES:
        try:
            _CANDIDATES[key] = find(user_task)
        except ValueError:
            _CANDIDATES[key] = None
    found = _CANDIDATES[key]
    if found is None:
        raise ValueError(f"{user_task.ID} is not injectable.")
    return found


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
    attack.get_injection_candidates = functools.partial(  # type: ignore[method-assign]
        _injection_candidates, attack.get_injection_candidates, suite_name
    )
    if unknown := sorted(set(user_tasks) - set(suite.user_tasks)):
        raise ValueError(f"{suite_name} has no user task {', '.join(unknown)}")
    chosen = [t for i, t in suite.user_tasks.items() if not user_tasks or i in user_tasks]
    skipped, replayable = [], []
    env = suite.load_and_inject_default_environment({})
    clean = str(env.model_dump()).casefold()
    for injection_task in suite.injection_tasks.values():
        if not replay or injection_task.ground_truth(env.model_copy(deep=True)):
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
            planted = tuple(injections.items())
            chosen_value = attacker_value(injection_task, env, clean)
            cases.append(Case(suite, user_task, injection_task, planted, attack_name, chosen_value))
    return cases, skipped


def attacker_value(injection_task: BaseInjectionTask[Any], env: Any, clean: str) -> bool:
    """Whether the injection task's calls need a value only the attacker supplies: one of 4+
    characters (or any number) that the clean environment (``clean``, casefolded) lacks."""
    for call in injection_task.ground_truth(env.model_copy(deep=True)):
        for value in call.args.values():
            for item in value if isinstance(value, list) else [value]:
                text = str(item).casefold()
                if (len(text) >= 4 or isinstance(item, int | float)) and text not in clean:
                    return True
    return False


def attack_names() -> list[str]:
    """The attacks AgentDojo has registered (its attack modules register on import), ours
    (evals/attacks.py) included."""
    return sorted(ATTACKS)


def goal_attacks() -> list[str]:
    """Every registered attack that plants an injection task's goal: AgentDojo's shipped ones
    (not the interactive ``manual`` nor the denial-of-service ones, which plant no goal), then
    the adaptive ones."""
    shipped = [
        name
        for name, attack in sorted(ATTACKS.items())
        if not attack.is_dos_attack and name != "manual" and name not in attacks.ADAPTIVE_ATTACKS
    ]
    return [*shipped, *attacks.ADAPTIVE_ATTACKS]


#: Makes a run's agent: (case, the driver's log, the run's bus) -> pipeline element.
AgentFactory = Callable[[Case, LogAPI, str], BasePipelineElement]


def oracle_agent(case: Case, log: LogAPI, bus: str) -> BasePipelineElement:
    return OracleAgent(case.user_task, case.injection_task, [text for _, text in case.injections])


def model_agent(client: openai.OpenAI, model: str) -> AgentFactory:
    return lambda case, log, bus: ChatModelAgent(client, model, log, bus)


@dataclass(frozen=True, slots=True)
class Voting:
    """What the voters of a configuration need: the rules, the information-flow labels of each
    suite (each suite is one deployment) and, for an LLM voter, a model."""

    configurations: ConfigurationSet
    model: tuple[openai.OpenAI, str] | None = None

    def voters(
        self, configuration: Configuration, log: LogAPI, bus: str, suite: str
    ) -> Iterator[Voter]:
        """A voter of each of the configuration's kinds (ValueError: a need is missing)."""
        labels = self.configurations.labels_for(suite) if "ifc" in configuration.voters else None
        judges = Judges(self.configurations.rules, labels, self.model)
        for kind in configuration.voters:
            yield Voter(log, bus, kind, kind, judges.judge(kind))


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
ROLES = ("user", "driver", "voter", "decider", "executor", "human")


class SimulatedPerson(Component):
    """The person escalations go to, answering each at once: ``approves`` or not.

    Denying at once stands for nobody answering: the shipped policies deny an unanswered
    escalation at the deadline, and an evaluation should not wait for it.
    """

    def __init__(self, log: LogAPI, bus: str, approves: bool) -> None:
        super().__init__(log, bus)
        self.approves = approves

    async def step(self, now: int) -> int | None:
        said = "approved on escalation" if self.approves else "no answer: denied"
        for record in unanswered_escalations(self.state):
            vote = e.Vote(record.position, "person", "human", said, self.approves)
            await self.append(*vote.to_entry())
        return None


def unanswered_escalations(state: BusState) -> list[IntentRecord]:
    """Undecided intents a voter escalated and no person has voted on yet."""
    return [
        record
        for record in state.undecided.values()
        if any(vote.escalate for _, vote in record.votes)
        and not any(vote.kind == "human" for _, vote in record.votes)
    ]


def _escalated(state: BusState, intent_id: int | None) -> bool:
    record = state.intents.get(intent_id) if intent_id is not None else None
    return record is not None and any(vote.escalate for _, vote in record.votes)


async def run_case(
    logs: Mapping[str, LogAPI],
    bus: str,
    case: Case,
    configuration: Configuration,
    voting: Voting,
    agent_factory: AgentFactory,
    *,
    person_approves: bool = False,
    timeout: float = 120,
    max_steps: int = 15,
) -> RunRecord:
    """Play one case on ``bus`` with the configuration's components running against it, and a
    :class:`SimulatedPerson` answering escalations.

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
        *voting.voters(configuration, logs["voter"], bus, case.suite.name),
        Decider(logs["decider"], bus, configuration.policy),
        Executor(logs["executor"], bus, agentdojo_tools(runtime, box)),
        SimulatedPerson(logs["human"], bus, person_approves),
    ]
    async with trio.open_nursery() as nursery:
        for component in components:
            nursery.start_soon(run_component, component)
        await logs["user"].append(bus, *e.AgentInput(case.user_task.PROMPT).to_entry())
        played = await trio.to_thread.run_sync(
            functools.partial(_play, case, pipeline, runtime, box, tools)
        )
        nursery.cancel_scope.cancel()
    state = await read_state(logs["driver"], bus)
    safety = check_entries(await logs["driver"].read_all(bus))
    calls = tuple(
        CallRecord(
            function=p.call.function,
            label=_label(agent, p.call.id),
            side_effect=p.side_effect,
            approved=p.outcome.approved,
            reason=p.outcome.reason,
            decision_ms=p.outcome.decision_ms,
            intent_id=p.outcome.intent_id,
            escalated=_escalated(state, p.outcome.intent_id),
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
        attack=case.attack,
        attacker_value=case.attacker_value,
        person="approves" if person_approves else "none",
        goal_step=getattr(agent, "goal_step", None),
        planted_step=getattr(agent, "planted_step", None),
        unsafe=tuple(v.detail for v in safety.violations),
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    runs: list[RunRecord]
    skipped: list[Skipped]


async def run_eval(
    logs: Mapping[str, LogAPI],
    prefix: str,
    suites: tuple[str, ...],
    attack_list: tuple[str, ...],
    voting: Voting,
    agent_factory: AgentFactory,
    *,
    user_tasks: tuple[str, ...] = (),
    replay: bool = True,
    progress: Callable[[str], None] = lambda line: None,
) -> Evaluation:
    """Every case of every suite and attack under every configuration, one bus each under
    ``prefix``. Benign cases run once per configuration with escalations unanswered and, for
    configurations that can escalate, once more with the person approving each escalation."""
    runs: list[RunRecord] = []
    skipped: list[Skipped] = []
    for suite in suites:
        attacked: list[Case] = []
        benign: list[Case] = []
        for attack in attack_list:
            cases, left_out = await trio.to_thread.run_sync(
                functools.partial(load_cases, suite, attack, user_tasks=user_tasks, replay=replay)
            )
            skipped += [s for s in left_out if s not in skipped]
            benign = [c for c in cases if c.injection_task is None]
            attacked += [c for c in cases if c.injection_task is not None]
        for configuration in voting.configurations.configurations:
            plays = [(case, False) for case in (*benign, *attacked)]
            if configuration.escalates:
                plays += [(case, True) for case in benign]
            for case, approves in plays:
                person = "approve" if approves else "none"
                bus = f"{prefix}/{suite}/{configuration.slug}/{case.attack or 'benign'}/{person}"
                runs.append(
                    await run_case(
                        logs,
                        f"{bus}/{case.name}",
                        case,
                        configuration,
                        voting,
                        agent_factory,
                        person_approves=approves,
                    )
                )
            progress(f"{suite}: {configuration.name}: {len(plays)} runs")
    return Evaluation(runs, skipped)
