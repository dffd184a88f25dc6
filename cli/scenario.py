"""``logact scenario checksum|swarm``: the supervision scenarios, measured end to end.

Each runs twice — without and with the supervisor — on an embedded log in ``--out/log`` (or a
running cluster with ``--cluster``), prints a table and writes ``results.json`` and
``summary.md`` to ``--out``. ``--llm script`` (the default) uses the scenarios' scripted
models, which show the mechanism, not a model's judgement; ``--llm env|local`` runs the same
agents and supervisor on a real OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

import click

from logact.agent.models.choice import open_model
from logact.agent.models.llm import ModelError, ScriptedModel
from logact.cli.common import console, fail, make_client, run
from logact.protocol.api import LogAPI
from logact.scenarios import checksum as cs
from logact.scenarios import swarm as sw
from logact.scenarios.rig import ROLES, Model
from logact.server.local import open_embedded


@click.group()
def scenario() -> None:
    """Supervision scenarios: checksum advice and swarm gossip."""


def _common(func: Any) -> Any:
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
        help="script: the scenario's scripted models; env: OPENAI_BASE_URL/LOGACT_MODEL; "
        "local: a SmolLM2 llama-cpp server.",
    )(func)
    func = click.option("--base-url", default=None, help="OpenAI-compatible endpoint.")(func)
    return click.option("--model", default=None, help="Model name for the endpoint.")(func)


@asynccontextmanager
async def _logs(out: Path, cluster_config: str | None) -> AsyncIterator[dict[str, LogAPI]]:
    async with AsyncExitStack() as stack:
        if cluster_config is None:
            log = await stack.enter_async_context(open_embedded(out / "log", durability="os"))
            yield dict.fromkeys(ROLES, log)
        else:
            yield {
                role: await stack.enter_async_context(
                    make_client(cluster_config, None, None, 30.0, role)
                )
                for role in ROLES
            }


def _write(out: Path, name: str, rows: list[dict[str, Any]], notes: list[str]) -> None:
    columns = list(rows[0])
    lines = [f"# {name}", "", *notes, "", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    for line in lines:
        console.print(line, markup=False)


def _change(value: float, base: float) -> str:
    return f"{value / base - 1:+.0%}" if base else "n/a"


def _run(
    out: str,
    cluster_config: str | None,
    scenario_main: Callable[[Mapping[str, LogAPI], Path, str], Awaitable[None]],
) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    prefix = f"agent/scenario-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        async with _logs(target, cluster_config) as logs:
            await scenario_main(logs, target, prefix)

    run(main, errors=(ModelError,))


@scenario.command()
@click.option("--folders", type=int, default=40, show_default=True)
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
) -> None:
    """An agent hashes folders slowly; a supervisor reading its log mails a faster way."""
    if folders < 1 or files < 1 or size < 1 or interval <= 0:
        fail("--folders, --files and --size must be >= 1 and --interval > 0")
    layout = cs.Layout(folders, files, size)

    async def main(logs: Mapping[str, LogAPI], target: Path, prefix: str) -> None:
        async with AsyncExitStack() as stack:
            if llm == "script":
                agent = Model(ScriptedModel(cs.scripted_agent).client(), "scripted")
                advisor = Model(ScriptedModel(cs.scripted_advice).client(), "scripted")
            else:
                real = Model(
                    *await stack.enter_async_context(open_model(llm, None, base_url, model))
                )
                agent = advisor = real
            runs = []
            for supervised in (False, True):
                bus = f"{prefix}/checksum-{'supervised' if supervised else 'alone'}"
                with tempfile.TemporaryDirectory() as workspace:
                    runs.append(
                        await cs.run_once(
                            logs,
                            bus,
                            Path(workspace),
                            layout,
                            agent,
                            advisor,
                            supervised=supervised,
                            interval=interval,
                        )
                    )
        alone, supervised_run = runs
        rows = [
            {
                "run": "supervised" if r.supervised else "alone",
                "bus": r.bus,
                "seconds": f"{r.seconds:.2f}",
                "sums correct": r.correct,
                "advice mailed": len(r.advice),
            }
            for r in runs
        ]
        speedup = alone.seconds / supervised_run.seconds if supervised_run.seconds else 0.0
        notes = [
            f"{folders} folders x {files} files x {size} bytes; model: {agent.name}.",
            f"End-to-end speed-up with the supervisor: {speedup:.1f}x.",
        ]
        if agent.name == "scripted":
            notes.append(
                "Scripted models: the agent is scripted to take the advice; this measures "
                "the mechanism (log -> supervisor -> mail -> next inference), not a model."
            )
        result = {"layout": asdict(layout), "model": agent.name, "speedup": speedup}
        result["runs"] = [asdict(r) for r in runs]
        (target / "results.json").write_text(json.dumps(result, indent=2, default=str))
        _write(target, "Checksum scenario", rows, notes)

    _run(out, cluster_config, main)


@scenario.command()
@click.option("--agents", type=int, default=3, show_default=True)
@click.option("--dirs", type=int, default=4, show_default=True)
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

    async def main(logs: Mapping[str, LogAPI], target: Path, prefix: str) -> None:
        async with AsyncExitStack() as stack:
            real = None
            if llm != "script":
                real = Model(
                    *await stack.enter_async_context(open_model(llm, None, base_url, model))
                )
            runs: dict[str, list[sw.SwarmRun]] = {c: [] for c in sw.COORDINATIONS}
            for seed in range(seeds):
                for coordination in sw.COORDINATIONS:
                    buses = [f"{prefix}/swarm-{seed}-{coordination}/a{i}" for i in range(agents)]
                    models = (
                        sw.scripted_models(buses, think, coordination, budget, seed)
                        if real is None
                        else dict.fromkeys(buses, real)
                    )
                    with tempfile.TemporaryDirectory() as root:
                        runs[coordination].append(
                            await sw.run_swarm(
                                logs, Path(root), tree, models, coordination=coordination,
                                interval=interval,
                            )
                        )  # fmt: skip
        medians = {
            c: {
                "unique": median(r.unique for r in rs),
                "total": median(r.processed for r in rs),
                "tokens": median(r.tokens for r in rs),
            }
            for c, rs in runs.items()
        }
        rows = [
            {
                "coordination": c,
                "files": tree.dirs * tree.files,
                "unique work": f"{medians[c]['unique']:g}",
                "total work": f"{medians[c]['total']:g}",
                "duplicated": f"{median(r.processed - r.unique for r in rs):g}",
                "tokens": f"{medians[c]['tokens']:g}",
                "peer mails": f"{median(r.peer_mails for r in rs):g}",
                "gossip mails": f"{median(len(r.gossip_mail) for r in rs):g}",
                "seconds": f"{median(r.seconds for r in rs):.2f}",
            }
            for c, rs in runs.items()
        ]
        name = "scripted" if real is None else real.name
        notes = [
            f"{agents} agents, {tree.dirs * tree.files} files, budget "
            f"{budget if budget is not None else 'until done'}; model: {name}; medians of "
            f"{seeds} run(s) each.",
            "none: no coordination; peers: agents mail each other what they take; hub: a "
            "supervisor gossips what each has done.",
        ]
        base = medians["none"]
        for c in sw.COORDINATIONS[1:]:
            notes.append(
                f"{c} vs none: unique work {_change(medians[c]['unique'], base['unique'])}, "
                f"tokens {_change(medians[c]['tokens'], base['tokens'])}."
            )
        if real is None:
            notes.append(
                "Scripted agents skip what mail reports; token counts are the scripted "
                "client's word counts. Mechanism, not model quality."
            )
        result = {
            "tree": asdict(tree),
            "model": name,
            "seeds": seeds,
            "runs": {c: [asdict(r) for r in rs] for c, rs in runs.items()},
        }
        (target / "results.json").write_text(json.dumps(result, indent=2, default=str))
        _write(target, "Swarm scenario", rows, notes)

    _run(out, cluster_config, main)
