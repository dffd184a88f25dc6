"""One AgentDojo evaluation, as ``logact eval agentdojo`` runs it: the suites and attacks chosen,
every case run on the logs given, and its results (``summary.md``, ``results.json``) with the
safety checker's verdict."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from logact.evals.configurations import ConfigurationSet
from logact.evals.harness import (
    SUITES,
    AgentFactory,
    Evaluation,
    Voting,
    attack_names,
    goal_attacks,
    model_agent,
    oracle_agent,
    run_eval,
)
from logact.evals.metrics import markdown, summaries
from logact.protocol.api import LogAPI

#: The attack run when none is named.
DEFAULT_ATTACK = "important_instructions"
#: Opens the model the run needs: (openai client, model name) while open.
ModelOpener = Callable[[], AbstractAsyncContextManager[tuple[Any, str]]]


def parse_suites(text: str) -> tuple[str, ...]:
    """Comma-separated AgentDojo suite names (ValueError unless each is one of :data:`SUITES`)."""
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names or any(s not in SUITES for s in names):
        raise ValueError(f"choose from {', '.join(SUITES)} (got {text!r})")
    return names


def choose_attacks(given: Sequence[str]) -> tuple[str, ...]:
    """The attacks named, without repeats; ``all``: every attack that plants a goal; none:
    :data:`DEFAULT_ATTACK` (ValueError for an unknown name)."""
    if not given:
        return (DEFAULT_ATTACK,)
    if "all" in given:
        return tuple(goal_attacks())
    unknown = [a for a in given if a not in attack_names()]
    if unknown:
        raise ValueError(f"unknown attack {unknown[0]!r}; known: all, {', '.join(attack_names())}")
    return tuple(dict.fromkeys(given))


@dataclass(frozen=True, slots=True)
class AgentDojoOptions:
    """What to evaluate: ``agent`` is ``oracle`` (replays the ground truth) or ``model``."""

    suites: tuple[str, ...]
    attacks: tuple[str, ...]
    configurations: ConfigurationSet
    agent: str = "oracle"
    user_tasks: tuple[str, ...] = ()

    @property
    def needs_model(self) -> bool:
        return self.configurations.needs_model or self.agent == "model"


@dataclass(frozen=True, slots=True)
class Results:
    """A finished evaluation: ``where`` says which log it ran on, ``prefix`` its buses."""

    options: AgentDojoOptions
    evaluation: Evaluation
    prefix: str
    where: str
    seconds: float

    def summary(self) -> str:
        """The figures as markdown, and the injection tasks left out and why."""
        title = f"AgentDojo ({', '.join(self.options.suites)}), {self.options.agent} agent"
        report = markdown(summaries(self.evaluation.runs), title=title)
        if self.evaluation.skipped:
            report += (
                "\n## Injection tasks not replayable\n\n"
                + "\n".join(
                    f"- {s.suite} {s.injection_task}: {s.why}" for s in self.evaluation.skipped
                )
                + "\n"
            )
        return report

    def to_doc(self) -> dict[str, Any]:
        """``results.json``: the options, the figures and every run."""
        table = summaries(self.evaluation.runs)
        return {
            "suites": self.options.suites,
            "attacks": list(self.options.attacks),
            "agent": self.options.agent,
            "log": self.where,
            "prefix": self.prefix,
            "seconds": round(self.seconds, 1),
            "summary": {
                a: {c: {s: asdict(v) for s, v in row.items()} for c, row in rows.items()}
                for a, rows in table.items()
            },
            "skipped": [asdict(s) for s in self.evaluation.skipped],
            "runs": [r.to_doc() for r in self.evaluation.runs],
        }

    def write(self, out: Path) -> tuple[Path, Path]:
        """``summary.md`` and ``results.json`` in ``out``; their paths."""
        summary, results = out / "summary.md", out / "results.json"
        summary.write_text(self.summary())
        results.write_text(json.dumps(self.to_doc(), indent=1))
        return summary, results

    def unsafe(self) -> list[tuple[str, str]]:
        """(bus, problem) for each violation the independent safety checker found."""
        return [(r.bus, problem) for r in self.evaluation.runs for problem in r.unsafe]


async def run_agentdojo(
    logs: Mapping[str, LogAPI],
    options: AgentDojoOptions,
    *,
    prefix: str,
    where: str,
    open_model: ModelOpener,
    progress: Callable[[str], None] = lambda line: None,
) -> Results:
    """Every case of ``options`` on ``logs`` (one per role of the harness), one bus each under
    ``prefix``; the model is opened only if a voter or the agent needs it. ValueError if no
    task matched."""
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        model = await stack.enter_async_context(open_model()) if options.needs_model else None
        agent: AgentFactory = (
            model_agent(*model) if options.agent == "model" and model else oracle_agent
        )
        evaluation = await run_eval(
            logs,
            prefix,
            options.suites,
            options.attacks,
            Voting(options.configurations, model),
            agent,
            user_tasks=options.user_tasks,
            replay=options.agent == "oracle",
            progress=progress,
        )
    if not evaluation.runs:
        raise ValueError("no run was made: no task matched")
    return Results(options, evaluation, prefix, where, time.perf_counter() - started)
