"""``logact eval``: evaluations against third-party benchmarks."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from logact.agent.models.choice import open_model
from logact.cli.agent import model_options
from logact.cli.common import fail, open_role_logs, run, run_prefix
from logact.cli.output import emit, json_option, text_console
from logact.config import shipped
from logact.evals.configurations import ConfigurationError, load_configurations
from logact.evals.harness import ROLES, SUITES
from logact.evals.run import (
    AgentDojoOptions,
    Results,
    choose_attacks,
    parse_suites,
    run_agentdojo,
)


@click.group()
def eval_() -> None:
    """Evaluate LogAct's voters on third-party benchmarks."""


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
@json_option(
    'results.json as one object ("summary", "runs", ...) and "out"; the progress goes to stderr'
)
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
    as_json: bool,
) -> None:
    """Run AgentDojo tasks through LogAct's voters and report safety and utility."""
    try:
        chosen = parse_suites(suites)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        attacks = choose_attacks(attack_args)
        configurations = load_configurations(voters_path, only)
    except (ConfigurationError, ValueError) as exc:
        fail(str(exc))
    options = AgentDojoOptions(chosen, attacks, configurations, agent_kind, user_tasks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    where = f"cluster of {cluster_config}" if cluster_config else f"embedded log in {out / 'log'}"
    console = text_console(as_json)

    async def main() -> Results:
        async with open_role_logs(ROLES, out / "log", cluster_config) as logs:
            return await run_agentdojo(
                logs,
                options,
                prefix=run_prefix("agentdojo"),
                where=where,
                open_model=partial(open_model, llm, script, base_url, model),
                progress=lambda line: console.print(f"  {line}"),
            )

    console.print(
        f"AgentDojo {', '.join(chosen)} · attack {', '.join(attacks)} · agent {agent_kind}"
    )
    results = run(main, errors=(ValueError,), stoppable=True)
    summary_path, results_path = results.write(out)
    if as_json:
        emit(results.to_doc() | {"out": str(out)})
    else:
        console.print(results.summary(), markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{len(results.evaluation.runs)} runs in {results.seconds:.0f} s on the {where}; "
        f"wrote {summary_path} and {results_path}"
    )
    unsafe = results.unsafe()
    if unsafe:
        shown = "; ".join(f"{bus}: {problem}" for bus, problem in unsafe[:5])
        fail(f"the safety checker found {len(unsafe)} violations: {shown}")
    console.print(
        f"safety: no action ran without a commit or twice in any of the "
        f"{len(results.evaluation.runs)} runs"
    )
