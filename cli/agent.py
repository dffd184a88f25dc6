"""``logact agent ...``, ``logact mail``, ``logact vote``, ``logact policy``: the agent runtime
from the command line. Each component runs as its own process, or all of them in one (``run``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import click
import trio
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from logact.agent.components import human
from logact.agent.components.assembly import PARTS, USER, AgentSpec, Model, run_task
from logact.agent.components.conversation import Settings
from logact.agent.components.decider import Decider
from logact.agent.components.driver import Driver
from logact.agent.components.executor import Executor
from logact.agent.components.runner import Component, run_component
from logact.agent.components.voters import Judges, Voter
from logact.agent.components.watcher import DEFAULT_MAX_BUSES, WatchLimits, watch
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.policy import Policy
from logact.agent.core.replay import read_state
from logact.agent.integrations.mailbox import give_task, send_mail
from logact.agent.integrations.parts import executor_tools, rules_or_allow_all, scripted_reviewer
from logact.agent.integrations.policy_admin import (
    PolicyChange,
    PolicyDocError,
    append_change,
    decider_policy,
    veto_policy,
)
from logact.agent.introspection import timeline
from logact.agent.judgement.ifc import LabelsError, load_labels
from logact.agent.judgement.rules import RuleError, RuleSet
from logact.agent.models.choice import DEFAULT_SYSTEM_PROMPT, open_model
from logact.agent.models.llm import ModelError
from logact.agent.tools.registry import ToolRegistry, standard_tools
from logact.cli.common import client_options, console, fail, find_error, run
from logact.cli.common import make_client as make_log_client
from logact.protocol.api import LogAPI
from logact.protocol.errors import Fenced


def _bus_option(func: Any) -> Any:
    return click.option("--bus", required=True, help="The agent's bus.")(func)


def _sandbox_option(func: Any) -> Any:
    return click.option(
        "--unsafe-no-sandbox",
        is_flag=True,
        help="Run actions without the bubblewrap sandbox: they can read and change everything "
        "this process can (its token, the config, the network).",
    )(func)


def _executor_tools(workspace: str, unsafe_no_sandbox: bool, **options: Any) -> ToolRegistry:
    tools, warning = executor_tools(Path(workspace), sandboxed=not unsafe_no_sandbox, **options)
    if warning is not None:
        click.echo(f"executor: {warning}", err=True)
    return tools


def model_options(func: Any) -> Any:
    func = click.option(
        "--llm",
        type=click.Choice(["env", "local", "script"]),
        default="env",
        show_default=True,
        help="env: OPENAI_BASE_URL/OPENAI_API_KEY/LOGACT_MODEL; local: start a SmolLM2 "
        "llama-cpp server; script: replies from --script (labelled scripted).",
    )(func)
    func = click.option(
        "--script",
        type=click.Path(exists=True, dir_okay=False),
        help="JSON list of assistant messages, the n-th answering a conversation holding n.",
    )(func)
    func = click.option("--base-url", default=None, help="OpenAI-compatible endpoint.")(func)
    func = click.option("--model", default=None, help="Model name for the endpoint.")(func)
    return func


def announce_ready(component: Component) -> None:
    """One machine-readable line once the component has replayed its bus (supervisors wait
    for it)."""
    epoch = f" epoch {component.epoch}" if component.epoch is not None else ""
    name = type(component).__name__.lower()
    print(f"ready: {name} on {component.bus} at {component.state.next}{epoch}", flush=True)


async def _run_component(component: Component) -> None:
    try:
        await run_component(component, announce_ready)
    except Exception as exc:
        fenced = find_error(exc, Fenced)
        if fenced is None:
            raise
        console.print(
            f"[red]fenced:[/red] another {component.fencing_name} took over", escape(str(fenced))
        )
        sys.exit(3)


def max_buses_option(func: Any) -> Any:
    """The bound on the buses a watch serves at once (agent/components/watcher.py)."""
    return click.option(
        "--max-buses",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_BUSES,
        show_default=True,
        help="Buses served at once when watching; the others wait (reported on stderr).",
    )(func)


def target_options(func: Any) -> Any:
    """--bus BUS or --watch PREFIX (exactly one; see :func:`_check_target`), and --max-buses."""
    func = max_buses_option(func)
    func = click.option(
        "--watch",
        "prefix",
        default=None,
        metavar="PREFIX",
        help="Serve every bus whose id starts with PREFIX, new ones included (not with --bus).",
    )(func)
    return click.option("--bus", default=None, help="The agent's bus.")(func)


def _check_target(bus: str | None, prefix: str | None) -> None:
    if (bus is None) == (prefix is None):
        fail("give --bus BUS or --watch PREFIX (one of them)")


def report(line: str) -> None:
    """A watch's line (bus served, let go, over the bound, failed), on stderr."""
    click.echo(line, err=True)


