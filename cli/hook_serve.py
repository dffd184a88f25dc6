"""``logact hook serve``: the gate for every session of one harness, in one command.

The hooks (``cli/hook.py``) append each tool call as an intent on the session's bus
(``claude_code.<user>.<session>`` or ``codex.<user>.<session>``) and wait for its decision. This
command makes those decisions for every session, new ones included: a rule voter, optionally an
LLM voter, and a decider under a veto policy (``agent/components/assembly.py`` ``gate``), each
appending as its own principal from the config, all watching the harness's prefix
(``agent/components/watcher.py``). It runs until SIGINT or SIGTERM and then stops in one line.
See ``docs/hooks.md`` for the whole setup.
"""

from __future__ import annotations

import signal
import sys
from contextlib import AsyncExitStack
from functools import partial

import click
import trio

from logact.agent.components.assembly import Model, gate
from logact.agent.components.watcher import WatchLimits, watch
from logact.agent.core.policy import Policy
from logact.agent.integrations.hooks import Harness
from logact.agent.integrations.parts import scripted_reviewer
from logact.agent.integrations.policy_admin import PolicyDocError, decider_policy, veto_policy
from logact.agent.judgement.rules import RuleError, RuleSet, load_rules
from logact.agent.models.choice import open_model
from logact.agent.models.llm import ModelError
from logact.cli.agent import max_buses_option, model_options, report
from logact.cli.common import client_options, fail, make_client, run
from logact.cli.output import emit, json_option
from logact.config import shipped

#: The rule voter's rules when ``serve`` is given none (config/hook-rules.toml).
SHIPPED_RULES = "hook-rules.toml"
#: The default policy's deadline: an intent still undecided then is aborted ("timeout"). The
#: hooks' own --decision-timeout defaults to the same 30 s.
DEADLINE_MS = 30_000


def _gate_rules(path: str | None) -> RuleSet:
    path = path or str(shipped(SHIPPED_RULES))
    try:
        return load_rules(path)
    except (OSError, RuleError) as exc:
        fail(f"rules {path}: {exc}")


def _gate_policy(text: str | None, kinds: list[str]) -> Policy:
    if text is None:
        return veto_policy(kinds, deadline_ms=DEADLINE_MS)
    try:
        return decider_policy(text)
    except PolicyDocError as exc:
        fail(f"bad decider policy: {exc}")


async def _stop_on_signal(
    nursery: trio.Nursery, stopped: list[signal.Signals], *, task_status: trio.TaskStatus[None]
) -> None:
    """Cancel ``nursery`` at the first SIGINT or SIGTERM, noting which in ``stopped``."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            stopped.append(signal.Signals(signum))
            nursery.cancel_scope.cancel()
            return


@click.command()
@client_options
@click.option(
    "--harness",
    type=click.Choice(["claude-code", "codex"]),
    required=True,
    help="Whose session buses to serve: claude_code.* or codex.*.",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"The rule voter's rules (TOML); default: the shipped {SHIPPED_RULES}.",
)
@click.option("--llm-voter", "llm_voter_on", is_flag=True, help="Add an LLM voter (--llm ...).")
@model_options
@click.option(
    "--scripted-deny",
    multiple=True,
    metavar="TEXT=REASON",
    help="With --llm-voter --llm script: the LLM voter's scripted verdicts.",
)
@click.option(
    "--policy",
    "policy_text",
    default=None,
    help="The decider's default policy (JSON or @file); default: a veto over the voters' "
    f"kinds, aborting what is undecided after {DEADLINE_MS // 1000} s.",
)
@max_buses_option
@json_option(
    'the ready line as one object: "event" (ready), "harness", "prefix", "parts", "policy"'
)
def serve(
    config_path: str,
    nodes: str | None,
    timeout: float,
    harness: str,
    rules_path: str | None,
    llm_voter_on: bool,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
    scripted_deny: tuple[str, ...],
    policy_text: str | None,
    max_buses: int,
    as_json: bool,
) -> None:
    """The gate for every session of one harness, new sessions included: a rule voter, an
    optional LLM voter and a decider, each with its own principal from --config (rule-voter,
    llm-voter, decider), until SIGINT/SIGTERM (exit 130/143)."""
    target = Harness(harness.replace("-", "_"))
    prefix = f"{target.value}."
    kinds = ["rule", "llm"] if llm_voter_on else ["rule"]
    rules = _gate_rules(rules_path)
    policy = _gate_policy(policy_text, kinds)
    parts = ("rule-voter", "llm-voter", "decider") if llm_voter_on else ("rule-voter", "decider")

    clients = {part: make_client(config_path, nodes, None, timeout, part) for part in parts}

    async def gate_until_stopped() -> None:
        async with AsyncExitStack() as stack:
            logs = {part: await stack.enter_async_context(clients[part]) for part in parts}
            reviewer = None
            if llm_voter_on:
                responder = scripted_reviewer(scripted_deny) if scripted_deny else None
                reviewer = Model(
                    *await stack.enter_async_context(
                        open_model(llm, script, base_url, model, responder)
                    )
                )
            async with trio.open_nursery() as nursery:
                serve_prefix = partial(
                    watch, limits=WatchLimits(max_buses=max_buses), report=report
                )
                await nursery.start(
                    serve_prefix,
                    logs["decider"],
                    prefix,
                    lambda bus: gate(logs, bus, rules, policy, reviewer),
                )
                if as_json:
                    emit(
                        {
                            "event": "ready",
                            "harness": harness,
                            "prefix": prefix,
                            "parts": list(parts),
                            "policy": policy.kind,
                        }
                    )
                else:
                    print(
                        f"ready: {target.label} gate on {prefix}* ({', '.join(parts)}; "
                        f"decider policy {policy.kind})",
                        flush=True,
                    )

    async def main() -> signal.Signals:
        stopped: list[signal.Signals] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(_stop_on_signal, nursery, stopped)
            await gate_until_stopped()
        return stopped[0]

    stopped = run(main, errors=(ModelError, RuleError))
    click.echo(f"hook serve: stopped on {stopped.name}", err=True)
    sys.exit(128 + stopped.value)  # as a shell reports a process ended by the signal


# The client options without --token (nor $LOGACT_TOKEN): serve runs one principal per part.
serve.params = [param for param in serve.params if param.name != "token"]
