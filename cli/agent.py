"""``logact agent ...``, ``logact mail``, ``logact vote``, ``logact policy``: the agent runtime
from the command line. Each component runs as its own process, or all of them in one (``run``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
import trio
from rich.table import Table
from rich.text import Text

from logact.agent.components import human
from logact.agent.components.assembly import (
    PARTS,
    USER,
    AgentSpec,
    Model,
    run_task,
    serve_agents,
)
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
from logact.agent.core.replay import bus_exists, read_state
from logact.agent.integrations.mailbox import give_task, send_mail
from logact.agent.integrations.parts import (
    bus_tools,
    deny_pairs,
    executor_tools,
    rules_or_allow_all,
    scripted_reviewer,
)
from logact.agent.integrations.policy_admin import (
    PolicyChange,
    PolicyDocError,
    append_change,
    decider_policy,
    veto_policy,
)
from logact.agent.introspection import timeline
from logact.agent.introspection.activity import ActivityLog, Appended
from logact.agent.judgement.ifc import LabelsError, load_labels
from logact.agent.judgement.rules import RuleError, RuleSet
from logact.agent.models.choice import DEFAULT_SYSTEM_PROMPT, load_script, open_model
from logact.agent.models.llm import SCRIPTED_MODEL, ModelError
from logact.agent.tools.registry import ToolRegistry, standard_tools
from logact.cli.common import checked_llm, client_options, console, fail, find_error, run
from logact.cli.common import make_client as make_log_client
from logact.cli.output import emit, json_option, text_console
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


def _checked_script(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --script file is checked before anything connects or appends: one line if it is bad."""
    if value is not None:
        try:
            load_script(value)
        except ModelError as exc:
            fail(str(exc))
    return value


#: The --script format, for the options' help (docs/agent.md, "Scripted models", has more).
SCRIPT_HELP = (
    'JSON list of assistant messages, each {"content": TEXT} and/or {"tool_calls": [{"id": '
    'ID, "type": "function", "function": {"name": TOOL, "arguments": JSON-TEXT}}]}; '
    "the n-th answers a conversation holding n assistant messages (docs/agent.md)."
)


def model_options(func: Any) -> Any:
    func = click.option(
        "--llm",
        type=click.Choice(["env", "local", "script"]),
        default="env",
        show_default=True,
        callback=checked_llm,
        help="env: OPENAI_BASE_URL/OPENAI_API_KEY/LOGACT_MODEL; local: start a SmolLM2 "
        "llama-cpp server; script: replies from --script (labelled scripted).",
    )(func)
    func = click.option(
        "--script",
        type=click.Path(exists=True, dir_okay=False),
        callback=_checked_script,
        help=SCRIPT_HELP,
    )(func)
    func = click.option("--base-url", default=None, help="OpenAI-compatible endpoint.")(func)
    func = click.option("--model", default=None, help="Model name for the endpoint.")(func)
    return func


@dataclass(frozen=True)
class PartOutput:
    """What a part tells on stdout as it runs: ``ready:`` once it has replayed its bus
    (supervisors wait for it), the prefix it watches, and a line per vote, decision and run it
    appends (agent/introspection/activity.py); with --json, each as a JSON line."""

    as_json: bool = False

    def ready(self, component: Component) -> None:
        name = type(component).__name__.lower()
        if self.as_json:
            emit(
                {
                    "event": "ready",
                    "component": name,
                    "bus": component.bus,
                    "next": component.state.next,
                    "epoch": component.epoch,
                }
            )
            return
        epoch = f" epoch {component.epoch}" if component.epoch is not None else ""
        print(f"ready: {name} on {component.bus} at {component.state.next}{epoch}", flush=True)

    def watching(self, prefix: str) -> None:
        if self.as_json:
            emit({"event": "watching", "prefix": prefix})
        else:
            print(f"ready: watching {prefix}", flush=True)

    def appended(self, appended: Appended) -> None:
        if self.as_json:
            emit(appended.to_json())
        else:
            print(appended.line(), flush=True)


#: A part's output for people (no --json).
TEXT = PartOutput()

