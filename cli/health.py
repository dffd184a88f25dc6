"""``logact health``: deterministic health signals (and optionally a model's reading) of buses.

One bus (``--bus``) or a supervisor over every bus under a prefix (``--watch``), for a bounded
number of rounds. Findings are printed and, with ``--record``, appended to the bus as a
``health`` entry (as the config's supervisor principal) whenever they change; ``--mail`` also
mails them to the agent (as the mailer principal), so they reach its next model call.
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from typing import Any

import click
import trio

from logact.agent.components.runner import read_state
from logact.agent.core import entries as e
from logact.agent.introspection.digest import digest
from logact.agent.introspection.health import Thresholds, check, is_news, model_judgement
from logact.agent.introspection.supervisor import watched_buses
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

CHECKER = "logact-health"


def _print(bus: str, findings: list[dict[str, Any]], judgement: str | None) -> None:
    if not findings:
        console.print(f"{bus}: healthy", markup=False)
    for f in findings:
        console.print(
            f"{bus}: {f['severity'].upper()} {f['signal']}: {f['detail']} {f['positions']}",
            markup=False,
        )
    if judgement:
        console.print(f"{bus}: model: {judgement}", markup=False)


@click.command()
@client_options
@watch_options(interval=30.0)
@click.option("--record", is_flag=True, help="Append findings that changed as a health entry.")
@click.option(
    "--mail",
    "mail_agent",
    is_flag=True,
    help="Also mail changed findings to the agent (implies --record).",
)
@click.option("--judge", is_flag=True, help="Add a model's reading of the bus digest.")
@click.option("--stall", type=float, default=300.0, show_default=True, help="no_progress after s.")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON lines.")
@model_options
def health(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    buses: tuple[str, ...],
    prefix: str | None,
    rounds: int,
    interval: float,
    record: bool,
    mail_agent: bool,
    judge: bool,
    stall: float,
    as_json: bool,
    llm: str,
    script: str | None,
    base_url: str | None,
    model: str | None,
) -> None:
    """Check agents' buses for stalls, loops, error streaks, rising cost and slow actions."""
    check_watch(buses, prefix, rounds, interval)
    if stall <= 0:
        fail("--stall must be > 0")
    thresholds = Thresholds(stall_s=stall)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            reader = await stack.enter_async_context(
                make_client(config_path, nodes, token, timeout, "reader")
            )
            recorder = mailer = None
            if record or mail_agent:  # mail only what changed, which the health entries tell
                recorder = await stack.enter_async_context(
                    make_client(config_path, nodes, token, timeout, "supervisor")
                )
            if mail_agent:
                mailer = await stack.enter_async_context(
                    make_client(config_path, nodes, token, timeout, "mailer")
                )
            chosen = (
                await stack.enter_async_context(open_model(llm, script, base_url, model))
                if judge
                else None
            )
            for index in range(rounds):
                for bus in await watched_buses(reader, buses, prefix):
                    state = await read_state(reader, bus)
                    findings = check(state, int(time.time() * 1000), thresholds)
                    judgement = None
                    if chosen is not None:
                        judgement = await model_judgement(*chosen, digest(state).render())
                    if as_json:
                        print(
                            json.dumps({"bus": bus, "findings": findings, "judgement": judgement})
                        )
                    else:
                        _print(bus, findings, judgement)
                    if not is_news(state, findings):
                        continue
                    if recorder is not None:
                        entry = e.Health(CHECKER, state.next - 1, tuple(findings), judgement)
                        await recorder.append(bus, *entry.to_entry())
                    if mailer is not None and findings:
                        text = "; ".join(f"{f['signal']}: {f['detail']}" for f in findings)
                        await mailer.append(bus, *e.Mail(CHECKER, bus, text, "health").to_entry())
                if index + 1 < rounds:
                    await trio.sleep(interval)

    run(main)
