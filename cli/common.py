"""What every client command of the ``logact`` CLI shares: options, client, error reporting."""

from __future__ import annotations

import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import trio
from rich.console import Console

from logact.client.client import Client, parse_address
from logact.ops.stopping import Stopped, stop_on_signals
from logact.protocol.api import LogAPI
from logact.protocol.errors import LogError
from logact.server.config import ClusterConfig, ConfigError, load_config
from logact.server.local import open_embedded
from logact.server.tls import TlsSettings, client_context_for

E = TypeVar("E", bound=BaseException)
T = TypeVar("T")

console = Console() if Console().is_terminal else Console(width=120)


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: message`` as one line on stderr, and exit ``code`` (2: a usage error, as
    click's own, e.g. options that do not go together)."""
    click.echo(f"{click.style('error:', fg='red')} {message}", err=True)
    sys.exit(code)


def client_options(func: Any) -> Any:
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default="config/cluster.toml",
        show_default=True,
        help="Cluster config (node addresses; default token).",
    )(func)
    func = click.option(
        "--nodes", default=None, help="Comma-separated client addresses (overrides --config)."
    )(func)
    func = click.option(
        "--token",
        envvar="LOGACT_TOKEN",
        default=None,
        help="Auth token (default: $LOGACT_TOKEN, else the config's principal for the command).",
    )(func)
    func = click.option(
        "--timeout",
        type=float,
        default=10.0,
        show_default=True,
        help="Seconds one request may take, retries on other nodes included.",
    )(func)
    for name, env, what in (
        ("--cacert", "LOGACT_CACERT", "CA of the nodes' certificates (default: [tls] ca)"),
        ("--cert", "LOGACT_CERT", "client certificate, when the nodes require one"),
        ("--key", "LOGACT_KEY", "the client certificate's key"),
    ):
        func = click.option(
            name,
            envvar=env,
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            expose_value=False,
            callback=_remember_tls,
            help=f"TLS: {what}; ${env}.",
        )(func)
    return func


def _remember_tls(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """TLS files go to ``make_client`` through the context, not through every command."""
    ctx.meta.setdefault(TLS_META, {})[param.name] = value


TLS_META = "logact.tls"


def default_token(config: ClusterConfig, who: str | None) -> str | None:
    """The config's token of the non-admin principal named ``who``, else of one holding the
    role ``who``; None if there is neither.

    Never an admin's: a command that needs admin rights (``trim``) must be given its token.
    """
    if who is None:
        return None
    candidates = [(t, p) for t, p in config.tokens.items() if not p.admin]
    for token, principal in candidates:
        if principal.name == who:
            return token
    for token, principal in candidates:
        if any(r.name == who for r in principal.roles):
            return token
    return None


def node_addresses(nodes: str) -> list[str]:
    """``--nodes`` as addresses; a one-line error for an entry that is not ``host:port``."""
    addresses = [address.strip() for address in nodes.split(",")]
    for address in addresses:
        try:
            port = parse_address(address)[1]
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            fail(f"--nodes: {address!r} is not host:port (e.g. 127.0.0.1:7101)")
    return addresses


def make_client(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    who: str | None = None,
) -> Client:
    """A client for the command; without ``token``, the config's principal for ``who`` (a
    principal name or a role, see :func:`default_token`)."""
    config: ClusterConfig | None = None
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if nodes is None or token is None:
            fail(str(exc))
    if nodes:
        addresses = node_addresses(nodes)
    else:
        assert config is not None
        addresses = [n.client_address for n in config.nodes]
    if token is None:
        assert config is not None
        token = default_token(config, who)
        if token is None:
            needs = f"a non-admin principal or role named {who!r}" if who else "an admin token"
            fail(f"no --token given ($LOGACT_TOKEN) and this command needs {needs}")
    files = click.get_current_context(silent=True)
    given = files.meta.get(TLS_META, {}) if files is not None else {}
    try:
        tls = client_context_for(config.tls if config else TlsSettings(), **given)
    except (OSError, ValueError) as exc:
        fail(f"TLS files: {exc}")
    return Client(addresses, token, timeout=timeout, tls=tls)


@asynccontextmanager
async def open_role_logs(
    roles: Sequence[str], embedded: Path, cluster_config: str | None
) -> AsyncIterator[dict[str, LogAPI]]:
    """A log for each role: one embedded log in ``embedded`` that all share, or, given
    ``cluster_config``, a client of that cluster as each role's principal."""
    async with AsyncExitStack() as stack:
        if cluster_config is None:
            log = await stack.enter_async_context(open_embedded(embedded, durability="os"))
            yield dict.fromkeys(roles, log)
        else:
            yield {
                role: await stack.enter_async_context(
                    make_client(cluster_config, None, None, 30.0, role)
                )
                for role in roles
            }


def run_prefix(name: str) -> str:
    """A bus prefix no earlier run of the command used: ``agent/NAME-<time>-<random>``."""
    return f"agent/{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def find_error(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in ``exc`` or in the exception groups nurseries wrap it in."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_error(inner, kind)) is not None:
                return found
    return None