#: --json of the parts that run until stopped.
part_json_option = json_option(
    'JSON lines, each with an "event": ready (component, bus, next, epoch), watching (prefix) '
    "or appended (bus, pos, type, text, ts)"
)


async def _run_component(component: Component, output: PartOutput = TEXT) -> None:
    try:
        await run_component(component, output.ready)
    except Exception as exc:
        fenced = find_error(exc, Fenced)
        if fenced is None:
            raise
        click.echo(f"fenced: another {component.fencing_name} took over: {fenced}", err=True)
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
        fail("give --bus BUS or --watch PREFIX (one of them)", code=2)


def report(line: str) -> None:
    """A watch's line (bus served, let go, over the bound, failed), on stderr."""
    click.echo(line, err=True)


async def _serve(
    log: LogAPI,
    bus: str | None,
    prefix: str | None,
    max_buses: int,
    make: Callable[[str], Component],
    output: PartOutput = TEXT,
) -> None:
    """``make``'s component on ``bus``, or on every bus under ``prefix`` (a watch)."""
    if prefix is None:
        assert bus is not None
        await _run_component(make(bus), output)
        return
    async with trio.open_nursery() as nursery:
        limits = WatchLimits(max_buses=max_buses)
        serve = partial(watch, limits=limits, ready=output.ready, report=report)
        await nursery.start(serve, log, prefix, lambda served: [make(served)])
        output.watching(prefix)


#: The principals of an agent's parts: their logs tell each vote, decision and run they append.
_PART_PRINCIPALS = frozenset({*PARTS, *e.VOTE_SIGNERS.values(), "voter"}) - {"human"}


@asynccontextmanager
async def _log(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    who: str,
    output: PartOutput = TEXT,
) -> AsyncIterator[LogAPI]:
    """A client as the principal ``who``; an agent part's tells ``output`` what it appends."""
    async with make_log_client(config_path, nodes, token, timeout, who) as log:
        yield ActivityLog(log, output.appended) if who in _PART_PRINCIPALS else log


async def _existing(log: LogAPI, bus: str, hint: str = "") -> None:
    """Exit with one line if ``bus`` does not exist (a typo must not look like an empty bus)."""
    if not await bus_exists(log, bus):
        fail(f"bus {bus} does not exist{hint}")


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
@click.option(
    "--system-prompt",
    default=DEFAULT_SYSTEM_PROMPT,
    show_default=False,
    help="The model's instructions (default: work only through the tools, heed vetoes).",
)
@click.option(
    "--max-steps",
    type=int,
    default=30,
    show_default=True,
    help="Model replies per task before the driver gives up.",
)
@click.option("--code-actions", is_flag=True, help="Run fenced code blocks in replies.")
@click.option("--exit-when-done", is_flag=True, help="Exit once the task has its output.")
@part_json_option
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
    as_json: bool,
) -> None:
    """The model loop: proposes intents, never runs anything."""
    output = PartOutput(as_json)

    async def main() -> None:
        async with (
            _log(config_path, nodes, token, timeout, "driver", output) as log,
            open_model(llm, script, base_url, model) as (client, name),
        ):
            tools = standard_tools(Path(workspace)).describe()
            settings = Settings(system_prompt, max_steps, code_actions)
            component = Driver(
                log, bus, client, name, tools, settings, exit_when_idle=exit_when_done
            )
            await _run_component(component, output)

    run(main, errors=(ModelError, RuleError), stoppable=True)


def _rules(path: str | None) -> RuleSet:
    """The rule file at ``path``; none: allow everything, said loudly on stderr."""
    if path is None:
        click.echo(
            click.style("WARNING: no --rules: the rule voter approves EVERY action", bold=True)
            + " (other voters may still veto; give --rules FILE, e.g. config/rules.example.toml)",
            err=True,
        )
    try:
        return rules_or_allow_all(path)
    except (OSError, RuleError) as exc:
        fail(f"rules {path}: {exc}")


