"""``logact demo``: the main job — an agent on a 3-node cluster, vetoes, and a leader failure.

Brings up the cluster as separate processes and runs one agent (driver, rule voter, LLM voter,
decider, executor: each with its own principal) on a small real task in a temporary workspace:
write a checksum script, run it, verify the output. Two of the proposed actions are vetoed (one
by each voter) and the agent goes on; the cluster leader is killed with SIGKILL mid-run and the
agent does not notice. Prints the bus as a timeline, a summary and checks made from the log and
the workspace, then shuts the cluster down.

The default model is scripted (a fixed list of replies, shown as "scripted"); ``--llm local``
runs a small real model (SmolLM2 under llama-cpp), ``--llm env`` any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

import click
import trio

from logact.agent.introspection import timeline
from logact.agent.models.llm import ModelError
from logact.cli.agent import print_timeline
from logact.cli.common import checked_llm, console, default_token, find_error, stoppable
from logact.cli.demo import fresh_cluster, print_check, print_progress
from logact.protocol.errors import LogError
from logact.scenarios.agent_demo import TASK, checks, prepare_workspace, run_agent
from logact.scenarios.report import all_passed

#: What can stop the demo short: the cluster, the model, a step past its deadline.
_FAILURES: tuple[type[Exception], ...] = (LogError, ModelError, trio.TooSlowError)


@click.command()
@click.option(
    "--config",
    "config_path",
    default="config/cluster.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Cluster config (TOML) of the 3 nodes.",
)
@click.option(
    "--run-dir",
    default=".run/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The nodes' pid files, logs and data (data wiped first).",
)
@click.option(
    "--llm",
    type=click.Choice(["script", "local", "env"]),
    default="script",
    show_default=True,
    callback=checked_llm,
    help="script: scripted replies (labelled); local: SmolLM2 via "
    "llama-cpp; env: OPENAI_BASE_URL / OPENAI_API_KEY / LOGACT_MODEL.",
)
@click.option("--keep", is_flag=True, help="Leave the cluster running and the workspace.")
def demo(config_path: str, run_dir: str, llm: str, keep: bool) -> None:
    """A 3-node cluster and an agent on it: vetoes, a leader kill, a timeline, checks.

    Ctrl-C or SIGTERM stops it: the cluster is shut down (unless --keep), then one line on
    stderr and exit 130 or 143.
    """
    local = fresh_cluster(config_path, run_dir)
    workspace = Path(tempfile.mkdtemp(prefix="logact-demo-"))
    expected = prepare_workspace(workspace)
    console.rule("LogAct demo: an agent on a 3-node Raft shared log")
    console.print(f"task: {TASK}\nworkspace {workspace} · durability {local.config.durability}")

    def show() -> bool:
        """Every step; whether every check passed (False: it failed before its checks)."""
        try:
            local.start_all()
            leader = trio.run(local.wait_for_leader, 30)
            console.print(f"1. cluster up: nodes {', '.join(local.node_ids)}, leader {leader}")
            console.print("2. agent: driver, rule voter, LLM voter, decider (veto), executor")
            token_for = partial(default_token, local.config)
            done = trio.run(run_agent, local, workspace, llm, token_for, print_progress)
            console.print("3. the bus, as a timeline")
            print_timeline(done.state)
            console.print("4. summary", json.dumps(timeline.summary(done.state)))
            console.print("5. checks from the log and the workspace")
            found = checks(done, workspace, expected, scripted=llm == "script")
            for check in found:
                print_check(check)
            return all_passed(found)
        except Exception as exc:
            problem = next(filter(None, (find_error(exc, kind) for kind in _FAILURES)), None)
            if problem is None:
                raise
            what = f"{type(problem).__name__}: {problem}"
            click.echo(f"demo failed: {what}; node logs in {local.run_dir / 'logs'}", err=True)
            return False

    def shut_down() -> None:
        if not keep:
            local.stop_all()
            shutil.rmtree(workspace, ignore_errors=True)
            console.print("6. cluster down")

    # Ctrl-C or SIGTERM: the cluster is shut down all the same, then one line, exit 130 / 143.
    ok = stoppable(show, shut_down)
    console.rule("[green]all checks passed[/green]" if ok else "[red]checks failed[/red]")
    sys.exit(0 if ok else 1)
