"""The ``logact`` command tree as a user meets it: help on every option, ``--json`` on every
command whose output a program would read (and docs/cli.md saying so for each), a quick
``--help`` that imports no lazy command, ``--version``, and one-line errors naming the install
command when an optional extra (AgentDojo, the local model) is missing."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import click
import pytest

from logact.cli.main import LazyGroup, main

#: What only lazily loaded commands may import: ``logact --help`` must not.
HEAVY = ("openai", "agentdojo", "llama_cpp", "logact.agent", "logact.evals", "logact.benchmarks")


def _commands(
    command: click.Command, ctx: click.Context, path: str
) -> Iterator[tuple[str, click.Command]]:
    """Every command under ``command`` (lazy ones loaded), with its ``logact ...`` path."""
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name}"
            yield from _commands(
                sub, click.Context(sub, parent=ctx, info_name=name), f"{path} {name}"
            )


def _leaves() -> dict[str, click.Command]:
    """Every command that runs (not a group), by its ``logact ...`` path."""
    tree = _commands(main, click.Context(main, info_name="logact"), "logact")
    return {path: command for path, command in tree if not isinstance(command, click.Group)}


#: Commands with no output for programs, and why (docs/cli.md says the same, row by row).
NO_MACHINE_OUTPUT = {
    "logact node": "a server: it logs on stderr; `logact status --json` asks it",
    "logact hook claude-code": "its stdout already is the JSON answer the harness reads",
    "logact hook codex": "its stdout already is the JSON answer the harness reads",
    "logact demo": "a demonstration for people; the exit status tells whether its checks passed",
    "logact log-demo": "a demonstration for people; the exit status tells whether its checks "
    "passed",
}
#: Commands whose --json names a results file (``-``: stdout), as it did before --json flags.
JSON_FILE = {"logact bench"}
#: How a --json flag's help reads (cli/output.py JSON_HELP).
JSON_FLAG_HELP = re.compile(r"Output for programs: .+, instead of text\.", re.S)


def test_every_command_whose_output_programs_read_has_json() -> None:
    without = []
    for path, command in _leaves().items():
        option = next((p for p in command.params if "--json" in p.opts), None)
        if path in NO_MACHINE_OUTPUT:
            assert option is None, f"{path} has --json now: take it off NO_MACHINE_OUTPUT"
        elif option is None:
            without.append(path)
        elif path in JSON_FILE:
            assert isinstance(option, click.Option) and not option.is_flag, path
            assert "- prints them on stdout" in (option.help or ""), path
        else:
            assert isinstance(option, click.Option) and option.is_flag, path
            assert JSON_FLAG_HELP.fullmatch(option.help or ""), f"{path}: {option.help!r}"
    assert without == [], "commands without --json (add it, or say why not in NO_MACHINE_OUTPUT)"


def _documented() -> dict[str, str]:
    """docs/cli.md's table under "Output for programs": what each command prints."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    section = text.split("## Output for programs", 1)[1]
    rows = re.findall(r"^\| `(logact [^`]+)` \| (.+) \|$", section, re.M)
    return dict(rows)


def test_the_docs_say_what_every_command_prints_for_programs() -> None:
    documented = _documented()
    assert sorted(documented) == sorted(_leaves())
    for path, said in documented.items():
        if path in NO_MACHINE_OUTPUT:
            assert said.startswith("none"), path
        else:
            assert said.startswith("`--json"), path


def test_every_option_of_every_command_has_help() -> None:
    bare = [
        f"{path} {'/'.join(param.opts)}"
        for path, command in _commands(main, click.Context(main, info_name="logact"), "logact")
        for param in command.params
        if isinstance(param, click.Option) and "--help" not in param.opts and not param.help
    ]
    assert bare == []


@pytest.mark.parametrize("name", sorted(LazyGroup.LAZY))
def test_a_lazy_commands_listed_help_is_its_own(name: str) -> None:
    lazy = LazyGroup.LAZY[name]
    module, attribute = lazy.target.split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert lazy.help == command.get_short_help_str(limit=10_000)


def _logact(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process; ``prelude`` runs first (to hide a package)."""
    code = f"{prelude}\nfrom logact.cli.main import main\nmain(prog_name='logact')"
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def _imported(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.process
def test_help_lists_every_command_without_importing_lazy_ones() -> None:
    done = _logact("--help")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Commands:", 1)[1]
    for name in LazyGroup.LAZY:
        assert f"  {name} " in listed
    heavy = sorted(
        name
        for name in _imported(done.stderr)
        if any(name == root or name.startswith(f"{root}.") for root in HEAVY)
    )
    assert heavy == []


@pytest.mark.process
def test_version_is_the_installed_distributions() -> None:
    done = _logact("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logact {version('logact')}"


@pytest.mark.process
def test_eval_without_agentdojo_names_the_install_command(tmp_path: Path) -> None:
    done = _logact(
        "eval",
        "agentdojo",
        "--out",
        str(tmp_path),
        prelude="import sys; sys.modules['agentdojo'] = None  # not installed",
    )
    assert done.returncode == 1
    assert _error_lines(done.stderr) == [
        "error: `logact eval` needs the eval extra (agentdojo), which is not installed: install "
        "it with scripts/install eval (from the logact repository)"
    ]
    assert not (tmp_path / "results.json").exists()


@pytest.mark.process
def test_local_model_without_the_llm_extra_names_the_install_command(tmp_path: Path) -> None:
    done = _logact(
        "demo",
        "--llm",
        "local",
        "--run-dir",
        str(tmp_path / "run"),
        prelude="import sys; sys.modules['llama_cpp'] = None  # not installed",
    )
    assert done.returncode == 1
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: the local model is not installed (no llama_cpp)")
    assert "scripts/install llm" in lines[0]
    assert not (tmp_path / "run").exists()  # failed before any node started
