"""``logact scenario checksum|swarm``: the supervision scenarios, measured end to end.

Each runs twice — without and with the supervisor — on an embedded log in ``--out/log`` (or a
running cluster with ``--cluster``), prints a table and writes ``results.json`` and
``summary.md`` to ``--out``. ``--llm script`` (the default) uses the scenarios' scripted
models, which show the mechanism, not a model's judgement; ``--llm env|local`` runs the same
agents and supervisor on a real OpenAI-compatible endpoint. Progress goes to stderr. A run that
did not show the mechanism (``Report.problem``: e.g. no advice) reports no speed-up, prints and
writes its results all the same, then exits 1 with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from logact.agent.models.choice import open_model
from logact.agent.models.llm import ModelError
from logact.cli.common import checked_llm, console, fail, open_role_logs, run, run_prefix
from logact.cli.output import emit, json_option, stderr_console
from logact.protocol.api import LogAPI
from logact.scenarios import checksum as cs
from logact.scenarios import swarm as sw
from logact.scenarios.report import Report
from logact.scenarios.rig import ROLES, Model

#: Runs a scenario on (logs, bus prefix, the model or None for the scripted ones).
Measure = Callable[[Mapping[str, LogAPI], str, Model | None], Awaitable[Report]]


@click.group()
def scenario() -> None:
    """Supervision scenarios: checksum advice and swarm gossip."""


def _common(func: Any) -> Any:
    func = json_option(
        'one object: "name", "notes", "rows" (the table), "results" (results.json), "out"'
    )(func)
    func = click.option(
        "--out",
        type=click.Path(file_okay=False),
        default="scenario-out",
        show_default=True,
        help="Where results.json, summary.md and the embedded log go.",
    )(func)
    func = click.option(
        "--cluster",
        "cluster_config",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Run on the running cluster of this config (each part as its role's principal).",
    )(func)
    func = click.option(
        "--interval", type=float, default=0.2, show_default=True, help="Supervisor round, s."
    )(func)
    func = click.option(
        "--llm",
        type=click.Choice(["script", "env", "local"]),
        default="script",
        show_default=True,
        callback=checked_llm,
        help="script: the scenario's scripted models; env: OPENAI_BASE_URL/LOGACT_MODEL; "
        "local: a SmolLM2 llama-cpp server.",
    )(func)
    func = click.option("--base-url", default=None, help="OpenAI-compatible endpoint.")(func)
    return click.option("--model", default=None, help="Model name for the endpoint.")(func)


def _run(
    out: str,
    cluster_config: str | None,
    llm: str,
    base_url: str | None,
    model: str | None,
    measure: Measure,
    as_json: bool,
) -> None:
    """Run the scenario on the logs and model the options name; write and print its report."""
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)

    async def main() -> Report:
        async with (
            open_role_logs(ROLES, target / "log", cluster_config) as logs,
            AsyncExitStack() as stack,
        ):
            real = None
            if llm != "script":
                real = Model(
                    *await stack.enter_async_context(open_model(llm, None, base_url, model))
                )
            return await measure(logs, run_prefix("scenario"), real)

    report = run(main, errors=(ModelError,), stoppable=True)
    report.write(target)
    if as_json:
        doc = {"name": report.name, "notes": report.notes, "rows": report.rows}
        emit(doc | {"results": report.doc, "out": str(target)})
    else:
        table = Table(title=report.name)
        for column in report.rows[0]:
            table.add_column(column, overflow="fold")
        for row in report.rows:
            table.add_row(*(str(value) for value in row.values()))
        console.print(table)
        for note in report.notes:
            console.print(note, markup=False, highlight=False)
    if report.problem:
        fail(f"{report.problem} (results in {target / 'results.json'})")


class ProgressLine:
    """``alone: 37/200 folders, 12 s`` on stderr as a run goes: redrawn in place on a terminal;
    elsewhere (a file, CI) a line per tenth of the folders and one when the run is over."""

    def __init__(self) -> None:
        self.terminal = stderr_console.is_terminal
        self.tenths: dict[str, int] = {}

    def __call__(self, run: str, hashed: int, folders: int, seconds: float, over: bool) -> None:
        line = f"{run}: {hashed}/{folders} folders hashed, {seconds:.0f} s"
        if self.terminal:
            click.echo(f"\r{line}{' done' if over else ''}\x1b[K", err=True, nl=over)
            return
        tenth = hashed * 10 // folders
        if over or tenth > self.tenths.get(run, -1):
            self.tenths[run] = tenth
            click.echo(f"{line}{' done' if over else ''}", err=True)


@scenario.command()
@click.option(
    "--folders", type=int, default=40, show_default=True, help="Folders of files to hash."
)
@click.option("--files", type=int, default=4, show_default=True, help="Per folder.")
@click.option("--size", type=int, default=128 * 1024, show_default=True, help="Bytes per file.")
@_common
def checksum(
    folders: int,
    files: int,
    size: int,
    out: str,
    cluster_config: str | None,
    interval: float,
    llm: str,
    base_url: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """An agent hashes folders slowly; a supervisor reading its log mails a faster way."""
    if folders < 1 or files < 1 or size < 1 or interval <= 0:
        fail("--folders, --files and --size must be >= 1 and --interval > 0")
    layout = cs.Layout(folders, files, size)

    async def measure(logs: Mapping[str, LogAPI], prefix: str, real: Model | None) -> Report:
        return await cs.compare(
            logs, prefix, layout, real, interval=interval, on_progress=ProgressLine()
        )

    _run(out, cluster_config, llm, base_url, model, measure, as_json)


@scenario.command()
@click.option("--agents", type=int, default=3, show_default=True, help="Agents (at least 2).")
@click.option("--dirs", type=int, default=4, show_default=True, help="Directories in the tree.")
@click.option("--files", type=int, default=6, show_default=True, help="Per directory.")
@click.option("--budget", type=int, default=None, help="Files each agent may process.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs (agent orders).")
@click.option("--think", type=float, default=0.1, show_default=True, help="Scripted latency, s.")
@_common
def swarm(
    agents: int,
    dirs: int,
    files: int,
    budget: int | None,
    seeds: int,
    think: float,
    out: str,
    cluster_config: str | None,
    interval: float,
    llm: str,
    base_url: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """Agents process one tree, each on its own bus: uncoordinated, mailing each other, and
    with a gossiping supervisor. Figures are medians over --seeds runs of each."""
    if agents < 2 or dirs < 1 or files < 1 or seeds < 1 or think < 0 or interval <= 0:
        fail(
            "--agents must be >= 2, --dirs, --files and --seeds >= 1, --think >= 0, --interval > 0"
        )
    if budget is not None and budget < 1:
        fail("--budget must be >= 1")
    tree = sw.Tree(dirs, files, agents, budget=budget)

    async def measure(logs: Mapping[str, LogAPI], prefix: str, real: Model | None) -> Report:
        return await sw.compare(
            logs, prefix, tree, real, seeds=seeds, think=think, interval=interval
        )

    _run(out, cluster_config, llm, base_url, model, measure, as_json)