def describe_rules(path: str | None, rules: RuleSet) -> str:
    """The rule voter in force, for the start of a run: ``rule (FILE: 5 rules, default deny)``."""
    if path is None:
        return "rule (no --rules: allows everything)"
    count = f"{len(rules.rules)} rule{'s' if len(rules.rules) != 1 else ''}"
    return f"rule ({path}: {count}, default {rules.default})"


@agent.command()
@client_options
@target_options
@model_options
@click.option(
    "--kind",
    type=click.Choice(["rule", "provenance", "ifc", "llm"]),
    required=True,
    help="How it judges: rule file, value provenance, information-flow labels, or a model.",
)
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
@part_json_option
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
    as_json: bool,
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
    output = PartOutput(as_json)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            signer = e.VOTE_SIGNERS.get(kind, "voter")
            log = await stack.enter_async_context(
                _log(config_path, nodes, token, timeout, signer, output)
            )
            reviewer = None
            if kind == "llm":
                responder = scripted_reviewer(scripted_deny) if scripted_deny else None
                reviewer = await stack.enter_async_context(
                    open_model(llm, script, base_url, model, responder)
                )
            rules = _rules(rules_path) if kind == "rule" else None
            judge = Judges(rules=rules, labels=labels, reviewer=reviewer).judge(kind)
            await _serve(
                log,
                bus,
                prefix,
                max_buses,
                lambda b: Voter(log, b, voter_id or kind, kind, judge),
                output,
            )

    run(main, errors=(ModelError, RuleError), stoppable=True)


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
@part_json_option
def decider(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str | None,
    prefix: str | None,
    max_buses: int,
    policy: str | None,
    as_json: bool,
) -> None:
    """Turn votes into commit/abort on the bus (or on every bus under --watch);
    decider_policy entries on a bus override --policy."""
    _check_target(bus, prefix)
    default = _decider_policy(policy)
    output = PartOutput(as_json)

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "decider", output) as log:
            await _serve(log, bus, prefix, max_buses, lambda b: Decider(log, b, default), output)

    run(main, errors=(ModelError, RuleError), stoppable=True)


@agent.command()
@client_options
@_bus_option
@click.option(
    "--workspace",
    type=click.Path(file_okay=False),
    required=True,
    help="The directory actions run in (and are confined to).",
)
@click.option(
    "--shell-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a shell action may run before it is killed.",
)
@_sandbox_option
@part_json_option
def executor(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    workspace: str,
    shell_timeout: float,
    unsafe_no_sandbox: bool,
    as_json: bool,
) -> None:
    """Run committed intents in the workspace, at most once each."""
    output = PartOutput(as_json)

    async def main() -> None:
        tools = _executor_tools(workspace, unsafe_no_sandbox, shell_timeout=shell_timeout)
        async with _log(config_path, nodes, token, timeout, "executor", output) as log:
            await _run_component(Executor(log, bus, tools), output)

    run(main, errors=(ModelError, RuleError), stoppable=True)


