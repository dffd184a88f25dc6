"""``logact eval``: evaluations against third-party benchmarks."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict
from pathlib import Path

import click

from logact.agent.models.choice import open_model
from logact.cli.agent import model_options
from logact.cli.common import console, fail, make_client, run
from logact.config import shipped
from logact.evals.configurations import ConfigurationError, load_configurations
from logact.evals.harness import (
    ROLES,
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
from logact.server.local import open_embedded


@click.group()
def eval_() -> None:
    """Evaluate LogAct's voters on third-party benchmarks."""


def _suites(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SUITES]
    if not names or unknown:
        raise click.BadParameter(f"choose from {', '.join(SUITES)} (got {text!r})")
    return names


def _attacks(given: tuple[str, ...]) -> tuple[str, ...]:
    if not given:
        return ("important_instructions",)
    if "all" in given:
        return tuple(goal_attacks())
    unknown = [a for a in given if a not in attack_names()]
    if unknown:
        fail(f"unknown attack {unknown[0]!r}; known: all, {', '.join(attack_names())}")
    return tuple(dict.fromkeys(given))


@eval_.command("agentdojo")
@click.option(
    "--suites",
    default="banking,slack",
    show_default=True,
    help=f"Comma-separated AgentDojo suites: {', '.join(SUITES)}.",
)
@click.option(
    "--voters",
    "voters_path",
    default=str(shipped("agentdojo-voters.toml")),
    type=click.Path(dir_okay=False),
    show_default=True,
    help="Voter configurations to compare (TOML).",
)
@click.option("--only", multiple=True, help="Run only the named configuration (repeatable).")
@click.option(
    "--attack",
    "attack_args",
    multiple=True,
    help="An attack name (repeatable): AgentDojo's or an adaptive one (evals/attacks.py); "
    "'all' runs every attack that plants a goal. Default: important_instructions.",
)
@click.option(
    "--agent",
    "agent_kind",
    type=click.Choice(["oracle", "model"]),
    default="oracle",
    show_default=True,
    help="oracle: replay ground truth; model: the --llm model.",
)
@click.option("--user-task", "user_tasks", multiple=True, help="Only this user task (repeatable).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory for results.json, summary.md and the log.",
)
@click.option(
    "--cluster",
    "cluster_config",
    default=None,
    type=click.Path(dir_okay=False),
    help="Run on the running cluster this config describes (e.g. config/cluster.toml), each "
    "part as its role's principal, instead of on an embedded log in --out.",
)
@model_options
def agentdojo(
    suites: str,
    voters_path: str,
    only: tuple[str, ...],
    attack_args: tuple[str, ...],
    agent_kind: str,
    user_tasks: tuple[str, ...],
    out_dir: str,
    cluster_config: str | None,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
) -> None:
    """Run AgentDojo tasks through LogAct's voters and report safety and utility."""
    chosen = _suites(suites)
    attack_list = _attacks(attack_args)
    try:
        configurations = load_configurations(voters_path, only)
    except ConfigurationError as exc:
        fail(str(exc))
    needs_model = configurations.needs_model or agent_kind == "model"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"agent/agentdojo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    async def evaluate(logs: dict[str, object]) -> Evaluation:
        async with AsyncExitStack() as stack:
            chosen_model = None
            if needs_model:
                chosen_model = await stack.enter_async_context(
                    open_model(llm, script, base_url, model)
                )
            agent: AgentFactory = (
                model_agent(*chosen_model)
                if agent_kind == "model" and chosen_model
                else oracle_agent
            )
            return await run_eval(
                logs,
                prefix,
                chosen,
                attack_list,
                Voting(configurations, chosen_model),
                agent,
                user_tasks=user_tasks,
                replay=agent_kind == "oracle",
                progress=lambda line: console.print(f"  {line}"),
            )

    async def embedded() -> Evaluation:
        async with open_embedded(out / "log", durability="os") as log:
            return await evaluate(dict.fromkeys(ROLES, log))

    async def on_cluster() -> Evaluation:
        assert cluster_config is not None
        async with AsyncExitStack() as stack:
            logs = {
                role: await stack.enter_async_context(
                    make_client(cluster_config, None, None, 30.0, role)
                )
                for role in ROLES
            }
            return await evaluate(logs)

    started = time.perf_counter()
    attack_text = ", ".join(attack_list)
    console.print(f"AgentDojo {', '.join(chosen)} · attack {attack_text} · agent {agent_kind}")
    if cluster_config is None:
        evaluation = run(embedded, errors=(ValueError,))
        where = f"embedded log in {out / 'log'}"
    else:
        evaluation = run(on_cluster, errors=(ValueError,))
        where = f"cluster of {cluster_config}"
    seconds = time.perf_counter() - started
    if not evaluation.runs:
        fail("no run was made: no task matched")
    table = summaries(evaluation.runs)
    title = f"AgentDojo ({', '.join(chosen)}), {agent_kind} agent"
    report = markdown(table, title=title)
    if evaluation.skipped:
        report += (
            "\n## Injection tasks not replayable\n\n"
            + "\n".join(f"- {s.suite} {s.injection_task}: {s.why}" for s in evaluation.skipped)
            + "\n"
        )
    (out / "summary.md").write_text(report)
    results = {
        "suites": chosen,
        "attacks": list(attack_list),
        "agent": agent_kind,
        "log": where,
        "prefix": prefix,
        "seconds": round(seconds, 1),
        "summary": {
            a: {c: {s: asdict(v) for s, v in row.items()} for c, row in rows.items()}
            for a, rows in table.items()
        },
        "skipped": [asdict(s) for s in evaluation.skipped],
        "runs": [r.to_doc() for r in evaluation.runs],
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    console.print(report, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{len(evaluation.runs)} runs in {seconds:.0f} s on the {where}; "
        f"wrote {out / 'summary.md'} and {out / 'results.json'}"
    )
    unsafe = [(r.bus, problem) for r in evaluation.runs for problem in r.unsafe]
    if unsafe:
        shown = "; ".join(f"{bus}: {problem}" for bus, problem in unsafe[:5])
        fail(f"the safety checker found {len(unsafe)} violations: {shown}")
    console.print(
        f"safety: no action ran without a commit or twice in any of the {len(evaluation.runs)} runs"
    )