async def _serve(
    log: LogAPI,
    bus: str | None,
    prefix: str | None,
    max_buses: int,
    make: Callable[[str], Component],
) -> None:
    """``make``'s component on ``bus``, or on every bus under ``prefix`` (a watch)."""
    if prefix is None:
        assert bus is not None
        await _run_component(make(bus))
        return
    async with trio.open_nursery() as nursery:
        limits = WatchLimits(max_buses=max_buses)
        serve = partial(watch, limits=limits, ready=announce_ready, report=report)
        await nursery.start(serve, log, prefix, lambda served: [make(served)])
        print(f"ready: watching {prefix}", flush=True)


def _log(config_path: str, nodes: str | None, token: str | None, timeout: float, who: str):
    return make_log_client(config_path, nodes, token, timeout, who)


@click.group()
def agent() -> None:
    """Run LogAct agent components against a bus."""


@agent.command()
@client_options
@_bus_option
@model_options
@click.option(
    "--workspace",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Only to describe the tools to the model; the executor runs them.",
)
@click.option("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, show_default=False)
@click.option("--max-steps", type=int, default=30, show_default=True)
@click.option("--code-actions", is_flag=True, help="Run fenced code blocks in replies.")
@click.option("--exit-when-done", is_flag=True, help="Exit once the task has its output.")
def driver(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
    workspace: str,
    system_prompt: str,
    max_steps: int,
    code_actions: bool,
    exit_when_done: bool,
) -> None:
    """The model loop: proposes intents, never runs anything."""

    async def main() -> None:
        async with (
            _log(config_path, nodes, token, timeout, "driver") as log,
            open_model(llm, script, base_url, model) as (client, name),
        ):
            tools = standard_tools(Path(workspace)).describe()
            settings = Settings(system_prompt, max_steps, code_actions)
            component = Driver(
                log, bus, client, name, tools, settings, exit_when_idle=exit_when_done
            )
            await _run_component(component)

    run(main, errors=(ModelError, RuleError))


def _rules(path: str | None) -> RuleSet:
    try:
        return rules_or_allow_all(path)
    except (OSError, RuleError) as exc:
        fail(f"rules {path}: {exc}")


@agent.command()
@client_options
@target_options
@model_options
@click.option("--kind", type=click.Choice(["rule", "provenance", "ifc", "llm"]), required=True)
@click.option("--id", "voter_id", default=None, help="Voter id (default: the kind).")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rule file (TOML) for --kind rule; default: allow everything.",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Information-flow labels (TOML) for --kind ifc (docs/agent.md); required for it.",
)
@click.option(
    "--scripted-deny",
    multiple=True,
    metavar="TEXT=REASON",
    help="With --llm script: a scripted verdict rejecting actions containing TEXT.",
)
def voter(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str | None,
    prefix: str | None,
    max_buses: int,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
    kind: str,
    voter_id: str | None,
    rules_path: str | None,
    labels_path: str | None,
    scripted_deny: tuple[str, ...],
) -> None:
    """Vote on every intent of the bus (or of every bus under --watch): a rule, provenance,
    information-flow or LLM voter."""
    _check_target(bus, prefix)
    labels = None
    if kind == "ifc":
        if labels_path is None:
            fail("--kind ifc needs --labels FILE: trusted outputs and sinks")
        try:
            labels = load_labels(labels_path)
        except LabelsError as exc:
            fail(str(exc))

    async def main() -> None:
        async with AsyncExitStack() as stack:
            signer = e.VOTE_SIGNERS.get(kind, "voter")
            log = await stack.enter_async_context(_log(config_path, nodes, token, timeout, signer))
            reviewer = None
            if kind == "llm":
                responder = scripted_reviewer(scripted_deny) if scripted_deny else None
                reviewer = await stack.enter_async_context(
                    open_model(llm, script, base_url, model, responder)
                )
            rules = _rules(rules_path) if kind == "rule" else None
            judge = Judges(rules=rules, labels=labels, reviewer=reviewer).judge(kind)
            await _serve(
                log, bus, prefix, max_buses, lambda b: Voter(log, b, voter_id or kind, kind, judge)
            )

    run(main, errors=(ModelError, RuleError))


