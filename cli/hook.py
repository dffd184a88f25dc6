"""``logact hook claude-code`` / ``logact hook codex``: the harness-facing hook commands (and
``logact hook serve``, the gate that decides their intents: ``cli/hook_serve.py``).

Configure the same command for PreToolUse and PostToolUse (and, for Claude Code,
PostToolUseFailure); the event comes from the payload. Each run reads one JSON payload on
stdin and writes what the harness expects on stdout, always with exit code 0: a deny is a JSON
decision, never a crash, because both harnesses let the tool run when a hook fails.

This module deliberately does not reuse ``cli/main.py``'s ``_make_client``: that one exits
with status 1 on a bad config, which a harness treats as "hook failed, run the tool anyway".
Here every setup problem becomes a deny. (It also keeps ``main.py`` free to import ``hook``.)
See ``docs/hooks.md`` for the settings snippets and protocol sources.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import click
import trio

from logact.agent.integrations.hooks import (
    Harness,
    HookResponse,
    LogOpener,
    deny_unavailable,
    run_hook,
)
from logact.cli.common import client_options
from logact.client.client import Client
from logact.protocol.api import LogAPI
from logact.server.config import ConfigError, load_config

#: Hook payloads are a few KB; a Write of a large file can be more. Larger input is refused.
MAX_STDIN_BYTES = 8 * 1024 * 1024
#: A harness always closes stdin after the payload; this only guards against a stuck pipe.
STDIN_TIMEOUT = 5.0
#: Whatever happens, the hook answers (a deny) within --decision-timeout plus this many
#: seconds: a harness that times the hook out first would run the tool.
ANSWER_SLACK = 20


class HookSetupError(Exception):
    """No usable log connection settings (config, nodes, token)."""


def client_opener(
    config_path: str, nodes: str | None, token: str | None, timeout: float
) -> LogOpener:
    """An opener for the cluster client; raises HookSetupError on unusable settings.

    Token: ``--token``, else ``$LOGACT_TOKEN`` (click), else the config's ``hook`` principal.
    """
    config = None
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if nodes is None or token is None:
            raise HookSetupError(str(exc)) from None
    addresses = (
        [a for a in nodes.split(",") if a] if nodes else [n.client_address for n in config.nodes]  # type: ignore[union-attr]
    )
    if token is None:
        assert config is not None
        token = next((t for t, p in config.tokens.items() if p.name == "hook"), None)
        if token is None:
            raise HookSetupError("no --token or $LOGACT_TOKEN, and the config has no 'hook'")
    if not addresses:
        raise HookSetupError("no node addresses")

    @asynccontextmanager
    async def open_client() -> AsyncIterator[LogAPI]:
        async with Client(addresses, token, timeout=timeout) as client:
            yield client

    return open_client


async def _read_stdin() -> bytes:
    """All of stdin, within STDIN_TIMEOUT; TooSlowError/ValueError become a deny upstream."""
    stream = sys.stdin.buffer
    with trio.fail_after(STDIN_TIMEOUT):
        data: bytes = await trio.to_thread.run_sync(
            stream.read, MAX_STDIN_BYTES + 1, abandon_on_cancel=True
        )
    if len(data) > MAX_STDIN_BYTES:
        raise ValueError(f"hook payload is larger than {MAX_STDIN_BYTES} bytes")
    return data


async def _invoke(harness: Harness, opener: LogOpener | Exception, **kwargs: Any) -> HookResponse:
    try:
        stdin = await _read_stdin()
    except (OSError, ValueError, trio.TooSlowError) as exc:
        # Event unknown: answer as a Pre (a deny on a Post event is harmless: it already ran).
        return deny_unavailable(harness, RuntimeError(f"could not read stdin: {exc!r}"))
    if isinstance(opener, Exception):
        failed: Exception = opener

        @asynccontextmanager
        async def open_failed() -> AsyncIterator[LogAPI]:
            raise failed
            yield  # pragma: no cover

        return await run_hook(harness, stdin, open_failed, **kwargs)
    return await run_hook(harness, stdin, opener, **kwargs)


def _emit(response: HookResponse) -> NoReturn:
    """Write the answer and end the process at once.

    ``os._exit`` skips interpreter shutdown: a thread still blocked reading a stuck stdin
    would make it abort (exit 134), which both harnesses take as "hook failed, run the tool".
    """
    try:
        if response.stdout:
            sys.stdout.write(response.stdout + "\n")
        if response.stderr:
            sys.stderr.write(response.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(response.exit_code)


def _answer_in_time(harness: Harness, seconds: float) -> None:
    """A deny after ``seconds``, from a signal handler, even if something below hangs."""

    def give_up(_signum: int, _frame: Any) -> None:
        _emit(deny_unavailable(harness, RuntimeError(f"no answer within {seconds:.0f}s")))

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(math.ceil(seconds))


def _run(harness: Harness, options: dict[str, Any]) -> None:
    _answer_in_time(harness, options["decision_timeout"] + ANSWER_SLACK)
    try:
        opener: LogOpener | Exception = client_opener(
            options["config_path"], options["nodes"], options["token"], options["timeout"]
        )
    except (HookSetupError, ValueError) as exc:
        opener = exc
    kwargs = {
        "decision_timeout": options["decision_timeout"],
        "user": options["user"],
        "native_prompt": options.get("native_prompt", False),
    }
    try:
        response = trio.run(lambda: _invoke(harness, opener, **kwargs))
    except Exception as exc:  # last resort: still answer, never exit non-zero
        response = deny_unavailable(harness, exc)
    except KeyboardInterrupt:  # deny rather than die: dying would let the tool run
        response = deny_unavailable(harness, RuntimeError("interrupted"))
    _emit(response)


def _hook_options(func: Any) -> Any:
    """The client options of the other commands, plus the hook's own."""
    options = [
        click.option(
            "--decision-timeout",
            type=float,
            default=30.0,
            show_default=True,
            help="Seconds to wait for commit/abort before denying (keep it below the "
            "harness's hook timeout, or a slow decision lets the tool run).",
        ),
        click.option(
            "--user",
            default=None,
            help="User part of the bus id (default: $USER).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return client_options(func)


class _HookGroup(click.Group):
    """The hook commands, with ``serve`` loaded only when used: it imports the agent runtime
    (and the openai package), which a hook run for every tool call should not wait for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "serve"])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "serve":
            from logact.cli.hook_serve import serve

            return serve
        return super().get_command(ctx, name)


@click.group(cls=_HookGroup)
def hook() -> None:
    """Gate a coding agent's tool calls through LogAct: the harness's command hook
    (claude-code, codex) and the gate that decides its calls (serve)."""


@hook.command("claude-code")
@_hook_options
@click.option(
    "--native-prompt",
    is_flag=True,
    help="On commit print nothing, so Claude Code's own permission prompt still applies "
    "(default: answer 'allow').",
)
def claude_code(**options: Any) -> None:
    """Claude Code Pre/PostToolUse(+Failure) hook (bus claude_code.USER.SESSION)."""
    _run(Harness.CLAUDE_CODE, options)


@hook.command("codex")
@_hook_options
def codex(**options: Any) -> None:
    """Codex PreToolUse / PostToolUse hook (bus codex.USER.SESSION)."""
    _run(Harness.CODEX, options)