@agent.command()
@client_options
@_bus_option
@click.argument("text")
@json_option('{"bus": BUS, "pos": POSITION}')
def task(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    text: str,
    as_json: bool,
) -> None:
    """Give the agent of BUS a task (agent_input)."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "user") as log:
            position = await give_task(log, bus, text)
        if as_json:
            emit({"bus": bus, "pos": position})
        else:
            console.print(f"task at position {position}")

    run(main, errors=(ModelError, RuleError), stoppable=True)


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
@json_option(
    'the summary: one object of counts ("entries", "intents", "committed", "aborted", '
    '"executed_ok", "failed", "in_doubt", "undecided", ...)'
)
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
            await _existing(log, bus)
            state = await read_state(log, bus)
        if as_json:
            click.echo(json.dumps(timeline.summary(state)))
        else:
            print_timeline(state)
            console.print(timeline.summary(state))

    run(main, errors=(ModelError, RuleError), stoppable=True)


@click.command()
@client_options
@click.option("--to", "to", required=True, help="The recipient's bus.")
@click.option(
    "--from", "sender", default="someone", show_default=True, help="Who the mail is from."
)
@click.option("--subject", default=None, help="A subject line for the mail.")
@click.option(
    "--create", is_flag=True, help="Send even if the bus does not exist yet (this starts it)."
)
@click.argument("text")
@json_option('{"bus": BUS, "pos": POSITION}')
def mail(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    to: str,
    sender: str,
    subject: str | None,
    create: bool,
    text: str,
    as_json: bool,
) -> None:
    """Send mail to the agent of a bus (one that exists, unless --create)."""

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "mailer") as log:
            if not create:
                await _existing(log, to, " (a typo? --create sends to it all the same)")
            position = await send_mail(log, to, sender, text, subject=subject)
        if as_json:
            emit({"bus": to, "pos": position})
        else:
            console.print(f"mail at position {position} on {to}")

    run(main, errors=(ModelError, RuleError), stoppable=True)


async def _prompt(text: str, default: str, as_json: bool) -> str:
    """A person's reply, read in a thread so a stop signal is seen while they think; asked on
    stderr when stdout carries JSON."""

    def ask() -> str:
        return str(click.prompt(text, default=default, show_default=False, err=as_json))

    try:
        return await trio.to_thread.run_sync(ask, abandon_on_cancel=True)
    except click.Abort:  # the input ended
        fail("end of input while waiting for an answer")


async def _cast(
    log: LogAPI, state: BusState, voter_id: str, answer: human.Answer, as_json: bool
) -> None:
    """Append a person's vote and say what it was (and whether it can still count)."""
    counts = human.counts(state, answer.position, voter_id)
    if not counts:
        click.echo(
            f"warning: #{answer.position} is already decided or has a vote from {voter_id}; "
            "this vote is recorded but only a first vote before the decision counts",
            err=True,
        )
    position = await human.cast(log, state.bus, voter_id, answer)
    if as_json:
        emit(
            {
                "bus": state.bus,
                "intent": answer.position,
                "approve": answer.approve,
                "reason": answer.vote(voter_id).reason,  # as recorded
                "voter": voter_id,
                "pos": position,
                "counts": counts,
            }
        )
    else:
        console.print(f"#{answer.position}: {'approved' if answer.approve else 'rejected'}")


async def _ask_pending(
    log: LogAPI, state: BusState, voter_id: str, asked: set[int], as_json: bool
) -> None:
    """Ask about every intent waiting for ``voter_id`` not asked about yet (added to
    ``asked``), and cast each answer as it is given."""
    for record in human.pending(state, voter_id):
        if record.position in asked:
            continue
        asked.add(record.position)
        text_console(as_json).print("\n".join(human.context(state, record)), markup=False)
        while (
            meaning := human.understood(await _prompt("approve? [y/n/skip]", "skip", as_json))
        ) is None:
            click.echo("please answer y, yes, n, no, s or skip", err=True)
        if meaning != human.SKIP:
            why = await _prompt("reason", "", as_json)
            answer = human.Answer(record.position, meaning == human.APPROVE, why)
            await _cast(log, state, voter_id, answer, as_json)