def _decider_policy(text: str | None) -> Policy:
    try:
        return decider_policy(text)
    except PolicyDocError as exc:
        fail(f"bad decider policy: {exc}")


@agent.command()
@client_options
@target_options
@click.option(
    "--policy",
    default=None,
    help="Default policy, JSON or @file, e.g. "
    '\'{"kind": "veto", "params": {"kinds": ["rule"]}, "deadline_ms": 30000}\'.',
)
def decider(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str | None,
    prefix: str | None,
    max_buses: int,
    policy: str | None,
) -> None:
    """Turn votes into commit/abort on the bus (or on every bus under --watch);
    decider_policy entries on a bus override --policy."""
    _check_target(bus, prefix)
    default = _decider_policy(policy)

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "decider") as log:
            await _serve(log, bus, prefix, max_buses, lambda b: Decider(log, b, default))

    run(main, errors=(ModelError, RuleError))


@agent.command()
@client_options
@_bus_option
@click.option("--workspace", type=click.Path(file_okay=False), required=True)
@click.option("--shell-timeout", type=float, default=30.0, show_default=True)
@_sandbox_option
def executor(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    workspace: str,
    shell_timeout: float,
    unsafe_no_sandbox: bool,
) -> None:
    """Run committed intents in the workspace, at most once each."""

    async def main() -> None:
        tools = _executor_tools(workspace, unsafe_no_sandbox, shell_timeout=shell_timeout)
        async with _log(config_path, nodes, token, timeout, "executor") as log:
            await _run_component(Executor(log, bus, tools))

    run(main, errors=(ModelError, RuleError))


@agent.command()
@client_options
@_bus_option
@click.argument("text")
def task(
    config_path: str, nodes: str | None, token: str | None, timeout: float, bus: str, text: str
) -> None:
    """Give the agent of BUS a task (agent_input)."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "user") as log:
            console.print(f"task at position {await give_task(log, bus, text)}")

    run(main, errors=(ModelError, RuleError))


def print_timeline(state: BusState) -> None:
    table = Table(title=f"bus {state.bus}", show_lines=True)
    for column in ("#", "kind", "what", "votes", "outcome"):
        table.add_column(column, overflow="fold")
    for row in timeline.timeline(state):
        table.add_row(
            *(
                Text(cell)
                for cell in (str(row.position), row.kind, row.what, row.votes, row.outcome)
            )
        )
    console.print(table)


@agent.command("timeline")
@client_options
@_bus_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def timeline_command(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    as_json: bool,
) -> None:
    """Intent → votes → decision → result, for every action on the bus."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "reader") as log:
            state = await read_state(log, bus)
        if as_json:
            click.echo(json.dumps(timeline.summary(state)))
        else:
            print_timeline(state)
            console.print(timeline.summary(state))

    run(main, errors=(ModelError, RuleError))


