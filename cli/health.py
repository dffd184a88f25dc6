"""``logact health``: deterministic health signals (and optionally a model's reading) of buses.

One bus (``--bus``) or a supervisor over every bus under a prefix (``--watch``), for a bounded
number of rounds. Findings are printed and, with ``--record``, appended to the bus as a
``health`` entry (as the config's supervisor principal) whenever they change; ``--mail`` also
mails them to the agent (as the mailer principal), so they reach its next model call.

The exit code is the worst status of the buses' latest checks, as a Nagios plugin's: 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN (a bus that does not exist, or no bus to check at all).
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack, aclosing

import click

from logact.agent.introspection.health import Status, Thresholds, worst
from logact.agent.introspection.health_watch import HealthWatcher, Report, watch
from logact.agent.models.choice import open_model
from logact.cli.agent import model_options
from logact.cli.common import (
    check_watch,
    client_options,
    fail,
    make_client,
    run,
    watch_options,
)
from logact.cli.output import emit, json_option


def _print(report: Report) -> None:
    """One line per finding (never wrapped: a line is a finding, for grep and for people)."""
    bus = report.bus
    if not report.findings:
        click.echo(f"{bus}: healthy")
    for f in report.findings:
        positions = f" {f['positions']}" if f["positions"] else ""
        click.echo(f"{bus}: {f['severity'].upper()} {f['signal']}: {f['detail']}{positions}")
    if report.judgement:
        click.echo(f"{bus}: model: {report.judgement}")


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
@json_option('one object per bus per round (JSON lines): "bus", "status", "findings", "judgement"')
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
    """Check agents' buses for stalls, loops, error streaks, rising cost and slow actions.

    \b
    Exit code: the worst status of the latest check of each bus (Nagios plugin codes):
      0 OK        no findings
      1 WARNING   a warn finding (repeated_action, slow_action, rising_cost)
      2 CRITICAL  an alert finding (no_progress, error_streak, in_doubt)
      3 UNKNOWN   a bus that does not exist (unknown_bus), or no bus under --watch
    A bus that is CRITICAL outranks one that is UNKNOWN, which outranks WARNING.
    """
    check_watch(buses, prefix, rounds, interval)
    if stall <= 0:
        fail("--stall must be > 0")
    thresholds = Thresholds(stall_s=stall)

    async def main() -> dict[str, Status]:
        latest: dict[str, Status] = {}
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
            watcher = HealthWatcher(
                reader, recorder=recorder, mailer=mailer, model=chosen, thresholds=thresholds
            )
            async with aclosing(watch(watcher, buses, prefix, rounds, interval)) as reports:
                async for report in reports:
                    latest[report.bus] = report.status
                    if as_json:
                        line = {"bus": report.bus, "status": report.status.name}
                        line |= {"findings": report.findings, "judgement": report.judgement}
                        emit(line)
                    else:
                        _print(report)
        return latest

    latest = run(main, stoppable=True)
    if not latest:
        click.echo(f"UNKNOWN: no bus under {prefix} to check", err=True)
        sys.exit(Status.UNKNOWN)
    status = worst(latest.values())
    if not as_json:
        click.echo(f"status: {status.name}")
    sys.exit(status)