#: The signals a stoppable command stops cleanly on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _until_signal(async_fn: Any, args: tuple[Any, ...], stopped: list[int]) -> Any:
    """``async_fn(*args)``, cancelled (so it closes what it opened) on a stop signal, which is
    added to ``stopped``."""
    scope = trio.CancelScope()

    async def watch() -> None:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                stopped.append(signum)
                scope.cancel()
                return

    # A system task is cancelled when the run ends, and leaves async_fn's errors unwrapped.
    trio.lowlevel.spawn_system_task(watch)
    with scope:
        return await async_fn(*args)
    return None


def run(
    async_fn: Any,
    *args: Any,
    errors: tuple[type[Exception], ...] = (),
    stoppable: bool = False,
) -> Any:
    """``trio.run``, turning log, config and ``errors`` failures into one-line messages.

    ``stoppable``: SIGINT (Ctrl-C) or SIGTERM cancels ``async_fn`` (it closes what it opened),
    says so in one line on stderr and exits 128 + the signal's number, without a traceback.
    """
    stopped: list[int] = []
    result = None
    try:
        if not stoppable:
            return trio.run(async_fn, *args)
        result = trio.run(_until_signal, async_fn, args, stopped)
    except Exception as exc:
        log_error = find_error(exc, LogError)
        if log_error is not None:
            fail(f"{log_error.code.value}: {log_error.message}")
        # Imported here: it loads the openai package, which `logact --help` should not wait for.
        from logact.agent.models.llm import ModelError

        for kind in (ConfigError, ModelError, *errors):
            if (found := find_error(exc, kind)) is not None:
                fail(str(found))
        raise
    except BaseException as exc:  # Ctrl-C before the signal receiver was in place
        if not stoppable or find_error(exc, KeyboardInterrupt) is None:
            raise
        stopped.append(signal.SIGINT)
    if not stopped:
        return result
    name = signal.Signals(stopped[0]).name
    click.echo(f"stopped by {name}", err=True)
    sys.exit(128 + stopped[0])


def stoppable(work: Callable[[], T], cleanup: Callable[[], object] = lambda: None) -> T:
    """``work()``, then ``cleanup()`` (which stops what it started) whatever happens; SIGINT or
    SIGTERM interrupts the work (ops/stopping.py), and once cleaned up the command says so in
    one line on stderr and exits 128 + the signal, as a stoppable :func:`run` does."""
    try:
        return stop_on_signals(work, cleanup)
    except Stopped as stopped:
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)


def checked_llm(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An --llm option's value; ``local`` without the local model installed is one line naming
    the install command, before anything starts."""
    if value == "local":
        from logact.agent.models.local_llm import LocalModelError, check_installed

        try:
            check_installed()
        except LocalModelError as exc:
            fail(str(exc))
    return value


def watch_options(interval: float) -> Callable[[Any], Any]:
    """--bus (repeatable), --watch PREFIX, --rounds and --interval, for commands that look
    after many buses in bounded rounds."""

    def add(func: Any) -> Any:
        func = click.option("--bus", "buses", multiple=True, help="A bus (repeatable).")(func)
        func = click.option(
            "--watch", "prefix", default=None, help="Every bus whose id starts so."
        )(func)
        func = click.option(
            "--rounds",
            type=int,
            default=1,
            show_default=True,
            help="Rounds to run, --interval apart; each looks at every bus once.",
        )(func)
        return click.option(
            "--interval", type=float, default=interval, show_default=True, help="Seconds between."
        )(func)

    return add


def check_watch(buses: tuple[str, ...], prefix: str | None, rounds: int, interval: float) -> None:
    if not buses and prefix is None:
        fail("give --bus BUS or --watch PREFIX")
    if rounds < 1 or interval < 0:
        fail("--rounds must be >= 1 and --interval >= 0")
