"""``logact supervise``: a supervisor agent that reads other agents' buses and mails them.

``--advise`` (on by default): when an agent's log shows its open task repeating one tool over
the items of a listing and the projected rest of that dominates the task (or, without a
listing, runs of one tool taking most of its time), mail it advice once (from a model with
``--ask-model``, else the finding and the general remedy). The rule uses only counts and ratios
of the log's own timings: no time constant, the same decision on a fast or a slow machine.
``--gossip``: mail each busy agent what its peers completed that it was not told yet
(``--gossip-tool`` narrows it to the tools that are the shared work). Reads as the reader
principal, mails as the mailer principal; bounded by ``--rounds``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, aclosing

import click

from logact.agent.core.replay import now_ms
from logact.agent.introspection.rounds import watch_rounds
from logact.agent.introspection.supervisor import AdviceThresholds, Supervisor
from logact.agent.models.choice import open_model
from logact.cli.agent import model_options
from logact.cli.common import (
    check_watch,
    client_options,
    console,
    fail,
    make_client,
    run,
    watch_options,
)
from logact.cli.output import emit, json_option


@click.command()
@client_options
@watch_options(interval=5.0)
@click.option("--advise/--no-advise", default=True, show_default=True, help="Mail advice.")
@click.option("--gossip", is_flag=True, help="Mail each agent what its peers completed.")
@click.option("--gossip-tool", "gossip_tools", multiple=True, help="Only these tools' actions.")
@click.option("--ask-model", is_flag=True, help="Advice from a model reading the digest.")
@click.option("--repeat", type=int, default=3, show_default=True, help="Runs before advising.")
@click.option(
    "--share",
    type=float,
    default=0.5,
    show_default=True,
    help="Of the task's time (projected, or so far) the repetition must take.",
)
@model_options
@json_option('one object per mail sent (JSON lines): "bus", "pos", "subject", "text"')
def supervise(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    buses: tuple[str, ...],
    prefix: str | None,
    rounds: int,
    interval: float,
    advise: bool,
    gossip: bool,
    gossip_tools: tuple[str, ...],
    ask_model: bool,
    repeat: int,
    share: float,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """Mail agents advice when they work slowly, and gossip what their peers have done."""
    check_watch(buses, prefix, rounds, interval)
    if repeat < 1 or not 0 < share <= 1:
        fail("--repeat must be >= 1 and 0 < --share <= 1")
    if not advise and not gossip:
        fail("nothing to do: give --advise or --gossip")

    async def main() -> None:
        async with AsyncExitStack() as stack:
            reader = await stack.enter_async_context(
                make_client(config_path, nodes, token, timeout, "reader")
            )
            mailer = await stack.enter_async_context(
                make_client(config_path, nodes, token, timeout, "mailer")
            )
            chosen = (
                await stack.enter_async_context(open_model(llm, script, base_url, model))
                if ask_model
                else None
            )
            supervisor = Supervisor(
                reader,
                mailer,
                advise=advise,
                share_gossip=gossip,
                gossip_tools=frozenset(gossip_tools) or None,
                model=chosen,
                thresholds=AdviceThresholds(repeat, share),
            )
            async with aclosing(watch_rounds(reader, buses, prefix, rounds, interval)) as each:
                async for targets in each:
                    for sent in await supervisor.round(targets, now_ms()):
                        if as_json:
                            emit(
                                {
                                    "bus": sent.bus,
                                    "pos": sent.position,
                                    "subject": sent.subject,
                                    "text": sent.text,
                                }
                            )
                            continue
                        first = sent.text.splitlines()[0] if sent.text else ""
                        line = f"{sent.bus}#{sent.position} {sent.subject}: {first}"
                        console.print(line, markup=False)

    run(main, stoppable=True)