@click.command()
@client_options
@_bus_option
@click.option(
    "--id", "voter_id", default="human", show_default=True, help="Voter id the votes carry."
)
@click.option(
    "--intent",
    "intent_id",
    type=int,
    default=None,
    help="Vote on this intent without prompting (needs --approve/--reject).",
)
@click.option("--approve/--reject", "approve", default=None, help="The vote for --intent.")
@click.option("--reason", default=None, help="Why, recorded with the vote.")
@click.option(
    "--follow",
    is_flag=True,
    help="After the pending intents, keep asking about new ones as they come, until Ctrl-C.",
)
@json_option(
    'one object per vote cast (JSON lines): "bus", "intent", "approve", "reason", "voter", '
    '"pos" (of the vote), "counts" (false: too late to count); questions go to stderr'
)
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
    follow: bool,
    as_json: bool,
) -> None:
    """The human voter: show pending intents with context and record approve/reject.

    Answers: y/yes approve, n/no reject, s/skip (or Enter) leave it; anything else is asked
    again.
    """
    if intent_id is not None and follow:
        fail("--follow asks about intents as they come; --intent votes on one (not both)")

    async def main() -> None:
        async with _log(config_path, nodes, token, timeout, "human") as log:
            await _existing(log, bus)
            state = await read_state(log, bus)
            if intent_id is not None:
                if approve is None or intent_id not in state.intents:
                    fail("--intent needs an intent of the bus and --approve or --reject")
                answer = human.Answer(intent_id, approve, reason)
                await _cast(log, state, voter_id, answer, as_json)
                return
            asked: set[int] = set()
            await _ask_pending(log, state, voter_id, asked, as_json)
            said = text_console(as_json)
            if not follow:
                if not asked:
                    said.print("nothing to vote on")
                return
            said.print(f"following {bus}: asking about new intents (Ctrl-C to stop)")
            async with aclosing(log.subscribe(bus, state.next)) as entries:
                async for entry in entries:
                    state.apply(entry)
                    await _ask_pending(log, state, voter_id, asked, as_json)

    run(main, errors=(ModelError, RuleError), stoppable=True)


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
@json_option(
    'one object: "bus", "appended" (each entry as the log holds it: "pos", "type", "body" with '
    "its version)"
)
def policy(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    decider_doc: str | None,
    voter_doc: str | None,
    as_json: bool,
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
            if not as_json:
                console.print(f"policy appended at {positions}")
                return
            held = await log.read(bus, positions[0], len(positions))
            appended = [{"pos": x.pos, "type": x.type, "body": x.body} for x in held.entries]
        emit({"bus": bus, "appended": appended})

    run(main, errors=(ModelError, RuleError), stoppable=True)


def _reviewer_label(name: str, voter_script: str | None, scripted_deny: tuple[str, ...]) -> str:
    """Which LLM voter runs: the model's name, or what a scripted one says."""
    if voter_script:
        return f"{name}, replies from {voter_script}"
    if scripted_deny:
        denied = ", ".join(repr(text) for text, _ in deny_pairs(scripted_deny))
        return f"{name}, rejects actions containing {denied}"
    if name == SCRIPTED_MODEL:
        return f"{name}, approves every action"
    return name


async def _serve_agents(
    logs: dict[str, LogAPI],
    prefix: str,
    spec: AgentSpec,
    workspace: str,
    unsafe_no_sandbox: bool,
    max_buses: int,
    output: PartOutput,
) -> None:
    """``agent run --watch``: an agent on every bus under ``prefix``, each in its own directory
    of ``workspace``; ``ready: watching PREFIX`` once the buses already there are served."""
    tools_for = partial(bus_tools, Path(workspace), sandboxed=not unsafe_no_sandbox)
    serve = partial(serve_agents, limits=WatchLimits(max_buses=max_buses), report=report)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, logs, prefix, spec, tools_for)
        output.watching(prefix)


def describe_policy(policy: Policy) -> str:
    """The decider policy in force, in one line: kind, parameters, deadline."""
    params = f" {json.dumps(dict(policy.params))}" if policy.params else ""
    deadline = f", deadline {policy.deadline_ms / 1000:g} s" if policy.deadline_ms else ""
    return f"{policy.kind}{params}{deadline}"