@click.command()
@client_options
@click.option("--to", "to", required=True, help="The recipient's bus.")
@click.option("--from", "sender", default="someone", show_default=True)
@click.option("--subject", default=None)
@click.argument("text")
def mail(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    to: str,
    sender: str,
    subject: str | None,
    text: str,
) -> None:
    """Send mail to the agent of a bus."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "mailer") as log:
            position = await send_mail(log, to, sender, text, subject=subject)
            console.print(f"mail at position {position} on {to}")

    run(main, errors=(ModelError, RuleError))


@click.command()
@client_options
@_bus_option
@click.option("--id", "voter_id", default="human", show_default=True)
@click.option(
    "--intent",
    "intent_id",
    type=int,
    default=None,
    help="Vote on this intent without prompting (needs --approve/--reject).",
)
@click.option("--approve/--reject", "approve", default=None)
@click.option("--reason", default=None)
def vote(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    voter_id: str,
    intent_id: int | None,
    approve: bool | None,
    reason: str | None,
) -> None:
    """The human voter: show pending intents with context and record approve/reject."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "human") as log:
            state = await read_state(log, bus)
            if intent_id is not None:
                if approve is None or intent_id not in state.intents:
                    fail("--intent needs an intent of the bus and --approve or --reject")
                if not human.counts(state, intent_id, voter_id):
                    console.print(
                        f"note: #{intent_id} is already decided or has a vote from {voter_id}; "
                        "this vote is recorded but only a first vote before the decision counts"
                    )
                answers = [human.Answer(intent_id, approve, reason)]
            else:
                answers = []
                for record in human.pending(state, voter_id):
                    console.print("\n".join(human.context(state, record)), markup=False)
                    said = click.prompt("approve? [y/n/skip]", default="skip").lower()
                    if said in ("y", "n"):
                        why = click.prompt("reason", default="")
                        answers.append(human.Answer(record.position, said == "y", why))
                if not answers:
                    console.print("nothing to vote on")
            for answer in answers:
                await human.cast(log, bus, voter_id, answer)
                console.print(f"#{answer.position}: {'approved' if answer.approve else 'rejected'}")

    run(main, errors=(ModelError, RuleError))


@click.command()
@client_options
@_bus_option
@click.option(
    "--decider",
    "decider_doc",
    default=None,
    help='Decider policy JSON, e.g. \'{"kind": "all", "params": {"kinds": ["rule"]}}\'.',
)
@click.option(
    "--voter",
    "voter_doc",
    default=None,
    help='Voter policy JSON with its voter kind, e.g. \'{"kind": "llm", "prompt_extra": "..."}\'.',
)
def policy(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    decider_doc: str | None,
    voter_doc: str | None,
) -> None:
    """Append new policy versions (atomically, when both are given); later intents use them."""
    try:
        change = PolicyChange.from_json(decider_doc, voter_doc)
    except PolicyDocError as exc:
        fail(f"bad policy: {exc}")
    if change.empty:
        fail("give --decider and/or --voter")

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "policy") as log:
            positions = await append_change(log, bus, change)
            console.print(f"policy appended at {positions}")

    run(main, errors=(ModelError, RuleError))


@agent.command("run")
@client_options
@_bus_option
@model_options
@click.option("--task", "task_text", default=None, help="Give this task first.")
@click.option("--workspace", type=click.Path(file_okay=False), required=True)
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False), default=None)
@click.option("--llm-voter/--no-llm-voter", "llm_voter_on", default=True, show_default=True)
@click.option(
    "--scripted-deny",
    multiple=True,
    metavar="TEXT=REASON",
    help="With --llm script: the LLM voter's scripted verdicts.",
)
@click.option("--policy", "policy_text", default=None, help="Default decider policy (JSON).")
@click.option("--max-steps", type=int, default=30, show_default=True)
@_sandbox_option
def run_all(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
    task_text: str | None,
    workspace: str,
    rules_path: str | None,
    llm_voter_on: bool,
    scripted_deny: tuple[str, ...],
    policy_text: str | None,
    max_steps: int,
    unsafe_no_sandbox: bool,
) -> None:
    """Every component of one agent in this process (each with its role's principal); exits
    when the task is done and prints the timeline."""
    kinds = ["rule", "llm"] if llm_voter_on else ["rule"]
    default = (
        _decider_policy(policy_text) if policy_text else veto_policy(kinds, deadline_ms=120_000)
    )
    tools = _executor_tools(workspace, unsafe_no_sandbox)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            logs = {
                role: await stack.enter_async_context(
                    _log(config_path, nodes, token, timeout, role)
                )
                for role in (*PARTS, USER)
            }
            client, name = await stack.enter_async_context(open_model(llm, script, base_url, model))
            reviewer = None
            if llm_voter_on:
                reviewer = Model(client, name)
                if scripted_deny:
                    reviewer = Model(
                        *await stack.enter_async_context(
                            open_model(
                                "script",
                                scripted_responder=scripted_reviewer(scripted_deny),
                            )
                        )
                    )
            spec = AgentSpec(
                Model(client, name),
                tools,
                Settings(DEFAULT_SYSTEM_PROMPT, max_steps),
                _rules(rules_path),
                default,
                reviewer,
            )
            await run_task(logs, bus, spec, task_text)
            print_timeline(await read_state(logs["user"], bus))

    run(main, errors=(ModelError, RuleError))
