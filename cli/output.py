"""Output for programs: the ``--json`` of every command whose output a script would read.

A command given ``--json`` prints one JSON object on stdout (or, for a command that streams,
one object per line, flushed as it happens) with stable keys, and nothing else there: what it
tells people meanwhile goes to stderr. Errors are the same one line on stderr, with the same exit
codes, in both modes. docs/cli.md ("Output for programs") lists every command and its output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from logact.cli.common import console

F = TypeVar("F", bound=Callable[..., Any])

#: How every ``--json`` help starts (a test holds each command to it).
JSON_HELP = "Output for programs: {shape}, instead of text."

#: Where a command's text for people goes while stdout carries its JSON.
stderr_console = (
    Console(stderr=True) if Console(stderr=True).is_terminal else Console(stderr=True, width=120)
)


def json_option(shape: str) -> Callable[[F], F]:
    """``--json`` (the ``as_json`` flag), its help saying what ``shape`` the output has."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP.format(shape=shape))


def emit(doc: Any) -> None:
    """``doc`` as one line of JSON on stdout, flushed at once (a stream's reader sees it)."""
    click.echo(json.dumps(doc, default=str))


def text_console(as_json: bool) -> Console:
    """Where text for people goes: stdout, or stderr when stdout carries JSON."""
    return stderr_console if as_json else console