@agent.command("run")
@client_options
@target_options
@model_options
@click.option("--task", "task_text", default=None, help="Give this task first (not with --watch).")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False),
    required=True,
    help="The directory actions run in (and are confined to). With --watch, each bus gets its "
    "own directory in it, named after the bus ('/' written %2F, a leading '.' %2E), made on "
    "first use.",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rule file (TOML) for the rule voter; default: allow everything (said loudly).",
)
@click.option(
    "--llm-voter/--no-llm-voter",
    "llm_voter_on",
    default=True,
    show_default=True,
    help="Whether an LLM voter reviews each action too.",
)
@click.option(
    "--scripted-deny",
    multiple=True,
    metavar="TEXT=REASON",
    help="A scripted LLM voter (labelled scripted) rejecting actions containing TEXT.",
)
@click.option(
    "--voter-script",
    type=click.Path(exists=True, dir_okay=False),
    callback=_checked_script,
    default=None,
    help="A scripted LLM voter replying from this file (the --script format; every review is "
    "a new conversation, so its first reply answers each). Default with --llm script: a "
    "scripted voter that approves everything. The driver's --script is never the voter's.",
)
@click.option("--policy", "policy_text", default=None, help="Default decider policy (JSON).")
@click.option(
    "--max-steps",
    type=int,
    default=30,
    show_default=True,
    help="Model replies per task before the driver gives up.",
)
@_sandbox_option
@json_option(
    'JSON lines, each with an "event": started (driver, voters, decider), appended and '
    "watching (as agent decider --json), done (bus, summary: as agent timeline --json)"
)
def run_all(
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
    task_text: str | None,
    workspace: str,
    rules_path: str | None,
    llm_voter_on: bool,
    scripted_deny: tuple[str, ...],
    voter_script: str | None,
    policy_text: str | None,
    max_steps: int,
    unsafe_no_sandbox: bool,
    as_json: bool,
) -> None:
    """Every component of one agent in this process (each with its role's principal); exits
    when the task is done and prints the timeline. Says at start which voters and rules are
    in force.

    With --watch PREFIX instead of --bus: a whole agent on every bus under PREFIX, buses created
    later included, each acting in its own directory of --workspace, until stopped (Ctrl-C or
    SIGTERM). Its drivers never exit: each waits for its bus's next task or mail
    (`logact mail --to BUS --create` starts a bus).
    """
    _check_target(bus, prefix)
    if prefix is not None and task_text is not None:
        fail(
            "--task is for one bus (--bus); with --watch, give each bus its task with "
            "`logact mail --to BUS` or `logact agent task --bus BUS`",
            code=2,
        )
    if voter_script and scripted_deny:
        fail("give --voter-script or --scripted-deny, not both")
    if not llm_voter_on and (voter_script or scripted_deny):
        fail("--voter-script and --scripted-deny script the LLM voter: not with --no-llm-voter")
    scripted_voter = llm == "script" or bool(voter_script or scripted_deny)
    kinds = ["rule", "llm"] if llm_voter_on else ["rule"]
    default = (
        _decider_policy(policy_text) if policy_text else veto_policy(kinds, deadline_ms=120_000)
    )
    rules = _rules(rules_path)
    tools = _executor_tools(workspace, unsafe_no_sandbox)
    output = PartOutput(as_json)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            logs = {
                role: await stack.enter_async_context(
                    _log(config_path, nodes, token, timeout, role, output)
                )
                for role in (*PARTS, USER)
            }
            client, name = await stack.enter_async_context(open_model(llm, script, base_url, model))
            reviewer = None
            if llm_voter_on and scripted_voter:
                responder = None if voter_script else scripted_reviewer(scripted_deny)
                reviewer = Model(
                    *await stack.enter_async_context(
                        open_model("script", voter_script, scripted_responder=responder)
                    )
                )
            elif llm_voter_on:
                reviewer = Model(client, name)
            voters = [describe_rules(rules_path, rules)]
            if reviewer is not None:
                voters.append(
                    f"llm ({_reviewer_label(reviewer.name, voter_script, scripted_deny)})"
                )
            if as_json:
                decider = describe_policy(default)
                emit({"event": "started", "driver": name, "voters": voters, "decider": decider})
            else:
                click.echo(f"driver: model {name}")
                click.echo(f"voters: {', '.join(voters)}")
                click.echo(f"decider: {describe_policy(default)}")
            spec = AgentSpec(
                Model(client, name),
                tools,
                Settings(DEFAULT_SYSTEM_PROMPT, max_steps),
                rules,
                default,
                reviewer,
            )
            if prefix is not None:
                await _serve_agents(
                    logs, prefix, spec, workspace, unsafe_no_sandbox, max_buses, output
                )
                return
            assert bus is not None
            await run_task(logs, bus, spec, task_text)
            state = await read_state(logs["user"], bus)
            if as_json:
                emit({"event": "done", "bus": bus, "summary": timeline.summary(state)})
            else:
                print_timeline(state)

    run(main, errors=(ModelError, RuleError), stoppable=True)
